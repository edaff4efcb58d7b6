//! Writing a new user namespace's uid_map and gid_map, from the parent (outside the namespace).
//!
//! The kernel lets a writer without CAP_SETUID/CAP_SETGID in the parent namespace map only its
//! own euid (egid) as one range of size 1, and a gid map only after setgroups is denied. Anything
//! else an unprivileged user may map comes from /etc/subuid and /etc/subgid, which the setuid
//! helpers newuidmap and newgidmap check and write for it.

use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::runtime::{Linux, LinuxIdMapping};

use crate::error::{Context, Error, Result};
use crate::namespaces::id_map_text;

/// newuidmap/newgidmap only read two small files and write one: seconds mean a hung helper.
const HELPER_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
enum Kind {
    Uid,
    Gid,
}

impl Kind {
    fn file(self) -> &'static str {
        match self {
            Kind::Uid => "uid_map",
            Kind::Gid => "gid_map",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Kind::Uid => "linux.uidMappings",
            Kind::Gid => "linux.gidMappings",
        }
    }

    fn helper(self) -> &'static str {
        match self {
            Kind::Uid => "newuidmap",
            Kind::Gid => "newgidmap",
        }
    }

    /// Where the ranges the helper allows are listed.
    fn subids(self) -> &'static str {
        match self {
            Kind::Uid => "/etc/subuid",
            Kind::Gid => "/etc/subgid",
        }
    }

    /// Our own id, the one the kernel lets an unprivileged writer map.
    fn own(self) -> u32 {
        match self {
            Kind::Uid => nix::unistd::geteuid().as_raw(),
            Kind::Gid => nix::unistd::getegid().as_raw(),
        }
    }
}

/// Writes `pid`'s uid_map, then its gid_map, as the caller is allowed to: directly as root or
/// for a map of the caller's own id, through newuidmap/newgidmap otherwise.
pub fn write(pid: i32, linux: Option<&Linux>) -> Result<()> {
    let uids = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or_default();
    let gids = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or_default();
    write_one(pid, Kind::Uid, uids)?;
    write_one(pid, Kind::Gid, gids)
}

fn write_one(pid: i32, kind: Kind, maps: &[LinuxIdMapping]) -> Result<()> {
    let privileged = nix::unistd::geteuid().is_root();
    if privileged || only_own(maps, kind.own()) {
        if !privileged && matches!(kind, Kind::Gid) {
            // The kernel's condition for an unprivileged gid_map: the namespace can then never
            // drop a group that a permission check denies on.
            let path = format!("/proc/{pid}/setgroups");
            std::fs::write(&path, "deny")
                .ctx(|| format!("{}: writing \"deny\" to {path}", kind.field()))?;
        }
        let path = format!("/proc/{pid}/{}", kind.file());
        return std::fs::write(&path, id_map_text(maps))
            .ctx(|| format!("{}: writing {path}", kind.field()));
    }
    run_helper(pid, kind, maps)
}

/// The mapping is the one an unprivileged writer may set itself.
fn only_own(maps: &[LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.size() == 1 && m.host_id() == own)
}

/// `newuidmap PID ID HOSTID COUNT...`, waited for (bounded), its complaint in the error.
fn run_helper(pid: i32, kind: Kind, maps: &[LinuxIdMapping]) -> Result<()> {
    let helper = kind.helper();
    let args: Vec<String> = std::iter::once(pid.to_string())
        .chain(
            maps.iter()
                .flat_map(|m| [m.container_id(), m.host_id(), m.size()].map(|n| n.to_string())),
        )
        .collect();
    let what = || format!("{}: {helper} {}", kind.field(), args.join(" "));
    let mut child = crate::sys::without_inherited_fds(&mut Command::new(helper))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::os(format!("{} (needs {helper}, from the uidmap package, for mappings other than the caller's own id)", what()), e))?;
    let pidfd =
        crate::sys::pidfd_open(child.id() as i32).ctx(|| format!("{}: pidfd_open", what()))?;
    if !crate::sys::wait_readable(pidfd.as_fd(), Some(HELPER_WAIT)) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::refused(
            what(),
            format!("still running after {}s, killed", HELPER_WAIT.as_secs()),
        ));
    }
    let status = child.wait().ctx(what)?;
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    let _ = child
        .stderr
        .take()
        .map(|mut s| s.read_to_string(&mut stderr));
    let said = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    let said = if said.is_empty() {
        status.to_string()
    } else {
        said
    };
    Err(Error::refused(
        what(),
        format!(
            "{said} (are these ranges this user's in {}?)",
            kind.subids()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespaces::tests::map;

    #[test]
    fn only_a_single_own_id_is_written_directly() {
        assert!(only_own(&[map(0, 1000, 1)], 1000));
        assert!(only_own(&[map(5, 1000, 1)], 1000));
        assert!(!only_own(&[map(0, 1000, 2)], 1000));
        assert!(!only_own(&[map(0, 1001, 1)], 1000));
        assert!(!only_own(&[map(0, 1000, 1), map(1, 100000, 65536)], 1000));
        assert!(!only_own(&[], 1000));
    }
}
