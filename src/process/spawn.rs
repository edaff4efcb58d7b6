//! The parent's side of `create`: one clone3 into the new namespaces, then the protocol of
//! `sync` until init is ready. Whatever fails, no child outlives this function's error.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::sched::CloneFlags;
use nix::sys::signal::SigSet;

use crate::cgroups::Entry;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Stage, Status};
use crate::namespaces::Plan;
use crate::process::sync::{Channel, Kind, Msg, Phases};
use crate::process::{InitOptions, Peer, idmap};
use crate::sys::{self, Forked};
use std::cell::OnceCell;
use std::convert::Infallible;

/// A ready init, blocked on the exec fifo.
pub struct Init {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// The pty master, kept when there is no console socket (foreground `run` relays it).
    pub pty: Option<OwnedFd>,
    /// The signal mask before `spawn` blocked every signal: the caller restores it once it is
    /// ready to handle signals (at once for `create`, after setting up signalfd for `run`).
    pub saved_mask: SigSet,
}

/// Kills and reaps a child on the error path.
struct Child {
    pid: i32,
    /// None once disarmed: the child then belongs to the caller.
    pidfd: Option<OwnedFd>,
    /// Our own child (reaped here), or init behind an intermediate (reaped by its new parent).
    ours: bool,
}

impl Child {
    fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd
            .as_ref()
            .expect("armed child has a pidfd")
            .as_fd()
    }

    fn disarm(mut self) -> (i32, OwnedFd) {
        (
            self.pid,
            self.pidfd.take().expect("armed child has a pidfd"),
        )
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let Some(pidfd) = &self.pidfd else { return };
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        if self.ours {
            let _ = sys::waitid_pidfd(pidfd.as_fd(), false);
        }
    }
}

/// Forks the child that becomes the container's process: into the container's cgroup as the
/// layout allows (`Entry`: v2 at clone3, v1 and hybrid by the child itself), with every signal
/// blocked until the caller is ready for them. The child runs `child_main(channel, entry)`;
/// its error goes to the parent, or to its stderr once the parent is gone.
/// `into_cgroup: false` forks outside the cgroup, for the parent to move it (`Entry::Parent`).
/// The last value returned says whether the parent must move it (JoinCgroup comes). Of the fds
/// kiln inherited from its caller, only stdio and the `extra_fds` (3..3+extra_fds) stay open
/// in the child.
fn fork(
    p: &Peer,
    flags: CloneFlags,
    into_cgroup: bool,
    extra_fds: u32,
    child_main: impl FnOnce(&Channel, Entry) -> Result<Infallible>,
) -> Result<(Child, Channel, SigSet, bool)> {
    let (parent, child_end) = Channel::pair().ctx(|| "socketpair")?;
    let entry = if into_cgroup {
        p.cgroup.entry()?
    } else {
        Entry::Parent
    };
    let (into, parent_joins) = match &entry {
        Entry::Born(dir) | Entry::Itself(Some(dir), _) => (Some(dir.as_fd()), false),
        Entry::Itself(None, _) => (None, false),
        Entry::Parent => (None, true),
    };
    // A cgroup namespace made before the child is in its whole cgroup would be rooted elsewhere.
    let flags = if matches!(entry, Entry::Born(_)) {
        flags
    } else {
        flags - CloneFlags::CLONE_NEWCGROUP
    };
    let saved_mask = crate::signals::block_all()?;
    // SAFETY: kiln is single-threaded (it starts no threads), as clone3 without CLONE_VM needs.
    match unsafe { sys::clone3(flags.bits() as u64, into) } {
        Err(e) => {
            crate::signals::restore(&saved_mask);
            let into = if into.is_some() {
                " into the container's cgroup"
            } else {
                ""
            };
            Err(Error::os(
                format!("linux.namespaces: clone3{into} with {flags:?}"),
                e,
            ))
        }
        Ok(Forked::Child) => {
            drop(parent);
            if let Some(lock) = p.lock {
                let _ = nix::unistd::close(lock.as_raw_fd());
            }
            crate::signals::reset_for_child();
            // First thing: until `start`, init would hold the caller's files, sockets and pipes
            // where any process exec'd into the container finds them (/proc/1/fd), as would an
            // exec'd process while it sets itself up. Those of kiln's own are close-on-exec.
            let run = sys::close_inherited_from(3 + extra_fds as i32)
                .ctx(|| "closing the fds inherited from the caller")
                .and_then(|()| child_main(&child_end, entry));
            let err = match run {
                // Cut to one short line here: a message that quotes a whole value (a 1 MiB sysctl
                // key) would not fit in one message of the channel, and the parent would only
                // learn that its child exited.
                Err(e) => crate::error::part_of_line(&e.to_string()).to_string(),
                Ok(never) => match never {},
            };
            if child_end.send(&Msg::Error(err.clone())).is_err() {
                crate::log::error(&format!("container process: {err}"));
            }
            // SAFETY: _exit skips the atexit handlers and buffers that belong to the parent.
            unsafe { libc::_exit(1) }
        }
        Ok(Forked::Parent { pid, pidfd }) => Ok((
            Child {
                pid,
                pidfd: Some(pidfd),
                ours: true,
            },
            parent,
            saved_mask,
            parent_joins,
        )),
    }
}

