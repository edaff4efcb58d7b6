//! A container as kiln keeps it: one directory under the state root holding `state.json` and,
//! until `start`, the `exec.fifo` init waits on. The status is never stored: it is derived from
//! init itself (alive, same start time) and the fifo, so it cannot go stale.

pub mod exec;
pub mod id;
pub mod lifecycle;
pub mod state;
pub mod update;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

pub use state::{State, Status};

use crate::error::{Context, Error, Result};

const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

pub struct Container {
    pub dir: PathBuf,
    pub state: State,
    /// Held for the life of a command that changes the container; None for readers.
    _lock: Option<Flock<File>>,
}

impl Container {
    /// Claims `ROOT/ID` for a new container. mkdir is the atomic test for a duplicate ID.
    /// The modes are runc's: the root private (0700), a container's directory 0711 so that init,
    /// whatever user it becomes, still reaches the exec fifo by path.
    pub fn create(root: &Path, state: State) -> Result<Container> {
        id::validate(&state.id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .ctx(|| format!("creating state root {}", root.display()))?;
        let dir = root.join(&state.id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists { id: state.id });
            }
            Err(e) => return Err(e).ctx(|| format!("creating {}", dir.display())),
        }
        let lock = lock(&dir, FlockArg::LockExclusive)?;
        let c = Container {
            dir,
            state,
            _lock: Some(lock),
        };
        c.save()?;
        Ok(c)
    }

    /// Loads a container and takes its lock, serialising commands on the same container.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        let dir = Self::dir_of(root, id)?;
        let lock = lock(&dir, FlockArg::LockExclusive)?;
        let state = read_state(&dir, id)?;
        Ok(Container {
            dir,
            state,
            _lock: Some(lock),
        })
    }

    /// Loads without locking, for `state` and `list`: the state file is only ever replaced
    /// atomically, so a reader never sees half of one.
    pub fn peek(root: &Path, id: &str) -> Result<Container> {
        let dir = Self::dir_of(root, id)?;
        let state = read_state(&dir, id)?;
        Ok(Container {
            dir,
            state,
            _lock: None,
        })
    }

    fn dir_of(root: &Path, id: &str) -> Result<PathBuf> {
        id::validate(id)?;
        let dir = root.join(id);
        if !dir.is_dir() {
            return Err(Error::NotFound { id: id.to_owned() });
        }
        Ok(dir)
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The fd holding the lock, which a child forked meanwhile must close (see `Peer::lock`).
    pub fn lock_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self._lock.as_ref().map(|l| std::os::fd::AsFd::as_fd(&**l))
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    pub fn save(&self) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let data = serde_json::to_vec(&self.state).expect("state serialises");
        // Private, as runc's: it holds the whole config, environment included.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .ctx(|| format!("writing {}", tmp.display()))?;
        f.write_all(&data)
            .ctx(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join(STATE_FILE))
            .ctx(|| format!("saving state of {}", self.id()))
    }

    pub fn status(&self) -> Status {
        if self.state.pid == 0 {
            // Init not yet ready: creating while `create` holds the lock, otherwise that create
            // died half-way and nothing runs.
            return match lock(&self.dir, FlockArg::LockSharedNonblock) {
                Err(_) if self._lock.is_none() => Status::Creating,
                _ => Status::Stopped,
            };
        }
        // Frozen comes before created, as in runc: a paused created container says paused, and
        // `resume` brings it back to created.
        if !self.init_alive() {
            Status::Stopped
        } else if self.cgroup().is_ok_and(|c| c.frozen()) {
            Status::Paused
        } else if self.fifo().exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// The error for an operation that `status` forbids, saying `why`.
    pub fn wrong_state(&self, status: Status, why: &str) -> Error {
        Error::WrongState {
            id: self.id().to_owned(),
            status: status.to_string(),
            why: why.to_owned(),
        }
    }

    /// The manager of the container's cgroup, from the paths recorded at `create`.
    pub fn cgroup(&self) -> Result<Box<dyn crate::cgroups::Manager>> {
        Ok(crate::cgroups::from_paths(self.state.cgroup_paths.clone()))
    }

    /// Init still runs, and is still the process we started (not a reuse of its pid).
    pub fn init_alive(&self) -> bool {
        crate::sys::start_time(self.state.pid).is_ok_and(|t| t == self.state.start_time)
            && !crate::sys::is_zombie(self.state.pid)
    }

    /// A pidfd for init, checked against its start time after opening, so a signal through it
    /// can never reach a process that merely reuses the pid. None if init is gone.
    pub fn init_pidfd(&self) -> Option<std::os::fd::OwnedFd> {
        let fd = crate::sys::pidfd_open(self.state.pid).ok()?;
        self.init_alive().then_some(fd)
    }

    /// The user owning the state directory, as `list` shows it.
    pub fn owner(&self) -> String {
        let uid = std::fs::metadata(&self.dir).map(|m| m.uid()).unwrap_or(0);
        nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map_or_else(|| format!("#{uid}"), |u| u.name)
    }

    /// Removes the state directory; the container is gone for every later command.
    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).ctx(|| format!("removing {}", self.dir.display()))
    }
}

fn lock(dir: &Path, how: FlockArg) -> Result<Flock<File>> {
    let f = File::open(dir).ctx(|| format!("opening {}", dir.display()))?;
    Flock::lock(f, how).map_err(|(_, e)| Error::os(format!("locking {}", dir.display()), e))
}

fn read_state(dir: &Path, id: &str) -> Result<State> {
    let path = dir.join(STATE_FILE);
    let data = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound { id: id.to_owned() },
        _ => Error::os(format!("reading {}", path.display()), e),
    })?;
    serde_json::from_slice(&data).map_err(|e| {
        Error::os(
            format!("{}: corrupt state", path.display()),
            std::io::Error::other(e),
        )
    })
}

/// A state root made by another user is refused before anything reads it: it is private to
/// its owner (0700), and a state file someone else wrote must not steer kiln's signals and
/// cgroup writes. Root may manage every user's containers, as with runc.
pub fn check_root_owner(root: &Path) -> Result<()> {
    let euid = nix::unistd::geteuid();
    match std::fs::metadata(root) {
        Ok(m) if !euid.is_root() && m.uid() != euid.as_raw() => Err(Error::Usage(format!(
            "--root {}: belongs to uid {}, not to uid {euid}: another user's containers are private to that user (use your own --root)",
            root.display(),
            m.uid()
        ))),
        _ => Ok(()),
    }
}

/// Every container ID under the root, sorted (what `list` shows, in runc's order).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).ctx(|| format!("reading state root {}", root.display())),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}
