//! `checkpoint` and `restore` with criu: the facts criu's plan needs (`criu.rs`) gathered from
//! the container and its config, criu run, and the restored tree made a container like any
//! other (state.json with init's pid and start time, recovery.json, its cgroup).
//!
//! Besides criu's images, the image directory holds runc's `descriptors.json` (what init's
//! stdio was, so that restore hands pipes back) and kiln's `kiln-criu.json` (the terminal's key
//! in the images).

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::cgroups;
use crate::container::criu::{self, Common, DumpFacts, DumpFlags, RestoreFacts};
use crate::container::lifecycle::{self, CreateOptions, Undo};
use crate::container::{Container, Status};
use crate::error::{Context, Error, Result};
use crate::process::spawn::Init;
use crate::spec::{Bundle, lexically_clean};

const CRIU: &str = "criu";
/// runc's name for init's stdio at dump time.
const DESCRIPTORS: &str = "descriptors.json";
const KILN_IMAGE: &str = "kiln-criu.json";
/// `criu check`'s verdict, in the state root's cache directory.
const CHECK_RECORD: &str = "criu-check";
/// Where the restored init's pid comes back, in the new container's directory.
const PID_FILE: &str = "criu.pid";
/// Where init's terminal is bound in the container (`tty::setup_in_container`).
const CONSOLE: &str = "/dev/console";
/// The first fd criu inherits beyond stdio (namespaces, the pty's slave).
const FIRST_FD: i32 = 3;

#[derive(Serialize, Deserialize, Default)]
struct KilnImage {
    /// The terminal's key in criu's images, when the container has one.
    tty: Option<String>,
    /// The cgroup mounts that are binds of the container's cgroup directories: (key in the
    /// images, the hierarchy's key in the cgroup paths), given the new container's on restore.
    #[serde(default)]
    cgroup_binds: Vec<(PathBuf, String)>,
}

/// Whether criu runs here: `criu check`'s verdict, or why not in one line. The verdict is kept
/// under the state root `root`, when that exists, for as long as it holds (`criu::check_key`):
/// `criu check` takes seconds on a slow machine, and `features` may be asked often.
pub fn criu_check(root: &Path) -> std::result::Result<(), String> {
    let key = check_key().filter(|_| !root.as_os_str().is_empty() && root.is_dir());
    let Some(key) = key else {
        return run_criu_check();
    };
    let dir = root.join(crate::seccomp::cache::CACHE_DIR);
    let record = dir.join(CHECK_RECORD);
    let cached = std::fs::read_to_string(&record)
        .ok()
        .and_then(|r| criu::checked(&r, &key));
    if let Some(verdict) = cached {
        return verdict;
    }
    let verdict = run_criu_check();
    let text = criu::check_record(&key, &verdict);
    if let Err(e) = crate::seccomp::cache::write_entry(&dir, CHECK_RECORD, text.as_bytes()) {
        crate::log::debug(|| format!("{}: not kept: {e}", record.display()));
    }
    verdict
}

/// The key of `criu check`'s verdict here, None when criu is not in PATH (or the boot is
/// unknown): then nothing is kept.
fn check_key() -> Option<String> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let path = std::env::var_os("PATH")?;
    let (criu, meta) = std::env::split_paths(&path)
        .map(|dir| dir.join(CRIU))
        .find_map(|p| {
            let m = std::fs::metadata(&p).ok()?;
            (m.is_file() && m.mode() & 0o111 != 0).then_some((p, m))
        })?;
    Some(criu::check_key(
        &boot_id,
        nix::unistd::geteuid().as_raw(),
        &criu,
        &meta,
    ))
}

fn run_criu_check() -> std::result::Result<(), String> {
    let out = crate::sys::without_inherited_fds(&mut Command::new(CRIU))
        .arg("check")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {CRIU}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Err(criu::log_errors(&text).unwrap_or_else(|| format!("criu check: {}", out.status)))
}

