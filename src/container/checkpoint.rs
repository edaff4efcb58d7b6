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
use crate::spec::Bundle;

const CRIU: &str = "criu";
/// runc's name for init's stdio at dump time.
const DESCRIPTORS: &str = "descriptors.json";
const KILN_IMAGE: &str = "kiln-criu.json";
/// Where the restored init's pid comes back, in the new container's directory.
const PID_FILE: &str = "criu.pid";
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

/// Whether criu runs here: `criu check`'s verdict, or why not in one line.
pub fn criu_check() -> std::result::Result<(), String> {
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
    spec.mounts().iter().flatten().filter_map(|m| {
        let bind = m
            .options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind");
        let source = m.source().clone()?;
        bind.then(|| (clean(m.destination()), source))
    })
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
                .map(|d| clean(d.path())),
        )
        .collect();
    all.sort();
    all.dedup();
    all
}

/// A destination as criu sees it in the container: absolute, without `.` or `//`.
fn clean(p: &Path) -> PathBuf {
    Path::new("/").join(
        p.components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect::<PathBuf>(),
    )
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
    let (bundle, resources, cgroup, state) = lifecycle::prepare(id, &o.create)?;
    if let Some(unit) = cgroup.systemd_unit() {
        // criu restores the processes into cgroups that must exist first, and a scope
        // cannot be started empty.
        return Err(Error::Cgroup {
            field: "--systemd-cgroup".into(),
            msg: format!(
                "restore into systemd unit {unit}: not supported; restore without --systemd-cgroup"
            ),
        });
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
    cgroup.set(&resources)?;

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
    let pty = match &image.tty {
        Some(key) => {
            let (master, slave, _) = crate::tty::open_pair()?;
            extra.push((key.clone(), slave.into()));
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

    let all =
        cgroups::hierarchies().ctx(|| "reading /proc/self/mountinfo and /proc/self/cgroup")?;
    let cgroup_roots = cgroup
        .paths()
        .iter()
        .filter_map(|(ctrl, dir)| {
            let h = all.iter().find(|h| &h.controllers == ctrl)?;
            let rel = dir.strip_prefix(&h.mount_point).ok()?;
            Some((ctrl.clone(), format!("/{}", rel.display())))
        })
        .collect();

    // criu wants its root a mount point whose parent is not overmounted: runc's bind of the
    // rootfs under the container's directory.
    let criu_root = dir.join("criu-root");
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&criu_root)
        .ctx(|| format!("creating {}", criu_root.display()))?;
    let _root_mount = BindMount::new(&bundle.rootfs, &criu_root)?;
    let pid_file = dir.join(PID_FILE);
    let mut external_mounts: Vec<(PathBuf, PathBuf)> = binds(&bundle.spec)
        .map(|(dest, src)| (dest, bundle.dir.join(src)))
        .collect();
    external_mounts.extend(devices(&bundle.spec).into_iter().map(|d| (d.clone(), d)));
    let new_paths = cgroup.paths();
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
/// (`--status-fd` is one of those).
fn run_criu(
    op: &'static str,
    args: &[OsString],
    c: &Common,
    log: &str,
    fds: Option<&[&OwnedFd]>,
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
    let status = spawn_wait(&mut cmd, op)?;
    drop(high);
    criu_status(op, status, c, log)
}

fn spawn_wait(cmd: &mut Command, op: &'static str) -> Result<std::process::ExitStatus> {
    cmd.status().map_err(|e| Error::Criu {
        op,
        msg: if e.kind() == std::io::ErrorKind::NotFound {
            format!("{CRIU} is not installed (not found in PATH)")
        } else {
            format!("running {CRIU}: {e}")
        },
    })
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
