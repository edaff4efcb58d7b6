//! Cgroups: where a container's cgroup is, how its init joins it, and how `linux.resources` is
//! written to it. The host's layout (pure v1, hybrid, pure v2) is detected here, once; everything
//! else in kiln talks to a [`Manager`] and never learns which layout is behind it.
//!
//! - `v1`: one directory per mounted v1 hierarchy (`memory`, `cpu,cpuacct`, `name=systemd`, ...).
//! - `v2`: one directory in the unified hierarchy.
//! - `hybrid`: v1 for every controller that v1 has, plus the unified hierarchy for what only it
//!   has (hugetlb on this project's machines) and for `unified` keys.
//!
//! Plan, then act. Where the hierarchies are and where the container's cgroup goes in each is
//! decided by pure functions of /proc's text (`layout`), what to write for a resource likewise
//! (`resources`, with the v1 → v2 conversions); both are unit-tested on captures from real hosts
//! without root. This file reads /proc and hands the paths to a manager; the managers only
//! carry the plan out.

mod devices;
pub mod ebpf;
mod hybrid;
mod layout;
mod none;
pub mod resctrl;
mod resources;
pub mod stats;
mod systemd;
mod v1;
mod v2;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::error::{Context, Error, Result};

pub use layout::{Hierarchy, roots};
pub use stats::Stats;

/// Each hierarchy's directory for one container, keyed by the hierarchy's controllers as
/// /proc/self/cgroup names them (`memory`, `cpu,cpuacct`, `name=systemd`), `""` for the unified
/// one. Kept in the container's state: later commands find the cgroup without re-resolving
/// cgroupsPath from wherever they happen to run.
pub type Paths = BTreeMap<String, PathBuf>;

/// How long a freeze, or the emptying of a killed cgroup, may take.
const SETTLE: Duration = Duration::from_secs(10);

pub trait Manager {
    fn paths(&self) -> Paths;
    /// The systemd unit that holds the cgroup (`--systemd-cgroup`), kept in the state.
    fn systemd_unit(&self) -> Option<String> {
        None
    }
    /// Makes the directories (and on v2 enables the controllers on the way down), each one
    /// recorded in `made` as soon as it exists, so that a failure half-way (in a later
    /// hierarchy, a later level) can remove exactly what this create made.
    fn create(&self, made: &mut Made) -> Result<()>;
    /// How the container's first process gets into the cgroup: born in it, moving itself, or
    /// moved by the parent ([`Entry`]).
    fn entry(&self) -> Result<Entry>;
    fn join(&self, pid: i32) -> Result<()>;
    /// Writes what `r` sets; fields left unset are left as they are (so `update` passes only
    /// what changes). `devices` are the complete rule list, kiln's defaults included.
    fn set(&self, r: &LinuxResources) -> Result<()>;
    /// The part of `set` that changes nothing in the cgroup, done ahead while init sets itself
    /// up: on v2, loading the device program (the kernel's verifier), which `set` then attaches.
    fn preload(&self, _r: &LinuxResources) -> Result<()> {
        Ok(())
    }
    /// Every process in the cgroup and below it.
    fn pids(&self) -> Result<Vec<i32>>;
    fn freeze(&self, frozen: bool) -> Result<()>;
    /// Stopped by a freezer, the container's own or one inherited from a parent: a process
    /// put there would block (`create` refuses such a cgroup).
    fn frozen(&self) -> bool;
    /// Paused, as the container's status reports it: its own freezer is set (runc's rule: v1's
    /// `freezer.self_freezing`, v2's `cgroup.freeze`). A container frozen through its parent
    /// was not paused, `resume` cannot thaw it, and runc calls it running. On v2 one file, for
    /// `list` to read per container.
    fn paused(&self) -> bool {
        self.frozen()
    }
    /// SIGKILL to every process, and wait (bounded) until none is left.
    fn kill_all(&self) -> Result<()>;
    /// Removes the directories (of every hierarchy); they must be empty.
    fn remove(&self) -> Result<()> {
        self.paths().values().try_for_each(|dir| remove_tree(dir))
    }
    /// Undoes a failed create: what `made` holds, and whatever else the manager started
    /// (the systemd unit).
    fn release(&self, made: &mut Made) -> Result<()> {
        made.remove()
    }
    fn stats(&self) -> Result<Stats>;
    /// An fd that becomes readable (poll) when the kernel may have OOM-killed in the cgroup,
    /// and the running count of OOM kills to compare after each wake-up.
    fn oom_watch(&self) -> Result<Box<dyn OomWatch>>;
}