pub fn checkpoint(c: Container, f: &DumpFlags) -> Result<()> {
    match c.status() {
        Status::Running | Status::Paused => {}
        status => return Err(c.wrong_state(status, "only a running container can be checkpointed")),
    }
    let bundle = Bundle::load(&c.state.bundle)?;
    let common = &f.common;
    make_dir(&common.image_dir, "--image-path")?;
    if let Some(w) = &common.work_dir {
        make_dir(w, "--work-path")?;
    }
    if let Some(parent) = &f.parent {
        if parent.is_absolute() {
            return Err(Error::Usage(format!(
                "--parent-path {}: must be relative to --image-path",
                parent.display()
            )));
        }
        let real = common.image_dir.join(parent);
        if !real.is_dir() {
            return Err(Error::Usage(format!(
                "--parent-path {}: {} is not a directory of images",
                parent.display(),
                real.display()
            )));
        }
    }
    if let Some(fd) = f.status_fd {
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| Error::Usage(format!("--status-fd {fd}: {e}")))?;
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(Error::Usage(format!(
                "--status-fd {fd}: not open for writing"
            )));
        }
    }
    let pid = c.state.pid;
    let cgroupns =
        crate::namespaces::Plan::new(&bundle.spec).has(nix::sched::CloneFlags::CLONE_NEWCGROUP);
    let mounts =
        crate::procfs::mountinfo_of(pid).ctx(|| format!("reading /proc/{pid}/mountinfo"))?;
    let cgroup_binds = criu::cgroup_binds(&mounts, c.state.cgroup_paths.keys(), cgroupns);
    let mut facts = dump_facts(&c, &bundle.spec)?;
    facts
        .external_mounts
        .extend(cgroup_binds.iter().map(|(dest, _)| dest.clone()));
    if !f.pre_dump {
        let fds: Vec<String> = (0..3)
            .map(|fd| {
                std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        write_json(&common.image_dir.join(DESCRIPTORS), &fds)?;
        write_json(
            &common.image_dir.join(KILN_IMAGE),
            &KilnImage {
                tty: facts.tty.clone(),
                cgroup_binds,
            },
        )?;
    }
    run_criu(
        "dump",
        &criu::dump_args(f, &facts),
        common,
        "dump.log",
        None,
        &|_| Ok(()),
    )?;
    if !f.leave_running && !f.pre_dump {
        // criu killed the tree after dumping it: what is left is the state and the cgroup.
        lifecycle::delete(c, true)?;
    }
    Ok(())
}

fn dump_facts(c: &Container, spec: &Spec) -> Result<DumpFacts> {
    let pid = c.state.pid;
    let linux = spec.linux().as_ref();
    let mut external_mounts: Vec<PathBuf> = binds(spec).map(|(dest, _)| dest).collect();
    external_mounts.extend(devices(spec));
    let masked_files = linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
        .filter(|p| std::fs::metadata(format!("/proc/{pid}/root/{p}")).is_ok_and(|m| !m.is_dir()))
        .map(PathBuf::from)
        .collect();
    let mut external_ns = vec![];
    for ns in [LinuxNamespaceType::Network, LinuxNamespaceType::Pid] {
        let name = crate::namespaces::proc_name(ns);
        if let Some(path) = ns_path(spec, ns) {
            let inode = std::fs::metadata(&path)
                .ctx(|| format!("linux.namespaces: {}", path.display()))?
                .ino();
            external_ns.push((name, inode));
        }
    }
    let paths = &c.state.cgroup_paths;
    let freeze_cgroup = paths.get("freezer").or_else(|| paths.get("")).cloned();
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let tty = if terminal {
        // stat follows the fd to the pty's slave in the container's devpts.
        let m = std::fs::metadata(format!("/proc/{pid}/fd/0"))
            .ctx(|| format!("reading init's terminal /proc/{pid}/fd/0"))?;
        // The slave is also bound to /dev/console, a devpts bind whose master criu would look
        // for in the tree: external, given the new pty's slave on restore.
        external_mounts.push(PathBuf::from(CONSOLE));
        Some(criu::tty_key(m.rdev(), m.dev()))
    } else {
        None
    };
    Ok(DumpFacts {
        pid,
        rootfs: c.state.rootfs.clone(),
        external_mounts,
        masked_files,
        external_ns,
        freeze_cgroup,
        tty,
    })
}

/// runc's bind mounts (a `bind` or `rbind` option): destination, and source against the bundle.
fn binds(spec: &Spec) -> impl Iterator<Item = (PathBuf, PathBuf)> + '_ {
    spec.mounts()
        .iter()
        .flatten()
        .filter_map(|m| Some((lexically_clean(m.destination()), binds_source(m)?.clone())))
}

/// The source of a bind mount (a `bind` or `rbind` option), as the config has it.
fn binds_source(m: &oci_spec::runtime::Mount) -> Option<&PathBuf> {
    let bind = m
        .options()
        .iter()
        .flatten()
        .any(|o| o == "bind" || o == "rbind");
    m.source().as_ref().filter(|_| bind)
}

