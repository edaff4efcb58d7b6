//! The parent↔child protocol of `create`: typed messages, one per SOCK_SEQPACKET packet (so
//! message boundaries are the kernel's, never parsed), with an fd attached where one travels.
//!
//! ```text
//!   kiln create (parent)                          child → [intermediate] → init
//!   ────────────────────                          ─────────────────────────────
//!                          ◀── JoinCgroup ─────── (not born in its cgroup: v1, hybrid)
//!   write pid to cgroup.procs
//!   of every hierarchy     ─── Continue ────────▶ unshare the cgroup namespace
//!                                                 join `path` namespaces (setns)
//!                          ◀── WriteIdMaps ────── made a new user namespace
//!   write uid_map, gid_map ─── Continue ────────▶ become root in it
//!                          ◀── WriteTimeOffsets ─ made a new time namespace
//!   write timens_offsets   ─── Continue ────────▶
//!                          ◀── InitPid(pid) ───── forked init into the new pid/time
//!   reap intermediate,          + init's pidfd    namespace, then exits
//!   keep init's pidfd
//!                          ◀── RunHooks ───────── mounts ready (before pivot_root)
//!   prestart + createRuntime
//!   hooks                  ─── Continue ────────▶ createContainer hooks, pivot_root, ...
//!                          ◀── PtyMaster + fd ─── (process.terminal) pty allocated
//!   fd → --console-socket
//!                          ◀── SeccompListener ── (SCMP_ACT_NOTIFY) filter loaded
//!   fd + state → the          + notify fd         (before Ready)
//!   listenerPath socket
//!                          ◀── Ready ──────────── all set up; blocks opening exec.fifo
//!   write linux.resources,
//!   state, pid file, exit
//!
//!   any step of the child:  ◀── Error(msg) ───── then exits; create fails with msg
//! ```
//! The intermediate exists only when the kernel forces a second fork: joining an existing pid
//! namespace, or any time namespace (both apply to children only). Otherwise one clone3 makes
//! every namespace and the child is init itself.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    JoinCgroup,
    WriteIdMaps,
    WriteTimeOffsets,
    InitPid(i32),
    RunHooks,
    PtyMaster,
    SeccompListener,
    Ready,
    Error(String),
    Continue,
}

pub struct Channel(OwnedFd);

/// Largest message: an error text. Anything longer is cut by the kernel, never misparsed.
const MAX_MSG: usize = 64 * 1024;

impl Channel {
    pub fn pair() -> std::io::Result<(Channel, Channel)> {
        let (a, b) = socket::socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
        Ok((Channel(a), Channel(b)))
    }

    pub fn send(&self, msg: &Msg) -> std::io::Result<()> {
        self.send_with_fd(msg, None)
    }

    pub fn send_with_fd(&self, msg: &Msg, fd: Option<RawFd>) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
        let fds = fd.map(|f| [f]);
        let cmsg: Vec<ControlMessage> = fds.as_ref().map(|f| ControlMessage::ScmRights(f)).into_iter().collect();
        socket::sendmsg::<()>(self.0.as_raw_fd(), &[IoSlice::new(&bytes)], &cmsg, MsgFlags::MSG_NOSIGNAL, None)?;
        Ok(())
    }

    /// The next message. The other side exiting (every copy of its end closed) reads as EOF and
    /// becomes an error, so a dead child can never leave the parent waiting.
    pub fn recv(&self) -> std::io::Result<(Msg, Option<OwnedFd>)> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match socket::recvmsg::<()>(self.0.as_raw_fd(), &mut iov, Some(&mut cmsg_space), MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(r) => {
                    let mut fd = None;
                    for c in r.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            // SAFETY: SCM_RIGHTS installed these fds in this process for us alone.
                            fd = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
                        }
                    }
                    break (r.bytes, fd);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if len == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the container's init exited during setup"));
        }
        let msg = serde_json::from_slice(&buf[..len]).map_err(std::io::Error::other)?;
        Ok((msg, fd))
    }

    /// Waits for `Continue`; used by the child after each request to the parent.
    pub fn wait_continue(&self) -> std::io::Result<()> {
        match self.recv()?.0 {
            Msg::Continue => Ok(()),
            other => Err(std::io::Error::other(format!("protocol error: expected Continue, got {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_fds_cross() {
        let (a, b) = Channel::pair().unwrap();
        a.send(&Msg::InitPid(42)).unwrap();
        a.send_with_fd(&Msg::PtyMaster, Some(0)).unwrap();
        drop(a);
        assert_eq!(b.recv().unwrap().0, Msg::InitPid(42));
        let (m, fd) = b.recv().unwrap();
        assert_eq!(m, Msg::PtyMaster);
        assert!(fd.is_some());
        assert_eq!(b.recv().unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
