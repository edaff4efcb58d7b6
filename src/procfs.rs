//! The container's /proc, used only once it is known to be procfs (CVE-2019-16884,
//! CVE-2019-19921): a rootfs or a mount can put anything at /proc, and a write meant for the
//! kernel (a sysctl, oom_score_adj, an LSM label) would then land in a file of the image or of
//! the host. The check is made on the opened fd (fstatfs), so no swap of the path between check
//! and use can matter.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;

use nix::dir::Dir;
use nix::sys::stat::{SFlag, fstat};
use nix::sys::statfs::{PROC_SUPER_MAGIC, fstatfs};

fn ensure_procfs(fd: impl AsFd, path: &Path) -> io::Result<()> {
    if fstatfs(fd)?.filesystem_type() != PROC_SUPER_MAGIC {
        return Err(io::Error::other(format!(
            "{} is not on procfs",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `value` to a file under /proc, refusing one that is not procfs.
pub fn write(path: impl AsRef<Path>, value: &str) -> io::Result<()> {
    let path = path.as_ref();
    // Neither O_CREAT nor O_TRUNC: nothing is made where a kernel file is missing.
    let mut f = OpenOptions::new().write(true).open(path)?;
    ensure_procfs(&f, path)?;
    f.write_all(value.as_bytes())
}

/// Like `write`, but leaves a file that already holds `value` untouched, without opening it for
/// writing: some opens fail even when the write would change nothing (oom_score_adj inside a
/// user namespace, owned by the unmapped host root).
pub fn update(path: impl AsRef<Path>, value: &str) -> io::Result<()> {
    let path = path.as_ref();
    let mut f = File::open(path)?;
    ensure_procfs(&f, path)?;
    let mut current = String::new();
    f.read_to_string(&mut current)?;
    if current.trim() == value {
        return Ok(());
    }
    write(path, value)
}

/// Closes every directory fd from `first` up: init inherits from `create` fds of the host's
/// directories (the state directory's lock, a v2 cgroup), and one still open would let a
/// process.cwd of `/proc/self/fd/N`, or a hook opening `/proc/1/fd/N`, reach the host
/// (CVE-2024-21626). The fds themselves are listed by procfs, so this runs after /proc is
/// mounted; nothing that owns them is ever dropped in init, which execs or `_exit`s.
pub fn close_directories_from(first: RawFd) -> io::Result<()> {
    let path = Path::new("/proc/self/fd");
    let fd = std::fs::File::open(path)?;
    ensure_procfs(&fd, path)?;
    let mut dir = Dir::from(fd)?;
    let own = dir.as_raw_fd();
    let fds: Vec<RawFd> = dir
        .iter()
        .filter_map(|e| e.ok()?.file_name().to_str().ok()?.parse().ok())
        .filter(|&fd| fd >= first && fd != own)
        .collect();
    for fd in fds {
        if fstat(fd).is_ok_and(|st| {
            SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
        }) {
            nix::unistd::close(fd)?;
        }
    }
    Ok(())
}
