//! The parent↔child protocol of `create` and `exec`: typed messages, one per SOCK_SEQPACKET
//! packet (so message boundaries are the kernel's, never parsed), with an fd attached where one
//! travels.
//!
//! One writer at a time, by construction: behind an intermediate, the intermediate and its
//! child share the child's end of the socket, so the child writes nothing until the parent,
//! having read `InitPid` and reaped the intermediate, answers it with `Continue`. The parent
//! checks every message against `Phases`: one out of order is a clear error naming it and the
//! phase, never misread as the next step.
//!
//! ```text
//!   kiln create (parent)                          child → [intermediate] → init
//!   ────────────────────                          ─────────────────────────────
//!                          ◀── JoinCgroup ─────── (the parent moves it: systemd; on v2 it
//!   write pid to cgroup.procs                      is born in its cgroup, on v1 and hybrid
//!   of every hierarchy     ─── Continue ────────▶  it moves itself: cgroups::Entry)
//!                                                 unshare the cgroup namespace
//!                                                 join `path` namespaces (setns)
//!                          ◀── WriteIdMaps ────── made a new user namespace
//!   write uid_map, gid_map ─── Continue ────────▶ become root in it
//!                          ◀── WriteTimeOffsets ─ made a new time namespace
//!   write timens_offsets   ─── Continue ────────▶
//!                          ◀── InitPid(pid) ───── forked init into the new pid/time
//!   reap intermediate,          + init's pidfd    namespace, then exits; init waits
//!   keep init's pidfd      ─── Continue ────────▶ init may write from here on
//!                          ◀── Seccomp ────────── (linux.seccomp) asks, then mounts
//!   compile linux.seccomp                         meanwhile: setsid, lo, every mount
//!   (or load it from the
//!   cache), keep it for
//!   exec                   ─── SeccompFilter ───▶ read once the mounts are done: the
//!                              + memfd            program, loaded at its moment below
//!                          ◀── RunHooks ───────── mounts ready (before pivot_root)
//!   linux.netDevices moved in,
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
//!
//!   kiln exec (parent)                            child → [intermediate] → process
//!   ──────────────────                            ────────────────────────────────
//!   forks outside the container's cgroup          setns on init's pidfd (every namespace)
//!                          ◀── InitPid(pid) ───── forked into the joined pid/time
//!   reap intermediate,          + its pidfd       namespace, then exits; the process waits
//!   keep the pidfd         ─── Continue ────────▶
//!                          ◀── JoinCgroup ─────── (not paused) the final process, past
//!   write pid to cgroup.procs                     every fork: a full pids.max refuses
//!   (a move: pids.max      ─── Continue ────────▶ forks, never a move
//!   never refuses it)
//!                          ◀── PtyMaster + fd ─── (process.terminal)
//!                          ◀── SeccompListener ── (SCMP_ACT_NOTIFY)
//!                          ◀── Ready ──────────── set up; only seccomp and execve remain
//!   (paused: join the frozen
//!   cgroup now)            ─── Continue ────────▶ read once thawed
//!   EOF: the program runs                         execve (the end is close-on-exec)
//!   or ◀── Error(msg): exit 255
//! ```
//! The intermediate exists only when the kernel forces a second fork: joining an existing pid
//! namespace, or any time namespace (both apply to children only). Otherwise one clone3 makes
//! every namespace (create) or joins none (exec), and the child is init or the process itself.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    JoinCgroup,
    WriteIdMaps,
    WriteTimeOffsets,
    InitPid(i32),
    /// Init asks for its seccomp program, and waits for the answer only after its mounts:
    /// the parent compiles it meanwhile.
    Seccomp,
    RunHooks,
    PtyMaster,
    SeccompListener,
    Ready,
    Error(String),
    Continue,
    /// The parent's answer to `Seccomp`: the filter, in the memfd attached.
    SeccompFilter,
}

pub struct Channel(OwnedFd);

/// Largest message: an error text. Anything longer is cut by the kernel, never misparsed.
const MAX_MSG: usize = 64 * 1024;

