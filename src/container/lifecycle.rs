//! The lifecycle operations of the runtime spec (create, start, kill, delete), each checked
//! against the container's status as runc checks them.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::cgroups::{self, Manager, resctrl};
use crate::container::{Container, Found, State, Status};
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Stage};
use crate::process::InitOptions;
use crate::process::spawn::{self, Init};
use crate::spec::Bundle;
use crate::sys;

/// How long `start` waits for init to answer on the exec fifo, and `delete` for a killed
/// container to exit. Both are normally immediate; the bound is for a stopped or frozen init.
const INIT_ANSWER: Duration = Duration::from_secs(30);
const KILL_WAIT: Duration = Duration::from_secs(10);

pub struct CreateOptions {
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `run` in the foreground: a terminal needs no console socket, kiln relays it itself.
    pub foreground: bool,
    /// `run`: `start` follows at once.
    pub starts_at_once: bool,
    /// `--systemd-cgroup`: cgroupsPath is `slice:prefix:name`, for systemd to create.
    pub systemd_cgroup: bool,
    /// `--rootless`: a cgroup only where one is delegated.
    pub rootless: bool,
    /// The caller set NOTIFY_SOCKET: the container gets kiln's socket to report to
    /// (`crate::notify`).
    pub notify: bool,
}

/// Removes a half-made container's cgroup and directory unless disarmed: an error in `create`
/// leaves nothing behind (init itself is killed by `spawn`'s own guard). Armed before the first
/// cgroup directory is made; what the cgroup holds is killed only once a process of ours may be
/// in it, so that a cgroup refused as someone else's is left as it was.
pub(super) struct Undo<'a> {
    dir: Option<&'a Path>,
    cgroup: Option<&'a dyn Manager>,
    pub(super) made: cgroups::Made,
    pub(super) populated: bool,
}

impl<'a> Undo<'a> {
    pub(super) fn new(dir: &'a Path, cgroup: &'a dyn Manager) -> Undo<'a> {
        Undo {
            dir: Some(dir),
            cgroup: Some(cgroup),
            made: cgroups::Made::default(),
            populated: false,
        }
    }

    pub(super) fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(cgroup) = self.cgroup {
            let killed = if self.populated {
                cgroup.kill_all()
            } else {
                Ok(())
            };
            if let Err(e) = killed.and_then(|()| cgroup.release(&mut self.made)) {
                crate::log::warn(&format!("removing the cgroup of a failed create: {e}"));
            }
        }
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What `create` and `restore` decide before anything exists, every check on the config passed.
pub(super) struct Prepared {
    pub bundle: Bundle,
    pub resources: LinuxResources,
    pub cgroup: Box<dyn Manager>,
    /// The state, pid 0.
    pub state: State,
    /// The host's cgroup hierarchies the cgroup was placed in.
    pub hierarchies: Vec<cgroups::Hierarchy>,
    /// Where resctrl is mounted and the config asks for RDT: the resctrl plan.
    pub rdt: Option<resctrl::Plan>,
}

pub(super) fn prepare(id: &str, o: &CreateOptions) -> Result<Prepared> {
    crate::container::id::validate(id)?;
    let bundle = Bundle::load(&o.bundle)?;
    let process = bundle
        .spec
        .process()
        .as_ref()
        .expect("validated: process is present");
    crate::process::check(
        process,
        o.foreground,
        o.console_socket.as_deref(),
        "process.terminal",
        &bundle.config,
        "process.",
    )?;
    let resources = cgroups::resources(&bundle.spec, o.rootless)?;
    let rdt = resctrl::of(&bundle.spec, &bundle.config, id)?;
    let annotations: BTreeMap<String, String> = bundle
        .spec
        .annotations()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let cgroups_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_deref());
    let hierarchies =
        cgroups::hierarchies().ctx(|| "reading /proc/self/mountinfo and /proc/self/cgroup")?;
    let cgroup = cgroups::new(
        &cgroups::Request {
            id,
            cgroups_path,
            systemd: o.systemd_cgroup,
            rootless: o.rootless,
            resources: &resources,
            annotations: &annotations,
        },
        &hierarchies,
    )?;
    let paths = cgroup.paths();
    let state = State {
        oci_version: bundle.spec.version().clone(),
        id: id.to_owned(),
        pid: 0,
        start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::timefmt::rfc3339_nano(std::time::SystemTime::now()),
        annotations,
        hooks: bundle.spec.hooks().clone(),
        cgroup_paths: paths,
        systemd_unit: cgroup.systemd_unit(),
        resources: Some(crate::container::update::raw(&resources)),
        intel_rdt: None,
    };
    Ok(Prepared {
        bundle,
        resources,
        cgroup,
        state,
        hierarchies,
        rdt,
    })
}

