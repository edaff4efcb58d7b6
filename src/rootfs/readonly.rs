//! `linux.readonlyPaths`: each path is bound onto itself and made read-only, in time linear in
//! the length of the list.
//!
//! The obvious way, runc's, is not: `mount(p, p, MS_BIND|MS_REC)` has the kernel walk every
//! mount on the mount that holds `p` (a plain bind checks them for locked ones, a recursive one
//! picks those it copies), and those are the binds of all the paths before: 100,000 paths took
//! minutes. So each path is cloned (open_tree) from a detached copy of the mount holding it,
//! made once per mount and never mounted on, made read-only while still detached
//! (mount_setattr, so it is never seen writable), and attached (move_mount).
//!
//! The plain bind and remount remain where that cannot be: a path with mounts below it, which
//! must stay visible as runc's recursive bind keeps them (they are few); a kernel older than
//! 6.15, which cannot clone from a detached mount; a mount with locked mounts on it (in a user
//! namespace), which cannot be copied without them.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

use crate::error::{Context, Result};
use crate::rootfs::mount::{limit_hint, locked_flags};
use crate::rootfs::resolve::fd_path;
use crate::sys;

pub struct ReadonlyPaths {
    /// Every mount point of the namespace, as this process's root shows them.
    points: BTreeSet<PathBuf>,
    /// Where each mount (by id) is mounted.
    by_id: HashMap<u64, PathBuf>,
    /// The detached copy of each mount that paths on it are cloned from; None where the
    /// kernel refused to make one.
    sources: HashMap<u64, Option<OwnedFd>>,
}

impl ReadonlyPaths {
    pub fn new() -> Result<ReadonlyPaths> {
        let info = crate::procfs::mountinfo()
            .ctx(|| "linux.readonlyPaths: reading /proc/self/mountinfo")?;
        let mut points = BTreeSet::new();
        let mut by_id = HashMap::new();
        for m in info {
            points.insert(m.mount_point.clone());
            by_id.insert(m.id, m.mount_point);
        }
        Ok(ReadonlyPaths {
            points,
            by_id,
            sources: HashMap::new(),
        })
    }

    /// Makes `path` read-only; a path that does not exist needs no protection (as with runc).
    pub fn apply(&mut self, path: &Path) -> std::io::Result<()> {
        let fd = match nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        // SAFETY: `fd` was just returned by open and is owned here alone.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // Where the kernel binds: the path with its symlinks resolved.
        let real = std::fs::read_link(fd_path(&fd))?;
        let below = self.any_below(&real);
        match self.clone_of(&fd, &real).filter(|_| !below) {
            Some(tree) => {
                sys::mount_setattr(tree.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0)?;
                sys::move_mount(tree.as_fd(), fd.as_fd()).map_err(limit_hint)?;
            }
            None => bind_readonly(path, below)?,
        }
        if let Ok(id) = sys::mount_id(&real) {
            self.by_id.insert(id, real.clone());
        }
        self.points.insert(real);
        Ok(())
    }

    /// Whether anything is mounted strictly below `dir`. Paths compare component by
    /// component, so whatever lies below `dir` sorts right after it: one look is enough.
    fn any_below(&self, dir: &Path) -> bool {
        self.points
            .range::<Path, _>((Bound::Excluded(dir), Bound::Unbounded))
            .next()
            .is_some_and(|p| p.starts_with(dir))
    }

    /// A detached, not yet attached bind of the directory `fd` (at `real`), cloned from the
    /// detached copy of its mount; None where the kernel refuses one.
    fn clone_of(&mut self, fd: &OwnedFd, real: &Path) -> Option<OwnedFd> {
        let id = sys::mount_id(&fd_path(fd)).ok()?;
        let point = self.by_id.get(&id)?;
        let rel = real.strip_prefix(point).ok()?;
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let source = self
            .sources
            .entry(id)
            .or_insert_with(|| sys::open_tree_clone(point, false).ok())
            .as_ref()?;
        sys::open_tree_clone_at(source.as_fd(), rel, false).ok()
    }
}

/// runc's way: a bind of `path` onto itself (recursive when mounts lie below it), remounted
/// read-only with the flags the kernel keeps locked.
fn bind_readonly(path: &Path, recursive: bool) -> std::io::Result<()> {
    let rec = if recursive {
        MsFlags::MS_REC
    } else {
        MsFlags::empty()
    };
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | rec,
        None::<&str>,
    )
    .map_err(limit_hint)?;
    let keep = locked_flags(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | rec | keep,
        None::<&str>,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_below_a_path_are_found_and_siblings_are_not() {
        let r = ReadonlyPaths {
            points: [
                "/",
                "/proc",
                "/proc/sys/fs/binfmt_misc",
                "/m/p1",
                "/m/p10/x",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            by_id: HashMap::new(),
            sources: HashMap::new(),
        };
        for (dir, below) in [
            ("/", true),
            ("/proc", true),
            ("/proc/sys", true),
            ("/proc/sys/fs/binfmt_misc", false),
            ("/proc/sy", false),
            ("/m/p1", false),
            ("/m/p10", true),
            ("/m", true),
            ("/n", false),
        ] {
            assert_eq!(r.any_below(Path::new(dir)), below, "{dir}");
        }
    }
}
