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
    // Once for every node: each mode is the config's, whatever umask kiln was started with.
    let old = nix::sys::stat::umask(Mode::empty());
    // The nodes' directory, opened once for all the nodes in it (every default one is in /dev).
    let mut dir: Option<(&Path, OwnedFd)> = None;
    let made = dev.nodes.iter().try_for_each(|node| {
        let parent = node.path.parent().unwrap_or(Path::new("/"));
        let mut in_dir = || {
            let fd = match dir.take() {
                Some((path, fd)) if path == parent => fd,
                _ => resolve::mkdir_all(root, parent)?,
            };
            let r = make(root, &fd, node);
            dir = Some((parent, fd));
            r
        };
        in_dir().ctx(|| format!("device {}", node.path.display()))
    });
    nix::sys::stat::umask(old);
    made?;
    symlinks(root, &dev.links)
}

fn make(root: &OwnedFd, dir: &OwnedFd, n: &Node) -> std::io::Result<()> {
    let name = n
        .path
        .file_name()
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
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
    let kind = match n.kind {
        NodeKind::Char => SFlag::S_IFCHR,
        NodeKind::Block => SFlag::S_IFBLK,
        NodeKind::Fifo => SFlag::S_IFIFO,
    };
    let mknod = || {
        mknodat(
            Some(dir.as_raw_fd()),
            name,
            kind,
            Mode::from_bits_truncate(n.mode),
            makedev(n.major, n.minor),
        )
    };
    // Whatever the rootfs had there (a file, a node of other numbers) is replaced; a fresh
    // /dev has nothing, so the unlink is only paid where something was.
    match mknod() {
        Err(nix::errno::Errno::EEXIST) => {
            nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )?;
            mknod()?;
        }
        made => made?,
    }
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
