//! The container's root filesystem, built inside its mount namespace in three steps that the
//! init sequence calls at their places: `prepare` (mounts and /dev, before the createRuntime and
//! createContainer hooks), `enter` (pivot_root), `finalize` (read-only tmpfs and /dev, masked
//! and read-only paths, a read-only root: last, so that nothing kiln writes is blocked by them).

mod cgroupfs;
pub mod devices;
pub mod idmapped;
pub mod mount;
pub mod plan;
mod readonly;
pub mod resolve;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use oci_spec::runtime::Spec;

use crate::error::{Context, Result};
use crate::rootfs::plan::How;

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
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    mount::check_count(mounts.len())?;
    if let Some(p) = plan::root(spec)? {
        mount(None::<&str>, "/", None::<&str>, p.root, None::<&str>)
            .ctx(|| "linux.rootfsPropagation: setting / propagation")?;
        parent_mount_propagation(rootfs, p.parent)?;
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
    if let Some(dev) = plan::dev(spec, in_userns, Path::new("/proc/kcore").exists()) {
        devices::create(&root, &dev)?;
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
    let p = plan::enter(spec, no_pivot)?;
    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    match p.how {
        How::Chroot => chroot(".").ctx(|| "chroot into the rootfs")?,
        How::MoveAndChroot => {
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
        }
        How::Pivot => {
            // pivot_root(".", ".") stacks the old root on top of the new one: unmounting "."
            // then removes it without needing a directory for it inside the container.
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
    }
    chdir("/").ctx(|| "chdir /")?;
    if let Some(p) = p.propagation {
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
    let p = plan::finalize(spec);
    let root: OwnedFd = std::fs::File::open("/").ctx(|| "opening /")?.into();
    for (i, dest) in &p.remount_readonly {
        let field = || format!("mounts[{i}] ({}): remounting read-only", dest.display());
        let fd = resolve::open(&root, dest, libc::O_PATH | libc::O_DIRECTORY).ctx(field)?;
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
    if !p.readonly.is_empty() {
        let mut paths = readonly::ReadonlyPaths::new()?;
        for path in &p.readonly {
            paths
                .apply(Path::new(path))
                .ctx(|| format!("linux.readonlyPaths: {path}"))?;
        }
    }
    for path in &p.masked {
        mask(Path::new(path)).ctx(|| format!("linux.maskedPaths: {path}"))?;
    }
    if p.readonly_root {
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
