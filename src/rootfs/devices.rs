//! The container's /dev, as `plan::dev` says: the default device nodes every container gets,
//! `linux.devices`, and the standard symlinks. Inside a user namespace mknod is not allowed, so
//! nodes are bind mounts of the host's.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
use nix::unistd::{Gid, Uid, fchownat};

use crate::error::{Context, Result};
use crate::rootfs::plan::{DEFAULT_DEVICES, Dev, Node, NodeKind};
use crate::rootfs::resolve::{self, fd_path};

/// The default nodes' paths: a container in a user namespace has them as bind mounts of the
/// host's, which criu must be told are the host's (`container::checkpoint`).
pub fn default_paths() -> impl Iterator<Item = &'static str> {
    DEFAULT_DEVICES.iter().map(|(path, ..)| *path)
}

/// Makes /dev as `dev` says: the nodes, then the symlinks.
pub fn create(root: &OwnedFd, dev: &Dev) -> Result<()> {
    for node in &dev.nodes {
        make(root, node).ctx(|| format!("device {}", node.path.display()))?;
    }
    symlinks(root, &dev.links)
}

fn make(root: &OwnedFd, n: &Node) -> std::io::Result<()> {
    let name = n
        .path
        .file_name()
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let dir = resolve::mkdir_all(root, n.path.parent().unwrap_or(Path::new("/")))?;
    if n.bind_host {
        let target = resolve::create_file(root, &n.path)?;
        nix::mount::mount(
            Some(&n.path),
            &fd_path(&target),
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(crate::rootfs::mount::limit_hint)?;
        return Ok(());
    }
    match nix::unistd::unlinkat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&dir)),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    ) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let kind = match n.kind {
        NodeKind::Char => SFlag::S_IFCHR,
        NodeKind::Block => SFlag::S_IFBLK,
        NodeKind::Fifo => SFlag::S_IFIFO,
    };
    let old = nix::sys::stat::umask(Mode::empty());
    let made = mknodat(
        Some(dir.as_raw_fd()),
        name,
        kind,
        Mode::from_bits_truncate(n.mode),
        makedev(n.major, n.minor),
    );
    nix::sys::stat::umask(old);
    made?;
    fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(Uid::from_raw(n.uid)),
        Some(Gid::from_raw(n.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// `links` in /dev, then /dev/ptmx into the container's own devpts (replacing any node there).
fn symlinks(root: &OwnedFd, links: &[(&str, &str)]) -> Result<()> {
    let dev = resolve::mkdir_all(root, Path::new("/dev")).ctx(|| "creating /dev")?;
    for &(target, name) in links {
        match nix::unistd::symlinkat(target, Some(std::os::fd::AsRawFd::as_raw_fd(&dev)), name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("symlink /dev/{name}")),
        }
    }
    let _ = nix::unistd::unlinkat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&dev)),
        "ptmx",
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    nix::unistd::symlinkat(
        "pts/ptmx",
        Some(std::os::fd::AsRawFd::as_raw_fd(&dev)),
        "ptmx",
    )
    .ctx(|| "symlink /dev/ptmx")
}
