//! cgroup v2: one directory in the unified hierarchy. Controllers must be enabled in every
//! ancestor's `cgroup.subtree_control`; the kernel then offers their files in ours.

use std::cell::Cell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use oci_spec::runtime::LinuxResources;

use super::{Entry, Made, Manager, OomWatch, Paths, SETTLE, Stats, resources, stats};
use crate::error::{Context, Error, Result};

pub struct V2 {
    dir: PathBuf,
    /// The device program `preload` made for `set` to attach.
    preloaded: Cell<Option<super::ebpf::Loaded>>,
}

impl V2 {
    pub fn new(dir: PathBuf) -> V2 {
        V2 {
            dir,
            preloaded: Cell::new(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The controllers our cgroup can use: those its parent enabled for it.
    fn controllers(&self) -> Vec<String> {
        super::read(&self.dir.join("cgroup.controllers"))
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn dir_for(
        &self,
        controller: &str,
        available: &[String],
    ) -> std::result::Result<PathBuf, String> {
        if available.iter().any(|c| c == controller) {
            Ok(self.dir.clone())
        } else {
            Err(format!(
                "the {controller} controller is not available in {} (cgroup.controllers: {})",
                self.dir.display(),
                available.join(" ")
            ))
        }
    }

    /// Writes the resources of the unified hierarchy only: the plan minus what `skip` says v1
    /// has (on a hybrid host), then `unified` and the device filter.
    pub fn set_filtered(&self, r: &LinuxResources, devices: bool) -> Result<()> {
        let available = self.controllers();
        super::check_memory_usage(r, || stats::num(&self.dir, "memory.current"))?;
        let plan = resources::v2(r).map_err(|(field, msg)| Error::Cgroup { field, msg })?;
        super::execute(&plan, |c| self.dir_for(c, &available))?;
        self.set_unified(r, &available)?;
        if let (true, Some(rules)) = (devices, r.devices()) {
            let fd = self.open_dir()?;
            super::ebpf::apply(fd.as_fd(), rules, self.preloaded.take())
                .map_err(|e| self.devices_error(e))?;
        }
        Ok(())
    }

    fn devices_error(&self, e: std::io::Error) -> Error {
        Error::Cgroup {
            field: "linux.resources.devices".into(),
            msg: format!("{}: {e}", self.dir.display()),
        }
    }

    /// `unified`: written as given, each key checked against the controllers this cgroup has,
    /// so that a typo is an error naming the key rather than a bare ENOENT.
    pub fn set_unified(&self, r: &LinuxResources, available: &[String]) -> Result<()> {
        let mut keys: Vec<_> = r.unified().iter().flatten().collect();
        keys.sort();
        for (key, value) in keys {
            let field = format!("linux.resources.unified.{key}");
            let controller = key.split('.').next().unwrap_or_default();
            if key.contains('/') || key.starts_with('.') {
                return Err(Error::Cgroup {
                    field,
                    msg: "not a cgroup file name".into(),
                });
            }
            if controller != "cgroup" && !available.iter().any(|c| c == controller) {
                return Err(Error::Cgroup {
                    field,
                    msg: format!(
                        "the {controller} controller is not available in {} (cgroup.controllers: {})",
                        self.dir.display(),
                        available.join(" ")
                    ),
                });
            }
            let path = self.dir.join(key);
            if !path.exists() {
                return Err(Error::Cgroup {
                    field,
                    msg: format!("{} does not exist", path.display()),
                });
            }
            super::write(&field, &path, value)?;
        }
        Ok(())
    }

    pub(super) fn open_dir(&self) -> Result<OwnedFd> {
        std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&self.dir)
            .map(Into::into)
            .ctx(|| format!("opening cgroup {}", self.dir.display()))
    }

    /// Waits (bounded) until `cgroup.events` says `key value`. The kernel signals every change
    /// of that file as POLLPRI, so this sleeps in poll, not in a loop.
    fn wait_event(&self, key: &str, value: &str) -> Result<()> {
        let path = self.dir.join("cgroup.events");
        let file = std::fs::File::open(&path).ctx(|| format!("opening {}", path.display()))?;
        let deadline = Instant::now() + SETTLE;
        loop {
            let events = reread(&file);
            if events.is_empty() && !self.dir.exists() {
                return Ok(());
            }
            if keyed_value(&events, key) == Some(value) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Cgroup {
                    field: "cgroup".into(),
                    msg: format!(
                        "{}: {key} is not {value} after {}s",
                        self.dir.display(),
                        SETTLE.as_secs()
                    ),
                });
            }
            let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLPRI)];
            let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX);
            match nix::poll::poll(&mut fds, ms) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Error::os(format!("polling {}", path.display()), e)),
            }
        }
    }
}

impl resources::Current for V2 {
    fn memory_limit(&self) -> Option<i64> {
        None
    }
}

impl Manager for V2 {
    fn paths(&self) -> Paths {
        Paths::from([(String::new(), self.dir.clone())])
    }