/// Every device node the container gets (runc's list: the defaults and linux.devices).
fn devices(spec: &Spec) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = crate::rootfs::devices::default_paths()
        .map(PathBuf::from)
        .chain(
            spec.linux()
                .iter()
                .filter_map(|l| l.devices().as_ref())
                .flatten()
                .map(|d| lexically_clean(d.path())),
        )
        .collect();
    all.sort();
    all.dedup();
    all
}

fn ns_path(spec: &Spec, t: LinuxNamespaceType) -> Option<PathBuf> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == t)?
        .path()
        .clone()
}

pub struct RestoreOptions {
    pub create: CreateOptions,
    pub criu: Common,
}

/// A new container `id` from the images: made as `create` makes one up to its cgroup, then
/// criu restores the tree into it instead of kiln spawning init.
pub fn restore(root: &Path, id: &str, o: &RestoreOptions) -> Result<(Container, Init)> {
    let lifecycle::Prepared {
        bundle,
        resources,
        cgroup,
        state,
        hierarchies,
        rdt,
    } = lifecycle::prepare(id, &o.create)?;
    if rdt.is_some() {
        return Err(Error::config(
            &bundle.config,
            "linux.intelRdt",
            "restore does not put a restored container in its resctrl group yet",
        ));
    }
    // criu makes the restored network namespace itself; the devices, still in the checkpointed
    // container's namespace or gone with it, are not kiln's to move there.
    if !crate::spec::net_devices::plan(&bundle.spec).is_empty() {
        return Err(Error::config(
            &bundle.config,
            "linux.netDevices",
            "restore does not move network devices into the restored container",
        ));
    }
    let image_dir = &o.criu.image_dir;
    let descriptors: Vec<String> = read_json(&image_dir.join(DESCRIPTORS))?;
    let kiln_image = image_dir.join(KILN_IMAGE);
    let image: KilnImage = match kiln_image.try_exists() {
        Ok(true) => read_json(&kiln_image)?,
        // An image runc made: its terminal (if any) was an orphan pts kiln cannot take over.
        Ok(false) => KilnImage::default(),
        Err(e) => return Err(e).ctx(|| format!("reading {}", kiln_image.display())),
    };
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal != image.tty.is_some() {
        return Err(Error::config(
            &bundle.config,
            "process.terminal",
            format!(
                "{terminal}, but the container in {} {} a terminal",
                image_dir.display(),
                if terminal { "had no" } else { "had" }
            ),
        ));
    }
    if let Some(w) = &o.criu.work_dir {
        make_dir(w, "--work-path")?;
    }

    let mut container = Container::create(root, state)?;
    let dir = container.dir.clone();
    let mut undo = Undo::new(&dir, cgroup.as_ref());
    cgroup.create(&mut undo.made)?;
    cgroups::check_usable(cgroup.as_ref())?;
    // Once criu's process exists, before criu runs: a systemd unit's cgroup is made with a
    // process in it, and as runc (criuApplyCgroups) kiln starts the unit with criu's, so that
    // criu restores the tree into the unit's cgroup from inside it. The limits are set once
    // the cgroup is there.
    let unit = cgroup.systemd_unit().is_some();
    let ready = |criu: i32| {
        if unit {
            cgroup.join(criu)?;
        }
        cgroup.set(&resources)
    };

    // What criu inherits: (key, the fd here); numbered from FIRST_FD in criu.
    let mut extra: Vec<(String, OwnedFd)> = vec![];
    let mut join_ns = vec![];
    for n in bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let Some(path) = n.path() else { continue };
        let field = || format!("linux.namespaces: {}", path.display());
        match n.typ() {
            LinuxNamespaceType::Network | LinuxNamespaceType::Pid => {
                let f = std::fs::File::open(path).ctx(field)?;
                extra.push((
                    criu::ns_key(crate::namespaces::proc_name(n.typ())),
                    f.into(),
                ));
            }
            LinuxNamespaceType::Cgroup => {
                return Err(Error::config(
                    &bundle.config,
                    "linux.namespaces",
                    "criu cannot restore into a cgroup namespace joined by path",
                ));
            }
            t => join_ns.push((crate::namespaces::proc_name(t), path.clone())),
        }
    }
    let mut console = None;
    let pty = match &image.tty {
        Some(key) => {
            let (master, slave, name) = crate::tty::open_pair()?;
            extra.push((key.clone(), slave.into()));
            console = Some((PathBuf::from(CONSOLE), PathBuf::from(name)));
            Some(master)
        }
        None => None,
    };
    let mut inherit: Vec<(String, i32)> = descriptors
        .iter()
        .enumerate()
        .filter(|(_, d)| d.contains("pipe:"))
        .map(|(i, d)| (d.clone(), i as i32))
        .collect();
    inherit.extend(
        extra
            .iter()
            .enumerate()
            .map(|(i, (key, _))| (key.clone(), FIRST_FD + i as i32)),
    );

    let new_paths = cgroup.paths();
    let cgroup_roots = cgroups::roots(&hierarchies, &new_paths);

    // criu wants its root a mount point whose parent is not overmounted: runc's bind of the
    // rootfs under the container's directory.
    let criu_root = dir.join("criu-root");
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&criu_root)
        .ctx(|| format!("creating {}", criu_root.display()))?;
    let _root_mount = BindMount::new(&bundle.rootfs, &criu_root)?;
    make_mount_points(&bundle)?;
    let pid_file = dir.join(PID_FILE);
    let mut external_mounts: Vec<(PathBuf, PathBuf)> = binds(&bundle.spec)
        .map(|(dest, src)| (dest, bundle.dir.join(src)))
        .collect();
    external_mounts.extend(devices(&bundle.spec).into_iter().map(|d| (d.clone(), d)));
    external_mounts.extend(console);
    for (dest, key) in &image.cgroup_binds {
        let dir = new_paths.get(key).ok_or_else(|| Error::Criu {
            op: "restore",
            msg: format!(
                "the checkpointed container had the cgroup hierarchy {key:?} mounted at {}; the new one has no cgroup there",
                dest.display()
            ),
        })?;
        external_mounts.push((dest.clone(), dir.clone()));
    }
    let masks_files = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|m| !m.is_empty());
    let facts = RestoreFacts {
        root: criu_root.clone(),
        pid_file: pid_file.clone(),
        external_mounts,
        masks_files,
        inherit,
        join_ns,
        cgroup_roots,
    };
    let saved_mask = crate::signals::block_all()?;
    undo.populated = true;
    let restored = (|| {
        let fds: Vec<&OwnedFd> = extra.iter().map(|(_, fd)| fd).collect();
        run_criu(
            "restore",
            &criu::restore_args(&o.criu, &facts),
            &o.criu,
            criu::RESTORE_LOG,
            Some(&fds),
            &ready,
        )?;
        let text = std::fs::read_to_string(&pid_file)
            .ctx(|| format!("reading criu's {}", pid_file.display()))?;
        let pid: i32 = text.trim().parse().map_err(|_| Error::Criu {
            op: "restore",
            msg: format!(
                "{} holds no pid: {}",
                pid_file.display(),
                crate::error::quote(&text)
            ),
        })?;
        let _ = std::fs::remove_file(&pid_file);
        let pidfd = crate::sys::pidfd_open(pid).ctx(|| format!("pidfd_open({pid})"))?;
        let adopted = (|| {
            container.state.start_time = container.record_init(pid)?;
            container.state.pid = pid;
            container.save()?;
            if let Some(path) = &o.create.pid_file {
                lifecycle::write_pid_file(path, pid)?;
            }
            match (pty, &o.create.console_socket) {
                (Some(master), Some(sock)) => {
                    crate::tty::send_to_console_socket(sock, &master).map(|()| None)
                }
                (pty, _) => Ok(pty),
            }
        })();
        // As `create`: the restored init is killed by its pidfd, for a container without a
        // cgroup whose processes Undo could kill.
        let pty = adopted.inspect_err(|_| {
            let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        })?;
        Ok(Init {
            pid,
            pidfd,
            pty,
            saved_mask,
        })
    })();
    match restored {
        Ok(init) => {
            undo.disarm();
            Ok((container, init))
        }
        Err(e) => {
            crate::signals::restore(&saved_mask);
            Err(e)
        }
    }
}

