//! `kiln exec`, the child's side: a new process in a running container. It enters what init
//! built rather than building anything, in this order:
//!
//! 0. `execCPUAffinity.initial`, where the setup runs (`affinity`);
//! 1. every namespace of init at once, by setns on init's pidfd (the kernel joins the user
//!    namespace first, so the rest are joined with its privileges);
//! 2. a second fork when a pid or time namespace was joined, which apply to children only;
//! 3. the container's cgroup, past every fork: the process is born in it (v2: the second fork
//!    is a clone3 into it) or moves itself in (v1: "0" to each `tasks`), as init does, where
//!    the parent's move by pid would keep it waiting out an RCU grace period (7-16 ms on this
//!    project's host, `cgroups::Tasks`); the parent moves it where the layout leaves only
//!    that (systemd, no second fork), or where the birth was refused: a container at its pids
//!    limit refuses forks but never a move, so it can still be debugged, as with runc. Last,
//!    just before execve, when the container is paused (see `join_cgroup_last`); once in it,
//!    `execCPUAffinity.final`; then the cgroup namespace, kept for this moment where the
//!    process enters the cgroup itself (a namespace that does not see the cgroup the
//!    intermediate stands in may refuse the birth: nsdelegate);
//! 4. then what init's steps 7 and 10 give a process (terminal, keyring), and init's own last
//!    steps (`tail`: limits, scheduling and personality, fds, cwd, program, no_new_privs,
//!    labels, identity and the seccomp filter at the same moment as init's).
//!
//! The parent's side is `spawn::spawn_exec`, on the same protocol as `create`.

use std::convert::Infallible;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxMemoryPolicy, LinuxPersonality, Process};

use crate::cgroups::{Entry, Tasks};
use crate::error::{Context, Result};
use crate::namespaces::CLONE_NEWTIME;
use crate::process::init::{
    fork_behind_intermediate, fork_behind_intermediate_into, join_session_keyring, request,
};
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

/// What puts the process in its cgroup once it is past every fork.
enum Then {
    /// It was born there.
    Nothing,
    /// It writes "0" to each v1 hierarchy's `tasks` (after a birth in the unified one, hybrid).
    Itself(Tasks),
    /// It asks the parent (JoinCgroup), unless the container is paused (`join_cgroup_last`).
    Parent,
}

/// `entry`: how the process enters the cgroup, `Manager::entry`'s where it forks again and the
/// container is not paused, else `Entry::Parent`.
pub fn run(o: &ExecOptions, entry: Entry, chan: &Channel) -> Result<Infallible> {
    let process = o.process;
    affinity::before_cgroup(&o.affinity)?;
    let cgroupns_later = match entry {
        Entry::Parent => CloneFlags::empty(),
        _ => o.namespaces & CloneFlags::CLONE_NEWCGROUP,
    };
    join(o.init, o.namespaces - cgroupns_later)?;
    let what = "fork into the container's pid namespace";
    let born_or_moved = |born: bool, then: Then| if born { then } else { Then::Parent };
    // Each arm drops the directory it was given: the process keeps no fd of the host's.
    let then = match entry {
        _ if !o.forks_again() => Then::Parent,
        Entry::Born(dir) => born_or_moved(
            fork_behind_intermediate_into(chan, what, dir.as_fd())?,
            Then::Nothing,
        ),
        Entry::Itself(Some(dir), tasks) => born_or_moved(
            fork_behind_intermediate_into(chan, what, dir.as_fd())?,
            Then::Itself(tasks),
        ),
        Entry::Itself(None, tasks) => {
            fork_behind_intermediate(chan, what)?;
            Then::Itself(tasks)
        }
        Entry::Parent => {
            fork_behind_intermediate(chan, what)?;
            Then::Parent
        }
    };
    match then {
        Then::Nothing => {}
        Then::Itself(tasks) => tasks.enter()?,
        Then::Parent if o.join_cgroup_last => {}
        Then::Parent => request(chan, Msg::JoinCgroup)?,
    }
    join(o.init, cgroupns_later)?;
    if !o.join_cgroup_last {
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

/// Joins the namespaces `ns` of init (none: nothing to do).
fn join(init: BorrowedFd, ns: CloneFlags) -> Result<()> {
    if ns.is_empty() {
        return Ok(());
    }
    nix::sched::setns(init, ns)
        .ctx(|| format!("joining the namespaces of the container's init ({ns:?})"))
}