pub fn spawn(opts: &InitOptions) -> Result<Init> {
    let spec = &opts.bundle.spec;
    let plan = Plan::new(spec);
    let fifo: OwnedFd = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&opts.fifo)
        .ctx(|| format!("opening {}", opts.fifo.display()))
        .map(Into::into)?;
    let peer = Peer {
        cgroup: opts.cgroup,
        console_socket: opts.console_socket.as_deref(),
        seccomp: None,
        state: opts.state,
        status: Status::Creating,
        pid: 0,
        lock: opts.lock,
    };
    let (child, chan, saved_mask, parent_joins) = fork(
        &peer,
        plan.clone_flags(),
        true,
        opts.extra_fds,
        |chan, entry| crate::process::init::run(opts, &plan, chan, fifo, entry),
    )?;
    // On an error, child's drop kills it.
    (opts.on_pid)(child.pid)?;
    // The device program is verified now and attached at Ready (below) in microseconds. Init
    // born in its cgroup or moving itself there mounts meanwhile, while the parent would only
    // wait; one that asks the parent to move it (JoinCgroup) waits for this first, as long as
    // it would have waited at Ready.
    opts.cgroup.preload(opts.resources)?;
    let has_seccomp = spec.linux().as_ref().is_some_and(|l| l.seccomp().is_some());
    let phases =
        Phases::new(Kind::Create, plan.needs_second_fork(), parent_joins).with_seccomp(has_seccomp);
    // Set when init asks for it, for the listener's notify fd later.
    let seccomp = OnceCell::new();
    let talked = talk(
        &peer,
        &chan,
        child,
        phases,
        opts.on_pid,
        &|| seccomp.get(),
        |msg, pid, pidfd| create_request(opts, &seccomp, msg, pid, pidfd),
    )
    .and_then(|(child, pty, _)| {
        // Limits last: device rules would have refused init's mknods, a pids limit its forks.
        opts.cgroup.set(opts.resources)?;
        Ok((child, pty))
    });
    ready(talked, saved_mask)
}

/// The child, set up, becomes the caller's; on an error it is killed (Child's drop) and the
/// signals blocked for the fork are unblocked.
fn ready(talked: Result<(Child, Option<OwnedFd>)>, saved_mask: SigSet) -> Result<Init> {
    match talked {
        Ok((child, pty)) => {
            let (pid, pidfd) = child.disarm();
            Ok(Init {
                pid,
                pidfd,
                pty,
                saved_mask,
            })
        }
        Err(e) => {
            crate::signals::restore(&saved_mask);
            Err(e)
        }
    }
}

/// How the parent answers a request it handled.
enum Answer {
    Continue,
    /// A message of its own, with an fd.
    With(Msg, OwnedFd),
}

