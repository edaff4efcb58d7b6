//! Raw system calls that neither std nor nix wrap: every `libc::syscall` of kiln is here, each
//! behind a safe function where its arguments allow one (clone3 and bpf stay `unsafe fn`s: what
//! makes them sound is the caller's promise). `unsafe` elsewhere calls no `libc::syscall`: it is
//! forks of a single thread (`process::spawn`, `process::init`, `rootfs::idmapped`, criu's in
//! `container::checkpoint`), fds taken over from a call that just returned them, libc's
//! wrappers where nix's do not fit (the terminal's TIOCSCTTY, `dup2` in criu's `pre_exec`),
//! signal dispositions (SIGPIPE's at start, `start_as_std_would`), `_exit` in a child, and the
//! eBPF tests' own forks; each block says why it is sound. The walk over the loaded objects
//! that gives a waiting init's memory back (`open_for_writing`: dl_iterate_phdr, madvise) is here
//! too.
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Not in every libc crate build (it needs a 64-bit flags word, which only clone3 has).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The result of `clone3` as seen by the caller.
pub enum Forked {
    Parent { pid: i32, pidfd: OwnedFd },
    Child,
}

/// `clone3` with `flags | CLONE_PIDFD` and SIGCHLD as the exit signal: a fork that creates
/// namespaces in the same step and hands the parent a pidfd, so no later wait can race with pid
/// reuse. With `cgroup` (a cgroup v2 directory), the child is born in that cgroup
/// (CLONE_INTO_CGROUP): it never runs, not even for an instant, outside it.
///
/// # Safety
/// The caller must be single-threaded: the child continues with a copy of this address space and
/// only the calling thread, exactly as after `fork(2)`.
pub unsafe fn clone3(flags: u64, cgroup: Option<BorrowedFd>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    // SAFETY: a plain-data kernel struct, for which all zeroes is a valid value.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags | libc::CLONE_PIDFD as u64;
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    args.pidfd = &mut pidfd as *mut RawFd as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    // SAFETY: `args` is a fully initialised clone_args that outlives the call; the stack is not
    // set, so the child runs on a copy of ours, like fork.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            size_of::<libc::clone_args>(),
        )
    })?;
    if ret == 0 {
        Ok(Forked::Child)
    } else {
        Ok(Forked::Parent {
            pid: ret as i32,
            // SAFETY: CLONE_PIDFD made the kernel store a new fd that nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        })
    }
}

/// Sets IFF_UP on the interface `name` of the current network namespace (SIOCSIFFLAGS through
/// an AF_INET socket, as `ip link set NAME up` does without netlink).
pub fn set_link_up(name: &str) -> io::Result<()> {
    // SAFETY: plain socket(2); on success it returns a new fd we own.
    let fd = check(
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }
            as libc::c_long,
    )?;
    // SAFETY: the syscall just returned this fd: it is new and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // SAFETY: ifreq is plain data, for which all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write only `req`, a whole ifreq.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } as libc::c_long)?;
    // SAFETY: SIOCGIFFLAGS filled ifru_flags, the union member read and written here.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads one ifreq through a valid pointer.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } as libc::c_long)?;
    Ok(())
}

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; on success it returns a new fd we own.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the syscall just returned this fd: it is new and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: BorrowedFd, sig: i32) -> io::Result<()> {
    // SAFETY: a null siginfo is allowed and means "as kill(2) would send it".
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<u8>(),
            0,
        )
    })?;
    Ok(())
}

/// How a process ended, as waitid reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell convention that runc follows: 128+n for death by signal n.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Reaps the child behind `pidfd`. With `nohang`, returns None while it still runs.
pub fn waitid_pidfd(pidfd: BorrowedFd, nohang: bool) -> io::Result<Option<Exit>> {
    // SAFETY: siginfo_t is plain data; the kernel fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: `info` is a valid siginfo_t for the kernel to write.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                flags,
            )
        };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    // SAFETY: waitid filled `info` for a child that changed state (or left si_pid 0 with WNOHANG).
    let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(if code == libc::CLD_EXITED {
        Exit::Code(status)
    } else {
        Exit::Signal(status)
    }))
}