/// Runs criu and waits for it; a failure is one line with the errors of its log. `fds` go to
/// criu at FIRST_FD, FIRST_FD+1, ... (restore); a dump passes on what kiln inherited
/// (`--status-fd` is one of those). `ready` is called with criu's pid before criu runs.
fn run_criu(
    op: &'static str,
    args: &[OsString],
    c: &Common,
    log: &str,
    fds: Option<&[&OwnedFd]>,
    ready: &dyn Fn(i32) -> Result<()>,
) -> Result<()> {
    crate::log::debug(|| {
        format!(
            "{CRIU} {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        )
    });
    let mut cmd = Command::new(CRIU);
    cmd.args(args).stdin(Stdio::inherit());
    // Above every target, so that no dup2 overwrites a source not yet moved; closed once
    // criu has its copies.
    let mut high: Vec<OwnedFd> = vec![];
    if let Some(fds) = fds {
        high = fds
            .iter()
            .map(|f| {
                nix::fcntl::fcntl(
                    f.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(FIRST_FD + 64 + fds.len() as i32),
                )
                .map(|fd| {
                    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
                    unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
                })
                .ctx(|| "duplicating an fd for criu")
            })
            .collect::<Result<_>>()?;
        let high_raw: Vec<i32> = high.iter().map(|f| f.as_raw_fd()).collect();
        // SAFETY: between fork and exec of this single-threaded process: close(2) of the
        // inherited fds (a list made at startup) and dup2(2), which allocate nothing.
        unsafe {
            cmd.pre_exec(move || {
                crate::sys::close_inherited_from(FIRST_FD)?;
                for (i, &fd) in high_raw.iter().enumerate() {
                    if libc::dup2(fd, FIRST_FD + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    let status = spawn_wait(&mut cmd, op, ready)?;
    drop(high);
    criu_status(op, status, c, log)
}

/// Forks criu's process, which execs `cmd` only once `ready(its pid)` has returned, then waits
/// for criu. The child reads one byte to go on (nothing: the parent gave up, and it exits) and
/// writes a failed exec's errno back on the same socket, which is close-on-exec: criu's exec
/// ends the parent's read with nothing.
fn spawn_wait(
    cmd: &mut Command,
    op: &'static str,
    ready: &dyn Fn(i32) -> Result<()>,
) -> Result<std::process::ExitStatus> {
    let fail = |what: &str, e: std::io::Error| Error::Criu {
        op,
        msg: if e.kind() == std::io::ErrorKind::NotFound {
            format!("{CRIU} is not installed (not found in PATH)")
        } else {
            format!("{what} {CRIU}: {e}")
        },
    };
    let (ours, low) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| fail("a socket for", e.into()))?;
    // Above the fds that criu's fds are dup2'd to (FIRST_FD up), which would overwrite it.
    let theirs = nix::fcntl::fcntl(
        low.as_raw_fd(),
        nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(FIRST_FD + 64),
    )
    .map(|fd| {
        // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    })
    .map_err(|e| fail("a socket for", e.into()))?;
    // Closed here, or the parent's read would wait on it for ever.
    drop(low);
    // SAFETY: kiln is single-threaded (it starts no threads), as a fork needs; the child
    // reads, execs, and on failure writes and _exits.
    let (pid, pidfd) = match unsafe { crate::sys::clone3(0, None) } {
        Err(e) => return Err(fail("forking", e)),
        Ok(crate::sys::Forked::Child) => {
            drop(ours);
            let mut go = [0u8];
            if nix::unistd::read(theirs.as_raw_fd(), &mut go) == Ok(1) {
                let e = cmd.exec();
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                let _ = nix::unistd::write(&theirs, &errno.to_ne_bytes());
            }
            // SAFETY: _exit ends this copy of kiln without running the parent's destructors.
            unsafe { libc::_exit(127) }
        }
        Ok(crate::sys::Forked::Parent { pid, pidfd }) => (pid, pidfd),
    };
    drop(theirs);
    let reap = |e: Error| {
        let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = crate::sys::waitid_pidfd(pidfd.as_fd(), false);
        e
    };
    ready(pid).map_err(reap)?;
    nix::unistd::write(&ours, &[1]).map_err(|e| reap(fail("starting", e.into())))?;
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < errno.len() {
        match nix::unistd::read(ours.as_raw_fd(), &mut errno[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(reap(fail("starting", e.into()))),
        }
    }
    if got == errno.len() {
        let e = std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
        return Err(reap(fail("running", e)));
    }
    let exit = crate::sys::waitid_pidfd(pidfd.as_fd(), false)
        .map_err(|e| fail("waiting for", e))?
        .ok_or_else(|| fail("waiting for", std::io::Error::other("no exit reported")))?;
    // A wait status, as ExitStatus holds one: the code in the second byte, or the signal.
    let raw = match exit {
        crate::sys::Exit::Code(c) => c << 8,
        crate::sys::Exit::Signal(s) => s,
    };
    Ok(std::os::unix::process::ExitStatusExt::from_raw(raw))
}

fn criu_status(
    op: &'static str,
    status: std::process::ExitStatus,
    c: &Common,
    log: &str,
) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let log = c.work_dir.as_ref().unwrap_or(&c.image_dir).join(log);
    let why = std::fs::read_to_string(&log)
        .ok()
        .and_then(|t| criu::log_errors(&t))
        .unwrap_or_else(|| format!("{status}"));
    Err(Error::Criu {
        op,
        msg: format!("{why} (criu {status}, log {})", log.display()),
    })
}

/// criu mounts onto the mount points it finds in the rootfs, and a fresh rootfs (containerd's
/// new snapshot) lacks those `create` made: each is made again, inside the rootfs, as runc's
/// prepareCriuRestoreMounts does. Binds are mounted meanwhile, so that the points of mounts
/// inside them can be made too, and detached before criu runs. cgroup mounts need none (criu
/// has /sys/fs/cgroup's tmpfs, or cgroup2 is /sys's), nor mounts on a tmpfs (criu restores it
/// whole).
fn make_mount_points(bundle: &Bundle) -> Result<()> {
    let root: OwnedFd = std::fs::File::open(&bundle.rootfs)
        .ctx(|| format!("opening the rootfs {}", bundle.rootfs.display()))?
        .into();
    let mounts = bundle.spec.mounts().as_deref().unwrap_or_default();
    let on_tmpfs = |dest: &Path| {
        mounts.iter().any(|t| {
            t.typ().as_deref() == Some("tmpfs")
                && dest.starts_with(lexically_clean(t.destination()))
                && dest != lexically_clean(t.destination())
        })
    };
    let mut binds = TempBinds {
        root: &root,
        dests: vec![],
    };
    for m in mounts {
        let dest = lexically_clean(m.destination());
        if m.typ().as_deref() == Some("cgroup") || on_tmpfs(&dest) {
            continue;
        }
        let source = binds_source(m).map(|s| bundle.dir.join(s));
        let field = || {
            format!(
                "mounts: {}: making its mount point for criu",
                dest.display()
            )
        };
        let point = match &source {
            Some(s) if !s.is_dir() => crate::rootfs::resolve::create_file(&root, &dest),
            _ => crate::rootfs::resolve::mkdir_all(&root, &dest),
        }
        .ctx(field)?;
        if let Some(s) = source {
            let target = crate::rootfs::resolve::fd_path(&point);
            nix::mount::mount(
                Some(&s),
                &target,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx(|| format!("bind {} to {} for criu", s.display(), dest.display()))?;
            binds.dests.push(dest);
        }
    }
    Ok(())
}

/// The binds `make_mount_points` made in the rootfs, detached (last first) on drop: each found
/// again inside the rootfs, where it is now the mount's root.
struct TempBinds<'a> {
    root: &'a OwnedFd,
    dests: Vec<PathBuf>,
}

impl Drop for TempBinds<'_> {
    fn drop(&mut self) {
        for dest in self.dests.iter().rev() {
            if let Ok(fd) = crate::rootfs::resolve::open(self.root, dest, libc::O_PATH) {
                let _ = nix::mount::umount2(
                    &crate::rootfs::resolve::fd_path(&fd),
                    nix::mount::MntFlags::MNT_DETACH,
                );
            }
        }
    }
}

/// A recursive bind mount, detached again on drop.
struct BindMount(PathBuf);

impl BindMount {
    fn new(source: &Path, target: &Path) -> Result<BindMount> {
        nix::mount::mount(
            Some(source),
            target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind {} to {}", source.display(), target.display()))?;
        Ok(BindMount(target.to_owned()))
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn make_dir(dir: &Path, flag: &str) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx(|| format!("{flag} {}", dir.display()))
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let data = serde_json::to_vec(v).expect("plain data serializes");
    std::fs::write(path, data).ctx(|| format!("writing {}", path.display()))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let data = std::fs::read(path).ctx(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&data).map_err(|e| Error::Criu {
        op: "restore",
        msg: format!("{}: {e}", path.display()),
    })
}
