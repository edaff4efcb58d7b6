//! The container's /proc, used only once it is known to be procfs (CVE-2019-16884,
//! CVE-2019-19921): a rootfs or a mount can put anything at /proc, and a write meant for the
//! kernel (a sysctl, oom_score_adj, an LSM label) would then land in a file of the image or of
//! the host. The check is made on the opened fd (fstatfs), so no swap of the path between check
//! and use can matter.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::Path;

use nix::sys::statfs::{PROC_SUPER_MAGIC, fstatfs};

fn ensure_procfs(fd: impl AsFd, path: &Path) -> io::Result<()> {
    if fstatfs(fd)?.filesystem_type() != PROC_SUPER_MAGIC {
        return Err(io::Error::other(format!("{} is not on procfs", path.display())));
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