/// `openat2` confined to `root` (RESOLVE_IN_ROOT): symlinks and `..` are resolved as if `root`
/// were `/`, so no path in a container config can reach outside its rootfs.
pub fn openat2_in_root(
    root: BorrowedFd,
    path: &Path,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let how = OpenHow::new()
        .flags(OFlag::from_bits_retain(flags | libc::O_CLOEXEC))
        .mode(nix::sys::stat::Mode::from_bits_retain(
            if flags & libc::O_CREAT != 0 { mode } else { 0 },
        ))
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    loop {
        match nix::fcntl::openat2(root.as_raw_fd(), path, how) {
            // SAFETY: openat2 just returned this fd: it is new and nothing else owns it.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What std's runtime would do before `main`, which kiln's binary starts without
/// (`#![no_main]`, src/main.rs): run first, before anything opens a file.
/// - A stdio fd the caller left closed is opened on /dev/null, as std does: else the first
///   file kiln opens would be fd 1, and a message printed would land in it (a state file).
///   Not close-on-exec, so a container's process started with a closed stdio gets /dev/null.
/// - SIGPIPE is ignored, as std does: a reader that went away (a client's log or console
///   pipe) is an EPIPE to report, not the end of kiln half-way through a `create`. Children
///   std spawns (hooks, criu) get the default back from std; a container's process from init's
///   reset of every disposition.
pub fn start_as_std_would() {
    for fd in 0..3 {
        if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD) == Err(nix::errno::Errno::EBADF) {
            // open(2) returns the lowest free fd: this one. Without /dev/null nothing can keep
            // the fd from a file kiln opens later: std aborts then, and so does kiln.
            let opened = nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDWR,
                nix::sys::stat::Mode::empty(),
            );
            if opened != Ok(fd) {
                std::process::abort();
            }
        }
    }
    // SAFETY: SIG_IGN installs no handler, so nothing runs asynchronously; kiln has no other
    // thread that could be changing dispositions meanwhile.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigIgn,
        )
    };
}

/// Ends kiln as a write to a pipe without readers ends a process that does not ignore SIGPIPE
/// (runc, on its stdout): killed by the signal, which its caller's wait sees.
pub fn die_of_sigpipe() -> ! {
    use nix::sys::signal::{SigHandler, Signal, raise, signal};
    // SAFETY: SIG_DFL installs no handler, so nothing runs asynchronously.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    let _ = raise(Signal::SIGPIPE);
    // Only where the caller blocked SIGPIPE: the shell's number for that death.
    std::process::exit(128 + libc::SIGPIPE)
}

/// The fds from 3 up that the caller left open, as `note_inherited_fds` listed them when kiln
/// started (or why it could not).
static INHERITED_FDS: OnceLock<Result<Vec<RawFd>, String>> = OnceLock::new();

/// Lists the fds from 3 up that this process inherited: run first thing in `main`, while every
/// open fd is the caller's. An fd inherited through execve has no close-on-exec flag, so
/// nothing stops it from reaching the container's init, which is a fork, not an exec: the
/// child closes them (`close_inherited_from`).
pub fn note_inherited_fds() {
    let listed = crate::procfs::open_fds()
        .map(|fds| fds.into_iter().filter(|&fd| fd >= 3).collect())
        .map_err(|e| format!("listing /proc/self/fd when kiln started: {e}"));
    let _ = INHERITED_FDS.set(listed);
}

/// Closes the inherited fds from `first` up (those below it pass on: `--preserve-fds`,
/// LISTEN_FDS). kiln never closes an inherited fd itself, so each number is still the caller's.
pub fn close_inherited_from(first: RawFd) -> io::Result<()> {
    let fds = INHERITED_FDS
        .get()
        .ok_or_else(|| io::Error::other("the inherited fds were never listed"))?
        .as_ref()
        .map_err(|e| io::Error::other(e.clone()))?;
    for &fd in fds.iter().filter(|&&fd| fd >= first) {
        // The fd is released even when close reports an error: there is nothing to retry.
        let _ = nix::unistd::close(fd);
    }
    Ok(())
}

