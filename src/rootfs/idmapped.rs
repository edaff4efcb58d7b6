//! Idmapped mounts: `mounts[i].uidMappings`/`gidMappings`, or the `idmap`/`ridmap` options
//! (which without mappings of their own take the container's user namespace mappings). The
//! files of a bind source appear with their owners shifted by the mapping: an owner `c` on
//! disk shows as `h` for a line `c h size`, as the spec's mapping format reads.
//!
//! Setting the mapping needs CAP_SYS_ADMIN where the source filesystem was mounted, that is
//! in the host's namespaces, and only on a mount no process has seen yet. So `create` makes
//! each one as a detached tree (open_tree) before the fork, and init attaches it with
//! move_mount where the bind mount would have gone (`mount::mount_entry`).
//!
//! With a new user namespace, `create` clones every other bind source the same way, with the
//! host's privileges: init, as the namespace's root, may be unable to reach a source (below a
//! directory of mode 0700), and then attaches the clone instead (runc and crun hand init such
//! sources from the host too).

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};
use crate::spec::Bundle;
use crate::spec::mount_options::{Idmap, MountOptions};
use crate::sys::{self, Forked};

/// The detached trees, by mount index, each with whether it is idmapped.
#[derive(Default)]
pub struct Trees(HashMap<usize, (OwnedFd, bool)>);

impl Trees {
    /// The tree of mount `index`, and whether it must be used: an idmapped one always, a plain
    /// bind source's only where init cannot reach the source itself.
    pub fn get(&self, index: usize) -> Option<(BorrowedFd<'_>, bool)> {
        self.0
            .get(&index)
            .map(|(fd, idmapped)| (fd.as_fd(), *idmapped))
    }
}

pub fn prepare(b: &Bundle) -> Result<Trees> {
    let (spec, bundle, config) = (&b.spec, b.dir.as_path(), b.config.as_path());
    let linux = spec.linux().as_ref();
    let new_userns = linux
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    let mut trees = Trees::default();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = |f: &str| format!("mounts[{i}]{f}");
        // Bad options are reported by mount_entry, with the rest of the mount's errors.
        let Ok(opts) = MountOptions::parse(m.options().as_deref().unwrap_or_default()) else {
            continue;
        };
        let (uid, gid) = (m.uid_mappings().as_deref(), m.gid_mappings().as_deref());
        if opts.idmap.is_none() && uid.is_none() && gid.is_none() {
            if new_userns
                && (opts.is_bind() || m.typ().as_deref() == Some("bind"))
                && let Some(tree) = bind_source(spec, m, &opts, bundle)
            {
                trees.0.insert(i, (tree, false));
            }
            continue;
        }
        if !opts.is_bind() && m.typ().as_deref() != Some("bind") {
            return Err(Error::config(
                config,
                field(".options"),
                "idmapped mounts are bind mounts: add \"bind\" or \"rbind\"",
            ));
        }
        let (uid, gid) = match (uid, gid) {
            (Some(u), Some(g)) => (u, g),
            (None, None) => match (
                linux.and_then(|l| l.uid_mappings().as_deref()),
                linux.and_then(|l| l.gid_mappings().as_deref()),
            ) {
                (Some(u), Some(g)) if !u.is_empty() && !g.is_empty() => (u, g),
                _ => {
                    return Err(Error::config(
                        config,
                        field(".options"),
                        "idmap without mappings of its own takes the container's, but linux.uidMappings/gidMappings are empty",
                    ));
                }
            },
            (Some(_), None) => {
                return Err(Error::config(
                    config,
                    field(".gidMappings"),
                    "uidMappings needs gidMappings too",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    config,
                    field(".uidMappings"),
                    "gidMappings needs uidMappings too",
                ));
            }
        };
        let source = m.source().as_ref().ok_or_else(|| {
            Error::config(config, field(".source"), "a bind mount needs a source")
        })?;
        let source = bundle.join(source);
        let recursive = opts.idmap == Some(Idmap::Recursive);
        let what = || format!("{}: idmapped bind of {}", field(""), source.display());
        let tree = sys::open_tree_clone(
            &source,
            recursive || opts.flags.contains(nix::mount::MsFlags::MS_REC),
        )
        .ctx(what)?;
        let userns = userns_with(uid, gid)
            .ctx(|| format!("{}: a user namespace for the mapping", field("")))?;
        sys::mount_setattr_idmap(tree.as_fd(), recursive, userns.as_fd()).ctx(what)?;
        trees.0.insert(i, (tree, true));
    }
    Ok(trees)
}

/// A clone of a plain bind source, for init to fall back on; None where it cannot be made (kiln
/// without privileges over its mount namespace): init's own bind then says what is wrong. It
/// receives the host's mounts below it but never sends (as the copy of the host's mounts in a
/// new user namespace does), or nothing with a private `rootfsPropagation`.
fn bind_source(
    spec: &Spec,
    m: &oci_spec::runtime::Mount,
    opts: &MountOptions,
    bundle: &Path,
) -> Option<OwnedFd> {
    let tree = sys::open_tree_clone(
        &bundle.join(m.source().as_ref()?),
        opts.flags.contains(nix::mount::MsFlags::MS_REC),
    )
    .ok()?;
    let private = super::plan::root_propagation(spec)
        .ok()
        .flatten()
        .is_some_and(|p| p.contains(nix::mount::MsFlags::MS_PRIVATE));
    let propagation = if private {
        libc::MS_PRIVATE
    } else {
        libc::MS_SLAVE
    };
    sys::mount_setattr_propagation(tree.as_fd(), true, propagation).ok()?;
    Some(tree)
}

/// A user namespace with these mappings, held by an fd. Maps are written for a process, so a
/// child is made in it, waits while they are written and the namespace is opened, and is
/// killed.
fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> std::io::Result<OwnedFd> {
    // SAFETY: kiln is single-threaded; the child only waits to be killed.
    let (pid, pidfd) = match unsafe { sys::clone3(CloneFlags::CLONE_NEWUSER.bits() as u64, None) }?
    {
        Forked::Child => loop {
            nix::unistd::pause();
        },
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    let opened = (|| {
        std::fs::write(
            format!("/proc/{pid}/uid_map"),
            crate::namespaces::id_map_text(uid),
        )?;
        std::fs::write(
            format!("/proc/{pid}/gid_map"),
            crate::namespaces::id_map_text(gid),
        )?;
        std::fs::File::open(format!("/proc/{pid}/ns/user")).map(OwnedFd::from)
    })();
    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    let _ = sys::waitid_pidfd(pidfd.as_fd(), false);
    opened
}