impl Channel {
    pub fn pair() -> std::io::Result<(Channel, Channel)> {
        let (a, b) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel(a), Channel(b)))
    }

    pub fn send(&self, msg: &Msg) -> std::io::Result<()> {
        self.send_with_fd(msg, None)
    }

    pub fn send_with_fd(&self, msg: &Msg, fd: Option<RawFd>) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
        let fds = fd.map(|f| [f]);
        let cmsg: Vec<ControlMessage> = fds
            .as_ref()
            .map(|f| ControlMessage::ScmRights(f))
            .into_iter()
            .collect();
        socket::sendmsg::<()>(
            self.0.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }

    /// The next message. The other side exiting (every copy of its end closed) reads as EOF and
    /// becomes an error, so a dead child can never leave the parent waiting.
    pub fn recv(&self) -> std::io::Result<(Msg, Option<OwnedFd>)> {
        // Peek at the packet's length first: a zeroed buffer of MAX_MSG for every message
        // cost each process 16 page faults and a 64 KiB memset, for messages of a few bytes.
        let size = loop {
            match socket::recv(
                self.0.as_raw_fd(),
                &mut [],
                MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
            ) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let mut buf = vec![0u8; size.min(MAX_MSG)];
        let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match socket::recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
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
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the container's init exited during setup",
            ));
        }
        let msg = serde_json::from_slice(&buf[..len]).map_err(std::io::Error::other)?;
        Ok((msg, fd))
    }

    /// Waits for `Continue`; used by the child after each request to the parent.
    pub fn wait_continue(&self) -> std::io::Result<()> {
        match self.recv()?.0 {
            Msg::Continue => Ok(()),
            other => Err(std::io::Error::other(format!(
                "protocol error: expected Continue, got {other:?}"
            ))),
        }
    }
}

/// Which side of the protocol the child is on: each kind makes its own requests, in its order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Create,
    Exec,
}

/// A message's place in the protocol, without its payload.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    JoinCgroup,
    WriteIdMaps,
    WriteTimeOffsets,
    InitPid,
    Seccomp,
    RunHooks,
    PtyMaster,
    SeccompListener,
    Ready,
}

impl Step {
    fn of(msg: &Msg) -> Option<Step> {
        Some(match msg {
            Msg::JoinCgroup => Step::JoinCgroup,
            Msg::WriteIdMaps => Step::WriteIdMaps,
            Msg::WriteTimeOffsets => Step::WriteTimeOffsets,
            Msg::InitPid(_) => Step::InitPid,
            Msg::Seccomp => Step::Seccomp,
            Msg::RunHooks => Step::RunHooks,
            Msg::PtyMaster => Step::PtyMaster,
            Msg::SeccompListener => Step::SeccompListener,
            Msg::Ready => Step::Ready,
            Msg::Error(_) | Msg::Continue | Msg::SeccompFilter => return None,
        })
    }
}

/// The order each kind's messages come in (the diagrams above), each at most once: exec's
/// process joins its cgroup past the fork, create's init before anything.
const CREATE: &[Step] = &[
    Step::JoinCgroup,
    Step::WriteIdMaps,
    Step::WriteTimeOffsets,
    Step::InitPid,
    Step::Seccomp,
    Step::RunHooks,
    Step::PtyMaster,
    Step::SeccompListener,
    Step::Ready,
];
const EXEC: &[Step] = &[
    Step::InitPid,
    Step::JoinCgroup,
    Step::PtyMaster,
    Step::SeccompListener,
    Step::Ready,
];

/// The parent's view of where the child stands: every message it reads goes through `accept`
/// first, which refuses one out of phase (out of order, repeated, not this kind's, or one the
/// parent knows cannot come in this run) with an error naming the message and the phase.
#[derive(Debug)]
pub struct Phases {
    kind: Kind,
    /// An intermediate was forked: its InitPid comes, before anything after it.
    intermediate: bool,
    /// The child asks to be moved into its cgroup: JoinCgroup comes, before anything after it;
    /// None: it may (exec's process, where its birth in the cgroup may be refused).
    joins_cgroup: Option<bool>,
    /// The config has linux.seccomp: init asks for the program (create), before its hooks.
    seccomp: bool,
    /// Index in the kind's order of the last message accepted.
    last: Option<usize>,
}

impl Phases {
    pub fn new(kind: Kind, intermediate: bool, joins_cgroup: bool) -> Phases {
        Phases {
            kind,
            intermediate,
            joins_cgroup: Some(joins_cgroup),
            seccomp: false,
            last: None,
        }
    }

    /// Exec's process asks to be moved into its cgroup only where its birth there was refused
    /// (`process::exec`): JoinCgroup may come, once, in its place.
    pub fn cgroup_join_optional(mut self) -> Phases {
        self.joins_cgroup = None;
        self
    }

    /// Create's init asks for the seccomp program exactly when the config has one.
    pub fn with_seccomp(mut self, seccomp: bool) -> Phases {
        self.seccomp = seccomp;
        self
    }