    fn create(&self, made: &mut Made) -> Result<()> {
        // Enable, in each ancestor below the hierarchy's root, every controller it has, so that
        // they reach our cgroup. The root's subtree_control is the host's business.
        // The levels that do not exist yet count too: made below, they need the controllers of
        // their parents enabled as much as the existing ones (a nested new cgroupsPath).
        let mut above = self.dir.ancestors().skip(1).peekable();
        let mut ancestors: Vec<&Path> =
            std::iter::from_fn(|| above.next_if(|a| !a.exists())).collect();
        ancestors.extend(above.take_while(|a| a.join("cgroup.subtree_control").exists()));
        ancestors.reverse();
        for (i, dir) in ancestors.iter().enumerate() {
            if i > 0 {
                made.mkdir(dir)?;
            }
            let has = super::read(&dir.join("cgroup.controllers")).unwrap_or_default();
            let enabled = super::read(&dir.join("cgroup.subtree_control")).unwrap_or_default();
            for c in has
                .split_whitespace()
                .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            {
                // One at a time: a controller the parent cannot give (a threaded subtree, a
                // process in an inner node) must not keep the others from being enabled. A
                // resource that then needs it fails with the field's name.
                if let Err(e) = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"))
                {
                    crate::log::debug(|| format!("enabling {c} in {}: {e}", dir.display()));
                }
            }
        }
        made.mkdir_all(&self.dir)
    }

    fn entry(&self) -> Result<Entry> {
        self.open_dir().map(Entry::Born)
    }

    fn join(&self, pid: i32) -> Result<()> {
        let procs = self.dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .ctx(|| format!("joining cgroup: writing {pid} to {}", procs.display()))
    }

    /// The device program of `r`, loaded now for `set_filtered` to attach.
    fn preload(&self, r: &LinuxResources) -> Result<()> {
        if let Some(rules) = r.devices() {
            let loaded = super::ebpf::Loaded::new(rules).map_err(|e| self.devices_error(e))?;
            self.preloaded.set(Some(loaded));
        }
        Ok(())
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        self.set_filtered(r, true)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        super::pids_below(&self.dir)
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        let value = if frozen { "1" } else { "0" };
        super::write("cgroup.freeze", &self.dir.join("cgroup.freeze"), value)?;
        self.wait_event("frozen", value)
    }

    fn frozen(&self) -> bool {
        // cgroup.events also says frozen when an ancestor is, and then our processes are just
        // as stopped.
        self.paused()
            || super::read(&self.dir.join("cgroup.events"))
                .is_ok_and(|e| keyed_value(&e, "frozen") == Some("1"))
    }

    fn paused(&self) -> bool {
        // This cgroup's own wish, set by `pause` (frozen or still freezing).
        super::read(&self.dir.join("cgroup.freeze")).is_ok_and(|v| v == "1")
    }

    fn kill_all(&self) -> Result<()> {
        // Asked first: a cgroup gone has nothing to kill, and neither has one already empty,
        // which is how `run` and `delete` find a container whose init (and with it its pid
        // namespace) has died.
        match crate::procfs::read_single(self.dir.join("cgroup.events")) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Ok(events) if keyed_value(&events, "populated") == Some("0") => return Ok(()),
            _ => {}
        }
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() {
            // One write kills the whole subtree, forks in flight included.
            super::write("cgroup.kill", &kill, "1")?;
            return self.wait_event("populated", "0");
        }
        super::kill_pids(&self.dir)
    }

    fn stats(&self) -> Result<Stats> {
        let d = &self.dir;
        Ok(Stats {
            cpu: stats::cpu_v2(d),
            memory: stats::memory_v2(d),
            pids: stats::pids(d),
            blkio: stats::io_v2(d),
            hugetlb: stats::hugetlb(d, true),
            ..Default::default()
        })
    }

    fn oom_watch(&self) -> Result<Box<dyn OomWatch>> {
        let path = self.dir.join("memory.events");
        let file = std::fs::File::open(&path).ctx(|| format!("opening {}", path.display()))?;
        let base = keyed_value(&reread(&file), "oom_kill")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Box::new(EventsWatch { file, base }))
    }
}

/// v2 OOM: `memory.events` changes (POLLPRI) and its `oom_kill` counter grows.
struct EventsWatch {
    file: std::fs::File,
    base: u64,
}

impl OomWatch for EventsWatch {
    fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    fn events(&self) -> PollFlags {
        PollFlags::POLLPRI
    }

    fn count(&mut self) -> u64 {
        let now = keyed_value(&reread(&self.file), "oom_kill")
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.base);
        now.saturating_sub(self.base)
    }
}

/// Reads a kernfs file again through the fd being polled: the read is what re-arms POLLPRI
/// (a read through another fd would leave this one signalled forever).
fn reread(mut file: &std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut s = String::new();
    if file.rewind().is_ok() {
        let _ = file.read_to_string(&mut s);
    }
    s
}

fn keyed_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.split_once(' ')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.trim())
    })
}
