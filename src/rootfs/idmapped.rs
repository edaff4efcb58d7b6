//! Idmapped mounts: `mounts[i].uidMappings`/`gidMappings`, or the `idmap`/`ridmap` options
//! (which without mappings of their own take the container's user namespace mappings). The
//! files of a bind source appear with their owners shifted by the mapping: an owner `c` on
//! disk shows as `h` for a line `c h size`, as the spec's mapping format reads.
//!
//! Setting the mapping needs CAP_SYS_ADMIN where the source filesystem was mounted, that is
//! in the host's namespaces, and only on a mount no process has seen yet. So `create` makes
//! each one as a detached tree (open_tree) before the fork, and init attaches it with
//! move_mount where the bind mount would have gone (`mount::mount_entry`).

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::error::{Context, Error, Result};
use crate::rootfs::mount::{Idmap, MountOptions};
use crate::sys::{self, Forked};

/// The detached, idmapped trees, by mount index.
#[derive(Default)]
pub struct Trees(HashMap<usize, OwnedFd>);

impl Trees {
    pub fn get(&self, index: usize) -> Option<BorrowedFd<'_>> {
        self.0.get(&index).map(|fd| fd.as_fd())
    }
}

pub fn prepare(spec: &Spec, bundle: &Path) -> Result<Trees> {
    let linux = spec.linux().as_ref();
    let mut trees = Trees::default();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = |f: &str| format!("mounts[{i}]{f}");
        // Bad options are reported by mount_entry, with the rest of the mount's errors.
        let Ok(opts) = MountOptions::parse(m.options().as_deref().unwrap_or_default()) else { continue };
        let (uid, gid) = (m.uid_mappings().as_deref(), m.gid_mappings().as_deref());
        if opts.idmap.is_none() && uid.is_none() && gid.is_none() {
            continue;
        }
        if !opts.is_bind() && m.typ().as_deref() != Some("bind") {
            return Err(Error::config("config.json", field(".options"), "idmapped mounts are bind mounts: add \"bind\" or \"rbind\""));
        }
        let (uid, gid) = match (uid, gid) {
            (Some(u), Some(g)) => (u, g),
            (None, None) => match (linux.and_then(|l| l.uid_mappings().as_deref()), linux.and_then(|l| l.gid_mappings().as_deref())) {
                (Some(u), Some(g)) if !u.is_empty() && !g.is_empty() => (u, g),
                _ => return Err(Error::config("config.json", field(".options"), "idmap without mappings of its own takes the container's, but linux.uidMappings/gidMappings are empty")),
            },
            (Some(_), None) => return Err(Error::config("config.json", field(".gidMappings"), "uidMappings needs gidMappings too")),
            (None, Some(_)) => return Err(Error::config("config.json", field(".uidMappings"), "gidMappings needs uidMappings too")),
        };
        let source = m.source().as_ref().ok_or_else(|| Error::config("config.json", field(".source"), "a bind mount needs a source"))?;
        let source = bundle.join(source);
        let recursive = opts.idmap == Some(Idmap::Recursive);
        let what = || format!("{}: idmapped bind of {}", field(""), source.display());
        let tree = sys::open_tree_clone(&source, recursive || opts.flags.contains(nix::mount::MsFlags::MS_REC)).ctx(what)?;
        let userns = userns_with(uid, gid).ctx(|| format!("{}: a user namespace for the mapping", field("")))?;
        sys::mount_setattr_idmap(tree.as_fd(), recursive, userns.as_fd()).ctx(what)?;
        trees.0.insert(i, tree);
    }
    Ok(trees)
}

/// A user namespace with these mappings, held by an fd. Maps are written for a process, so a
/// child is made in it, waits while they are written and the namespace is opened, and is
/// killed.
fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> std::io::Result<OwnedFd> {
    // SAFETY: kiln is single-threaded; the child only waits to be killed.
    let (pid, pidfd) = match unsafe { sys::clone3(CloneFlags::CLONE_NEWUSER.bits() as u64, None) }? {
        Forked::Child => loop {
            nix::unistd::pause();
        },
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    let opened = (|| {
        std::fs::write(format!("/proc/{pid}/uid_map"), crate::process::idmap::text(uid))?;
        std::fs::write(format!("/proc/{pid}/gid_map"), crate::process::idmap::text(gid))?;
        std::fs::File::open(format!("/proc/{pid}/ns/user")).map(OwnedFd::from)
    })();
    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    let _ = sys::waitid_pidfd(pidfd.as_fd(), false);
    opened
}