pub trait OomWatch {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
    /// The poll event to wait for (POLLIN for an eventfd, POLLPRI for a kernfs file).
    fn events(&self) -> nix::poll::PollFlags;
    /// How many OOM events happened since the watch began; consumes the wake-up.
    fn count(&mut self) -> u64;
}

/// How a container's process enters its cgroup, where the layout allows the cheapest way: init,
/// and an exec'd process past its second fork. None of the three leaves it outside: it is in
/// every hierarchy before it does anything of the container's.
pub enum Entry {
    /// clone3(CLONE_INTO_CGROUP) into this directory places it in its whole cgroup (v2).
    Born(OwnedFd),
    /// It moves itself into the v1 hierarchies first thing ([`Tasks::enter`]), after clone3
    /// placed it in this unified one where there is one (hybrid).
    Itself(Option<OwnedFd>, Tasks),
    /// The parent moves it by pid ([`Manager::join`]): systemd starts its unit with the pid;
    /// a delegated v1 cgroup may let the user write only `cgroup.procs`.
    Parent,
}

/// The `tasks` file of each v1 hierarchy of a container, opened for writing by the parent: the
/// kernel checks a v1 move against the credentials the file was opened with, so the child may
/// write it even from a user namespace with no mapping yet.
///
/// Why the child, and "0" to `tasks`: a write by pid to `cgroup.procs` moves a thread group and
/// takes the global threadgroup lock for writing, which (nobody else holding it) waits out an
/// RCU grace period: 7-16 ms on this project's hybrid host, the largest single cost of a
/// `create` there, and the new process can only wait for it. A process moving its own (only)
/// thread needs no such lock (this host's 6.18 skips it; a kernel that takes it is as slow as
/// before, never wrong): 0.05 ms per hierarchy.
pub struct Tasks(Vec<(PathBuf, std::fs::File)>);

impl Tasks {
    /// Opens `tasks` in each of `dirs`; None if one cannot be opened (a delegated cgroup whose
    /// `tasks` file is not the user's): the parent joins by pid then, and a missing directory
    /// gets its error there.
    fn open<'a>(dirs: impl Iterator<Item = &'a PathBuf>) -> Option<Tasks> {
        dirs.map(|d| {
            let path = d.join("tasks");
            let f = std::fs::OpenOptions::new().write(true).open(&path).ok()?;
            Some((path, f))
        })
        .collect::<Option<Vec<_>>>()
        .map(Tasks)
    }

    /// Moves the calling thread, the whole of a single-threaded process, into every hierarchy,
    /// and closes the files: nothing the container runs later reaches the host's cgroups
    /// through them.
    pub fn enter(self) -> Result<()> {
        for (path, mut f) in self.0 {
            std::io::Write::write_all(&mut f, b"0")
                .ctx(|| format!("joining cgroup: writing 0 to {}", path.display()))?;
        }
        Ok(())
    }
}

/// The hierarchies this process sees, each with its own cgroup in it: /proc/self/mountinfo says
/// where they are mounted, /proc/self/cgroup where we are in each.
pub fn hierarchies() -> std::io::Result<Vec<Hierarchy>> {
    Ok(layout::hierarchies(
        &crate::procfs::mountinfo()?,
        &crate::procfs::cgroup()?,
    ))
}

/// What `create` asks for: the container, its cgroupsPath, whether systemd manages it, and
/// whether kiln runs rootless (`--rootless`), with the resources it will set and the
/// annotations (systemd unit properties among them).
pub struct Request<'a> {
    pub id: &'a str,
    pub cgroups_path: Option<&'a Path>,
    pub systemd: bool,
    pub rootless: bool,
    pub resources: &'a LinuxResources,
    pub annotations: &'a BTreeMap<String, String>,
}

