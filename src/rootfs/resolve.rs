//! Paths inside the rootfs, resolved by the kernel as if the rootfs were `/` (openat2 with
//! RESOLVE_IN_ROOT): a symlink or `..` in a bundle can never make kiln create or mount anything
//! outside it. Callers get an O_PATH fd and mount onto `/proc/self/fd/N`, so nothing is
//! resolved twice (no window for a symlink swap between check and use).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::Mode;

use crate::sys::openat2_in_root;

const DIR: i32 = libc::O_PATH | libc::O_DIRECTORY;

/// `path` made relative to the root, `.` for the root itself. Relative paths in a config mean
/// "relative to /", as the runtime spec allows for old configs.
fn inside(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// The path through which a resolved fd can be handed to mount(2) without resolving again.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

pub fn open(root: &OwnedFd, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    openat2_in_root(root.as_fd(), &inside(path), flags, 0)
}

/// How many dangling symlinks `mkdir_all` follows before calling it a loop (as the kernel's 40).
const MAX_LINKS: usize = 40;

/// `mkdir -p` inside the root; returns the directory, opened O_PATH. A dangling symlink on the
/// way gets its target created, inside the root, as the kernel would resolve it there.
pub fn mkdir_all(root: &OwnedFd, path: &Path) -> io::Result<OwnedFd> {
    mkdir_all_depth(root, path, 0)
}

fn mkdir_all_depth(root: &OwnedFd, path: &Path, links: usize) -> io::Result<OwnedFd> {
    let rel = inside(path);
    // Most destinations exist (the rootfs has them): one lookup then, not one per component.
    match open(root, &rel, DIR) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        found => return found,
    }
    let mut prefix = PathBuf::new();
    // The directory `prefix` resolved to, when its last lookup found it.
    let mut here: Option<OwnedFd> = None;
    for comp in rel.components() {
        let parent = if prefix.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            prefix.clone()
        };
        prefix.push(comp);
        let err = match open(root, &prefix, DIR) {
            Ok(fd) => {
                here = Some(fd);
                continue;
            }
            Err(e) => e,
        };
        let (Some(libc::ENOENT), Component::Normal(name)) = (err.raw_os_error(), comp) else {
            return Err(err);
        };
        // `name` is one plain component: mkdirat under the resolved parent follows nothing.
        let dir = match here.take() {
            Some(fd) => Some(fd),
            None if prefix.parent() == Some(Path::new("")) => None,
            // The parent was made (or a symlink's target was) by the step before.
            None => Some(open(root, &parent, DIR)?),
        };
        let dirfd = dir.as_ref().unwrap_or(root).as_raw_fd();
        match nix::sys::stat::mkdirat(Some(dirfd), name, Mode::from_bits_truncate(0o755)) {
            Ok(()) => {}
            // Present but unresolvable: a dangling symlink. Create what it points to.
            Err(nix::errno::Errno::EEXIST) => {
                if links >= MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = nix::fcntl::readlinkat(Some(dirfd), name)?;
                mkdir_all_depth(root, &parent.join(target), links + 1)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    match here {
        Some(fd) => Ok(fd),
        None => open(root, &rel, DIR),
    }
}

/// Creates an empty file (and its parents) inside the root if none exists; returns it O_PATH.
pub fn create_file(root: &OwnedFd, path: &Path) -> io::Result<OwnedFd> {
    let rel = inside(path);
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        mkdir_all(root, parent)?;
    }
    // O_EXCL: never open an existing file for real (a FIFO there would block).
    match openat2_in_root(
        root.as_fd(),
        &rel,
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
        0o644,
    ) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e),
    }
    open(root, &rel, libc::O_PATH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kiln-resolve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn symlinks_stay_inside_the_root() {
        let base = tmp("sym");
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let fd = open(
            &OwnedFd::from(std::fs::File::open(&root).unwrap()),
            Path::new("/"),
            DIR,
        )
        .unwrap();
        mkdir_all(&fd, Path::new("/evil/sub")).unwrap();
        mkdir_all(&fd, Path::new("/up/x/../y")).unwrap();
        create_file(&fd, Path::new("/up/file")).unwrap();
        assert!(
            !outside.join("sub").exists(),
            "escaped through an absolute symlink"
        );
        assert!(
            root.join(outside.strip_prefix("/").unwrap())
                .join("sub")
                .is_dir()
        );
        assert!(root.join("y").is_dir() && root.join("file").is_file());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
