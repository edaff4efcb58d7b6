//! The container's /dev: the default device nodes every container gets, `linux.devices`, and the
//! standard symlinks. Inside a user namespace mknod is not allowed, so nodes are bind mounts of
//! the host's.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
use nix::unistd::{Gid, Uid, fchownat};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::error::{Context, Result};
use crate::rootfs::resolve::{self, fd_path};

/// The nodes runc gives every container: (path, major, minor).
const DEFAULT: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The default nodes' paths: a container in a user namespace has them as bind mounts of the
/// host's, which criu must be told are the host's (`container::checkpoint`).
pub fn default_paths() -> impl Iterator<Item = &'static str> {
    DEFAULT.iter().map(|(path, ..)| *path)
}

struct Node<'a> {
    path: &'a Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

pub fn create(root: &OwnedFd, devices: &[LinuxDevice], in_userns: bool) -> Result<()> {
    let defaults = DEFAULT
        .iter()
        .filter(|(p, ..)| !devices.iter().any(|d| d.path() == Path::new(p)))
        .map(|&(path, major, minor)| Node {
            path: Path::new(path),
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        });
    let configured = devices.iter().map(|d| Node {
        path: d.path(),
        kind: match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        },
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    });
    for node in defaults.chain(configured) {
        make(root, &node, in_userns).ctx(|| format!("device {}", node.path.display()))?;
    }
    Ok(())
}

fn make(root: &OwnedFd, n: &Node, in_userns: bool) -> std::io::Result<()> {
    let name = n
        .path
        .file_name()
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let dir = resolve::mkdir_all(root, n.path.parent().unwrap_or(Path::new("/")))?;
    if in_userns && n.kind != SFlag::S_IFIFO {
        let target = resolve::create_file(root, n.path)?;
        nix::mount::mount(
            Some(n.path),
            &fd_path(&target),
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(crate::rootfs::mount::limit_hint)?;
        return Ok(());
    }
    // A node left by the rootfs (or a default the config redefines) is replaced.
    match nix::unistd::unlinkat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&dir)),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    ) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let old = nix::sys::stat::umask(Mode::empty());
    let made = mknodat(
        Some(dir.as_raw_fd()),
        name,
        n.kind,
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

/// /dev/fd, /dev/std*, /dev/ptmx (into the container's own devpts) and /dev/core.
pub fn symlinks(root: &OwnedFd) -> Result<()> {
    let dev = resolve::mkdir_all(root, Path::new("/dev")).ctx(|| "creating /dev")?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
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
