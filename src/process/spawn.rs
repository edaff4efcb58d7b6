//! The parent's side of `create`: one clone3 into the new namespaces, then the protocol of
//! `sync` until init is ready. Whatever fails, no child outlives this function's error.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::sched::CloneFlags;
use nix::sys::signal::SigSet;

use crate::error::{Context, Error, Result};
use crate::hooks::{self, Stage};
use crate::namespaces::Plan;
use crate::process::InitOptions;
use crate::process::sync::{Channel, Msg};
use crate::sys::{self, Forked};

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
        self.pidfd.as_ref().expect("armed child has a pidfd").as_fd()
    }

    fn disarm(mut self) -> (i32, OwnedFd) {
        (self.pid, self.pidfd.take().expect("armed child has a pidfd"))
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

pub fn spawn(opts: &InitOptions) -> Result<Init> {
    let spec = &opts.bundle.spec;
    let plan = Plan::new(spec);
    let (parent, child_end) = Channel::pair().ctx(|| "socketpair")?;
    let fifo: OwnedFd = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&opts.fifo)
        .ctx(|| format!("opening {}", opts.fifo.display()))
        .map(Into::into)?;

    // Born in the cgroup where the layout allows it; otherwise the parent moves the child in
    // before it does anything, and a cgroup namespace must wait until then (it is rooted at
    // the cgroup its creator is in).
    let into = opts.cgroup.clone_into()?;
    let mut flags = if plan.single_clone() { plan.new } else { CloneFlags::empty() };
    if into.is_none() {
        flags -= CloneFlags::CLONE_NEWCGROUP;
    }
    let saved_mask = crate::signals::block_all()?;
    // SAFETY: kiln is single-threaded (it starts no threads), as clone3 without CLONE_VM needs.
    let forked = unsafe { sys::clone3(flags.bits() as u64, into.as_ref().map(|f| f.as_fd())) };
    let (pid, pidfd) = match forked {
        Err(e) => {
            crate::signals::restore(&saved_mask);
            let into = if into.is_some() { " into the container's cgroup" } else { "" };
            return Err(Error::os(format!("linux.namespaces: clone3{into} with {flags:?}"), e));
        }
        Ok(Forked::Child) => {
            drop(parent);
            crate::signals::reset_for_child();
            let err = match crate::process::init::run(opts, &plan, &child_end, fifo, into.is_some()) {
                Err(e) => e.to_string(),
                Ok(never) => match never {},
            };
            // After Ready, `create` has exited: the container's stderr is where the error can go.
            if child_end.send(&Msg::Error(err.clone())).is_err() {
                eprintln!("kiln: container init: {err}");
            }
            // SAFETY: _exit skips the atexit handlers and buffers that belong to the parent.
            unsafe { libc::_exit(1) }
        }
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
    };
    drop(child_end);
    drop(fifo);
    drop(into);
    match talk(opts, &parent, Child { pid, pidfd: Some(pidfd), ours: true }) {
        Ok((child, pty)) => {
            let (pid, pidfd) = child.disarm();
            Ok(Init { pid, pidfd, pty, saved_mask })
        }
        Err(e) => {
            crate::signals::restore(&saved_mask);
            Err(e)
        }
    }
}

/// Answers the child's requests until it is ready (see the diagram in `sync`).
fn talk(opts: &InitOptions, chan: &Channel, mut child: Child) -> Result<(Child, Option<OwnedFd>)> {
    let id = &opts.state.id;
    let spec = &opts.bundle.spec;
    let linux = spec.linux().as_ref();
    let mut pty = None;
    loop {
        let (msg, fd) = chan.recv().map_err(|e| Error::Init { id: id.clone(), msg: e.to_string() })?;
        match msg {
            Msg::JoinCgroup => {
                opts.cgroup.join(child.pid)?;
                chan.send(&Msg::Continue).ctx(|| "sync: continue")?;
            }
            Msg::WriteIdMaps => {
                write_id_map(child.pid, "uid_map", linux.and_then(|l| l.uid_mappings().as_deref()).unwrap_or_default())?;
                write_id_map(child.pid, "gid_map", linux.and_then(|l| l.gid_mappings().as_deref()).unwrap_or_default())?;
                chan.send(&Msg::Continue).ctx(|| "sync: continue")?;
            }
            Msg::WriteTimeOffsets => {
                let offsets = linux.and_then(|l| l.time_offsets().as_ref());
                let text: String = offsets
                    .into_iter()
                    .flatten()
                    .map(|(clock, o)| format!("{clock} {} {}\n", o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0)))
                    .collect();
                std::fs::write(format!("/proc/{}/timens_offsets", child.pid), text).ctx(|| "linux.timeOffsets")?;
                chan.send(&Msg::Continue).ctx(|| "sync: continue")?;
            }
            Msg::InitPid(pid) => {
                // The intermediate exits right after telling us; reap it, then follow init.
                let _ = sys::waitid_pidfd(child.pidfd(), false);
                let pidfd = sys::pidfd_open(pid).ctx(|| format!("pidfd_open init {pid}"))?;
                std::mem::replace(&mut child, Child { pid, pidfd: Some(pidfd), ours: false }).disarm();
            }
            Msg::RunHooks => {
                let state = opts.state.for_hooks(crate::container::Status::Creating, child.pid);
                hooks::run(Stage::Prestart, spec.hooks(), &state)?;
                hooks::run(Stage::CreateRuntime, spec.hooks(), &state)?;
                chan.send(&Msg::Continue).ctx(|| "sync: continue")?;
            }
            Msg::PtyMaster => {
                let fd = fd.ok_or_else(|| Error::Init { id: id.clone(), msg: "pty message without an fd".into() })?;
                match &opts.console_socket {
                    Some(path) => crate::tty::send_to_console_socket(path, &fd)?,
                    None => pty = Some(fd),
                }
            }
            Msg::SeccompListener => {
                let fd = fd.ok_or_else(|| Error::Init { id: id.clone(), msg: "seccomp listener message without an fd".into() })?;
                let listener = opts.seccomp.and_then(|f| f.listener()).ok_or_else(|| Error::Init { id: id.clone(), msg: "protocol error: a notify fd without a listener".into() })?;
                let state = opts.state.for_hooks(crate::container::Status::Creating, child.pid);
                crate::seccomp::send_to_listener(listener, &fd, child.pid, &state)?;
            }
            // Limits last: device rules would have refused init's mknods, a pids limit its forks.
            Msg::Ready => {
                opts.cgroup.set(opts.resources)?;
                return Ok((child, pty));
            }
            Msg::Error(msg) => return Err(Error::Init { id: id.clone(), msg }),
            Msg::Continue => return Err(Error::Init { id: id.clone(), msg: "protocol error: unexpected Continue".into() }),
        }
    }
}

/// The lines of /proc/PID/uid_map (or gid_map) for `maps`.
pub fn id_map_text(maps: &[oci_spec::runtime::LinuxIdMapping]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect()
}

fn write_id_map(pid: i32, file: &str, maps: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    let text = id_map_text(maps);
    let field = if file == "uid_map" { "linux.uidMappings" } else { "linux.gidMappings" };
    std::fs::write(format!("/proc/{pid}/{file}"), text).ctx(|| format!("{field}: writing /proc/{pid}/{file}"))
}