/// Makes `cmd` run with none of the inherited fds (stdio apart): a hook or helper kiln runs on
/// the host gets only what kiln gives it, as runc's do.
pub fn without_inherited_fds(cmd: &mut std::process::Command) -> &mut std::process::Command {
    // SAFETY: the closure runs between fork and exec in a copy of this single-threaded
    // process; it reads a list set at startup and calls close(2), allocating nothing but an
    // error that only a kiln which never listed its fds could make.
    unsafe { std::os::unix::process::CommandExt::pre_exec(cmd, || close_inherited_from(3)) }
}

/// Marks every fd from `first` up as close-on-exec, so that only stdio and the preserved fds
/// reach the container's process.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on fds; it closes nothing.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })?;
    Ok(())
}

/// `mount_setattr(2)` on the tree at `fd`: how recursive read-only and friends (`rro`,
/// `rnosuid`, ...) are applied to a whole bind-mounted tree at once.
pub fn mount_setattr(fd: BorrowedFd, recursive: bool, set: u64, clear: u64) -> io::Result<()> {
    // SAFETY: a plain-data kernel struct, for which all zeroes is a valid value.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.attr_set = set;
    attr.attr_clr = clear;
    setattr(fd, recursive, &mut attr)
}

/// Makes the detached mount `fd` show its files' owners through the user namespace `userns`
/// (an idmapped mount). Only a mount no process has seen yet may become one.
pub fn mount_setattr_idmap(fd: BorrowedFd, recursive: bool, userns: BorrowedFd) -> io::Result<()> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    // SAFETY: a plain-data kernel struct, for which all zeroes is a valid value.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = userns.as_raw_fd() as u64;
    setattr(fd, recursive, &mut attr)
}

fn setattr(fd: BorrowedFd, recursive: bool, attr: &mut libc::mount_attr) -> io::Result<()> {
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a valid mount_attr for the duration of the call; "" with AT_EMPTY_PATH
    // names `fd` itself.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *mut libc::mount_attr,
            size_of::<libc::mount_attr>(),
        )
    })?;
    Ok(())
}

/// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the mount at `path` (with the mounts below
/// it when `recursive`), which can be changed before anyone sees it and then attached with
/// `move_mount`.
pub fn open_tree_clone(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    open_tree(libc::AT_FDCWD, path, recursive)
}

/// The same for `path` below `dir`, which may be a detached mount itself (from Linux 6.15).
pub fn open_tree_clone_at(dir: BorrowedFd, path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    open_tree(dir.as_raw_fd(), path, recursive)
}

fn open_tree(dir: RawFd, path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let c = cstring(path)?;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | if recursive {
            libc::AT_RECURSIVE as libc::c_uint
        } else {
            0
        };
    // SAFETY: `c` is a valid C string for the call; the result is a new fd we own.
    let fd = check(unsafe { libc::syscall(libc::SYS_open_tree, dir, c.as_ptr(), flags) })?;
    // SAFETY: the syscall just returned this fd: it is new and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The id of the mount `path` lies on (mountinfo's first field), symlinks followed.
pub fn mount_id(path: &Path) -> io::Result<u64> {
    let c = cstring(path)?;
    // SAFETY: a plain-data kernel struct, for which all zeroes is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `stx` a statx buffer, both for the whole call.
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_MNT_ID, &mut stx) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(stx.stx_mnt_id)
}

/// Sets the propagation (`MS_SLAVE`, `MS_PRIVATE`, ...) of the detached tree at `fd`, before
/// anyone sees it.
pub fn mount_setattr_propagation(
    fd: BorrowedFd,
    recursive: bool,
    propagation: u64,
) -> io::Result<()> {
    // SAFETY: a plain-data kernel struct, for which all zeroes is a valid value.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.propagation = propagation;
    setattr(fd, recursive, &mut attr)
}