pub fn create(root: &Path, id: &str, o: &CreateOptions) -> Result<(Container, Init)> {
    let Prepared {
        mut bundle,
        resources,
        cgroup,
        state,
        rdt,
        ..
    } = prepare(id, o)?;
    // Declared first, dropped last: on an error the devices go back to the host after all else.
    let net_devices = crate::netdev::NetDevices::new(&bundle, o.rootless)?;
    let mut container = Container::create(root, state)?;
    let dir = container.dir.clone();
    let mut undo = Undo::new(&dir, cgroup.as_ref());
    cgroup.create(&mut undo.made)?;
    cgroups::check_usable(cgroup.as_ref())?;

    let fifo = container.fifo();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .ctx(|| format!("creating {}", fifo.display()))?;
    // mkfifo honours the umask; init may run as any user and must be able to open it.
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .ctx(|| format!("chmod {}", fifo.display()))?;

    if o.notify {
        let notify = dir.join(crate::notify::DIR);
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o755)
            .create(&notify)
            .ctx(|| format!("creating {}", notify.display()))?;
        crate::notify::add_to_spec(&mut bundle.spec, &dir);
    }
    let idmapped = crate::rootfs::idmapped::prepare(&bundle)?;
    let listen_fds = listen_fds();
    // Called by spawn after the clone: a bad profile fails here with init alive, and the
    // guards (spawn's for init, `undo` for the rest) remove everything.
    let cache = crate::seccomp::cache::Cache::new(root);
    let compile_seccomp = || {
        let filter = crate::seccomp::of(&bundle.spec, &bundle.config, &cache)?;
        if let Some(f) = &filter {
            f.save(&dir)?;
        }
        Ok(filter)
    };
    // The start time read for the record is the state's too: spawn tells every pid that
    // becomes init's, the last one is init's.
    let recorded = std::cell::Cell::new(0);
    let on_pid = |pid| container.record_init(pid).map(|t| recorded.set(t));
    let opts = InitOptions {
        bundle: &bundle,
        state: container.state.hook_state(),
        lock: container.lock_fd(),
        fifo,
        console_socket: o.console_socket.clone(),
        extra_fds: o.preserve_fds + listen_fds,
        listen_fds,
        no_pivot: o.no_pivot,
        no_new_keyring: o.no_new_keyring,
        starts_at_once: o.starts_at_once,
        cgroup: cgroup.as_ref(),
        resources: &resources,
        compile_seccomp: &compile_seccomp,
        idmapped: &idmapped,
        net_devices: &net_devices,
        on_pid: &on_pid,
    };
    undo.populated = true;
    let init = spawn::spawn(&opts)?;
    let saved = (|| {
        if let Some(plan) = &rdt {
            container.state.intel_rdt = Some(resctrl::apply(plan, init.pid)?);
        }
        container.state.pid = init.pid;
        container.state.start_time = recorded.get();
        container.save()?;
        if let Some(path) = &o.pid_file {
            write_pid_file(path, init.pid)?;
        }
        Ok(())
    })();
    if let Err(e) = saved {
        if let Some(group) = &container.state.intel_rdt {
            let _ = resctrl::destroy(group);
        }
        let _ = sys::pidfd_send_signal(init.pidfd.as_fd(), libc::SIGKILL);
        crate::signals::restore(&init.saved_mask);
        return Err(e);
    }
    undo.disarm();
    net_devices.keep();
    Ok((container, init))
}