/// The manager for a new container, on whatever layout this host has.
pub fn new(req: &Request, all: &[Hierarchy]) -> Result<Box<dyn Manager>> {
    if req.systemd {
        return systemd::new(req, all);
    }
    let mut paths = layout::paths(all, req.cgroups_path, req.id);
    if paths.is_empty() {
        return Err(Error::Cgroup {
            field: "linux.cgroupsPath".into(),
            msg: "no cgroup hierarchy is mounted on this host".into(),
        });
    }
    let explicit = req.cgroups_path.is_some_and(|p| !p.as_os_str().is_empty());
    if req.rootless && !explicit {
        delegated_only(&mut paths, req.resources)?;
    }
    Ok(from_paths(paths))
}

/// Rootless without a cgroupsPath, as runc: the container gets its cgroup in each hierarchy
/// where its user may make it (delegated to it), and none in the others. Limits cannot be
/// kept without the cgroups that enforce them: then it fails. With an explicit cgroupsPath the
/// user asked for that cgroup, and a permission error is the answer (as runc).
fn delegated_only(paths: &mut Paths, resources: &LinuxResources) -> Result<()> {
    let denied: Vec<PathBuf> = paths.values().filter(|d| !can_create(d)).cloned().collect();
    let Some(first) = denied.first() else {
        return Ok(());
    };
    if requests_limits(resources) {
        return Err(Error::Cgroup {
            field: "linux.resources".into(),
            msg: format!(
                "rootless: limits need a cgroup, and uid {} may not create {} (not delegated); remove the limits or delegate the cgroup",
                nix::unistd::geteuid(),
                first.display()
            ),
        });
    }
    crate::log::debug(|| format!("rootless: no cgroup in {denied:?} (not writable by this user)"));
    paths.retain(|_, d| !denied.contains(d));
    Ok(())
}

/// The directory exists and we may move processes into it, or its nearest existing ancestor is
/// writable so that we may make it. Checked for the effective ids, which are what the writes
/// will use.
fn can_create(dir: &Path) -> bool {
    use nix::unistd::{AccessFlags, faccessat};
    let allowed =
        |p: &Path, mode| faccessat(None, p, mode, nix::fcntl::AtFlags::AT_EACCESS).is_ok();
    if dir.is_dir() {
        return allowed(&dir.join("cgroup.procs"), AccessFlags::W_OK);
    }
    dir.ancestors()
        .skip(1)
        .find(|a| a.is_dir())
        .is_some_and(|a| allowed(a, AccessFlags::W_OK | AccessFlags::X_OK))
}

/// Whether `r` asks for anything a cgroup enforces. Device rules do not count: they are not set
/// rootless (a user namespace cannot make devices, only bind-mount ones its user may open).
fn requests_limits(r: &LinuxResources) -> bool {
    let mut r = r.clone();
    r.set_devices(None);
    r != LinuxResources::default()
}

/// The manager of an existing container, from what `create` recorded: its paths, and its
/// systemd unit where systemd holds the cgroup.
pub fn open(paths: Paths, systemd_unit: Option<String>) -> Box<dyn Manager> {
    match systemd_unit {
        Some(unit) => systemd::existing(unit, paths),
        None => from_paths(paths),
    }
}

/// The cgroupfs manager of `paths`; none means a rootless container without a cgroup.
pub fn from_paths(paths: Paths) -> Box<dyn Manager> {
    let v2 = paths.get("").cloned();
    let v1: Paths = paths.into_iter().filter(|(k, _)| !k.is_empty()).collect();
    match (v1.is_empty(), v2) {
        (true, Some(dir)) => Box::new(v2::V2::new(dir)),
        (false, Some(dir)) => Box::new(hybrid::Hybrid::new(v1::V1::new(v1), v2::V2::new(dir))),
        (false, None) => Box::new(v1::V1::new(v1)),
        (true, None) => Box::new(none::NoCgroup),
    }
}