/// A new, unconfigured instance of filesystem `fstype` (fsopen(2)), private to its fd: set its
/// options with `fsconfig_set`, then `fsconfig_create` and `fsmount` turn it into a detached
/// mount that no path names.
pub fn fsopen(fstype: &str) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    let c = CString::new(fstype).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid C string for the call; the result is a new fd we own.
    let fd = check(unsafe { libc::syscall(libc::SYS_fsopen, c.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: the syscall just returned this fd: it is new and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// One filesystem option: `key=value`, or the flag `key` when `value` is None.
pub fn fsconfig_set(fs: BorrowedFd, key: &str, value: Option<&str>) -> io::Result<()> {
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    let invalid = |_| io::Error::from_raw_os_error(libc::EINVAL);
    let k = CString::new(key).map_err(invalid)?;
    let v = value.map(CString::new).transpose().map_err(invalid)?;
    let (cmd, v) = match &v {
        Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
        None => (FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: `k` and `v` (or NULL for a flag) are valid C strings for the call.
    check(unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, k.as_ptr(), v, 0) })?;
    Ok(())
}

/// Creates the superblock of a configured `fsopen` context.
pub fn fsconfig_create(fs: BorrowedFd) -> io::Result<()> {
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    // SAFETY: CMD_CREATE takes no key or value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })?;
    Ok(())
}

/// The created filesystem as a detached mount with `MOUNT_ATTR_*` flags `attrs`: an fd of its
/// root directory, to fill and then attach with `move_mount`.
pub fn fsmount(fs: BorrowedFd, attrs: u64) -> io::Result<OwnedFd> {
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: plain integer arguments; the result is a new fd we own.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    })?;
    // SAFETY: the syscall just returned this fd: it is new and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches the detached mount `from` onto the directory or file open at `to`.
pub fn move_mount(from: BorrowedFd, to: BorrowedFd) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: both paths are "" (the fds themselves, by the EMPTY_PATH flags).
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, program): installs a BPF filter on this thread.
/// `program` is an array of `struct sock_filter` (8 bytes each). With
/// SECCOMP_FILTER_FLAG_NEW_LISTENER the kernel returns the notify fd.
pub fn seccomp_set_filter(flags: u32, program: &[u8]) -> io::Result<Option<OwnedFd>> {
    const SECCOMP_SET_MODE_FILTER: libc::c_long = 1;
    const NEW_LISTENER: u32 = 1 << 3;
    let len = u16::try_from(program.len() / size_of::<libc::sock_filter>())
        .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `len` complete instructions inside `program`, which outlives the
    // call; the kernel copies the program and checks it.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    })?;
    // SAFETY: with NEW_LISTENER the return value is a new fd that nothing else owns.
    Ok((flags & NEW_LISTENER != 0).then(|| unsafe { OwnedFd::from_raw_fd(ret as RawFd) }))
}

/// Whether this kernel knows a seccomp filter flag: with no program the call fails with EFAULT
/// once the flags passed its check, and with EINVAL if they did not.
pub fn seccomp_flag_known(flag: u32) -> bool {
    // SAFETY: a null program is never read: the kernel checks the flags first.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1 as libc::c_long,
            flag,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// ioprio_set(IOPRIO_WHO_PROCESS, 0 = this process, prio): `prio` is the class in bits 13 and
/// up, the level below.
pub fn ioprio_set_self(prio: i64) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_set takes integers only.
    check(unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) }).map(drop)
}

/// The kernel's `struct sched_attr` (sched_setattr(2)); `size` must be its size.
#[repr(C)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// sched_setattr(0 = this thread, attr, 0).
pub fn sched_setattr_self(attr: &SchedAttr) -> io::Result<()> {
    // SAFETY: `attr` is a live sched_attr; the kernel reads as many bytes as its size field
    // says, which the caller sets to the struct's size.
    check(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) })
        .map(drop)
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a new session keyring named `name` for this
/// process (or the existing one of that name).
pub fn join_session_keyring(name: &std::ffi::CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING, name) reads one NUL-terminated string, which `name`
    // is for the duration of the call.
    check(unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) })
        .map(drop)
}

/// bpf(2): `cmd` with `attr` as its `union bpf_attr`, `size_of::<T>()` bytes of it.
///
/// # Safety
///
/// `T` must be a `repr(C)` plain-data layout of `union bpf_attr` for `cmd`, fully initialised,
/// and every pointer in it that `cmd` reads or writes through must be valid for the lengths
/// given with it, for the duration of the call.
pub unsafe fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    let size = libc::c_uint::try_from(size_of::<T>())
        .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    // SAFETY: `attr` is live and `size` bytes long; the kernel reads and writes it only within
    // that size, and what it points to is the caller's promise.
    check(unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size) })
}

