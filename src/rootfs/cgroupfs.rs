//! A `cgroup` mount: the container sees the cgroup hierarchies as the host lays them out (pure
//! v2, or v1 controllers plus a `unified` v2 on a hybrid host), but only its own subtree. With a
//! cgroup namespace the kernel shows that subtree when the filesystem is mounted afresh; without
//! one, kiln bind-mounts the container's own cgroup directory from the host's mount.

use std::path::Path;

use nix::mount::{MsFlags, mount};

use crate::cgroups::{Hierarchy, hierarchies};
use crate::rootfs::resolve::fd_path;

/// `reopen` resolves the destination again: the fd behind `target` names the directory under the
/// new tmpfs, not the tmpfs itself. `cgroup2`: the container's cgroup v2 directory on the host.
pub fn mount_cgroups(
    target: &Path,
    flags: MsFlags,
    cgroupns: bool,
    cgroup2: Option<&Path>,
    reopen: impl Fn() -> std::io::Result<std::os::fd::OwnedFd>,
) -> std::io::Result<()> {
    let all = hierarchies()?;
    let pure_v2 = all.len() == 1 && all[0].is_v2();
    if pure_v2 {
        if mount_one(&all[0], target, flags, cgroupns, cgroup2)? {
            // `target` names the directory under the new bind mount: remount the mount itself.
            restrict(&fd_path(&reopen()?), flags)?;
        }
        return Ok(());
    }
    // v1 or hybrid: a tmpfs holding one directory per hierarchy, as /sys/fs/cgroup on the host.
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        flags - MsFlags::MS_RDONLY,
        Some("mode=755"),
    )?;
    let tmpfs = reopen()?;
    let target = &fd_path(&tmpfs);
    for h in all
        .iter()
        .filter(|h| h.mount_point.parent() == Some(Path::new("/sys/fs/cgroup")))
    {
        let name = h.mount_point.file_name().expect("has a parent, so a name");
        let sub = target.join(name);
        std::fs::create_dir_all(&sub)?;
        if mount_one(h, &sub, flags, cgroupns, cgroup2)? {
            restrict(&sub, flags)?;
        }
        // `cpu,cpuacct` is also reachable as `cpu` and `cpuacct`, as on the host.
        let name = name.to_string_lossy();
        if name.contains(',') {
            for alias in name.split(',') {
                let _ = std::os::unix::fs::symlink(name.as_ref(), target.join(alias));
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | flags,
            Some("mode=755"),
        )?;
    }
    Ok(())
}

/// A fresh mount of the hierarchy (in a cgroup namespace: it shows the container's subtree), or
/// a bind of our own cgroup's directory, which then needs `restrict`: true in that case.
fn mount_one(
    h: &Hierarchy,
    target: &Path,
    flags: MsFlags,
    cgroupns: bool,
    cgroup2: Option<&Path>,
) -> std::io::Result<bool> {
    let mut source = h.mount_point.join(h.own.trim_start_matches('/'));
    if cgroupns {
        let (fstype, data) = if h.is_v2() {
            ("cgroup2", None)
        } else {
            ("cgroup", Some(h.controllers.as_str()))
        };
        match (
            mount(Some(fstype), target, Some(fstype), flags, data),
            cgroup2,
        ) {
            (Ok(()), _) => return Ok(false),
            // A user namespace can be refused a fresh cgroup2 even with a cgroup namespace of
            // its own (EBUSY, EPERM): the container's cgroup directory, bound, shows the same
            // subtree (runc's mountCgroupV2).
            (Err(nix::errno::Errno::EBUSY | nix::errno::Errno::EPERM), Some(dir)) if h.is_v2() => {
                source = dir.to_path_buf()
            }
            (Err(e), _) => return Err(e.into()),
        }
    }
    mount(
        Some(&source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    Ok(true)
}

/// A bind mount takes its flags (read-only, nosuid, ...) only from a remount of the mount.
fn restrict(mount_point: &Path, flags: MsFlags) -> std::io::Result<()> {
    let keep = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    Ok(mount(
        None::<&str>,
        mount_point,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | (flags & keep),
        None::<&str>,
    )?)
}