/// `exec --cgroup`: the container's cgroups with an existing sub-cgroup for the process, in
/// runc's format: `path` for every hierarchy, or `ctrl[,ctrl...]:path` for those named (the
/// flag may repeat). A path that climbs out of the container's cgroup is refused, as runc
/// refuses it, rather than clamped to somewhere the user did not name.
pub fn sub_paths(mut paths: Paths, specs: &[String]) -> Result<Paths> {
    for spec in specs {
        let err = |msg: String| Error::Cgroup {
            field: format!("--cgroup {spec:?}"),
            msg,
        };
        let (keys, sub): (Vec<String>, &str) = match spec.split_once(':') {
            Some((ctrls, sub)) => (
                ctrls
                    .split(',')
                    .map(|c| {
                        if c == "unified" {
                            String::new()
                        } else {
                            c.to_owned()
                        }
                    })
                    .collect(),
                sub,
            ),
            None => (paths.keys().cloned().collect(), spec.as_str()),
        };
        let Some(sub) = layout::below(Path::new(sub)) else {
            return Err(err(format!(
                "{sub:?} is not a sub cgroup path: it leaves the container's cgroup"
            )));
        };
        for key in keys {
            let dir = paths
                .get_mut(&key)
                .ok_or_else(|| err(format!("the container has no {key:?} cgroup")))?;
            *dir = dir.join(&sub);
            if !dir.is_dir() {
                return Err(err(format!(
                    "{} does not exist (exec runs in an existing sub-cgroup)",
                    dir.display()
                )));
            }
        }
    }
    Ok(paths)
}

/// The resources a new container's cgroup gets: config.json's, with the device rules completed
/// (deny first, the config's, kiln's defaults). Rootless, without device rules: runc ignores
/// them there, a delegated v1 devices cgroup or a v2 device program needing the real root.
pub fn resources(spec: &oci_spec::runtime::Spec, rootless: bool) -> Result<LinuxResources> {
    let mut r = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let rules = devices::rules(r.devices().as_deref().unwrap_or_default())?;
    r.set_devices((!rootless).then_some(rules));
    Ok(r)
}

/// The cgroup directories one `create` made, outermost first. A failed create removes these
/// and only these: a cgroup that existed before (a pod cgroup a client made, a cgroupsPath the
/// user prepared) is not ours to remove.
#[derive(Default)]
pub struct Made(Vec<PathBuf>);

impl Made {
    /// Makes `dir` and the missing levels above it, top down, recording each.
    fn mkdir_all(&mut self, dir: &Path) -> Result<()> {
        let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
        missing.into_iter().rev().try_for_each(|d| self.mkdir(d))
    }

    /// Makes one level; one that exists already (made meanwhile by someone else) is not ours.
    fn mkdir(&mut self, dir: &Path) -> Result<()> {
        match std::fs::create_dir(dir) {
            Ok(()) => {
                self.0.push(dir.to_path_buf());
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e).ctx(|| format!("creating cgroup {}", dir.display())),
        }
    }

    /// Removes what was made, deepest first; every directory is tried, the first error kept.
    pub fn remove(&mut self) -> Result<()> {
        let mut first = Ok(());
        while let Some(dir) = self.0.pop() {
            if let (Err(e), Ok(())) = (remove_tree(&dir), &first) {
                first = Err(e);
            }
        }
        first
    }
}

