//! Which namespaces a container gets, and how: created by clone3/unshare, or joined by setns from
//! a `path`. The plan decides whether one clone3 can do everything (the fast path) or the kernel
//! forces setns, unshare and a second fork.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns, unshare};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::{Context, Result};

#[derive(Debug)]
pub struct Plan {
    /// Namespaces to create.
    pub new: CloneFlags,
    /// Namespaces to join, the user namespace first (it decides the privileges for the rest).
    pub join: Vec<(CloneFlags, PathBuf)>,
}

/// nix 0.29 has no constant for it.
pub const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

/// The lines of a user namespace's /proc/PID/uid_map (or gid_map) for `maps`: the container's,
/// or that of an idmapped mount.
pub fn id_map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// The clone flag of a namespace type (oci-spec's discriminants are the kernel's flags).
pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(t as i32)
}

impl Plan {
    pub fn new(spec: &Spec) -> Plan {
        let mut plan = Plan {
            new: CloneFlags::empty(),
            join: vec![],
        };
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_deref())
            .unwrap_or_default();
        for ns in namespaces {
            match ns.path() {
                Some(p) => plan.join.push((flag(ns.typ()), p.clone())),
                None => plan.new |= flag(ns.typ()),
            }
        }
        plan.join
            .sort_by_key(|(f, _)| *f != CloneFlags::CLONE_NEWUSER);
        plan
    }

    pub fn has(&self, f: CloneFlags) -> bool {
        self.new.contains(f) || self.join.iter().any(|(j, _)| *j == f)
    }

    /// One clone3 creates every namespace when nothing is joined (setns must come before the new
    /// user namespace owns the rest) and no time namespace is new (its offsets must be written
    /// before any process enters it).
    pub fn single_clone(&self) -> bool {
        self.join.is_empty() && !self.new.contains(CLONE_NEWTIME)
    }

    /// What init creates only once it is root in its new user namespace: the ipc namespace, whose
    /// mqueue filesystem belongs to its creator's fsuid, unmapped (nobody) inside before that.
    /// runc too unshares it after setresuid(0).
    pub fn after_root(&self) -> CloneFlags {
        if self.new.contains(CloneFlags::CLONE_NEWUSER) {
            self.new & CloneFlags::CLONE_NEWIPC
        } else {
            CloneFlags::empty()
        }
    }

    /// Joining or creating a pid or time namespace with setns/unshare only affects children: init
    /// must then be forked once more.
    pub fn needs_second_fork(&self) -> bool {
        !self.single_clone() && (self.has(CloneFlags::CLONE_NEWPID) || self.has(CLONE_NEWTIME))
    }

    /// Opens every namespace to join. Done before the first setns: after joining a mount
    /// namespace, the paths would name other files.
    pub fn open_joins(&self) -> Result<Vec<(CloneFlags, OwnedFd)>> {
        self.join
            .iter()
            .map(|(f, p)| {
                let file = std::fs::File::open(p)
                    .ctx(|| format!("linux.namespaces: opening {}", p.display()))?;
                Ok((*f, OwnedFd::from(file)))
            })
            .collect()
    }
}

/// The namespaces of process `pid` that are not the caller's: what `exec` must join.
pub fn of_other(pid: i32) -> Result<CloneFlags> {
    let kinds = [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("mnt", CloneFlags::CLONE_NEWNS),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("net", CloneFlags::CLONE_NEWNET),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("time", CLONE_NEWTIME),
    ];
    let mut flags = CloneFlags::empty();
    for (name, flag) in kinds {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
            .ctx(|| format!("reading /proc/{pid}/ns/{name}"))?;
        // A kernel without this namespace type has no link for us either: nothing to join.
        if std::fs::read_link(format!("/proc/self/ns/{name}")).is_ok_and(|ours| ours != theirs) {
            flags |= flag;
        }
    }
    Ok(flags)
}

pub fn join(fds: Vec<(CloneFlags, OwnedFd)>) -> Result<()> {
    for (f, fd) in fds {
        setns(&fd, f).ctx(|| format!("linux.namespaces: joining the {} namespace", name(f)))?;
    }
    Ok(())
}

pub fn unshare_flags(f: CloneFlags) -> Result<()> {
    if f.is_empty() {
        return Ok(());
    }
    unshare(f).ctx(|| format!("linux.namespaces: creating namespaces {f:?}"))
}

/// Whether kiln itself runs in a user namespace other than the initial one, whose uid_map is
/// the identity of every id.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

pub fn name(f: CloneFlags) -> &'static str {
    match f {
        CloneFlags::CLONE_NEWUSER => "user",
        CloneFlags::CLONE_NEWPID => "pid",
        CloneFlags::CLONE_NEWNET => "network",
        CloneFlags::CLONE_NEWNS => "mount",
        CloneFlags::CLONE_NEWIPC => "ipc",
        CloneFlags::CLONE_NEWUTS => "uts",
        CloneFlags::CLONE_NEWCGROUP => "cgroup",
        f if f == CLONE_NEWTIME => "time",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(container: u32, host: u32, size: u32) -> LinuxIdMapping {
        oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(container)
            .host_id(host)
            .size(size)
            .build()
            .unwrap()
    }

    #[test]
    fn map_text_is_one_line_per_range() {
        assert_eq!(
            id_map_text(&[map(0, 100000, 1000), map(1000, 200000, 1000)]),
            "0 100000 1000\n1000 200000 1000\n"
        );
    }
}