/// The requests only `create`'s init makes; None for one it does not handle. `seccomp` gets
/// the filter compiled for init.
fn create_request(
    opts: &InitOptions,
    seccomp: &OnceCell<crate::seccomp::Filter>,
    msg: &Msg,
    pid: i32,
    pidfd: std::os::fd::BorrowedFd,
) -> Result<Option<Answer>> {
    let spec = &opts.bundle.spec;
    let linux = spec.linux().as_ref();
    match msg {
        Msg::Seccomp => {
            // Init mounts meanwhile; an error here kills it (Child's drop).
            let Some(filter) = (opts.compile_seccomp)()? else {
                return Ok(None);
            };
            let fd = filter.to_memfd()?;
            let _ = seccomp.set(filter);
            return Ok(Some(Answer::With(Msg::SeccompFilter, fd)));
        }
        Msg::WriteIdMaps => {
            idmap::write(pid, linux)?;
            spec.process()
                .as_ref()
                .map_or(Ok(()), |p| crate::process::sched::oom_score_adj_of(pid, p))?;
        }
        Msg::WriteTimeOffsets => {
            let offsets = linux.and_then(|l| l.time_offsets().as_ref());
            let text: String = offsets
                .into_iter()
                .flatten()
                .map(|(clock, o)| {
                    format!(
                        "{clock} {} {}\n",
                        o.secs().unwrap_or(0),
                        o.nanosecs().unwrap_or(0)
                    )
                })
                .collect();
            std::fs::write(format!("/proc/{pid}/timens_offsets"), text)
                .ctx(|| "linux.timeOffsets")?;
        }
        Msg::RunHooks => {
            // Init is in its network namespace for good: the devices are there for the hooks
            // and for init's net.* sysctls (runc moves them at this point too).
            opts.net_devices.move_in(pidfd)?;
            let state = opts.state.json(Status::Creating, pid);
            // runc runs `create`'s hooks in the bundle, where it chdirs first.
            let bundle = Some(opts.bundle.dir.as_path());
            hooks::run(Stage::Prestart, spec.hooks(), &state, bundle)?;
            hooks::run(Stage::CreateRuntime, spec.hooks(), &state, bundle)?;
        }
        _ => return Ok(None),
    }
    Ok(Some(Answer::Continue))
}

/// `exec`'s parent side: forks the child that joins the container (`process::exec`), answers
/// it, and returns once its program runs. After Ready the child only loads seccomp and execs:
/// its end of the channel closes at execve (close-on-exec), or an Error says why not.
/// The child is forked outside the container's cgroup; its final process, past every fork,
/// enters it (`process::exec`): a container at its pids limit refuses forks, never a move.
pub fn spawn_exec(o: &crate::process::exec::ExecOptions) -> Result<Init> {
    // Only a second fork, made by a child outside the cgroup, can be born in it with a plain
    // fork to fall back on. Not in a paused cgroup, which would freeze the process at once.
    let entry = if o.forks_again() && !o.join_cgroup_last {
        o.peer.cgroup.entry()?
    } else {
        Entry::Parent
    };
    let phases = match entry {
        Entry::Parent => Phases::new(Kind::Exec, o.forks_again(), !o.join_cgroup_last),
        Entry::Itself(None, _) => Phases::new(Kind::Exec, true, false),
        // The parent moves it where its birth in the cgroup was refused.
        _ => Phases::new(Kind::Exec, true, false).cgroup_join_optional(),
    };
    let (child, chan, saved_mask, _) = fork(
        &o.peer,
        CloneFlags::empty(),
        false,
        o.extra_fds,
        move |chan, _| crate::process::exec::run(o, entry, chan),
    )?;
    let protocol = |msg: String| Error::Init {
        id: o.peer.state.id.to_owned(),
        msg,
    };
    let talked = talk(
        &o.peer,
        &chan,
        child,
        phases,
        &|_| Ok(()),
        &|| o.peer.seccomp,
        |_, _, _| Ok(None),
    )
    .and_then(|(child, pty, mut phases)| {
        if o.join_cgroup_last {
            // Into the frozen cgroup: the process reads Continue, and execs, once thawed.
            o.peer.cgroup.join(child.pid)?;
            chan.send(&Msg::Continue).ctx(|| "sync: continue")?;
            return Ok((child, pty));
        }
        match chan.recv() {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok((child, pty)),
            Err(e) => Err(protocol(e.to_string())),
            Ok((Msg::Error(msg), _)) => Err(protocol(msg)),
            // Past Ready only an Error may come: the phase names what came instead.
            Ok((other, _)) => {
                Err(protocol(phases.accept(&other).err().unwrap_or_else(|| {
                    format!("protocol error: {other:?} after Ready")
                })))
            }
        }
    });
    ready(talked, saved_mask)
}