/// As runc's `Create`: the container's cgroup may exist already, but must hold no process (two
/// containers in one cgroup could not be told apart by `ps`, `kill --all`, `delete`) and must
/// not be frozen (init would block in it). Checked once the directories exist, so that a
/// freezer inherited from a frozen parent counts too.
pub fn check_usable(m: &dyn Manager) -> Result<()> {
    let field = || "linux.cgroupsPath".to_owned();
    let paths = m.paths();
    // A systemd unit's directories come later, with the unit (systemd refuses one that
    // exists): there is nothing to check yet.
    for dir in paths.values().filter(|d| d.exists()) {
        let pids = pids_below(dir)?;
        if !pids.is_empty() {
            return Err(Error::Cgroup {
                field: field(),
                msg: format!(
                    "container's cgroup is not empty: {} process(es) found in {}; give each container a cgroup of its own (another linux.cgroupsPath), or stop what runs there first",
                    pids.len(),
                    dir.display()
                ),
            });
        }
    }
    if m.frozen() {
        let freezer = paths
            .iter()
            .find(|(k, _)| k.split(',').any(|c| c == "freezer"))
            .or_else(|| paths.get_key_value(""))
            .map(|(_, d)| d.display().to_string())
            .unwrap_or_default();
        return Err(Error::Cgroup {
            field: field(),
            msg: format!(
                "container's cgroup unexpectedly frozen: {freezer} (or a cgroup above it) is frozen; thaw it, or choose another linux.cgroupsPath"
            ),
        });
    }
    Ok(())
}

/// Whether `--systemd-cgroup` can work here: systemd runs (its own test, sd_booted).
pub fn systemd_running() -> bool {
    systemd::running()
}

/// The layouts kiln can manage here, for `features`: (v1, v2).
pub fn supported() -> (bool, bool) {
    let all = hierarchies().unwrap_or_default();
    (
        all.iter().any(|h| !h.is_v2()),
        all.iter().any(Hierarchy::is_v2),
    )
}

// ------------------------------------------------------------------ shared file helpers

/// Writes one cgroup file, with an error that names the spec field, the value and the file.
fn write(field: &str, path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| Error::Cgroup {
        field: field.to_owned(),
        msg: format!("writing {value:?} to {}: {e}", path.display()),
    })
}

/// A cgroup file of one value or a few keyed ones (every file read this way is one the kernel
/// writes whole at the first read; `cgroup.procs`, a record per process, is not one): one
/// open, one read, one close, as `list` reads the freezer of every container.
fn read(path: &Path) -> Result<String> {
    let mut text =
        crate::procfs::read_single(path).ctx(|| format!("reading {}", path.display()))?;
    text.truncate(text.trim_end().len());
    Ok(text)
}

/// Carries out a resource plan. `dir_of` finds the directory of a controller, or says why it
/// is not there (not mounted, not enabled).
fn execute(
    writes: &[resources::Write],
    dir_of: impl Fn(&str) -> std::result::Result<PathBuf, String>,
) -> Result<()> {
    use resources::Need;
    let mut retry: Option<(&resources::Write, PathBuf, String)> = None;
    for w in writes {
        let dir = match dir_of(w.controller) {
            Ok(d) => d,
            Err(why) => {
                return Err(Error::Cgroup {
                    field: w.field.clone(),
                    msg: why,
                });
            }
        };
        let Some((file, value)) = w.choices.iter().find(|(f, _)| dir.join(f).exists()) else {
            if w.need == Need::IfExists {
                crate::log::debug(|| {
                    format!("{}: skipped, the kernel has no {}", w.field, w.choices[0].0)
                });
                continue;
            }
            let files: Vec<&str> = w.choices.iter().map(|(f, _)| f.as_str()).collect();
            return Err(Error::Cgroup {
                field: w.field.clone(),
                msg: format!(
                    "this kernel does not support it: no {} in {}",
                    files.join(" or "),
                    dir.display()
                ),
            });
        };
        let path = dir.join(file);
        match std::fs::write(&path, value) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && w.need == Need::RetryAfterNext => {
                retry = Some((w, path, value.clone()));
                continue;
            }
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && file.starts_with("memory.")
                    && file.ends_with("limit_in_bytes") =>
            {
                return Err(below_usage(&w.field, &dir, file, value));
            }
            r => r.map_err(|e| Error::Cgroup {
                field: w.field.clone(),
                msg: format!("writing {value:?} to {}: {e}", path.display()),
            })?,
        }
        if let Some((w, path, value)) = retry.take() {
            write(&w.field, &path, &value)?;
        }
    }
    match retry {
        Some((w, path, value)) => write(&w.field, &path, &value),
        None => Ok(()),
    }
}