/// Waits (bounded) until the process of `pidfd`, pid `pid`, has finished (`procfs::Stat::finished`): its pidfd
/// turns readable only once it is a zombie, and the kernel tells no one when a process starts
/// its exit, so /proc/PID/stat is read between polls, backing off. Until the pidfd is readable
/// the process is not reaped, and `pid` is still its own.
pub fn wait_exit(pidfd: BorrowedFd, pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut slice = Duration::from_millis(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if wait_readable(pidfd, Some(slice.min(left)))
            || crate::procfs::stat(pid).is_ok_and(|s| s.finished())
        {
            return true;
        }
        if left.is_zero() {
            return false;
        }
        slice = (slice * 2).min(Duration::from_millis(50));
    }
}

/// Waits until `fd` is readable (a pidfd: the process exited); false on timeout.
pub fn wait_readable(fd: BorrowedFd, timeout: Option<Duration>) -> bool {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = match deadline {
            None => nix::poll::PollTimeout::NONE,
            Some(d) => {
                let ms = d.saturating_duration_since(Instant::now()).as_millis();
                nix::poll::PollTimeout::try_from(ms.min(i32::MAX as u128) as i32)
                    .unwrap_or(nix::poll::PollTimeout::MAX)
            }
        };
        let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, left) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// sched_setaffinity(2) of thread `tid` (0: the caller) to the CPUs of `mask`, id `n` at bit
/// `n % 64` of word `n / 64`. The kernel ignores bits past its CPUs and, for a task in a
/// cpuset, keeps only the cpuset's: a mask of all ones means "every CPU allowed here".
pub fn sched_setaffinity(tid: i32, mask: &[u64]) -> io::Result<()> {
    // SAFETY: the kernel reads `size_of_val(mask)` bytes from `mask`, which holds them.
    check(unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            tid,
            std::mem::size_of_val(mask),
            mask.as_ptr(),
        )
    })
    .map(drop)
}

/// The caller's CPU affinity, the first 64 CPUs of it.
pub fn sched_getaffinity_low() -> io::Result<u64> {
    // The kernel refuses a buffer shorter than its cpumask (up to 8192 CPUs).
    let mut mask = [0u64; 128];
    // SAFETY: the kernel writes at most `size_of_val(&mask)` bytes into `mask`.
    check(unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            0,
            std::mem::size_of_val(&mask),
            mask.as_mut_ptr(),
        )
    })?;
    Ok(mask[0])
}

/// set_mempolicy(2): `mode` (with its flags) over the nodes of `mask`, laid out as
/// [`sched_setaffinity`]'s.
pub fn set_mempolicy(mode: i32, mask: &[u64]) -> io::Result<()> {
    // The kernel reads `maxnode - 1` bits (a historical off-by-one that glibc's numa(3) and
    // runc's wrapper both add back).
    let maxnode = mask.len() * 64 + 1;
    let nodes = if mask.is_empty() {
        std::ptr::null()
    } else {
        mask.as_ptr()
    };
    // SAFETY: the kernel reads `maxnode - 1` bits, all within `mask`, or nothing from NULL.
    check(unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, nodes, maxnode) }).map(drop)
}

