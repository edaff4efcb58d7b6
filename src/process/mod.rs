//! The container's init process: how it is forked (`spawn`, the parent's side), what it does
//! before running the user's program (`init`, the child's side), and how the two talk (`sync`).

mod affinity;
pub mod exec;
pub mod foreground;
pub mod idmap;
pub mod init;
mod rlimits;
mod sched;
pub mod spawn;
pub mod sync;
mod tail;
mod user;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

use crate::error::{Error, Result};
use crate::hooks::{SpecState, Status};
use crate::spec::Bundle;

/// Everything `create` hands to init. The child is a fork, not an exec: it reads this directly.
pub struct InitOptions<'a> {
    pub bundle: &'a Bundle,
    /// The container's state as hooks see it (id, bundle, annotations).
    pub state: SpecState<'a>,
    /// The state directory's lock, which init must not keep (see `spawn::Peer::lock`).
    pub lock: Option<std::os::fd::BorrowedFd<'a>>,
    pub fifo: PathBuf,
    pub console_socket: Option<PathBuf>,
    /// fds 3.. that pass into the container: `--preserve-fds` plus systemd's LISTEN_FDS.
    pub extra_fds: u32,
    /// Socket-activation fds among `extra_fds`: the process is told with LISTEN_FDS/LISTEN_PID.
    pub listen_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// `run`: init waits for `start` only as long as the parent takes to call it.
    pub starts_at_once: bool,
    /// The container's cgroup, made and empty: init is born in it or joins it first thing.
    pub cgroup: &'a dyn crate::cgroups::Manager,
    /// Written once init has set everything up (device rules would stop its mknods).
    pub resources: &'a oci_spec::runtime::LinuxResources,
    /// linux.seccomp, compiled (or taken from the cache) and kept for `exec`: the parent calls
    /// it once init asks, after the clone, while init mounts; init only loads the program.
    pub compile_seccomp: &'a dyn Fn() -> crate::error::Result<Option<crate::seccomp::Filter>>,
    /// Idmapped mounts and, in a new user namespace, bind sources: made by `create` where the
    /// host's privileges are (see `idmapped`).
    pub idmapped: &'a crate::rootfs::idmapped::Trees,
    /// linux.netDevices: moved in once init is in its network namespace, before the hooks.
    pub net_devices: &'a crate::netdev::NetDevices,
    /// Told each pid that is init's as soon as it is known (the child of clone3, then init
    /// behind an intermediate), before init's setup and hooks: `delete --force` of a `create`
    /// killed meanwhile finds init through it where no cgroup holds it (rootless).
    pub on_pid: &'a dyn Fn(i32) -> crate::error::Result<()>,
}

/// What create's and exec's parents both answer for their child.
pub struct Peer<'a> {
    pub cgroup: &'a dyn crate::cgroups::Manager,
    pub console_socket: Option<&'a std::path::Path>,
    /// exec's filter, read from the state directory (create's comes after the clone).
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    /// The container's state, as the seccomp listener receives it.
    pub state: SpecState<'a>,
    /// The container's status as the listener is told it: creating, or (exec) its own.
    pub status: Status,
    /// Init's pid, which the listener is told; 0 while `create` forks it (the child is init).
    pub pid: i32,
    /// The container's lock, held by the parent. The child's copy shares it (an flock belongs
    /// to the open file): kept, it would hold the lock past a parent killed meanwhile, and
    /// `delete --force` would wait for as long as the child takes to exec or die.
    pub lock: Option<std::os::fd::BorrowedFd<'a>>,
}

/// What `create` and `exec` check of a process before forking it: its terminal has a reader
/// (kiln in the foreground, or a console socket), a console socket has a terminal to receive,
/// and kiln can grant every capability. `tty` names the setting for the user; `file` is where
/// the process was read and `at` its field there (`process.` in config.json, empty in exec's
/// `--process` file).
pub fn check(
    process: &Process,
    foreground: bool,
    console_socket: Option<&Path>,
    tty: &str,
    file: &Path,
    at: &str,
) -> Result<()> {
    let terminal = process.terminal().unwrap_or(false);
    if terminal && !foreground && console_socket.is_none() {
        return Err(Error::Usage(format!(
            "{tty} is set but no --console-socket was given: nothing would read the container's terminal"
        )));
    }
    if !terminal && console_socket.is_some() {
        return Err(Error::Usage(format!(
            "--console-socket was given but {tty} is not set: there is no terminal to send"
        )));
    }
    crate::capabilities::check_grantable(process.capabilities().as_ref(), file, at)
}