/// v1 refuses a memory (or memory+swap) limit it cannot reclaim down to with EBUSY: say why,
/// in runc's words.
fn below_usage(field: &str, dir: &Path, file: &str, limit: &str) -> Error {
    let usage = stats::num(dir, &file.replace("limit_in_bytes", "usage_in_bytes"));
    let peak = stats::num(dir, &file.replace("limit_in_bytes", "max_usage_in_bytes"));
    Error::Cgroup {
        field: field.to_owned(),
        msg: format!(
            "unable to set memory limit to {limit} (current usage: {usage}, peak usage: {peak}): the kernel cannot reclaim the container's memory below it; give a higher limit"
        ),
    }
}

/// `checkBeforeUpdate`: a new memory limit below what the cgroup already uses is refused
/// instead of making the kernel reclaim or OOM-kill.
fn check_memory_usage(r: &LinuxResources, usage: impl FnOnce() -> u64) -> Result<()> {
    let Some(m) = r.memory() else { return Ok(()) };
    let Some(limit) = m
        .limit()
        .filter(|&l| l > 0 && m.check_before_update() == Some(true))
    else {
        return Ok(());
    };
    let used = usage();
    if (limit as u64) < used {
        return Err(Error::Cgroup {
            field: "linux.resources.memory.limit".into(),
            msg: format!("{limit} is below the current usage {used} (checkBeforeUpdate)"),
        });
    }
    Ok(())
}

/// Every pid in `cgroup.procs` of `dir` and of the cgroups below it.
fn pids_below(dir: &Path) -> Result<Vec<i32>> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        // A record per process: many of them fill more than one read.
        let path = d.join("cgroup.procs");
        let procs =
            crate::procfs::read_records(&path).ctx(|| format!("reading {}", path.display()))?;
        out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        for e in std::fs::read_dir(&d)
            .ctx(|| format!("reading {}", d.display()))?
            .flatten()
        {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// SIGKILL to every process below `dir`, then waits (bounded) until each has finished
/// (`sys::wait_exit`). Repeated until none is listed, for the processes forked meanwhile and
/// those still short of leaving the cgroup in their exit.
fn kill_pids(dir: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + SETTLE;
    let still_alive = || Error::Cgroup {
        field: "cgroup".into(),
        msg: format!(
            "processes in {} still alive {}s after SIGKILL",
            dir.display(),
            SETTLE.as_secs()
        ),
    };
    loop {
        let pids = pids_below(dir)?;
        if pids.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(still_alive());
        }
        let fds: Vec<(i32, OwnedFd)> = pids
            .iter()
            .filter_map(|&p| Some((p, crate::sys::pidfd_open(p).ok()?)))
            .collect();
        for (_, fd) in &fds {
            let _ = crate::sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(fd), libc::SIGKILL);
        }
        for (pid, fd) in &fds {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !crate::sys::wait_exit(std::os::fd::AsFd::as_fd(fd), *pid, left) {
                return Err(still_alive());
            }
        }
    }
}

/// Removes `dir` and the cgroups below it, deepest first. A cgroup whose last process just
/// exited can refuse rmdir for a moment (EBUSY) until the kernel has unlinked it; that wait is
/// bounded.
fn remove_tree(dir: &Path) -> Result<()> {
    // A container's cgroup rarely has cgroups below it: one rmdir, and no walk, is the usual way.
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let mut dirs = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
        dirs.push(d);
    }
    let deadline = std::time::Instant::now() + SETTLE;
    for d in dirs.iter().rev() {
        let mut pause = Duration::from_millis(1);
        loop {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        && std::time::Instant::now() < deadline =>
                {
                    // The kernel sends no notification for this; back off, bounded by SETTLE.
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(e).ctx(|| format!("removing cgroup {}", d.display())),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rules_are_no_limits() {
        let mut r = LinuxResources::default();
        assert!(!requests_limits(&r));
        r.set_devices(Some(vec![]));
        assert!(!requests_limits(&r));
        r.set_pids(Some(
            oci_spec::runtime::LinuxPidsBuilder::default()
                .limit(10)
                .build()
                .unwrap(),
        ));
        assert!(requests_limits(&r));
    }
}
