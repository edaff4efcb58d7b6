//! The container's root filesystem, built inside its mount namespace in three steps that the
//! init sequence calls at their places: `prepare` (mounts and /dev, before the createRuntime and
//! createContainer hooks), `enter` (pivot_root), `finalize` (masked and read-only paths, a
//! read-only root: last, so that nothing kiln writes is blocked by them).

mod cgroupfs;
pub mod devices;
pub mod idmapped;
pub mod mount;
pub mod resolve;

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use oci_spec::runtime::Spec;

use crate::error::{Context, Error, Result};

/// Mounts everything the config asks for under `rootfs`, then /dev, then the process's cwd.
pub fn prepare(spec: &Spec, rootfs: &Path, bundle: &Path, in_userns: bool, cgroupns: bool, idmapped: &idmapped::Trees) -> Result<()> {
    let linux = spec.linux().as_ref();
    // Nothing the container mounts may propagate back to the host: slave by default, as runc.
    let propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => match mount::MountOptions::parse(&[p]).ok().and_then(|o| o.propagation.first().copied()) {
            Some(flag) => flag,
            None => return Err(Error::os("linux.rootfsPropagation", std::io::Error::other(format!("{p:?} is not a propagation mode")))),
        },
    };
    mount(None::<&str>, "/", None::<&str>, propagation, None::<&str>).ctx(|| "linux.rootfsPropagation: setting / propagation")?;
    // pivot_root needs the new root to be a mount point whose parent is not shared.
    mount(Some(rootfs), rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .ctx(|| format!("bind mounting rootfs {}", rootfs.display()))?;
    make_parent_private(rootfs)?;

    let root: OwnedFd = std::fs::File::open(rootfs).ctx(|| format!("opening rootfs {}", rootfs.display()))?.into();
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    for (i, m) in mounts.iter().enumerate() {
        mount::mount_entry(&root, m, i, bundle, cgroupns, idmapped.get(i))?;
    }
    // A /dev bind-mounted from the host already has its nodes; anything else needs them made.
    let dev_is_bind = mounts.iter().any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("bind"));
    if !dev_is_bind {
        let devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or_default();
        devices::create(&root, devices, in_userns)?;
        devices::symlinks(&root)?;
    }
    // cwd is created now, as root, so a user without write access to its parent still gets it.
    if let Some(cwd) = spec.process().as_ref().map(|p| p.cwd()) {
        resolve::mkdir_all(&root, cwd).ctx(|| format!("process.cwd: creating {}", cwd.display()))?;
    }
    Ok(())
}

/// Makes the mount that holds `path` private if it is shared (pivot_root refuses otherwise).
fn make_parent_private(path: &Path) -> Result<()> {
    let mut best: Option<(usize, String)> = None;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "reading /proc/self/mountinfo")?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    for line in info.lines() {
        let Some(mnt) = line.split(' ').nth(4) else { continue };
        let mnt = mnt.replace("\\040", " ");
        if parent.starts_with(&mnt) && best.as_ref().is_none_or(|(len, _)| mnt.len() > *len) {
            best = Some((mnt.len(), mnt));
        }
    }
    if let Some((_, mnt)) = best {
        mount(None::<&str>, mnt.as_str(), None::<&str>, MsFlags::MS_PRIVATE, None::<&str>).ctx(|| format!("making {mnt} private"))?;
    }
    Ok(())
}

/// Makes `rootfs` the container's `/`: pivot_root, or with `--no-pivot` a move and chroot (for
/// roots that pivot_root cannot leave, such as a ramfs).
pub fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    if no_pivot {
        mount(Some(rootfs), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).ctx(|| "moving the rootfs to /")?;
        chroot(".").ctx(|| "chroot into the rootfs")?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one: unmounting "." then
        // removes it without needing a directory for it inside the container.
        let old_root: OwnedFd = std::fs::File::open("/").ctx(|| "opening /")?.into();
        pivot_root(".", ".").ctx(|| "pivot_root")?;
        fchdir(std::os::fd::AsRawFd::as_raw_fd(&old_root)).ctx(|| "fchdir to the old root")?;
        mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>).ctx(|| "making the old root a slave")?;
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmounting the old root")?;
    }
    chdir("/").ctx(|| "chdir /")
}

/// After pivot_root: maskedPaths, readonlyPaths and `root.readonly`.
pub fn finalize(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    for p in linux.and_then(|l| l.readonly_paths().as_deref()).unwrap_or_default() {
        readonly(Path::new(p)).ctx(|| format!("linux.readonlyPaths: {p}"))?;
    }
    for p in linux.and_then(|l| l.masked_paths().as_deref()).unwrap_or_default() {
        mask(Path::new(p)).ctx(|| format!("linux.maskedPaths: {p}"))?;
    }
    if spec.root().as_ref().is_some_and(|r| r.readonly().unwrap_or(false)) {
        let keep = mount::locked_flags(Path::new("/"))?;
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep, None::<&str>)
            .ctx(|| "root.readonly: remounting / read-only")?;
    }
    Ok(())
}

/// A path that does not exist in this rootfs needs no protection: skip it, as runc does.
fn ignore_missing(r: nix::Result<()>) -> std::io::Result<()> {
    match r {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn readonly(path: &Path) -> std::io::Result<()> {
    ignore_missing(mount(Some(path), path, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>))?;
    if !path.exists() {
        return Ok(());
    }
    let keep = mount::locked_flags(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    mount(None::<&str>, path, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC | keep, None::<&str>)?;
    Ok(())
}

fn mask(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        ignore_missing(mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>))
    } else {
        ignore_missing(mount(Some("/dev/null"), path, None::<&str>, MsFlags::MS_BIND, None::<&str>))
    }
}
