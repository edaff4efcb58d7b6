//! The container's init: everything between the fork and the user's program, in order. Each
//! step says why it stands where it does; moving one usually breaks the one after it.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Gid, Uid, fork, setresgid, setresuid};
use oci_spec::runtime::Process;

use crate::capabilities;
use crate::container::Status;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Stage};
use crate::namespaces::{self, Plan};
use crate::process::sync::{Channel, Msg};
use crate::process::{InitOptions, lsm, rlimits, sched, user};
use crate::rootfs;
use crate::seccomp::{Filter, Moment};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `in_cgroup`: clone3 already placed us in the container's cgroup (CLONE_INTO_CGROUP).
pub fn run(o: &InitOptions, plan: &Plan, chan: &Channel, fifo: OwnedFd, in_cgroup: bool) -> Result<Infallible> {
    let spec = &o.bundle.spec;
    let process = spec.process().as_ref().expect("validated: process is present");
    let linux = spec.linux().as_ref();

    // 0. The cgroup, before anything that allocates memory or forks, so that all of it is
    //    charged to the container; and before the cgroup namespace, which is rooted wherever
    //    its creator stands.
    if !in_cgroup {
        request(chan, Msg::JoinCgroup)?;
        if plan.single_clone() && plan.new.contains(CloneFlags::CLONE_NEWCGROUP) {
            namespaces::unshare_flags(CloneFlags::CLONE_NEWCGROUP)?;
        }
    }

    // 1. Namespaces, before anything else, so that all that follows happens inside them. On the
    //    fast path clone3 already made them all; otherwise join the `path` ones first (a new user
    //    namespace would own us and we could no longer join the host's), then create the rest.
    if !plan.single_clone() {
        namespaces::join(plan.open_joins()?)?;
        if plan.new.contains(CloneFlags::CLONE_NEWUSER) {
            namespaces::unshare_flags(CloneFlags::CLONE_NEWUSER)?;
            request(chan, Msg::WriteIdMaps)?;
        }
        namespaces::unshare_flags(plan.new - CloneFlags::CLONE_NEWUSER - plan.after_root())?;
        if plan.new.contains(crate::namespaces::CLONE_NEWTIME) {
            request(chan, Msg::WriteTimeOffsets)?;
        }
    } else if plan.new.contains(CloneFlags::CLONE_NEWUSER) {
        request(chan, Msg::WriteIdMaps)?;
    }
    let in_userns = plan.has(CloneFlags::CLONE_NEWUSER);
    if in_userns {
        // Be the namespace's root for the setup below (needs 0 mapped, which runc requires too).
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).ctx(|| "setgid 0 in the user namespace (is container gid 0 mapped?)")?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).ctx(|| "setuid 0 in the user namespace (is container uid 0 mapped?)")?;
    }
    if !plan.after_root().is_empty() {
        namespaces::unshare_flags(plan.after_root())?;
    }

    // 2. A pid or time namespace entered by setns/unshare takes effect for children only: fork
    //    the real init into it; this intermediate reports its pid and leaves.
    if plan.needs_second_fork() {
        fork_behind_intermediate(chan, "fork into the pid namespace")?;
    }

    // 3. A session of its own: detaches from kiln's terminal, and lets a pty become the
    //    controlling terminal below.
    nix::unistd::setsid().ctx(|| "setsid")?;

    // A new network namespace has only `lo`, and down: bring it up, as runc does. Podman's
    // --network none containers and a pod's infra container (whose namespace the pod's
    // members join) rely on a working 127.0.0.1.
    if plan.new.contains(CloneFlags::CLONE_NEWNET) {
        crate::sys::set_link_up("lo").ctx(|| "linux.namespaces: bringing up lo in the new network namespace")?;
    }

    // 4. The rootfs: every mount, /dev and cwd, while the host's paths (bind sources) are visible.
    //    The host's /proc is still mounted, so /proc/self names our host pid for the hooks.
    let host_pid = std::fs::read_link("/proc/self").ok().and_then(|p| p.to_str()?.parse().ok()).unwrap_or(0);
    let cgroup2 = o.cgroup.paths().remove("");
    rootfs::prepare(spec, &o.bundle.rootfs, &o.bundle.dir, in_userns, plan.has(CloneFlags::CLONE_NEWCGROUP), cgroup2.as_deref(), o.idmapped)?;

    // 5. Hooks that see the finished mounts but not yet the pivoted root: prestart and
    //    createRuntime run in the parent (runtime namespace), createContainer here.
    request(chan, Msg::RunHooks)?;
    hooks::run(Stage::CreateContainer, spec.hooks(), &o.state.for_hooks(Status::Creating, host_pid), Some(&o.bundle.rootfs))?;

    // 6. Into the rootfs.
    rootfs::enter(spec, &o.bundle.rootfs, o.no_pivot)?;

    // 7. The terminal: needs the container's devpts, hence after pivot_root.
    if process.terminal().unwrap_or(false) {
        let master = crate::tty::setup_in_container(process.console_size().as_ref(), process.user().uid(), true)?;
        chan.send_with_fd(&Msg::PtyMaster, Some(master.as_raw_fd())).ctx(|| "sending the pty master")?;
    }

    // 8. Kernel parameters, before /proc/sys becomes read-only in step 9.
    for (key, value) in linux.and_then(|l| l.sysctl().as_ref()).into_iter().flatten() {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        crate::procfs::write(&path, value).ctx(|| format!("linux.sysctl.{key}: writing {value:?}"))?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx(|| format!("hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        crate::procfs::write("/proc/sys/kernel/domainname", d).ctx(|| format!("domainname {d:?}"))?;
    }

    // 9. Read-only and masked paths, and a read-only root: last of the filesystem work, since
    //    they would block the writes above.
    rootfs::finalize(spec)?;

    // 10. A session keyring of the container's own, so it cannot read the host's keys.
    if !o.no_new_keyring {
        join_session_keyring(&o.state.id)?;
    }

    // 11. Limits and scheduling, while init still has the privileges to raise them.
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
    sched::apply(process, linux.and_then(|l| l.personality().as_ref()))?;

    // 11b. seccomp, if loading it needs the privileges that step 12 drops (see `Moment`).
    let nnp = process.no_new_privileges().unwrap_or(false);
    let seccomp_moment = o.seccomp.map(|f| f.moment(nnp, process.capabilities().as_ref()));
    load_seccomp(o.seccomp, seccomp_moment, Moment::BeforeIdentity, chan)?;

    // 12. Identity: user, capabilities, cwd, umask.
    identity(process, o.extra_fds)?;

    // 13. The program and its environment, resolved now so that a missing binary fails
    //     `create` rather than a later `start`.
    let (program, env) = program(process, o.listen_fds)?;
    let args = process.args().as_deref().unwrap_or_default();

    // 14. no_new_privs: before the exec fifo, as nothing after this needs to gain privileges.
    if nnp {
        no_new_privs()?;
    }

    // 15. Only stdio and the preserved fds may reach the program.
    crate::sys::cloexec_from(3 + o.extra_fds).ctx(|| "marking inherited fds close-on-exec")?;

    // 15b. seccomp with a listener: while the parent is still there to pass its fd on.
    load_seccomp(o.seccomp, seccomp_moment, Moment::BeforeReady, chan)?;

    // 16. Ready. From here on the parent is gone; wait for `start` to open the fifo.
    chan.send(&Msg::Ready).ctx(|| "sync: ready")?;
    let mut gate = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", fifo.as_raw_fd()))
        .ctx(|| "opening the exec fifo (is /proc mounted in the container?)")?;
    std::io::Write::write_all(&mut gate, b"0").ctx(|| "writing the exec fifo")?;
    // `gate` stays open, close-on-exec: `start` sees EOF exactly when the program is exec'd
    // (or init died), and only then runs the poststart hooks.
    drop(fifo);

    // 17. startContainer hooks: after `start`, in the container, before the program.
    hooks::run(Stage::StartContainer, spec.hooks(), &o.state.for_hooks(Status::Created, host_pid), None)?;

    // 18. LSM labels apply at execve: nothing may run between them and it. Then seccomp, as
    //     late as it can be, so that none of kiln's own syscalls are filtered. The second byte
    //     tells `start` that all went well; the fifo closes at execve.
    lsm::set_exec_labels(process.selinux_label().as_deref(), process.apparmor_profile().as_deref())?;
    load_seccomp(o.seccomp, seccomp_moment, Moment::BeforeExec, chan)?;
    std::io::Write::write_all(&mut gate, b"1").ctx(|| "writing the exec fifo")?;
    exec(&program, args, &env)
}

/// Forks the process that lives in the pid or time namespace just entered; the caller, now the
/// intermediate, hands it over to the parent and exits. The child returns once the parent has
/// taken it over: until then the intermediate may still be writing on the channel they share.
pub(super) fn fork_behind_intermediate(chan: &Channel, what: &str) -> Result<()> {
    // SAFETY: single-threaded, as after clone3.
    match unsafe { fork() }.ctx(|| what)? {
        ForkResult::Parent { child } => hand_over_and_exit(chan, child),
        ForkResult::Child => chan.wait_continue().ctx(|| "sync: waiting for the parent to take over from the intermediate"),
    }
}

/// The intermediate's last act: hands the parent its child, by pid and by a pidfd opened while
/// nobody else can reap the child (we are its parent and never wait), then leaves.
fn hand_over_and_exit(chan: &Channel, child: nix::unistd::Pid) -> ! {
    match crate::sys::pidfd_open(child.as_raw()) {
        Ok(pidfd) => {
            let _ = chan.send_with_fd(&Msg::InitPid(child.as_raw()), Some(pidfd.as_raw_fd()));
        }
        Err(e) => {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = chan.send(&Msg::Error(format!("pidfd_open of the forked process {child}: {e}")));
        }
    }
    // SAFETY: leave without running the parent's exit handlers.
    unsafe { libc::_exit(0) }
}

/// Sends a request and waits for the parent's Continue.
pub(super) fn request(chan: &Channel, msg: Msg) -> Result<()> {
    let what = format!("sync: {msg:?}");
    chan.send(&msg).ctx(|| what.clone())?;
    chan.wait_continue().ctx(|| what)
}

/// The process's identity, shared with `exec`: bounding set (needs CAP_SETPCAP), then the user,
/// then the other capability sets. cwd is tried before the switch (a directory only root can
/// enter) and after it (one only the user can enter), as runc does. No host directory may be
/// open by then, and the cwd must be inside the root: a cwd of /proc/self/fd/N would otherwise
/// escape (CVE-2024-21626).
pub(super) fn identity(process: &Process, extra_fds: u32) -> Result<()> {
    crate::procfs::close_directories_from(3 + extra_fds as i32).ctx(|| "closing the host's directory fds")?;
    let cwd_early = nix::unistd::chdir(process.cwd());
    capabilities::apply_bounding(process.capabilities().as_ref())?;
    user::switch(process.user())?;
    capabilities::apply(process.capabilities().as_ref())?;
    if cwd_early.is_err() {
        nix::unistd::chdir(process.cwd()).ctx(|| format!("process.cwd: chdir {}", process.cwd().display()))?;
    }
    if !nix::unistd::getcwd().is_ok_and(|c| c.is_absolute()) {
        return Err(Error::os("process.cwd", std::io::Error::other(format!("{} is outside the container's root", process.cwd().display()))));
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(process.user().umask().unwrap_or(0o022)));
    Ok(())
}

/// args[0] resolved in the container, and the environment the program gets.
pub(super) fn program(process: &Process, listen_fds: u32) -> Result<(PathBuf, Vec<String>)> {
    let env = environment(process.env().as_deref().unwrap_or_default(), process.user().uid(), listen_fds);
    let arg0 = process.args().as_deref().and_then(|a| a.first()).ok_or_else(|| Error::os("process.args", std::io::Error::other("empty: there is no program to run")))?;
    Ok((find_program(arg0, &env)?, env))
}

pub(super) fn no_new_privs() -> Result<()> {
    prctl::set_no_new_privileges(true).map_err(|e| Error::os("process.noNewPrivileges", std::io::Error::from_raw_os_error(e)))
}

/// Loads the seccomp filter if `now` is its moment. A notify fd goes to the parent and is closed
/// here: the container's process must not hold its own listener.
pub(super) fn load_seccomp(filter: Option<&Filter>, moment: Option<Moment>, now: Moment, chan: &Channel) -> Result<()> {
    let Some(filter) = filter.filter(|_| moment == Some(now)) else { return Ok(()) };
    if let Some(fd) = filter.load()? {
        chan.send_with_fd(&Msg::SeccompListener, Some(fd.as_raw_fd())).ctx(|| "sync: sending the seccomp notify fd")?;
    }
    Ok(())
}

pub(super) fn join_session_keyring(id: &str) -> Result<()> {
    let name = CString::new(id).expect("validated ids have no NUL");
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING, name) reads one NUL-terminated string.
    if unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) } < 0 {
        let e = std::io::Error::last_os_error();
        // Kernels without keys, or where a user namespace may not have one: nothing to isolate.
        if !matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EACCES) | Some(libc::EDQUOT)) {
            return Err(Error::os("joining a new session keyring (use --no-new-keyring to skip)", e));
        }
    }
    Ok(())
}