    fn order(&self) -> &'static [Step] {
        match self.kind {
            Kind::Create => CREATE,
            Kind::Exec => EXEC,
        }
    }

    /// Some(true): `step` comes in this run, before anything after it; Some(false): it cannot.
    fn expected(&self, step: Step) -> Option<bool> {
        match step {
            Step::InitPid => Some(self.intermediate),
            Step::JoinCgroup => self.joins_cgroup,
            Step::Seccomp => Some(self.seccomp),
            Step::Ready => Some(true),
            _ => None,
        }
    }

    fn phase(&self) -> String {
        match self.last {
            None => "at the start".to_owned(),
            Some(i) => format!("after {:?}", self.order()[i]),
        }
    }

    /// Accepts the child's next message, or says why it cannot come now. `Error` (the child's
    /// own failure) is accepted in every phase; `Continue` is the parent's word, never the child's.
    pub fn accept(&mut self, msg: &Msg) -> Result<(), String> {
        if matches!(msg, Msg::Error(_)) {
            return Ok(());
        }
        let kind = format!("{:?}", self.kind).to_lowercase();
        let out_of_phase =
            |why: String| format!("protocol error: {msg:?} out of phase ({why}) in {kind}");
        let Some(step) = Step::of(msg) else {
            return Err(out_of_phase(format!(
                "{}; never sent by the child",
                self.phase()
            )));
        };
        let order = self.order();
        let Some(at) = order.iter().position(|&s| s == step) else {
            return Err(out_of_phase(format!("no {step:?} in {kind}'s protocol")));
        };
        if self.expected(step) == Some(false) {
            return Err(out_of_phase(format!(
                "{}; no {step:?} expected in this run",
                self.phase()
            )));
        }
        if self.last.is_some_and(|l| at <= l) {
            return Err(out_of_phase(self.phase()));
        }
        let first = self.last.map_or(0, |l| l + 1);
        if let Some(&missed) = order[first..at]
            .iter()
            .find(|&&s| self.expected(s) == Some(true))
        {
            return Err(out_of_phase(format!("{}, before {missed:?}", self.phase())));
        }
        self.last = Some(at);
        Ok(())
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
        assert_eq!(
            b.recv().unwrap_err().kind(),
            std::io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn a_long_error_crosses_whole() {
        let (a, b) = Channel::pair().unwrap();
        let text = "é".repeat(20_000);
        a.send(&Msg::Error(text.clone())).unwrap();
        a.send(&Msg::Continue).unwrap();
        assert_eq!(b.recv().unwrap().0, Msg::Error(text));
        assert_eq!(b.recv().unwrap().0, Msg::Continue);
    }

    fn run(
        kind: Kind,
        intermediate: bool,
        joins_cgroup: bool,
        msgs: &[Msg],
    ) -> Vec<Result<(), String>> {
        let mut p = Phases::new(kind, intermediate, joins_cgroup);
        msgs.iter().map(|m| p.accept(m)).collect()
    }

    fn refused(kind: Kind, intermediate: bool, joins_cgroup: bool, msgs: &[Msg]) -> String {
        let mut r = run(kind, intermediate, joins_cgroup, msgs);
        let last = r.pop().unwrap();
        assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
        last.unwrap_err()
    }

    #[test]
    fn every_step_of_create_in_order() {
        use Msg::*;
        let all = [
            JoinCgroup,
            WriteIdMaps,
            WriteTimeOffsets,
            InitPid(7),
            RunHooks,
            PtyMaster,
            SeccompListener,
            Ready,
        ];
        assert!(
            run(Kind::Create, true, true, &all)
                .iter()
                .all(|r| r.is_ok())
        );
        // Born in its cgroup (v2), on the fast path: no JoinCgroup, no intermediate.
        assert!(
            run(Kind::Create, false, false, &[WriteIdMaps, RunHooks, Ready])
                .iter()
                .all(|r| r.is_ok())
        );
    }

    #[test]
    fn exec_with_and_without_an_intermediate() {
        use Msg::*;
        assert!(
            run(
                Kind::Exec,
                true,
                true,
                &[InitPid(7), JoinCgroup, PtyMaster, SeccompListener, Ready]
            )
            .iter()
            .all(|r| r.is_ok())
        );
        // Paused: the parent moves it into the cgroup after Ready, unasked.
        assert!(
            run(Kind::Exec, false, false, &[Ready])
                .iter()
                .all(|r| r.is_ok())
        );
    }

    #[test]
    fn the_process_overtaking_its_intermediate_is_refused() {
        // The race this machine guards: the process's Ready read before the intermediate's
        // InitPid, then InitPid after Ready.
        assert_eq!(
            refused(Kind::Exec, true, false, &[Msg::Ready]),
            "protocol error: Ready out of phase (at the start, before InitPid) in exec"
        );
        assert_eq!(
            refused(
                Kind::Exec,
                true,
                false,
                &[Msg::InitPid(7), Msg::Ready, Msg::InitPid(8)]
            ),
            "protocol error: InitPid(8) out of phase (after Ready) in exec"
        );
        assert!(
            refused(Kind::Create, true, true, &[Msg::JoinCgroup, Msg::RunHooks])
                .contains("(after JoinCgroup, before InitPid)")
        );
    }

    #[test]
    fn out_of_order_repeated_or_foreign_messages_are_refused() {
        use Msg::*;
        assert!(
            refused(Kind::Exec, false, true, &[JoinCgroup, PtyMaster, PtyMaster])
                .contains("PtyMaster out of phase (after PtyMaster)")
        );
        assert!(refused(Kind::Exec, true, true, &[JoinCgroup]).contains("before InitPid"));
        assert!(
            refused(Kind::Exec, false, false, &[WriteIdMaps])
                .contains("no WriteIdMaps in exec's protocol")
        );
        assert!(refused(Kind::Exec, false, false, &[InitPid(3)]).contains("no InitPid expected"));
        assert!(
            refused(Kind::Create, false, false, &[JoinCgroup]).contains("no JoinCgroup expected")
        );
        assert!(refused(Kind::Create, false, true, &[RunHooks]).contains("before JoinCgroup"));
        assert!(
            refused(Kind::Create, false, false, &[Continue]).contains("never sent by the child")
        );
        assert!(refused(Kind::Create, false, false, &[Ready, RunHooks]).contains("after Ready"));
    }

    #[test]
    fn seccomp_comes_before_the_hooks_exactly_when_configured() {
        use Msg::*;
        let with = |msgs: &[Msg]| {
            let mut p = Phases::new(Kind::Create, false, true).with_seccomp(true);
            msgs.iter().map(|m| p.accept(m)).collect::<Vec<_>>()
        };
        assert!(
            with(&[JoinCgroup, Seccomp, RunHooks, Ready])
                .iter()
                .all(|r| r.is_ok())
        );
        // Init going on to its hooks without the program it must load is refused.
        assert!(
            with(&[JoinCgroup, RunHooks])[1]
                .as_ref()
                .unwrap_err()
                .contains("(after JoinCgroup, before Seccomp)")
        );
        assert!(refused(Kind::Create, false, false, &[Seccomp]).contains("no Seccomp expected"));
        assert!(
            refused(Kind::Exec, false, false, &[Seccomp]).contains("no Seccomp in exec's protocol")
        );
        assert!(
            refused(Kind::Create, false, false, &[SeccompFilter])
                .contains("never sent by the child")
        );
    }

    #[test]
    fn an_error_is_accepted_in_every_phase() {
        use Msg::*;
        let err = || Error("x".into());
        assert!(run(Kind::Exec, true, true, &[err()])[0].is_ok());
        assert!(run(Kind::Create, true, true, &[JoinCgroup, err()])[1].is_ok());
        assert!(run(Kind::Exec, false, false, &[Ready, err()])[1].is_ok());
    }

    #[test]
    fn exec_born_in_its_cgroup_may_or_may_not_ask_to_be_moved() {
        use Msg::*;
        let accept = |msgs: &[Msg]| -> Vec<Result<(), String>> {
            let mut p = Phases::new(Kind::Exec, true, false).cgroup_join_optional();
            msgs.iter().map(|m| p.accept(m)).collect()
        };
        assert!(accept(&[InitPid(3), Ready]).iter().all(|r| r.is_ok()));
        assert!(
            accept(&[InitPid(3), JoinCgroup, Ready])
                .iter()
                .all(|r| r.is_ok())
        );
        // Still at most once, and in its place.
        let twice = accept(&[InitPid(3), JoinCgroup, JoinCgroup]);
        assert!(twice[2].is_err(), "{twice:?}");
        let late = accept(&[InitPid(3), PtyMaster, JoinCgroup]);
        assert!(late[2].is_err(), "{late:?}");
        let early = accept(&[JoinCgroup]);
        assert!(
            early[0].as_ref().unwrap_err().contains("before InitPid"),
            "{early:?}"
        );
    }
}