/// Opens `path`, a FIFO whose open for writing blocks until its reader comes (the exec fifo,
/// until `start`). With `release`, first gives back what a created container would hold for as
/// long as it waits without needing it: the free memory of the heap it inherited (malloc_trim),
/// and its page-table entries for the read-only segments (code, constants) of every object
/// loaded from a file (kiln, libc, ...), most of which init faulted in during its setup. Those
/// pages stay in the page cache, shared: what runs after the wait faults them back in.
///
/// The open follows the release at once, from this one function: the kernel maps a whole
/// page-cache window (64 KiB) around each fault, so every page of kiln touched between the
/// release and the wait would bring its neighbours back (a release made in the caller, a few
/// calls earlier, measured 450 KiB of kiln's code mapped again before the wait; this, 64).
///
/// Only whole pages of segments the object does not write: MADV_DONTNEED there drops nothing
/// but the mapping, since the pages are the file's own. Left alone: an object with text
/// relocations (the dynamic linker wrote into its code: private copies) and the vdso (named by
/// its soname, not by a path). A debugger's breakpoint in the code would be dropped too.
#[inline(never)]
pub fn open_for_writing(path: &CStr, release: bool) -> std::io::Result<OwnedFd> {
    if release {
        let mut segments = Segments {
            page: nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .unwrap_or(4096) as usize,
            ranges: [(0, 0); MAX_SEGMENTS],
            len: 0,
        };
        // SAFETY: malloc_trim only returns free chunks to the kernel.
        unsafe { libc::malloc_trim(0) };
        // SAFETY: read_only_segments reads only what dl_iterate_phdr hands it, and writes
        // only into the `Segments` passed as its data.
        unsafe {
            libc::dl_iterate_phdr(
                Some(read_only_segments),
                (&raw mut segments).cast::<libc::c_void>(),
            )
        };
        for &(start, len) in &segments.ranges[..segments.len] {
            // SAFETY: whole pages of a segment nothing writes: the kernel maps them from the
            // file again when touched; nothing of ours is lost.
            unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        }
    }
    loop {
        // SAFETY: `path` is NUL-terminated.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        match check(fd.into()) {
            // SAFETY: a new fd, owned by nobody else.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            // The wait may be long: a signal that interrupts it is not a failure.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Read-only segments are two per object (constants, code); more than this many objects
/// (kiln, libseccomp, libc, ld.so, the vdso) and the rest keep their pages mapped.
const MAX_SEGMENTS: usize = 16;

/// What `read_only_segments` collects: page-aligned (start, length) ranges.
struct Segments {
    page: usize,
    ranges: [(usize, usize); MAX_SEGMENTS],
    len: usize,
}

/// A dl_iterate_phdr callback: adds the whole pages of `info`'s read-only loaded segments to
/// the `Segments` at `data`.
///
/// # Safety
/// Called by dl_iterate_phdr with a valid dl_phdr_info, and `data` a `Segments`.
unsafe extern "C" fn read_only_segments(
    info: *mut libc::dl_phdr_info,
    _: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: dl_iterate_phdr passes a valid info, with dlpi_phnum headers at dlpi_phdr, and
    // dlpi_name a NUL-terminated string (empty for the program itself); `data` is the caller's
    // `Segments`, not otherwise borrowed while dl_iterate_phdr runs.
    let (info, headers, name, segments) = unsafe {
        let info = &*info;
        let headers = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
        (
            info,
            headers,
            CStr::from_ptr(info.dlpi_name).to_bytes(),
            &mut *data.cast::<Segments>(),
        )
    };
    let base = info.dlpi_addr as usize;
    if !(name.is_empty() || name.starts_with(b"/"))
        || headers.iter().any(|h| {
            // SAFETY: PT_DYNAMIC is the object's loaded dynamic section, ended by DT_NULL.
            h.p_type == libc::PT_DYNAMIC && unsafe { text_relocations(base + h.p_vaddr as usize) }
        })
    {
        return 0;
    }
    let page = segments.page;
    for h in headers
        .iter()
        .filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W == 0)
    {
        let start = (base + h.p_vaddr as usize).next_multiple_of(page);
        let end = (base + (h.p_vaddr + h.p_memsz) as usize) / page * page;
        if end > start && segments.len < MAX_SEGMENTS {
            segments.ranges[segments.len] = (start, end - start);
            segments.len += 1;
        }
    }
    0
}

/// Whether the dynamic section at `dynamic` asks for text relocations (DT_TEXTREL, or
/// DF_TEXTREL in DT_FLAGS).
///
/// # Safety
/// `dynamic` is a loaded dynamic section: (tag, value) pairs of words up to DT_NULL.
unsafe fn text_relocations(dynamic: usize) -> bool {
    const DT_NULL: usize = 0;
    const DT_TEXTREL: usize = 22;
    const DT_FLAGS: usize = 30;
    const DF_TEXTREL: usize = 0x4;
    let mut entry = dynamic as *const [usize; 2];
    loop {
        // SAFETY: the caller's: every entry up to DT_NULL is readable.
        let [tag, value] = unsafe { *entry };
        match tag {
            DT_NULL => return false,
            DT_TEXTREL => return true,
            DT_FLAGS if value & DF_TEXTREL != 0 => return true,
            _ => {}
        }
        // SAFETY: not past DT_NULL yet.
        entry = unsafe { entry.add(1) };
    }
}