/// process.env, plus HOME from the user's passwd entry when unset, plus the socket-activation
/// variables for the fds passed in.
fn environment(env: &[String], uid: u32, listen_fds: u32) -> Vec<String> {
    let mut env = env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user::home(uid)));
    }
    if listen_fds > 0 {
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={listen_fds}"));
        env.push("LISTEN_PID=1".to_owned());
    }
    env
}

/// args[0] as execvp would find it, using the container's PATH.
fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let executable = |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && !p.is_dir();
    if arg0.contains('/') {
        return match nix::unistd::access(Path::new(arg0), nix::unistd::AccessFlags::X_OK) {
            Ok(()) => Ok(PathBuf::from(arg0)),
            Err(e) => Err(Error::os(format!("process.args[0]: {arg0}"), std::io::Error::from(e))),
        };
    }
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(arg0))
        .find(|p| executable(p))
        // runc's words: Podman and containerd turn "executable file not found" into exit 127.
        .ok_or_else(|| Error::os(format!("process.args[0]: exec: {arg0:?}: executable file not found in $PATH ({path})"), std::io::Error::from_raw_os_error(libc::ENOENT)))
}

pub(super) fn exec(program: &Path, args: &[String], env: &[String]) -> Result<Infallible> {
    let cstr = |s: &str| CString::new(s).map_err(|_| Error::os(format!("{s:?}"), std::io::Error::other("contains a NUL byte")));
    let prog = CString::new(program.as_os_str().as_bytes()).map_err(|_| Error::os("process.args[0]", std::io::Error::other("contains a NUL byte")))?;
    let argv = args.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let envp = env.iter().map(|e| cstr(e)).collect::<Result<Vec<_>>>()?;
    let e = nix::unistd::execve(&prog, &argv, &envp).unwrap_err();
    Err(Error::os(format!("exec {}", program.display()), std::io::Error::from(e)))
}