/// systemd socket activation: fds 3.. meant for us (LISTEN_PID is ours) pass on to the container.
fn listen_fds() -> u32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Written atomically (rename), as clients poll for it: never a half-written pid.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).ctx(|| format!("--pid-file {}", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.kiln-tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string())
        .ctx(|| format!("--pid-file: writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).ctx(|| format!("--pid-file: renaming to {}", path.display()))
}

/// `notify`: the caller set NOTIFY_SOCKET; kiln's socket is bound before the program runs and
/// returned, for the caller to relay what the program reports (`notify::Listener::relay`) once
/// it let go of the container's lock.
pub fn start(c: &Container, notify: bool) -> Result<Option<crate::notify::Listener>> {
    let (status, pidfd) = c.status_and_init();
    if status != Status::Created {
        return Err(c.wrong_state(status, "only a created container can be started"));
    }
    let listener = if notify {
        Some(crate::notify::Listener::bind(&c.dir)?)
    } else {
        None
    };
    let pidfd =
        pidfd.ok_or_else(|| c.wrong_state(Status::Stopped, "its init exited before start"))?;
    let fifo = c
        .open_fifo()?
        .ok_or_else(|| c.bad_state(crate::container::EXEC_FIFO, "missing"))?;
    // Init is blocked opening the fifo for writing: our open releases it. It writes one byte
    // then, one more once the startContainer hooks passed, and its end closes at execve
    // (close-on-exec). EOF before the second byte means init failed; its pidfd turning readable
    // means it died.
    let deadline = std::time::Instant::now() + INIT_ANSWER;
    for stage in [
        "before start",
        "in the startContainer hooks, labels or seccomp (see the container's stderr)",
    ] {
        if read_fifo(c, &fifo, &pidfd, deadline)? != 1 {
            return Err(Error::Init {
                id: c.id().to_owned(),
                msg: format!("init exited {stage}, the process did not run"),
            });
        }
    }
    while read_fifo(c, &fifo, &pidfd, deadline)? != 0 {}
    std::fs::remove_file(c.fifo()).ctx(|| format!("removing {}", c.fifo().display()))?;
    // Runtime spec 1.3 (and runc 1.2): a failing poststart hook is an error, and the container
    // is stopped; its poststop hooks run at `delete`, as for any stopped container.
    let state = c.state.for_hooks(Status::Running, c.state.pid);
    if let Err(e) = hooks::run(Stage::Poststart, &c.state.hooks, &state, None) {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        return Err(e);
    }
    Ok(listener)
}

/// runc's rules: a container without a live init is "not running", an error unless `all` asks
/// for every process (then whatever outlived init in the cgroup gets the signal, and none
/// left is no error: containerd's `ctr tasks rm -f` of an exited task relies on it). Signal 0
/// only checks that the container is alive. A SIGKILL to a paused container thaws it after
/// the signal, so that it dies at once instead of staying frozen with the signal pending.
pub fn kill(c: &Container, signal: i32, all: bool) -> Result<()> {
    let (status, init) = c.status_and_init();
    let Some(init) = init else {
        if !all {
            return Err(c.wrong_state(
                Status::Stopped,
                "container not running, there is no process to signal",
            ));
        }
        if status == Status::Stopped {
            // A cgroup already gone has no process left to signal.
            let _ = signal_all(c, signal, 0);
        }
        return Ok(());
    };
    if all {
        signal_all(c, signal, c.state.pid)?;
    }
    sys::pidfd_send_signal(init.as_fd(), signal)
        .ctx(|| format!("signalling init of {:?} (pid {})", c.id(), c.state.pid))?;
    if status == Status::Paused && signal == libc::SIGKILL {
        c.cgroup()?.freeze(false)?;
    }
    Ok(())
}

/// The signal to every process in the container's cgroup but `except`: daemonised ones too.
/// Each pid is opened as a pidfd before the signal, so a reused pid is never hit.
fn signal_all(c: &Container, signal: i32, except: i32) -> Result<()> {
    for pid in c.cgroup()?.pids()?.into_iter().filter(|&p| p != except) {
        if let Ok(fd) = sys::pidfd_open(pid) {
            let _ = sys::pidfd_send_signal(fd.as_fd(), signal);
        }
    }
    Ok(())
}

/// Freezes every process of the container (runc pauses created containers too).
pub fn pause(c: &Container) -> Result<()> {
    match c.status() {
        Status::Running | Status::Created => c.cgroup()?.freeze(true),
        status => Err(c.wrong_state(status, "only a running or created container can be paused")),
    }
}

pub fn resume(c: &Container) -> Result<()> {
    match c.status() {
        Status::Paused => c.cgroup()?.freeze(false),
        status => Err(c.wrong_state(status, "only a paused container can be resumed")),
    }
}

pub fn delete(c: Container, force: bool) -> Result<()> {
    let (status, init) = c.status_and_init();
    match status {
        // A created container never ran the user's program: runc deletes it without --force.
        Status::Stopped | Status::Created => {}
        Status::Running | Status::Paused | Status::Creating if force => {}
        _ => return Err(c.wrong_state(status, "stop it first, or use delete --force")),
    }
    // Even a stopped container's cgroup may hold processes that outlived init (without a pid
    // namespace of its own): stop kills them all, once, before the directories go.
    let cgroup = c.cgroup()?;
    stop(&c, init, cgroup.as_ref())?;
    cgroup.remove()?;
    if let Some(group) = &c.state.intel_rdt {
        resctrl::destroy(group)?;
    }
    let state = c.state.clone();
    c.remove()?;
    hooks::run_warn(
        Stage::Poststop,
        &state.hooks,
        &state.for_hooks(Status::Stopped, state.pid),
    );
    Ok(())
}

/// `delete --force`: whatever is under `ROOT/ID` goes, even when its state is damaged. A
/// damaged container is killed and removed as its record knows it (cgroups, init), with a
/// warning saying what was damaged; an entry that is no directory (a symlink) is removed
/// itself, never followed. Nothing there is not an error, as with runc. runc removes only the
/// directory when state.json is missing and fails on one it cannot parse, in both cases
/// leaving the container's processes and cgroups behind.
pub fn delete_force(root: &Path, id: &str) -> Result<()> {
    match Container::find(root, id) {
        Err(Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
        Ok(Found::Usable(c)) => delete(c, true),
        Ok(Found::Damaged { c, warning }) => {
            if let Some(w) = warning {
                crate::log::warn(&format!("delete --force: {w}"));
            }
            delete(c, true)
        }
        Ok(Found::Stray { path, why }) => {
            crate::log::warn(&format!(
                "delete --force: {}: {why}: removing it",
                path.display()
            ));
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).ctx(|| format!("removing {}", path.display()))
                }
                _ => Ok(()),
            }
        }
    }
}

