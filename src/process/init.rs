//! The container's init: everything between the fork and the user's program, in order. Each
//! step says why it stands where it does; moving one usually breaks the one after it.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Gid, Uid, fork, setresgid, setresuid};

use crate::cgroups::Entry;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Stage, Status};
use crate::namespaces::{self, Plan};
use crate::process::sync::{Channel, Msg};
use crate::process::{InitOptions, tail};
use crate::rootfs;

/// `entry`: how we get into the container's cgroup, if clone3 did not place us there already.
pub fn run(
    o: &InitOptions,
    plan: &Plan,
    chan: &Channel,
    fifo: OwnedFd,
    entry: Entry,
) -> Result<Infallible> {
    let spec = &o.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .expect("validated: process is present");
    let linux = spec.linux().as_ref();

    // 0. The cgroup, first of all, as runc's parent joins it before its child reads its
    //    config: before anything that forks (a child would be born outside, and counted
    //    against the caller's pids.max), before the namespaces init makes itself and the
    //    mounts, whose kernel memory (mount trees, /dev, tmpfs copy-ups, dentries) stays
    //    charged to the memory cgroup it was made in (a later move does not carry it along;
    //    what clone3 made is the caller's, as on every layout), and before the cgroup
    //    namespace, rooted wherever its creator stands (inside, /proc/self/cgroup would show
    //    the way from kiln's cgroup). It costs no wait: v2 is born in it (CLONE_INTO_CGROUP);
    //    on v1 and hybrid init moves itself, 0.05 ms a hierarchy (`cgroups::Tasks`), where the
    //    parent's write by pid kept it idle 7-16 ms. Only systemd's unit needs the parent.
    //    Then the affinity kiln was started with is dropped (`affinity`).
    crate::process::affinity::log();
    let joined_after_clone = match entry {
        Entry::Born(_dir) => false,
        Entry::Itself(_dir, tasks) => tasks.enter().map(|()| true)?,
        Entry::Parent => request(chan, Msg::JoinCgroup).map(|()| true)?,
    };
    if joined_after_clone && plan.single_clone() && plan.new.contains(CloneFlags::CLONE_NEWCGROUP) {
        namespaces::unshare_flags(CloneFlags::CLONE_NEWCGROUP)?;
    }
    crate::process::affinity::reset();

    // 1. Namespaces, before anything else, so that all that follows happens inside them. On the
    //    fast path clone3 already made them all; otherwise join the `path` ones first (a new user
    //    namespace would own us and we could no longer join the host's), then create the rest.
    if !plan.single_clone() {
        namespaces::join(plan.open_joins()?)?;
        if plan.new.contains(CloneFlags::CLONE_NEWUSER) {
            namespaces::unshare_flags(CloneFlags::CLONE_NEWUSER)?;
            request(chan, Msg::WriteIdMaps)?;
        }
        namespaces::unshare_flags(plan.to_unshare())?;
        if plan.new.contains(crate::namespaces::CLONE_NEWTIME) {
            request(chan, Msg::WriteTimeOffsets)?;
        }
    } else if plan.new.contains(CloneFlags::CLONE_NEWUSER) {
        request(chan, Msg::WriteIdMaps)?;
    }
    let in_userns = plan.has(CloneFlags::CLONE_NEWUSER);
    if in_userns {
        // Be the namespace's root for the setup below (needs 0 mapped, which runc requires too).
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .ctx(|| "setgid 0 in the user namespace (is container gid 0 mapped?)")?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .ctx(|| "setuid 0 in the user namespace (is container uid 0 mapped?)")?;
    }
    if !plan.after_root().is_empty() {
        namespaces::unshare_flags(plan.after_root())?;
    }

    // 2. A pid or time namespace entered by setns/unshare takes effect for children only: fork
    //    the real init into it; this intermediate reports its pid and leaves.
    if plan.needs_second_fork() {
        fork_behind_intermediate(chan, "fork into the pid namespace")?;
    }

    // 2b. The seccomp program: asked for now, its answer read after the mounts (4b). The parent
    //     compiles it, or loads it from the cache, meanwhile, so that neither the compiler's
    //     time nor its memory is init's. Asked only past step 2: from there on init alone
    //     writes on the channel.
    let wants_seccomp = linux.and_then(|l| l.seccomp().as_ref()).is_some();
    if wants_seccomp {
        chan.send(&Msg::Seccomp).ctx(|| "sync: Seccomp")?;
    }

    // 3. A session of its own: detaches from kiln's terminal, and lets a pty become the
    //    controlling terminal below.
    nix::unistd::setsid().ctx(|| "setsid")?;

    // A new network namespace has only `lo`, and down: bring it up, as runc does. Podman's
    // --network none containers and a pod's infra container (whose namespace the pod's
    // members join) rely on a working 127.0.0.1.
    if plan.new.contains(CloneFlags::CLONE_NEWNET) {
        crate::sys::set_link_up("lo")
            .ctx(|| "linux.namespaces: bringing up lo in the new network namespace")?;
    }

    // 4. The rootfs: every mount, /dev and cwd, while the host's paths (bind sources) are visible.
    //    The host's /proc is still mounted, so /proc/self names our host pid for the hooks.
    let host_pid = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or(0);
    let cgroup2 = o.cgroup.paths().remove("");
    rootfs::prepare(
        spec,
        &o.bundle.rootfs,
        &o.bundle.dir,
        in_userns,
        plan.has(CloneFlags::CLONE_NEWCGROUP),
        cgroup2.as_deref(),
        o.idmapped,
    )?;

    // 4b. The seccomp program asked for in 2b, before the next request (the parent answers in
    //     order); loaded in step 11 or 13, at its moment.
    let seccomp = if wants_seccomp {
        Some(receive_filter(chan)?)
    } else {
        None
    };

    // 5. Hooks that see the finished mounts but not yet the pivoted root: prestart and
    //    createRuntime run in the parent (runtime namespace), createContainer here.
    request(chan, Msg::RunHooks)?;
    hooks::run(
        Stage::CreateContainer,
        spec.hooks(),
        &o.state.json(Status::Creating, host_pid),
        Some(&o.bundle.rootfs),
    )?;

    // 6. Into the rootfs.
    rootfs::enter(spec, &o.bundle.rootfs, o.no_pivot)?;

    // 7. The terminal: needs the container's devpts, hence after pivot_root.
    if process.terminal().unwrap_or(false) {
        tail::send_pty_master(process, chan, true)?;
    }

    // 8. Kernel parameters, before /proc/sys becomes read-only in step 9.
    for (key, value) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        crate::procfs::write(&path, value)
            .ctx(|| format!("linux.sysctl.{key}: writing {value:?}"))?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx(|| format!("hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        crate::procfs::write("/proc/sys/kernel/domainname", d)
            .ctx(|| format!("domainname {d:?}"))?;
    }

    // 9. Read-only and masked paths, and a read-only root: last of the filesystem work, since
    //    they would block the writes above.
    rootfs::finalize(spec)?;

    // 10. A session keyring of the container's own, so it cannot read the host's keys.
    if !o.no_new_keyring {
        join_session_keyring(o.state.id)?;
    }

    // 11. The process steps init shares with `exec` (`tail`): limits, scheduling and
    //     personality, fds, cwd, program (a missing binary fails `create`, not a later
    //     `start`), no_new_privs and labels, all before the seccomp filter; then the filter and
    //     the identity (bounding set, user, capabilities) in the order its moment gives.
    //     After the filter, only what its position forces, here and in steps 12-13:
    //     - loaded before the identity (no no_new_privs, CAP_SYS_ADMIN not kept): prctl
    //       (bounding set, PR_SET_KEEPCAPS, ambient), setgroups, setresgid, setresuid, capget,
    //       capset (chdir and getcwd if only the user can enter the cwd, and the program's
    //       lookup if it starts from there), and all below;
    //     - loaded before Ready (a listener): sendmsg and close of the notify fd, sendmsg of
    //       Ready, openat, write and close of the exec fifo, and all below;
    //     - loaded last: the startContainer hooks, the fifo's last write, execve.
    let fifo_path =
        CString::new(format!("/proc/self/fd/{}", fifo.as_raw_fd())).expect("no NUL in a number");
    let steps = tail::Steps {
        process,
        personality: linux.and_then(|l| l.personality().as_ref()),
        memory_policy: linux.and_then(|l| l.memory_policy().as_ref()),
        seccomp: seccomp.as_ref(),
        extra_fds: o.extra_fds,
        listen_fds: o.listen_fds,
    };
    let mut tail = tail::set_up(&steps, chan)?;

    // 12. Ready. From here on the parent is gone; wait for `start` to open the fifo.
    chan.send(&Msg::Ready).ctx(|| "sync: ready")?;
    // What the fork holds and no longer needs goes back before the wait, which may be long
    // (`sys::open_for_writing`); unless the filter is on already: it may refuse madvise. Not
    // for `run`, whose `start` comes at once: the execve gives it all back a moment later.
    let filtered = seccomp.as_ref().is_some_and(|f| {
        f.moment(
            process.no_new_privileges().unwrap_or(false),
            process.capabilities().as_ref(),
        ) != crate::seccomp::Moment::Last
    });
    let mut gate = std::fs::File::from(
        crate::sys::open_for_writing(&fifo_path, !filtered && !o.starts_at_once)
            .ctx(|| "opening the exec fifo (is /proc mounted in the container?)")?,
    );
    std::io::Write::write_all(&mut gate, b"0").ctx(|| "writing the exec fifo")?;
    // `gate` stays open, close-on-exec: `start` sees EOF exactly when the program is exec'd
    // (or init died), and only then runs the poststart hooks.
    drop(fifo);

    // 13. The filter if it goes on last, then the startContainer hooks: after `start`, in the
    //     container, under the filter (as runc). The second byte tells `start` that all went
    //     well; the fifo closes at execve.
    tail.load_last_filter()?;
    hooks::run(
        Stage::StartContainer,
        spec.hooks(),
        &o.state.json(Status::Created, host_pid),
        None,
    )?;
    std::io::Write::write_all(&mut gate, b"1").ctx(|| "writing the exec fifo")?;
    tail.exec()
}

/// Forks the process that lives in the pid or time namespace just entered; the caller, now the
/// intermediate, hands it over to the parent and exits. The child returns once the parent has
/// taken it over: until then the intermediate may still be writing on the channel they share.
pub(super) fn fork_behind_intermediate(chan: &Channel, what: &str) -> Result<()> {
    // SAFETY: single-threaded, as after clone3.
    match unsafe { fork() }.ctx(|| what)? {
        ForkResult::Parent { child } => hand_over_and_exit(chan, child, None),
        ForkResult::Child => chan
            .wait_continue()
            .ctx(|| "sync: waiting for the parent to take over from the intermediate"),
    }
}

/// As `fork_behind_intermediate`, with the child born in the cgroup v2 directory `into`
/// (CLONE_INTO_CGROUP): true. Where the kernel refuses the birth (a cgroup at its pids limit, a
/// namespace that cannot see the cgroup, no permission from a user namespace), a plain fork
/// instead: false, and the child is to be moved in.
pub(super) fn fork_behind_intermediate_into(
    chan: &Channel,
    what: &str,
    into: BorrowedFd,
) -> Result<bool> {
    // SAFETY: single-threaded, as after clone3.
    match unsafe { crate::sys::clone3(0, Some(into)) } {
        Ok(crate::sys::Forked::Parent { pid, pidfd }) => {
            hand_over_and_exit(chan, nix::unistd::Pid::from_raw(pid), Some(pidfd))
        }
        Ok(crate::sys::Forked::Child) => chan
            .wait_continue()
            .ctx(|| "sync: waiting for the parent to take over from the intermediate")
            .map(|()| true),
        Err(_) => fork_behind_intermediate(chan, what).map(|()| false),
    }
}

/// The intermediate's last act: hands the parent its child, by pid and by a pidfd (clone3's, or
/// one opened while nobody else can reap the child: we are its parent and never wait), then
/// leaves.
fn hand_over_and_exit(chan: &Channel, child: nix::unistd::Pid, pidfd: Option<OwnedFd>) -> ! {
    match pidfd.map_or_else(|| crate::sys::pidfd_open(child.as_raw()), Ok) {
        Ok(pidfd) => {
            let _ = chan.send_with_fd(&Msg::InitPid(child.as_raw()), Some(pidfd.as_raw_fd()));
        }
        Err(e) => {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = chan.send(&Msg::Error(format!(
                "pidfd_open of the forked process {child}: {e}"
            )));
        }
    }
    // SAFETY: leave without running the parent's exit handlers.
    unsafe { libc::_exit(0) }
}

/// The parent's answer to `Msg::Seccomp`.
fn receive_filter(chan: &Channel) -> Result<crate::seccomp::Filter> {
    let what = "sync: waiting for the seccomp filter";
    match chan.recv().ctx(|| what)? {
        (Msg::SeccompFilter, Some(fd)) => crate::seccomp::Filter::from_fd(fd),
        (other, _) => Err(Error::refused(
            what,
            format!("protocol error: got {other:?}"),
        )),
    }
}

/// Sends a request and waits for the parent's Continue.
pub(super) fn request(chan: &Channel, msg: Msg) -> Result<()> {
    let what = format!("sync: {msg:?}");
    chan.send(&msg).ctx(|| what.clone())?;
    chan.wait_continue().ctx(|| what)
}

pub(super) fn join_session_keyring(id: &str) -> Result<()> {
    let name = CString::new(id).expect("validated ids have no NUL");
    if let Err(e) = crate::sys::join_session_keyring(&name) {
        // Kernels without keys, or where a user namespace may not have one: nothing to isolate.
        if !matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::EACCES) | Some(libc::EDQUOT)
        ) {
            return Err(Error::os(
                "joining a new session keyring (use --no-new-keyring to skip)",
                e,
            ));
        }
    }
    Ok(())
}
