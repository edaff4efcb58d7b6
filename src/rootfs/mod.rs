//! The container's root filesystem, built inside its mount namespace in three steps that the
//! init sequence calls at their places: `prepare` (mounts and /dev, before the createRuntime and
//! createContainer hooks), `enter` (pivot_root), `finalize` (read-only tmpfs and /dev, masked
//! and read-only paths, a read-only root: last, so that nothing kiln writes is blocked by them).

mod cgroupfs;
pub mod devices;
pub mod idmapped;
pub mod mount;
mod readonly;
pub mod resolve;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};

/// Whether the container has a mount namespace of its own (new or joined). Without one (the
/// spec: a namespace not listed is the runtime's), the mounts are made in the host's and the
/// root is entered by chroot, as runc does; nothing of the host's own mounts is changed.
pub fn has_mount_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Mount)
}

/// `linux.rootfsPropagation` as mount flags; None when unset.
pub(crate) fn root_propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        None | Some("") => Ok(None),
        Some(p) => match crate::spec::mount_options::MountOptions::parse(&[p])
            .ok()
            .and_then(|o| o.propagation.first().copied())
        {
            Some(flag) => Ok(Some(flag)),
            None => Err(Error::refused(
                "linux.rootfsPropagation",
                format!("{p:?} is not a propagation mode"),
            )),
        },
    }
}

/// Mounts everything the config asks for under `rootfs`, then /dev, then the process's cwd.
/// `cgroup2`: the container's cgroup v2 directory on the host (see `cgroupfs`).
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    in_userns: bool,
    cgroupns: bool,
    cgroup2: Option<&Path>,
    trees: &idmapped::Trees,
) -> Result<()> {
    let linux = spec.linux().as_ref();
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    mount::check_count(mounts.len())?;
    if has_mount_namespace(spec) {
        // runc's prepareRoot, in its order. Nothing the container mounts may propagate back to
        // the host: slave by default. The rootfs's parent mount must not be shared (pivot_root
        // refuses, and the rootfs bind would propagate to the host), and must be made so before
        // that bind: a shared or unbindable `/` would refuse it. A propagation other than
        // private or slave is given to the new root after `enter`.
        let propagation = root_propagation(spec)?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            propagation.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            None::<&str>,
        )
        .ctx(|| "linux.rootfsPropagation: setting / propagation")?;
        let parent = if propagation.is_some_and(|p| p.contains(MsFlags::MS_SLAVE)) {
            MsFlags::MS_SLAVE
        } else {
            MsFlags::MS_PRIVATE
        };
        parent_mount_propagation(rootfs, parent)?;
        mount(
            Some(rootfs),
            rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(mount::limit_hint)
        .ctx(|| format!("bind mounting rootfs {}", rootfs.display()))?;
    }

    let root: OwnedFd = std::fs::File::open(rootfs)
        .ctx(|| format!("opening rootfs {}", rootfs.display()))?
        .into();
    for (i, m) in mounts.iter().enumerate() {
        mount::mount_entry(&root, m, i, bundle, cgroupns, cgroup2, trees.get(i))?;
    }
    // A /dev bind-mounted from the host already has its nodes; anything else needs them made.
    let dev_is_bind = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("bind"));
    if !dev_is_bind {
        let devices = linux
            .and_then(|l| l.devices().as_deref())
            .unwrap_or_default();
        devices::create(&root, devices, in_userns)?;
        devices::symlinks(&root)?;
    }
    // cwd is created now, as root, so a user without write access to its parent still gets it.
    if let Some(cwd) = spec.process().as_ref().map(|p| p.cwd()) {
        resolve::mkdir_all(&root, cwd)
            .ctx(|| format!("process.cwd: creating {}", cwd.display()))?;
    }
    Ok(())
}

/// Gives the mount that holds `path` the propagation `flags` (runc's
/// rootfsParentMountPropagation): EINVAL means `path` is not a mount point, so its parent is tried.
fn parent_mount_propagation(path: &Path, flags: MsFlags) -> Result<()> {
    let mut p = path;
    loop {
        match mount(None::<&str>, p, None::<&str>, flags, None::<&str>) {
            Err(Errno::EINVAL) if p != Path::new("/") => p = p.parent().unwrap_or(Path::new("/")),
            r => {
                return r.ctx(|| {
                    format!(
                        "setting the propagation of {}, the mount holding the rootfs",
                        p.display()
                    )
                });
            }
        }
    }
}

