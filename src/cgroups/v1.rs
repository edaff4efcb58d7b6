//! cgroup v1: one directory per hierarchy. Each controller is found in the hierarchy that
//! carries it (`cpu` in `cpu,cpuacct` on some hosts, alone on others).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use super::{
    Entry, Made, Manager, OomWatch, Paths, SETTLE, Stats, Tasks, devices, resources, stats,
};
use crate::error::{Context, Error, Result};

pub struct V1 {
    dirs: Paths,
}

impl V1 {
    pub fn new(dirs: Paths) -> V1 {
        V1 { dirs }
    }

    pub fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(k, _)| k.split(',').any(|c| c == controller))
            .map(|(_, d)| d.as_path())
    }

    pub fn has(&self, controller: &str) -> bool {
        self.dir(controller).is_some()
    }

    /// The `tasks` files for the child to move itself into every hierarchy (`Tasks`).
    pub fn tasks(&self) -> Option<Tasks> {
        Tasks::open(self.dirs.values())
    }

    /// A directory every container process is in, to list them from.
    fn any_dir(&self) -> Option<&Path> {
        ["freezer", "pids", "memory", "name=systemd"]
            .iter()
            .find_map(|c| self.dir(c))
            .or_else(|| self.dirs.values().next().map(PathBuf::as_path))
    }

    /// A cpuset cgroup starts with no CPUs and no memory nodes, and no process can join it so;
    /// nor can a child be given any that its parent lacks. As runc's cpusetEnsureParent: every
    /// level from the hierarchy's root down is made if missing and, where empty (a new level,
    /// or a pod cgroup a client made and left empty), filled from its parent.
    fn create_cpuset(dir: &Path, made: &mut Made) -> Result<()> {
        // The levels below the hierarchy's root: those whose parent is (or will be) a cpuset
        // cgroup too.
        let mut levels: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| {
                d.parent()
                    .is_some_and(|p| !p.exists() || p.join("cpuset.cpus").exists())
            })
            .collect();
        levels.reverse();
        match levels.first().and_then(|l| l.parent()) {
            Some(root) if root.exists() => {}
            // The hierarchy's root itself (cgroupsPath "/"): always filled.
            None if dir.exists() => return Ok(()),
            _ => {
                return Err(Error::Cgroup {
                    field: "linux.cgroupsPath".into(),
                    msg: format!("{}: no cpuset hierarchy above it", dir.display()),
                });
            }
        }
        for level in levels {
            made.mkdir(level)?;
            let parent = level.parent().expect("below the hierarchy's root");
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if super::read(&level.join(file))?.is_empty() {
                    super::write(
                        "linux.cgroupsPath",
                        &level.join(file),
                        &super::read(&parent.join(file))?,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// v1's freezer has no completion event: the state file moves from FREEZING to FROZEN
    /// when every task stopped. Re-read with a short backoff, bounded.
    fn wait_freezer(dir: &Path, want: &str) -> Result<()> {
        let deadline = Instant::now() + SETTLE;
        let mut pause = Duration::from_micros(100);
        loop {
            let now = super::read(&dir.join("freezer.state"))?;
            if now == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Cgroup {
                    field: "freezer".into(),
                    msg: format!(
                        "{} is still {now} after {}s",
                        dir.display(),
                        SETTLE.as_secs()
                    ),
                });
            }
            // Writing again nudges tasks that were forking during the first attempt.
            super::write("freezer", &dir.join("freezer.state"), want)?;
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}

impl resources::Current for V1 {
    fn memory_limit(&self) -> Option<i64> {
        let d = self.dir("memory")?;
        std::fs::read_to_string(d.join("memory.limit_in_bytes"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Manager for V1 {
    fn paths(&self) -> Paths {
        self.dirs.clone()
    }

    fn create(&self, made: &mut Made) -> Result<()> {
        for (key, dir) in &self.dirs {
            if key.split(',').any(|c| c == "cpuset") {
                Self::create_cpuset(dir, made)?;
            } else {
                made.mkdir_all(dir)?;
            }
        }
        Ok(())
    }

    fn entry(&self) -> Result<Entry> {
        Ok(self
            .tasks()
            .map_or(Entry::Parent, |t| Entry::Itself(None, t)))
    }

    fn join(&self, pid: i32) -> Result<()> {
        for dir in self.dirs.values() {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .ctx(|| format!("joining cgroup: writing {pid} to {}", procs.display()))?;
        }
        Ok(())
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::Cgroup {
                field: "linux.resources.unified".into(),
                msg: "needs cgroup v2, and this host has only cgroup v1".into(),
            });
        }
        super::check_memory_usage(r, || {
            self.dir("memory")
                .map_or(0, |d| stats::num(d, "memory.usage_in_bytes"))
        })?;
        let plan = resources::v1(r, self).map_err(|(field, msg)| Error::Cgroup { field, msg })?;
        super::execute(&plan, |c| {
            self.dir(c)
                .map(Path::to_path_buf)
                .ok_or_else(|| format!("the {c} controller is not mounted on this host"))
        })?;
        if let Some(rules) = r.devices() {
            let dir = self.dir("devices").ok_or_else(|| Error::Cgroup {
                field: "linux.resources.devices".into(),
                msg: "the devices controller is not mounted on this host".into(),
            })?;
            for (file, line) in devices::v1_writes(rules) {
                super::write("linux.resources.devices", &dir.join(file), &line)?;
            }
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        self.any_dir().map_or(Ok(vec![]), super::pids_below)
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        let dir = self.dir("freezer").ok_or_else(|| Error::Cgroup {
            field: "freezer".into(),
            msg: "the freezer controller is not mounted on this host".into(),
        })?;
        let want = if frozen { "FROZEN" } else { "THAWED" };
        super::write("freezer", &dir.join("freezer.state"), want)?;
        Self::wait_freezer(dir, want)
    }

    fn frozen(&self) -> bool {
        // freezer.state is the effective state: a parent's freeze shows in it too.
        self.dir("freezer")
            .is_some_and(|d| super::read(&d.join("freezer.state")).is_ok_and(|s| s != "THAWED"))
    }

    fn paused(&self) -> bool {
        // Frozen or freezing, and by this cgroup's own freezer.state (self_freezing, as runc
        // asks; a kernel without the file is taken at freezer.state's word).
        self.frozen()
            && self.dir("freezer").is_some_and(|d| {
                super::read(&d.join("freezer.self_freezing")).map_or(true, |s| s != "0")
            })
    }

    fn kill_all(&self) -> Result<()> {
        let Some(dir) = self.any_dir().filter(|d| d.exists()) else {
            return Ok(());
        };
        // Frozen, no process can fork a new one between listing and killing; a frozen process
        // dies only once thawed.
        let froze = self.dir("freezer").is_some() && self.freeze(true).is_ok();
        let fds: Vec<OwnedFd> = super::pids_below(dir)?
            .into_iter()
            .filter_map(|p| crate::sys::pidfd_open(p).ok())
            .collect();
        for fd in &fds {
            let _ = crate::sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
        }
        if froze {
            self.freeze(false)?;
        }
        super::kill_pids(dir)
    }

    fn stats(&self) -> Result<Stats> {
        Ok(Stats {
            cpu: stats::cpu_v1(self.dir("cpu"), self.dir("cpuacct")),
            cpuset: self.dir("cpuset").map(stats::cpuset).unwrap_or_default(),
            memory: self.dir("memory").map(stats::memory_v1).unwrap_or_default(),
            pids: self.dir("pids").map(stats::pids).unwrap_or_default(),
            blkio: self.dir("blkio").map(stats::blkio_v1).unwrap_or_default(),
            hugetlb: self
                .dir("hugetlb")
                .map(|d| stats::hugetlb(d, false))
                .unwrap_or_default(),
            ..Default::default()
        })
    }

    fn oom_watch(&self) -> Result<Box<dyn OomWatch>> {
        let dir = self.dir("memory").ok_or_else(|| Error::Cgroup {
            field: "memory".into(),
            msg: "the memory controller is not mounted on this host".into(),
        })?;
        let control = std::fs::File::open(dir.join("memory.oom_control"))
            .ctx(|| format!("opening {}/memory.oom_control", dir.display()))?;
        let efd = nix::sys::eventfd::EventFd::from_flags(
            nix::sys::eventfd::EfdFlags::EFD_CLOEXEC | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK,
        )
        .ctx(|| "eventfd")?;
        // v1's OOM notification: register the eventfd for memory.oom_control; the kernel
        // signals it on every OOM in the cgroup (and once when the cgroup is removed).
        let line = format!("{} {}", efd.as_fd().as_raw_fd(), control.as_raw_fd());
        super::write("memory", &dir.join("cgroup.event_control"), &line)?;
        Ok(Box::new(EventFdWatch {
            efd,
            _control: control,
            count: 0,
            dir: dir.to_path_buf(),
        }))
    }
}

struct EventFdWatch {
    efd: nix::sys::eventfd::EventFd,
    _control: std::fs::File,
    count: u64,
    dir: PathBuf,
}

impl OomWatch for EventFdWatch {
    fn fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }

    fn events(&self) -> nix::poll::PollFlags {
        nix::poll::PollFlags::POLLIN
    }

    fn count(&mut self) -> u64 {
        if self.efd.read().is_ok() && self.dir.exists() {
            // The eventfd also fires when the cgroup goes away: only an existing cgroup OOMed.
            self.count += 1;
        }
        self.count
    }
}
