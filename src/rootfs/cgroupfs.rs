//! A `cgroup` mount: the container sees the cgroup hierarchies as the host lays them out (pure
//! v2, or v1 controllers plus a `unified` v2 on a hybrid host), but only its own subtree. With a
//! cgroup namespace the kernel shows that subtree when the filesystem is mounted afresh; without
//! one, kiln bind-mounts the container's own cgroup directory from the host's mount.

use std::path::Path;

use nix::mount::{MsFlags, mount};

use crate::rootfs::plan::{Cgroup, CgroupMount};
use crate::rootfs::resolve::fd_path;

/// Mounts `plan` on `target`. `reopen` resolves the destination again: the fd behind `target`
/// names the directory under the new mount, not the mount itself.
pub fn mount_cgroups(
    target: &Path,
    plan: &Cgroup,
    reopen: impl Fn() -> std::io::Result<std::os::fd::OwnedFd>,
) -> std::io::Result<()> {
    let (flags, hierarchies, remount) = match plan {
        Cgroup::Unified(one) => {
            if mount_one(one, target)? {
                restrict(&fd_path(&reopen()?), one.restrict)?;
            }
            return Ok(());
        }
        Cgroup::Tmpfs {
            flags,
            hierarchies,
            remount,
        } => (*flags, hierarchies, remount),
    };
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        flags,
        Some("mode=755"),
    )?;
    let tmpfs = reopen()?;
    let target = &fd_path(&tmpfs);
    for h in hierarchies {
        let sub = target.join(&h.name);
        std::fs::create_dir_all(&sub)?;
        if mount_one(&h.mount, &sub)? {
            restrict(&sub, h.mount.restrict)?;
        }
        for alias in &h.aliases {
            let _ = std::os::unix::fs::symlink(&h.name, target.join(alias));
        }
    }
    if let Some(flags) = remount {
        mount(None::<&str>, target, None::<&str>, *flags, Some("mode=755"))?;
    }
    Ok(())
}

/// The fresh mount, or the bind of our own cgroup's directory, which then needs `restrict`:
/// true in that case.
fn mount_one(one: &CgroupMount, target: &Path) -> std::io::Result<bool> {
    let mut source = one.bind.as_path();
    if let Some((fstype, data)) = &one.fresh {
        match (
            mount(
                Some(*fstype),
                target,
                Some(*fstype),
                one.flags,
                data.as_deref(),
            ),
            &one.fallback,
        ) {
            (Ok(()), _) => return Ok(false),
            (Err(nix::errno::Errno::EBUSY | nix::errno::Errno::EPERM), Some(dir)) => source = dir,
            (Err(e), _) => return Err(e.into()),
        }
    }
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    Ok(true)
}

/// A bind mount takes its flags (read-only, nosuid, ...) only from a remount of the mount.
fn restrict(mount_point: &Path, flags: MsFlags) -> std::io::Result<()> {
    Ok(mount(
        None::<&str>,
        mount_point,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        None::<&str>,
    )?)
}