/// Answers the child's requests until it is ready (see the diagrams in `sync`), each checked
/// against `phases` first; requests that only one kind of child makes go to `request`, which
/// says how to answer them. `on_pid` is told init's pid once an intermediate hands it over;
/// `seccomp` gives the child's filter, for the notify fd's listener.
fn talk<'f>(
    p: &Peer,
    chan: &Channel,
    mut child: Child,
    mut phases: Phases,
    on_pid: &dyn Fn(i32) -> Result<()>,
    seccomp: &dyn Fn() -> Option<&'f crate::seccomp::Filter>,
    mut request: impl FnMut(&Msg, i32, std::os::fd::BorrowedFd) -> Result<Option<Answer>>,
) -> Result<(Child, Option<OwnedFd>, Phases)> {
    let protocol = |msg: String| Error::Init {
        id: p.state.id.to_owned(),
        msg,
    };
    let mut pty = None;
    loop {
        let (msg, fd) = chan.recv().map_err(|e| protocol(e.to_string()))?;
        phases.accept(&msg).map_err(protocol)?;
        match msg {
            Msg::JoinCgroup => {
                p.cgroup.join(child.pid)?;
                chan.send(&Msg::Continue).ctx(|| "sync: continue")?;
            }
            Msg::InitPid(pid) => {
                // The intermediate exits right after telling us; reap it, then follow its child
                // through the pidfd it opened (by pid, the child could already be gone: an
                // exec'd process may exit, and be reaped by a subreaper, before we read this).
                let pidfd = fd.ok_or_else(|| protocol("the intermediate sent no pidfd".into()))?;
                let _ = sys::waitid_pidfd(child.pidfd(), false);
                std::mem::replace(
                    &mut child,
                    Child {
                        pid,
                        pidfd: Some(pidfd),
                        ours: false,
                    },
                )
                .disarm();
                on_pid(pid)?;
                // The intermediate is gone: the one process left behind it may write now.
                chan.send(&Msg::Continue).ctx(|| "sync: continue")?;
            }
            Msg::PtyMaster => {
                let fd = fd.ok_or_else(|| protocol("pty message without an fd".into()))?;
                match p.console_socket {
                    Some(path) => crate::tty::send_to_console_socket(path, &fd)?,
                    None => pty = Some(fd),
                }
            }
            Msg::SeccompListener => {
                let fd =
                    fd.ok_or_else(|| protocol("seccomp listener message without an fd".into()))?;
                let listener = seccomp()
                    .and_then(|f| f.listener())
                    .ok_or_else(|| protocol("a notify fd without a listener".into()))?;
                // The state names the container's init, whose pid the process field does not.
                let pid = if p.pid > 0 { p.pid } else { child.pid };
                let state = p.state.json(p.status, pid);
                crate::seccomp::send_to_listener(listener, &fd, child.pid, &state)?;
            }
            Msg::Ready => return Ok((child, pty, phases)),
            Msg::Error(msg) => return Err(protocol(msg)),
            other => match request(&other, child.pid, child.pidfd())? {
                None => return Err(protocol(format!("protocol error: unexpected {other:?}"))),
                Some(Answer::Continue) => chan.send(&Msg::Continue).ctx(|| "sync: continue")?,
                Some(Answer::With(msg, fd)) => chan
                    .send_with_fd(&msg, Some(fd.as_raw_fd()))
                    .ctx(|| format!("sync: {msg:?}"))?,
            },
        }
    }
}
