//! CVE-2019-5736: nothing in a container may write to the host's kiln binary. Init is a fork of
//! kiln, not an exec, so until it execs the user's program its /proc/PID/exe *is* that binary:
//! a startContainer hook, or a `#!/proc/self/exe` program, can open it there and write to it
//! once no kiln runs it any more. So a command that puts a process into a container first
//! re-executes itself from an unwritable image of the binary: a read-only, detached bind mount of
//! it (open_tree + mount_setattr: nothing copied, no mount in any mount table), or, for a caller
//! not allowed to make one (unprivileged), a sealed memfd copy, as runc does. A binary that is
//! already unwritable (read-only mount, sealed memfd) needs nothing, which also ends the loop.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{AtFlags, FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
use nix::sys::statvfs::{FsFlags, fstatvfs};

use crate::error::{Context, Error, Result};
use crate::sys;

const SELF_EXE: &str = "/proc/self/exe";

/// Set once this process found its binary unwritable: a binary never becomes writable again,
/// so the command's own call after `cli::reexec_early`'s repeats none of the checks.
static PROVEN: AtomicBool = AtomicBool::new(false);

/// Returns when the running binary is unwritable; otherwise replaces this process with kiln run
/// from an unwritable image, with the same argv, environment and inherited fds.
pub fn ensure_unwritable() -> Result<()> {
    if PROVEN.load(Ordering::Relaxed) {
        return Ok(());
    }
    let exe = File::open(SELF_EXE).ctx(|| format!("opening {SELF_EXE}"))?;
    if unwritable(&exe) {
        PROVEN.store(true, Ordering::Relaxed);
        // execveat(fd, "") names the process after the fd number: give `ps` its name back.
        if let Some(name) = std::env::args_os()
            .next()
            .and_then(|a| std::ffi::CString::new(Path::new(&a).file_name()?.to_str()?).ok())
        {
            let _ = nix::sys::prctl::set_name(&name);
        }
        return Ok(());
    }
    let image = match sys::open_tree_clone(Path::new(SELF_EXE), false) {
        Ok(tree) => {
            sys::mount_setattr(tree.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0)
                .ctx(|| format!("making a bind mount of {SELF_EXE} read-only"))?;
            tree
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => sealed_copy(exe)?,
        Err(e) => return Err(Error::os(format!("open_tree {SELF_EXE}"), e)),
    };
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_vec()).expect("an argument is a C string"))
        .collect();
    let envp = environment();
    let e = nix::unistd::execveat(
        Some(image.as_raw_fd()),
        c"",
        &argv,
        &envp,
        AtFlags::AT_EMPTY_PATH,
    )
    .unwrap_err();
    Err(Error::os(
        "re-executing kiln from its unwritable image",
        std::io::Error::from(e),
    ))
}

fn unwritable(exe: &File) -> bool {
    let read_only = fstatvfs(exe).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY));
    let sealed = fcntl(exe.as_raw_fd(), FcntlArg::F_GET_SEALS)
        .is_ok_and(|s| SealFlag::from_bits_truncate(s).contains(SealFlag::F_SEAL_WRITE));
    read_only || sealed
}

/// A copy of `exe` in a memfd that no one can ever write, grow or shrink.
fn sealed_copy(mut exe: File) -> Result<OwnedFd> {
    let fd = memfd_create(
        c"kiln",
        MemFdCreateFlag::MFD_ALLOW_SEALING | MemFdCreateFlag::MFD_CLOEXEC,
    )
    .ctx(|| "memfd_create for a copy of kiln")?;
    let mut copy = File::from(fd);
    // std::io::copy between files is copy_file_range or sendfile: no pass through userspace.
    std::io::copy(&mut exe, &mut copy).ctx(|| format!("copying {SELF_EXE} into a memfd"))?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(copy.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals))
        .ctx(|| "sealing the memfd copy of kiln")?;
    Ok(copy.into())
}

/// The environment exactly as the kernel passed it: every byte, even an entry without `=`
/// (which `std::env::vars_os` would drop), survives the re-exec. Nothing has changed it yet:
/// this runs first thing in `main`.
fn environment() -> Vec<CString> {
    let mut envp = Vec::new();
    // SAFETY: `environ` is glibc's NULL-terminated array of C strings (NULL itself after a
    // clearenv), which no thread changes meanwhile (kiln has one thread here and has called no
    // setenv).
    unsafe {
        let mut entry = libc::environ.cast_const();
        while !entry.is_null() && !(*entry).is_null() {
            envp.push(std::ffi::CStr::from_ptr(*entry).to_owned());
            entry = entry.add(1);
        }
    }
    envp
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn sealed_copy_is_identical_and_unwritable() {
        let copy = File::from(sealed_copy(File::open(SELF_EXE).unwrap()).unwrap());
        assert!(unwritable(&copy));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        File::open(SELF_EXE).unwrap().read_to_end(&mut a).unwrap();
        File::open(format!("/proc/self/fd/{}", copy.as_raw_fd()))
            .unwrap()
            .read_to_end(&mut b)
            .unwrap();
        assert!(a == b, "the copy differs from the binary");
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", copy.as_raw_fd()))
            .unwrap();
        assert_eq!(w.write(b"x").unwrap_err().raw_os_error(), Some(libc::EPERM));
    }
}
