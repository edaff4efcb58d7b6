//! `process.terminal`: init allocates a pty in the container's own devpts, and its master goes
//! to whoever holds the container's console: the `--console-socket` listener (conmon, the
//! containerd shim) or, for a foreground `run`, kiln itself, which relays it to its own terminal.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::pty::{PtyMaster, grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::sys::termios::{self, SetArg, Termios};
use oci_spec::runtime::Box as ConsoleSize;

use crate::error::{Context, Result};

nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);
nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, libc::winsize);

/// In the container (init after pivot_root, or an exec'd process): opens a pty, makes its slave
/// the controlling terminal and stdio, and returns the master to be sent to the parent.
/// `console`: also bind it to /dev/console (init's terminal is the container's console; an
/// exec'd process's is not).
pub fn setup_in_container(size: Option<&ConsoleSize>, uid: u32, console: bool) -> Result<OwnedFd> {
    let (master, slave, name) = open_pair()?;
    // The process may run as another user: give it its terminal, as a login would. Only the
    // owner, as runc: the group stays what devpts gave it (gid=5, tty, under Podman and Docker).
    let _ = nix::unistd::fchown(
        slave.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(uid)),
        None,
    );
    if let Some(s) = size {
        let ws = libc::winsize {
            ws_row: s.height() as u16,
            ws_col: s.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        unsafe { set_winsize(slave.as_raw_fd(), &ws) }.ctx(|| "process.consoleSize")?;
    }
    if console {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open("/dev/console")
            .ctx(|| "process.terminal: creating /dev/console")?;
        nix::mount::mount(
            Some(name.as_str()),
            "/dev/console",
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("process.terminal: bind {name} to /dev/console"))?;
    }
    for fd in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), fd).ctx(|| "process.terminal: dup2 onto stdio")?;
    }
    // SAFETY: TIOCSCTTY takes an int argument; 0 means "do not steal".
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| "process.terminal: setting the controlling terminal");
    }
    Ok(master)
}

/// A new pty from this mount namespace's /dev/ptmx: its master, its slave (close-on-exec, not
/// our controlling terminal) and the slave's name. In the container for init and exec; on the
/// host for `restore`, whose criu gives the slave to the restored processes.
pub fn open_pair() -> Result<(OwnedFd, std::fs::File, String)> {
    let master: PtyMaster = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .ctx(|| "process.terminal: opening /dev/ptmx")?;
    grantpt(&master).ctx(|| "process.terminal: grantpt")?;
    unlockpt(&master).ctx(|| "process.terminal: unlockpt")?;
    let name = ptsname_r(&master).ctx(|| "process.terminal: ptsname")?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)
        .ctx(|| format!("process.terminal: opening {name}"))?;
    // SAFETY: into_raw_fd hands over ownership of the master fd.
    let master = unsafe {
        <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(
            master,
        ))
    };
    Ok((master, slave, name))
}

/// Sends the pty master over `--console-socket` with SCM_RIGHTS, as runc does.
pub fn send_to_console_socket(path: &Path, master: &OwnedFd) -> Result<()> {
    let sock = connect("--console-socket", path)?;
    send_fd(
        &sock,
        "--console-socket",
        path,
        b"/dev/ptmx",
        master.as_fd(),
    )
}

/// A unix socket named by a flag (`--console-socket`, `--pidfd-socket`).
pub fn connect(flag: &str, path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).ctx(|| format!("{flag} {}", path.display()))
}

/// Sends `fd` over `sock` with SCM_RIGHTS, `name` as the message's bytes.
pub fn send_fd(
    sock: &UnixStream,
    flag: &str,
    path: &Path,
    name: &[u8],
    fd: BorrowedFd,
) -> Result<()> {
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| format!("{flag} {}: sending the fd", path.display()))?;
    Ok(())
}

/// kiln's own terminal in raw mode for the length of a foreground `run`, restored on drop.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// None when stdin is not a terminal (nothing to switch).
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Copies kiln's window size to the pty (on start and on SIGWINCH).
pub fn copy_winsize(from: BorrowedFd, to: BorrowedFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into a valid pointer; TIOCSWINSZ reads it.
    if unsafe { get_winsize(from.as_raw_fd(), &mut ws) }.is_ok() {
        // SAFETY: TIOCSWINSZ reads the winsize just filled in, through a valid pointer.
        let _ = unsafe { set_winsize(to.as_raw_fd(), &ws) };
    }
}
