//! A foreground `run`: kiln stays until the container's init exits, forwarding the signals it
//! gets and relaying the pty when there is one, then exits with init's status.
//!
//! Every signal has been blocked since before the fork (see `spawn`), so none is lost between
//! the fork and here: they wait in the signalfd, including the SIGCHLD of an init that exits at
//! once.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::{Context, Result};
use crate::sys::{self, Exit};

/// Waits for init (a child of ours: `run` is a subreaper), forwarding signals and relaying what
/// the program reports to NOTIFY_SOCKET (`notify`); returns how it ended.
pub fn wait(
    init_pid: i32,
    init_pidfd: &OwnedFd,
    pty: Option<&OwnedFd>,
    mut notify: Option<&crate::notify::Relay>,
) -> Result<Exit> {
    let sfd = SignalFd::with_flags(
        &SigSet::all(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .ctx(|| "signalfd")?;
    let _raw = pty.and_then(|_| crate::tty::RawMode::enter());
    if let Some(master) = pty {
        crate::tty::copy_winsize(std::io::stdin().as_fd(), master.as_fd());
        // Non-blocking: the final drain must stop when the pty is empty, even if a process
        // that outlived init still holds its other end.
        nix::fcntl::fcntl(
            master.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .ctx(|| "pty O_NONBLOCK")?;
    }
    let stdin = std::io::stdin();
    let mut stdin_open = pty.is_some();
    loop {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(r) = notify {
            fds.push(PollFd::new(r.fd(), PollFlags::POLLIN));
        }
        let at_pty = fds.len();
        if let Some(m) = pty {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).ctx(|| "poll"),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        if let Some(r) = notify.filter(|_| ready[1]) {
            // Relayed for as long as the program runs: a socket left unread would block the
            // program's later reports once its queue is full. runc's foreground run ignores a
            // relay that fails; the container runs on.
            if let Err(e) = r.forward_all() {
                crate::log::warn(&e.to_string());
                notify = None;
            }
        }
        if let (Some(m), Some(true)) = (pty, ready.get(at_pty)) {
            copy(m.as_fd(), std::io::stdout().as_fd());
        }
        if let (Some(m), Some(true)) = (pty, ready.get(at_pty + 1)) {
            stdin_open = copy(stdin.as_fd(), m.as_fd());
        }
        if !ready[0] {
            continue;
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            let sig = info.ssi_signo as i32;
            match Signal::try_from(sig) {
                Ok(Signal::SIGCHLD) => {
                    if let Some(exit) = reap(init_pid) {
                        // What the program reported before it exited still goes: its datagrams
                        // and its exit can come in one poll, the exit seen first.
                        if let Some(r) = notify
                            && let Err(e) = r.forward_all()
                        {
                            crate::log::warn(&e.to_string());
                        }
                        if let Some(m) = pty {
                            // What the program wrote last is still in the pty: show it.
                            while copy(m.as_fd(), std::io::stdout().as_fd()) {}
                        }
                        return Ok(exit);
                    }
                }
                Ok(Signal::SIGWINCH) => {
                    if let Some(m) = pty {
                        crate::tty::copy_winsize(stdin.as_fd(), m.as_fd());
                    }
                }
                _ => {
                    let _ = sys::pidfd_send_signal(init_pidfd.as_fd(), sig);
                }
            }
        }
    }
}

/// Reaps every exited child (orphans of the container come to us as subreaper); init's exit
/// when it is among them.
fn reap(init_pid: i32) -> Option<Exit> {
    let mut init_exit = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == init_pid => {
                init_exit = Some(Exit::Code(code))
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid.as_raw() == init_pid => {
                init_exit = Some(Exit::Signal(sig as i32))
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return init_exit,
            Ok(_) => {}
        }
    }
}

/// Copies what is available from `from` to `to`; false on EOF or error (the end is closed).
fn copy(from: BorrowedFd, to: BorrowedFd) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(from.as_raw_fd(), &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut out = &buf[..n];
            while !out.is_empty() {
                match nix::unistd::write(to, out) {
                    Ok(w) => out = &out[w..],
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return false,
                }
            }
            true
        }
    }
}