/// Makes `rootfs` the container's `/`: pivot_root, or with `--no-pivot` a move and chroot (for
/// roots that pivot_root cannot leave, such as a ramfs), or without a mount namespace of the
/// container's a chroot only.
pub fn enter(spec: &Spec, rootfs: &Path, no_pivot: bool) -> Result<()> {
    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    let mntns = has_mount_namespace(spec);
    if !mntns {
        chroot(".").ctx(|| "chroot into the rootfs")?;
    } else if no_pivot {
        hide_host_pseudo_filesystems(rootfs)?;
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .ctx(|| "moving the rootfs to /")?;
        chroot(".").ctx(|| "chroot into the rootfs")?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one: unmounting "." then
        // removes it without needing a directory for it inside the container.
        let old_root: OwnedFd = std::fs::File::open("/").ctx(|| "opening /")?.into();
        pivot_root(".", ".").ctx(|| "pivot_root")?;
        fchdir(std::os::fd::AsRawFd::as_raw_fd(&old_root)).ctx(|| "fchdir to the old root")?;
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| "making the old root a slave")?;
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmounting the old root")?;
    }
    chdir("/").ctx(|| "chdir /")?;
    // Applied to the new `/` only now: before, it would have reached the host's root mount.
    if mntns
        && let Some(p) = root_propagation(spec)?
        && !p.intersects(MsFlags::MS_PRIVATE | MsFlags::MS_SLAVE)
    {
        mount(None::<&str>, "/", None::<&str>, p, None::<&str>)
            .ctx(|| "linux.rootfsPropagation: setting the propagation of the new /")?;
    }
    Ok(())
}

/// `--no-pivot` leaves the host's mounts in the container's mount namespace, under the chroot.
/// A whole procfs or sysfs among them would let a process that gains CAP_SYS_ADMIN in a nested
/// user namespace mount a fresh one without the masks (the kernel allows it when one fully
/// visible exists in the namespace): detach them, or cover them where that is refused (runc's
/// msMoveRoot).
fn hide_host_pseudo_filesystems(rootfs: &Path) -> Result<()> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "reading /proc/self/mountinfo")?;
    for p in whole_pseudo_mounts(&info, rootfs) {
        let what = || format!("--no-pivot: hiding the host's {}", p.display());
        match mount(
            None::<&str>,
            &p,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            // Below one detached already.
            Err(Errno::ENOENT) => continue,
            r => r.ctx(what)?,
        }
        match umount2(&p, MntFlags::MNT_DETACH) {
            Err(Errno::EINVAL | Errno::EPERM) => mount(
                Some("tmpfs"),
                &p,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .ctx(what)?,
            r => r.ctx(what)?,
        }
    }
    Ok(())
}

/// The mount points of whole (root `/`) proc and sysfs mounts outside `rootfs`, in mountinfo's order.
fn whole_pseudo_mounts(mountinfo: &str, rootfs: &Path) -> Vec<PathBuf> {
    crate::procfs::parse_mountinfo(mountinfo)
        .into_iter()
        .filter(|m| {
            m.root == Path::new("/")
                && matches!(m.fstype.as_str(), "proc" | "sysfs")
                && !m.mount_point.starts_with(rootfs)
        })
        .map(|m| m.mount_point)
        .collect()
}

/// After pivot_root: maskedPaths, readonlyPaths and `root.readonly`.
pub fn finalize(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    // tmpfs mounts and /dev were mounted writable, so that what goes under them could be made:
    // read-only now, as asked (runc's finalizeRootfs).
    let root: OwnedFd = std::fs::File::open("/").ctx(|| "opening /")?.into();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if mount::readonly_deferred(m) {
            let field = || {
                format!(
                    "mounts[{i}] ({}): remounting read-only",
                    m.destination().display()
                )
            };
            let fd = resolve::open(&root, m.destination(), libc::O_PATH | libc::O_DIRECTORY)
                .ctx(field)?;
            let target = resolve::fd_path(&fd);
            let keep = mount::locked_flags(&target)?;
            mount(
                None::<&str>,
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep,
                None::<&str>,
            )
            .ctx(field)?;
        }
    }
    let readonly_paths = linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default();
    if !readonly_paths.is_empty() {
        let mut paths = readonly::ReadonlyPaths::new()?;
        for p in readonly_paths {
            paths
                .apply(Path::new(p))
                .ctx(|| format!("linux.readonlyPaths: {p}"))?;
        }
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        mask(Path::new(p)).ctx(|| format!("linux.maskedPaths: {p}"))?;
    }
    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.readonly().unwrap_or(false))
    {
        let keep = mount::locked_flags(Path::new("/"))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep,
            None::<&str>,
        )
        .ctx(|| "root.readonly: remounting / read-only")?;
    }
    Ok(())
}

/// A path that does not exist in this rootfs needs no protection: skip it, as runc does.
fn ignore_missing(r: nix::Result<()>) -> std::io::Result<()> {
    match r {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(mount::limit_hint(e)),
    }
}

fn mask(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        ignore_missing(mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        ))
    } else {
        ignore_missing(mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_proc_and_sysfs_outside_the_rootfs_are_hidden() {
        let info = "\
22 1 254:0 / / rw - ext4 /dev/vda rw
23 22 0:21 / /proc rw - proc proc rw
24 22 0:22 / /sys rw - sysfs sysfs rw
25 24 0:23 / /sys/fs/cgroup rw - tmpfs tmpfs rw
26 22 0:21 /sys /mnt/procsys rw - proc proc rw
27 22 0:24 / /b/rootfs/proc rw - proc proc rw
28 22 0:25 / /b/rootfs2/proc rw - proc proc rw
29 22 0:26 / /with\\040space rw - sysfs sysfs rw";
        let got = whole_pseudo_mounts(info, Path::new("/b/rootfs"));
        let want: Vec<PathBuf> = ["/proc", "/sys", "/b/rootfs2/proc", "/with space"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(got, want);
    }
}