/// SIGKILL to every process of the container (through its cgroup), then wait on init's pidfd
/// (None when init is gone), bounded: when init is gone the pid namespace is gone with it.
fn stop(c: &Container, init: Option<OwnedFd>, cgroup: &dyn Manager) -> Result<()> {
    cgroup.kill_all()?;
    let Some(init) = init else { return Ok(()) };
    let _ = sys::pidfd_send_signal(init.as_fd(), libc::SIGKILL);
    if !sys::wait_exit(init.as_fd(), c.state.pid, KILL_WAIT) {
        return Err(Error::Init {
            id: c.id().to_owned(),
            msg: format!(
                "init (pid {}) still alive {}s after SIGKILL",
                c.state.pid,
                KILL_WAIT.as_secs()
            ),
        });
    }
    Ok(())
}

/// Reads one byte of the exec fifo, 0 at EOF, waiting (bounded) for init to write or close it.
fn read_fifo(
    c: &Container,
    fifo: &std::fs::File,
    pidfd: &OwnedFd,
    deadline: std::time::Instant,
) -> Result<usize> {
    let mut byte = [0u8; 1];
    loop {
        wait_fifo(c, fifo, pidfd, deadline)?;
        match std::io::Read::read(&mut &*fifo, &mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return Ok(other.unwrap_or(0)),
        }
    }
}

/// Waits (bounded) until the fifo has data or its writer closed, or init died.
fn wait_fifo(
    c: &Container,
    fifo: &std::fs::File,
    pidfd: &OwnedFd,
    deadline: std::time::Instant,
) -> Result<()> {
    loop {
        let mut fds = [
            nix::poll::PollFd::new(fifo.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        let left = deadline
            .saturating_duration_since(std::time::Instant::now())
            .as_millis()
            .min(i32::MAX as u128) as i32;
        match nix::poll::poll(
            &mut fds,
            nix::poll::PollTimeout::try_from(left).unwrap_or(nix::poll::PollTimeout::ZERO),
        ) {
            Ok(0) => {
                return Err(Error::Init {
                    id: c.id().to_owned(),
                    msg: format!(
                        "init did not answer on the exec fifo within {}s",
                        INIT_ANSWER.as_secs()
                    ),
                });
            }
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::os("waiting for init", e)),
        }
    }
}
