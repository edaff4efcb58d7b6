//! `kiln exec`, the child's side: a new process in a running container. It enters what init
//! built rather than building anything, in this order:
//!
//! 0. `execCPUAffinity.initial`, where the setup runs (`affinity`);
//! 1. every namespace of init at once, by setns on init's pidfd (the kernel joins the user
//!    namespace first, so the rest are joined with its privileges);
//! 2. a second fork when a pid or time namespace was joined, which apply to children only;
//! 3. the container's cgroup, moved there by the parent past every fork, as runc does: a
//!    container at its pids limit refuses forks but never a move, so it can still be debugged
//!    (last, just before execve, when the container is paused: see `join_cgroup_last`), and
//!    once in it `execCPUAffinity.final`;
//! 4. then what init's steps 7 and 10 give a process (terminal, keyring), and init's own last
//!    steps (`tail`: limits, scheduling and personality, fds, cwd, program, no_new_privs,
//!    labels, identity and the seccomp filter at the same moment as init's).
//!
//! The parent's side is `spawn::spawn_exec`, on the same protocol as `create`.

use std::convert::Infallible;
use std::os::fd::BorrowedFd;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxMemoryPolicy, LinuxPersonality, Process};

use crate::error::{Context, Result};
use crate::namespaces::CLONE_NEWTIME;
use crate::process::init::{fork_behind_intermediate, join_session_keyring, request};
use crate::process::sync::{Channel, Msg};
use crate::process::{Peer, affinity, tail};
use crate::spec::cpulist::Affinity;

pub struct ExecOptions<'a> {
    pub peer: Peer<'a>,
    pub process: &'a Process,
    /// Init's pidfd: the namespaces to join are its own.
    pub init: BorrowedFd<'a>,
    /// The namespaces of init that are not already ours.
    pub namespaces: CloneFlags,
    /// The container's linux.personality, which applies to every process of it.
    pub personality: Option<&'a LinuxPersonality>,
    /// The container's linux.memoryPolicy, which also applies to every process of it.
    pub memory_policy: Option<&'a LinuxMemoryPolicy>,
    /// The process's execCPUAffinity.
    pub affinity: Affinity,
    /// fds 3.. that pass into the process (`--preserve-fds`).
    pub extra_fds: u32,
    /// The container is paused (`--ignore-paused`): its cgroup would freeze the process before
    /// it set itself up, so it joins last, right before execve, and runs once thawed.
    pub join_cgroup_last: bool,
}

impl ExecOptions<'_> {
    /// A joined pid or time namespace applies to children only: the process is forked behind
    /// an intermediate.
    pub fn forks_again(&self) -> bool {
        self.namespaces
            .intersects(CloneFlags::CLONE_NEWPID | CLONE_NEWTIME)
    }
}

pub fn run(o: &ExecOptions, chan: &Channel) -> Result<Infallible> {
    let process = o.process;
    affinity::before_cgroup(&o.affinity)?;
    if !o.namespaces.is_empty() {
        nix::sched::setns(o.init, o.namespaces).ctx(|| {
            format!(
                "joining the namespaces of the container's init ({:?})",
                o.namespaces
            )
        })?;
    }
    if o.forks_again() {
        fork_behind_intermediate(chan, "fork into the container's pid namespace")?;
    }
    if !o.join_cgroup_last {
        request(chan, Msg::JoinCgroup)?;
        affinity::in_cgroup(&o.affinity)?;
    }
    if process.terminal().unwrap_or(false) {
        nix::unistd::setsid().ctx(|| "setsid")?;
        tail::send_pty_master(process, chan, false)?;
    }
    join_session_keyring(o.peer.state.id)?;

    // The steps init ends with, in its order (see `tail` for what follows the filter).
    let steps = tail::Steps {
        process,
        personality: o.personality,
        memory_policy: o.memory_policy,
        seccomp: o.peer.seccomp,
        extra_fds: o.extra_fds,
        listen_fds: 0,
    };
    let mut tail = tail::set_up(&steps, chan)?;
    chan.send(&Msg::Ready).ctx(|| "sync: ready")?;
    if o.join_cgroup_last {
        // The parent moves us into the frozen cgroup and answers: we read it once thawed.
        chan.wait_continue()
            .ctx(|| "sync: joining the paused container's cgroup")?;
        affinity::in_cgroup(&o.affinity)?;
    }
    tail.load_last_filter()?;
    tail.exec()
}
