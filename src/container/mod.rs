//! A container as kiln keeps it: one directory under the state root holding `state.json`, the
//! small `recovery.json` that `delete --force` falls back on when `state.json` is damaged, and,
//! until `start`, the `exec.fifo` init waits on. The status is never stored: it is derived from
//! init itself (alive, same start time) and the fifo, so it cannot go stale.
//!
//! Nothing under the root is trusted to be what kiln wrote: `ROOT/ID` is opened as a
//! directory without following a symlink, and every state file is read bounded (see
//! [`read_file`]), so that a damaged state gives an error naming the file, never a hang.

pub mod checkpoint;
pub mod criu;
pub mod exec;
pub mod id;
pub mod lifecycle;
pub mod state;
pub mod update;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{AtFlags, Flock, FlockArg, OFlag, RenameFlags, renameat2};
use serde::de::DeserializeOwned;

pub use state::{Record, State, Status};

use crate::error::{Context, Error, Result};

pub(crate) const STATE_FILE: &str = "state.json";
/// See [`Record`].
const RECORD_FILE: &str = "recovery.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// Far above anything kiln writes into a state directory: a larger file is not kiln's, and is
/// refused rather than read whole.
const MAX_STATE_FILE: u64 = 1 << 20;

pub struct Container {
    pub dir: PathBuf,
    pub state: State,
    /// `ROOT/ID` itself, opened without following a symlink: state files are opened relative
    /// to it, never through a path that could lead out of the root.
    handle: File,
    /// Held for the life of a command that changes the container; None for readers.
    _lock: Option<Flock<File>>,
}

/// What `delete --force` finds under `ROOT/ID`.
pub enum Found {
    Usable(Container),
    /// A directory whose `state.json` cannot be used: the container as its record knows it
    /// (nothing but the directory when the record is unusable too), and a warning that says
    /// what was damaged. No warning when neither file exists: a `create` killed before its
    /// first save, which had made nothing else yet.
    Damaged {
        c: Container,
        warning: Option<String>,
    },
    /// An entry that is no directory (a symlink, a file), refused by every other command;
    /// `why` says what it is.
    Stray {
        path: PathBuf,
        why: String,
    },
}

impl Container {
    /// Claims `ROOT/ID` for a new container. mkdir is the atomic test for a duplicate ID.
    /// The modes are runc's: the root private (0700), a container's directory 0711 so that init,
    /// whatever user it becomes, still reaches the exec fifo by path.
    /// The record is saved before this returns, so before any cgroup directory exists.
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
        let made = (|| {
            let handle = open_dir(&dir).ctx(|| format!("opening {}", dir.display()))?;
            let lock = lock_handle(&handle, &dir, FlockArg::LockExclusive)?;
            let c = Container {
                dir: dir.clone(),
                state,
                handle,
                _lock: Some(lock),
            };
            c.save()?;
            c.save_record()?;
            Ok(c)
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        made
    }

    /// Loads a container and takes its lock, serialising commands on the same container.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        let (dir, handle, lock) = open(root, id, true)?;
        let state = read_state(&handle, &dir, id)?
            .ok_or_else(|| bad_state(&dir, id, STATE_FILE, "missing"))?;
        Ok(Container {
            dir,
            state,
            handle,
            _lock: lock,
        })
    }

    /// Loads without locking, for `state` and `list`: the state file is only ever replaced
    /// atomically, so a reader never sees half of one.
    pub fn peek(root: &Path, id: &str) -> Result<Container> {
        let (dir, handle, _) = open(root, id, false)?;
        match read_state(&handle, &dir, id)? {
            Some(state) => Ok(Container {
                dir,
                state,
                handle,
                _lock: None,
            }),
            // A create that has not saved yet, or a delete half-way or done: no container (yet,
            // or any more), as runc would say.
            None if !same_file(&handle, &dir)
                || lock(&dir, FlockArg::LockSharedNonblock).is_err() =>
            {
                Err(Error::NotFound { id: id.to_owned() })
            }
            None => Err(bad_state(&dir, id, STATE_FILE, "missing")),
        }
    }

    /// Whatever is under `ROOT/ID`, locked, for `delete --force`, which removes it even when its
    /// state is damaged.
    pub fn find(root: &Path, id: &str) -> Result<Found> {
        let (dir, handle, lock) = match open(root, id, true) {
            Ok(opened) => opened,
            Err(Error::BadState { path, why, .. }) => return Ok(Found::Stray { path, why }),
            Err(e) => return Err(e),
        };
        let state = match read_state(&handle, &dir, id) {
            Ok(Some(mut state)) => {
                if state.pid == 0 {
                    // A create that died before it saved init's pid: the record may have it
                    // (`record_init`). Damage there leaves what the cgroups show.
                    if let Ok(Some(r)) = read_json::<Record>(&handle, &dir, id, RECORD_FILE) {
                        (state.pid, state.start_time) = (r.pid, r.start_time);
                    }
                }
                return Ok(Found::Usable(Container {
                    dir,
                    state,
                    handle,
                    _lock: lock,
                }));
            }
            other => other,
        };
        let record = read_json::<Record>(&handle, &dir, id, RECORD_FILE)
            .and_then(|r| r.map(|r| plausible(&dir, id, r)).transpose());
        // The damage, without BadState's advice to run `delete --force`, which is running.
        let what = |e: Error| match e {
            Error::BadState { path, why, .. } => format!("{}: {why}", path.display()),
            e => e.to_string(),
        };
        let (warning, record) = match (state, record) {
            (Ok(None), Ok(None)) => (None, Record::default()),
            (state, record) => {
                let why = what(
                    state
                        .err()
                        .unwrap_or_else(|| bad_state(&dir, id, STATE_FILE, "missing")),
                );
                match record {
                    Ok(Some(r)) => (
                        Some(format!(
                            "{why}; its cgroups and init are known from {RECORD_FILE}"
                        )),
                        r,
                    ),
                    Ok(None) => (
                        Some(format!(
                            "{why}; {RECORD_FILE} is missing too: no cgroup or process of it is known"
                        )),
                        Record::default(),
                    ),
                    Err(e) => (
                        Some(format!(
                            "{why}; {}: no cgroup or process of it is known",
                            what(e)
                        )),
                        Record::default(),
                    ),
                }
            }
        };
        Ok(Found::Damaged {
            c: Container {
                dir,
                state: State::recovered(id, record),
                handle,
                _lock: lock,
            },
            warning,
        })
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

    /// A JSON file of this container's state directory, read as every state file is (see
    /// [`read_file`]); None if it does not exist.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        read_json(&self.handle, &self.dir, self.id(), name)
    }

    /// The exec fifo is still there (`start` has not removed it): looked up in the directory
    /// already open, not by its path again.
    fn fifo_exists(&self) -> bool {
        nix::sys::stat::fstatat(
            Some(self.handle.as_raw_fd()),
            EXEC_FIFO,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok()
    }

    /// The exec fifo, opened for reading without blocking; None once `start` removed it. Only
    /// a FIFO: a file or a symlink to /dev/zero in its place would feed `start` forever.
    pub fn open_fifo(&self) -> Result<Option<File>> {
        open_file(&self.handle, &self.dir, self.id(), EXEC_FIFO, libc::S_IFIFO)
            .map(|f| f.map(|(f, _)| f))
    }

    /// The error for a file of this container's state directory that is not what kiln wrote.
    pub fn bad_state(&self, name: &str, why: impl Into<String>) -> Error {
        bad_state(&self.dir, self.id(), name, why)
    }

    pub fn save(&self) -> Result<()> {
        let data = serde_json::to_vec(&self.state).expect("state serialises");
        self.write_atomic(STATE_FILE, &data)
    }

    /// The record `delete --force` falls back on; see [`Record`].
    pub fn save_record(&self) -> Result<()> {
        self.write_record(&self.state.record())
    }

    /// The record with `pid` as init, written the moment its pid is known (by `spawn`, long
    /// before `state.json` has it): a `create` killed during init's setup or hooks leaves a
    /// container whose init `delete --force` finds even where no cgroup holds it. Returns init's
    /// start time, for the state.
    pub fn record_init(&self, pid: i32) -> Result<u64> {
        let start_time = crate::procfs::stat(pid)
            .ctx(|| format!("reading /proc/{pid}/stat"))?
            .start_time;
        self.write_record(&crate::container::state::Record {
            pid,
            start_time,
            ..self.state.record()
        })?;
        Ok(start_time)
    }

    fn write_record(&self, record: &crate::container::state::Record) -> Result<()> {
        let data = serde_json::to_vec(record).expect("record serialises");
        self.write_atomic(RECORD_FILE, &data)
    }

    /// Replaces `name` by rename, so that a reader sees the old file or the new one, whole.
    ///
    /// A file already there is exchanged with the new one, and then unlinked, rather than
    /// renamed over: ext4 (auto_da_alloc) starts writing the new file's data back at a rename
    /// that replaces a file, ~100 µs measured here, and `create` rewrites both of its files once.
    fn write_atomic(&self, name: &str, data: &[u8]) -> Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        // Private, as runc's: state.json holds the whole config, environment included.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .ctx(|| format!("writing {}", tmp.display()))?;
        f.write_all(data)
            .ctx(|| format!("writing {}", tmp.display()))?;
        drop(f);
        let path = self.dir.join(name);
        let saving = || format!("saving {} of {}", name, self.id());
        match renameat2(None, &tmp, None, &path, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EEXIST) => {}
            // A filesystem without renameat2's flags (NFS, some FUSE): a plain rename.
            Err(_) => return std::fs::rename(&tmp, &path).ctx(saving),
        }
        match renameat2(None, &tmp, None, &path, RenameFlags::RENAME_EXCHANGE) {
            // `tmp` holds the old file now.
            Ok(()) => std::fs::remove_file(&tmp).ctx(saving),
            Err(_) => std::fs::rename(&tmp, &path).ctx(saving),
        }
    }

    pub fn status(&self) -> Status {
        self.facts().status()
    }

    /// The status, and a pidfd for init while it is alive (None once it is not): the pidfd is
    /// opened before the status reads /proc/PID/stat, so that one read both decides the status
    /// and proves the pidfd is init's (a pid reused after the open shows another start time).
    pub fn status_and_init(&self) -> (Status, Option<std::os::fd::OwnedFd>) {
        let fd = match self.state.pid {
            0 => None,
            pid => crate::sys::pidfd_open(pid).ok(),
        };
        let facts = self.facts();
        let fd = fd.filter(|_| alive(facts.init.as_ref(), facts.start_time));
        (facts.status(), fd)
    }

    /// What [`Facts::status`] decides from, each read once, in the order the decision asks:
    /// init's /proc/PID/stat before the freezer, the freezer before the exec fifo (`start`
    /// removes the fifo only after init exec'd).
    fn facts(&self) -> Facts {
        let (pid, start_time) = (self.state.pid, self.state.start_time);
        if pid == 0 {
            // Our own lock would refuse the shared one: only another command's counts.
            let locked_by_create =
                self._lock.is_none() && lock(&self.dir, FlockArg::LockSharedNonblock).is_err();
            return Facts {
                pid,
                start_time,
                locked_by_create,
                init: None,
                paused: false,
                fifo: false,
            };
        }
        Facts {
            pid,
            start_time,
            locked_by_create: false,
            init: crate::procfs::stat(pid).ok(),
            paused: self.cgroup().is_ok_and(|c| c.paused()),
            fifo: self.fifo_exists(),
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

    /// The manager of the container's cgroup, from the paths (and unit) recorded at `create`.
    pub fn cgroup(&self) -> Result<Box<dyn crate::cgroups::Manager>> {
        Ok(crate::cgroups::open(
            self.state.cgroup_paths.clone(),
            self.state.systemd_unit.clone(),
        ))
    }

    /// Init still runs, and is still the process we started (not a reuse of its pid).
    pub fn init_alive(&self) -> bool {
        alive(
            crate::procfs::stat(self.state.pid).ok().as_ref(),
            self.state.start_time,
        )
    }

    /// A pidfd for init, checked against its start time after opening, so a signal through it
    /// can never reach a process that merely reuses the pid. None if init is gone.
    pub fn init_pidfd(&self) -> Option<std::os::fd::OwnedFd> {
        let fd = crate::sys::pidfd_open(self.state.pid).ok()?;
        self.init_alive().then_some(fd)
    }

    /// The user owning the state directory, as `list` shows it.
    /// The uid owning the state directory: `list`'s OWNER.
    pub fn owner(&self) -> u32 {
        self.handle.metadata().map(|m| m.uid()).unwrap_or(0)
    }

    /// Removes the state directory; the container is gone for every later command.
    pub fn remove(self) -> Result<()> {
        // The files every container has go by name, through the open directory, and the
        // directory after them; only one that holds more (a seccomp program kept for exec, a
        // socket) is walked.
        for name in [STATE_FILE, RECORD_FILE, EXEC_FIFO] {
            let _ = nix::unistd::unlinkat(
                Some(self.handle.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        match std::fs::remove_dir(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                std::fs::remove_dir_all(&self.dir)
            }
            _ => Ok(()),
        }
        .ctx(|| format!("removing {}", self.dir.display()))
    }
}

/// What a container's status is derived from (see [`Container::status`]): the state's init, and
/// what was read of the system about it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Facts {
    /// Init's pid as the state has it: 0 until `create` saved it.
    pid: i32,
    /// Init's start time as the state has it.
    start_time: u64,
    /// With pid 0: another command (a live `create`) holds the directory's lock.
    locked_by_create: bool,
    /// /proc/PID/stat, None when it could not be read or parsed (the pid is gone).
    init: Option<crate::procfs::Stat>,
    /// The container's cgroup is paused: its own freezer is set (`Manager::paused`).
    paused: bool,
    /// The exec fifo exists: `start` has not run yet.
    fifo: bool,
}

impl Facts {
    fn status(&self) -> Status {
        if self.pid == 0 {
            // Init not yet ready: creating while `create` holds the lock, otherwise that create
            // died half-way and nothing runs.
            return if self.locked_by_create {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        // Frozen comes before created, as in runc: a paused created container says paused, and
        // `resume` brings it back to created.
        if !alive(self.init.as_ref(), self.start_time) {
            Status::Stopped
        } else if self.paused {
            Status::Paused
        } else if self.fifo {
            Status::Created
        } else {
            Status::Running
        }
    }
}

/// Init, as its /proc/PID/stat shows it (None: unreadable), still runs and is the process the
/// state recorded (same start time, not a reuse of its pid).
fn alive(init: Option<&crate::procfs::Stat>, start_time: u64) -> bool {
    init.is_some_and(|s| s.start_time == start_time && !s.finished())
}

/// The owner of `ROOT/ID` whatever it is (a damaged container's directory, a symlink), as
/// `list` shows it.
pub fn entry_owner(root: &Path, id: &str) -> u32 {
    std::fs::symlink_metadata(root.join(id))
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// Owners' names, each looked up once: a `list` of many containers of one user would otherwise
/// read the passwd database once per container.
#[derive(Default)]
pub struct UserNames(std::collections::HashMap<u32, String>);

impl UserNames {
    /// The user's name, or `#UID` (runc's form) for a uid without one.
    pub fn of(&mut self, uid: u32) -> String {
        self.0
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map_or_else(|| format!("#{uid}"), |u| u.name)
            })
            .clone()
    }
}

/// `ROOT/ID`, opened as a directory only: a symlink there is refused, never followed (it could
/// lead anywhere), and so is anything else that is not a directory (a FIFO would block open).
fn open_dir(dir: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir)
}

/// Opens `ROOT/ID`, locked exclusively when `locked` (waiting for the command that holds it).
/// After the wait, the directory must still be the one at that path: the container may have
/// been deleted meanwhile, and another one created under the same ID.
fn open(root: &Path, id: &str, locked: bool) -> Result<(PathBuf, File, Option<Flock<File>>)> {
    id::validate(id)?;
    let dir = root.join(id);
    let not_found = || Error::NotFound { id: id.to_owned() };
    let handle = match open_dir(&dir) {
        Ok(h) => h,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => {
            return Err(match std::fs::symlink_metadata(&dir) {
                Ok(m) if !m.is_dir() => Error::BadState {
                    id: id.to_owned(),
                    path: dir,
                    why: format!(
                        "{} where the container's directory should be, never followed",
                        file_kind(m.mode())
                    ),
                },
                _ => Error::os(format!("opening {}", dir.display()), e),
            });
        }
    };
    let lock = if locked {
        let lock = lock_handle(&handle, &dir, FlockArg::LockExclusive)?;
        if !same_file(&handle, &dir) {
            return Err(not_found());
        }
        Some(lock)
    } else {
        None
    };
    Ok((dir, handle, lock))
}

fn same_file(handle: &File, path: &Path) -> bool {
    match (handle.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A lock of the directory at `dir` through a description of its own (a second lock of ours
/// must not share the first one's).
fn lock(dir: &Path, how: FlockArg) -> Result<Flock<File>> {
    let f = open_dir(dir).ctx(|| format!("opening {}", dir.display()))?;
    lock_handle(&f, dir, how)
}

/// Locks the description `handle` refers to. A dup, not a new open: the lock must be on the
/// directory `handle` was opened as, whatever is at its path now.
fn lock_handle(handle: &File, dir: &Path, how: FlockArg) -> Result<Flock<File>> {
    // A new open of the same directory, not a dup: an flock belongs to the open file, and the
    // lock must be the only holder of it, so that a forked child that closes the lock's fd
    // (`Peer::lock`) drops it, though it still has `handle`.
    // Through /proc/self/fd (a link that must be followed): the very directory of `handle`.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()))
        .ctx(|| format!("opening {}", dir.display()))?;
    Flock::lock(f, how).map_err(|(_, e)| Error::os(format!("locking {}", dir.display()), e))
}

fn bad_state(dir: &Path, id: &str, name: &str, why: impl Into<String>) -> Error {
    Error::BadState {
        id: id.to_owned(),
        path: dir.join(name),
        why: why.into(),
    }
}

/// state.json, None if it does not exist. One holding another container's state was not
/// written here by kiln.
fn read_state(handle: &File, dir: &Path, id: &str) -> Result<Option<State>> {
    let state = read_json::<State>(handle, dir, id, STATE_FILE)?;
    match state {
        Some(s) if s.id != id => Err(bad_state(
            dir,
            id,
            STATE_FILE,
            format!("holds the state of another container, {:?}", s.id),
        )),
        s => Ok(s),
    }
}

fn read_json<T: DeserializeOwned>(
    handle: &File,
    dir: &Path,
    id: &str,
    name: &str,
) -> Result<Option<T>> {
    let Some(data) = read_file(handle, dir, id, name)? else {
        return Ok(None);
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|e| bad_state(dir, id, name, format!("not what kiln wrote: {e}")))
}

/// Reads a state file of kiln's, bounded: a regular file ([`open_file`]) of at most
/// [`MAX_STATE_FILE`] bytes. None if it does not exist.
fn read_file(handle: &File, dir: &Path, id: &str, name: &str) -> Result<Option<Vec<u8>>> {
    let Some((mut file, size)) = open_file(handle, dir, id, name, libc::S_IFREG)? else {
        return Ok(None);
    };
    let reading = || format!("reading {}", dir.join(name).display());
    // Room for the file as fstat saw it and one byte more. A regular file's read returns all
    // that was asked up to its end, so once `size` bytes are in, the file is whole and the
    // read that would only find EOF is skipped: state files are replaced by rename, never
    // written in place. One that grew since (a hand edit) fills the extra byte and is read on
    // to its end, bounded.
    let size = size as usize;
    let mut data = vec![0; size + 1];
    let mut n = 0;
    while n < size {
        match file.read(&mut data[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).ctx(reading),
        }
    }
    data.truncate(n);
    if n > size {
        file.take(MAX_STATE_FILE + 1 - n as u64)
            .read_to_end(&mut data)
            .ctx(reading)?;
    }
    if data.len() as u64 > MAX_STATE_FILE {
        return Err(too_large(dir, id, name, data.len() as u64));
    }
    Ok(Some(data))
}

/// Opens a file of the state directory for reading, if it is of the `kind` kiln made there
/// (`S_IFREG`, `S_IFIFO`): looked at before it is opened, so that no other FIFO and no device
/// is ever opened; then opened without following a symlink and without blocking, and checked
/// again (it may have been replaced meanwhile). No command can hang on a state file or read
/// /dev/zero through one. A regular file larger than [`MAX_STATE_FILE`] is refused. None if it
/// does not exist; else the file and its size.
fn open_file(
    handle: &File,
    dir: &Path,
    id: &str,
    name: &str,
    kind: libc::mode_t,
) -> Result<Option<(File, u64)>> {
    let path = dir.join(name);
    let fd = handle.as_raw_fd();
    let check = |mode: u32, size: u64| {
        if mode & libc::S_IFMT != kind {
            return Err(bad_state(
                dir,
                id,
                name,
                format!("{} instead of {}", file_kind(mode), file_kind(kind)),
            ));
        }
        if kind == libc::S_IFREG && size > MAX_STATE_FILE {
            return Err(too_large(dir, id, name, size));
        }
        Ok(())
    };
    let st = match nix::sys::stat::fstatat(Some(fd), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::os(format!("reading {}", path.display()), e)),
    };
    check(st.st_mode, st.st_size as u64)?;
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let raw = match nix::fcntl::openat(Some(fd), name, flags, nix::sys::stat::Mode::empty()) {
        Ok(raw) => raw,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(nix::errno::Errno::ELOOP) => return check(libc::S_IFLNK, 0).map(|()| None),
        Err(e) => return Err(Error::os(format!("reading {}", path.display()), e)),
    };
    // SAFETY: openat just returned this fd: it is open, and nothing else owns it.
    let file = unsafe { File::from_raw_fd(raw) };
    let m = file
        .metadata()
        .ctx(|| format!("reading {}", path.display()))?;
    check(m.mode(), m.len())?;
    Ok(Some((file, m.len())))
}

fn too_large(dir: &Path, id: &str, name: &str, size: u64) -> Error {
    bad_state(
        dir,
        id,
        name,
        format!("{size} bytes, more than any state kiln writes ({MAX_STATE_FILE} at most)"),
    )
}

/// The kind of file `mode` says, for messages.
fn file_kind(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFLNK => "a symlink",
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFREG => "a regular file",
        _ => "an unknown kind of file",
    }
}

/// A record is trusted only as far as it points at cgroups: each path must lie strictly below
/// a cgroup hierarchy mounted here, so that no damaged record can have `delete --force` kill
/// every process of a hierarchy's root, or anything outside the cgroup filesystems.
fn plausible(dir: &Path, id: &str, r: Record) -> Result<Record> {
    let mounts: Vec<PathBuf> = crate::cgroups::hierarchies()
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.mount_point)
        .collect();
    for p in r.cgroup_paths.values() {
        let normal = p.is_absolute()
            && p.components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !normal || !mounts.iter().any(|m| p.starts_with(m) && p != m) {
            return Err(bad_state(
                dir,
                id,
                RECORD_FILE,
                format!(
                    "cgroup path {} is not below a cgroup hierarchy of this host",
                    p.display()
                ),
            ));
        }
    }
    Ok(r)
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
        // Behind a directory private to someone else: "does not exist" would mislead.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(Error::Usage(format!(
            "--root {}: uid {euid} may not reach it ({e}): another user's containers are private to that user (use your own --root)",
            root.display()
        ))),
        _ => Ok(()),
    }
}

/// Every container ID under the root, sorted (what `list` shows, in runc's order): every entry
/// named as an ID could be, directories or not, so that damaged ones are shown too.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).ctx(|| format!("reading state root {}", root.display())),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| id::validate(name).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_named_once_per_uid_and_unknown_ones_as_runc_does() {
        let mut names = UserNames::default();
        assert_eq!(names.of(0), "root");
        assert_eq!(names.of(4_294_967_294), "#4294967294");
        assert_eq!(names.0.len(), 2);
        assert_eq!(names.of(0), "root");
        assert_eq!(names.0.len(), 2);
    }

    /// A fresh directory of its own for each test (they run in parallel).
    fn scratch(test: &str) -> (PathBuf, File) {
        let dir = std::env::temp_dir().join(format!("kiln-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let handle = open_dir(&dir).unwrap();
        (dir, handle)
    }

    fn why(e: Error) -> String {
        match e {
            Error::BadState { why, .. } => why,
            e => panic!("not BadState: {e}"),
        }
    }

    #[test]
    fn state_files_are_read_bounded() {
        let (dir, h) = scratch("bounded");
        let read = |name| read_file(&h, &dir, "c", name);
        std::fs::write(dir.join("ok"), b"{}").unwrap();
        assert_eq!(read("ok").unwrap().as_deref(), Some(&b"{}"[..]));
        assert!(read("missing").unwrap().is_none());
        nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(
            why(read("fifo").unwrap_err()),
            "a FIFO instead of a regular file"
        );
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero")).unwrap();
        assert_eq!(
            why(read("zero").unwrap_err()),
            "a symlink instead of a regular file"
        );
        std::fs::create_dir(dir.join("sub")).unwrap();
        assert_eq!(
            why(read("sub").unwrap_err()),
            "a directory instead of a regular file"
        );
        File::create(dir.join("big"))
            .unwrap()
            .set_len(MAX_STATE_FILE + 1)
            .unwrap();
        assert!(why(read("big").unwrap_err()).starts_with("1048577 bytes, more than"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlinked_container_directory_is_never_followed() {
        let (dir, _) = scratch("symlinked");
        std::fs::create_dir(dir.join("real")).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
        assert!(open(&dir, "real", false).is_ok());
        let e = open(&dir, "link", false).expect_err("refused");
        assert!(why(e).starts_with("a symlink where the container's directory should be"));
        assert!(matches!(
            open(&dir, "none", false),
            Err(Error::NotFound { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_record_outside_the_cgroup_hierarchies_is_refused() {
        let dir = Path::new("/run/kiln/c");
        for bad in ["/", "/etc", "relative/x", "/sys/fs/cgroup/../../etc"] {
            let r = Record {
                cgroup_paths: [(String::new(), PathBuf::from(bad))].into(),
                ..Record::default()
            };
            assert!(plausible(dir, "c", r).is_err(), "{bad}");
        }
        // Each hierarchy's own root holds every process of the host.
        for h in crate::cgroups::hierarchies().unwrap_or_default() {
            let r = Record {
                cgroup_paths: [(h.controllers.clone(), h.mount_point.clone())].into(),
                ..Record::default()
            };
            assert!(
                plausible(dir, "c", r).is_err(),
                "{}",
                h.mount_point.display()
            );
            let r = Record {
                cgroup_paths: [(h.controllers, h.mount_point.join("kiln-c"))].into(),
                ..Record::default()
            };
            assert!(plausible(dir, "c", r).is_ok());
        }
    }

    // ---------------------------------------------------------------- status

    /// /proc/PID/stat of a process as the kernel writes it (a python3 on kernel 6.18, from
    /// procfs's tests): sleeping, flags 4194560, started at tick 122424; `state` and `flags`
    /// replace its third and ninth fields.
    fn stat_line(state: &str, flags: u64) -> String {
        format!(
            "17984 (python3) {state} 17927 17925 6875 0 -1 {flags} 229 0 0 0 0 0 0 0 20 0 1 0 122424 0 0 18446744073709551615 0 0 0 0 0 0 0 16781312 2 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        )
    }

    const STARTED: u64 = 122424;

    /// A started container whose init's stat reads `stat` (None: unreadable).
    fn started(stat: Option<&str>, paused: bool, fifo: bool) -> Facts {
        Facts {
            pid: 17984,
            start_time: STARTED,
            locked_by_create: false,
            init: stat.and_then(crate::procfs::parse_stat),
            paused,
            fifo,
        }
    }

    fn unstarted(locked_by_create: bool) -> Facts {
        Facts {
            pid: 0,
            start_time: 0,
            locked_by_create,
            init: None,
            paused: false,
            fifo: false,
        }
    }

    #[test]
    fn status_pid_zero_locked_by_a_live_create_is_creating() {
        assert_eq!(unstarted(true).status(), Status::Creating);
    }

    #[test]
    fn status_pid_zero_unlocked_is_a_dead_create() {
        assert_eq!(unstarted(false).status(), Status::Stopped);
    }

    /// Pid 0 decides alone: whatever else was read (nothing is, by `facts`), no init runs.
    #[test]
    fn status_pid_zero_ignores_the_other_facts() {
        let sleeping = stat_line("S", 4194560);
        let f = Facts {
            init: crate::procfs::parse_stat(&sleeping),
            paused: true,
            fifo: true,
            ..unstarted(false)
        };
        assert_eq!(f.status(), Status::Stopped);
    }

    #[test]
    fn status_running_init_without_fifo_is_running() {
        for state in ["R", "S", "D", "T", "t", "I"] {
            let line = stat_line(state, 4194560);
            assert_eq!(
                started(Some(&line), false, false).status(),
                Status::Running,
                "{state}"
            );
        }
    }

    #[test]
    fn status_init_before_start_is_created() {
        let line = stat_line("S", 4194560);
        assert_eq!(started(Some(&line), false, true).status(), Status::Created);
    }

    #[test]
    fn status_frozen_is_paused() {
        let line = stat_line("S", 4194560);
        assert_eq!(started(Some(&line), true, false).status(), Status::Paused);
    }

    /// runc's order: a created container that is paused says paused.
    #[test]
    fn status_frozen_before_start_is_paused() {
        let line = stat_line("S", 4194560);
        assert_eq!(started(Some(&line), true, true).status(), Status::Paused);
    }

    #[test]
    fn status_unreadable_stat_is_stopped() {
        assert_eq!(started(None, false, false).status(), Status::Stopped);
        // Even with the fifo there and the cgroup frozen: nothing runs.
        assert_eq!(started(None, true, true).status(), Status::Stopped);
    }

    /// A stat line that is not the kernel's shape reads as no process.
    #[test]
    fn status_malformed_stat_is_stopped() {
        for bad in [
            "",
            "17984 (python3",
            "17984 (python3) S 1 2 3",
            "17984 (python3) S 1 1 1 0 -1 x 0 0 0 0 0 0 0 0 20 0 1 0 122424",
        ] {
            assert_eq!(
                started(Some(bad), false, true).status(),
                Status::Stopped,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn status_zombie_init_is_stopped() {
        for state in ["Z", "X"] {
            let line = stat_line(state, 4227148);
            assert_eq!(
                started(Some(&line), false, true).status(),
                Status::Stopped,
                "{state}"
            );
        }
    }

    /// A pid namespace's init in its exit (PF_EXITING), waiting for the namespace's zombies.
    #[test]
    fn status_exiting_init_is_stopped() {
        let line = stat_line("S", 4194564);
        assert_eq!(started(Some(&line), true, false).status(), Status::Stopped);
    }

    /// The pid now belongs to another process: not our init, whatever its state.
    #[test]
    fn status_reused_pid_is_stopped() {
        let line = stat_line("S", 4194560);
        let f = Facts {
            start_time: STARTED + 1,
            ..started(Some(&line), false, false)
        };
        assert_eq!(f.status(), Status::Stopped);
        let f = Facts {
            start_time: 0,
            ..started(Some(&line), false, true)
        };
        assert_eq!(f.status(), Status::Stopped);
    }

    #[test]
    fn alive_needs_a_readable_unfinished_init_of_the_same_start() {
        let run = crate::procfs::parse_stat(&stat_line("R", 4194560)).unwrap();
        assert!(alive(Some(&run), STARTED));
        assert!(!alive(Some(&run), STARTED - 1));
        assert!(!alive(None, STARTED));
        let zombie = crate::procfs::parse_stat(&stat_line("Z", 4227148)).unwrap();
        assert!(!alive(Some(&zombie), STARTED));
    }

    /// A container with `pid` as init, made in a scratch root (the lock held by `create`).
    fn container(test: &str, pid: i32, start_time: u64) -> (PathBuf, Container) {
        let (root, _) = scratch(test);
        let record = Record {
            pid,
            start_time,
            ..Record::default()
        };
        let c = Container::create(&root, State::recovered("c", record)).unwrap();
        (root, c)
    }

    fn own_start_time() -> u64 {
        crate::procfs::stat(std::process::id() as i32)
            .unwrap()
            .start_time
    }

    /// The reading: this test process as init, its real stat, the fifo made and removed.
    #[test]
    fn facts_of_a_live_init() {
        let me = std::process::id() as i32;
        let (root, c) = container("facts-live", me, own_start_time());
        let f = c.facts();
        assert_eq!((f.pid, f.start_time), (me, own_start_time()));
        assert!(f.init.is_some_and(|s| !s.finished()));
        assert!(!f.paused && !f.fifo && !f.locked_by_create);
        assert_eq!(c.status(), Status::Running);
        assert!(c.init_alive());
        nix::unistd::mkfifo(&c.fifo(), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(c.facts().fifo);
        assert_eq!(c.status(), Status::Created);
        std::fs::remove_file(c.fifo()).unwrap();
        assert_eq!(c.status(), Status::Running);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn facts_of_a_pid_reused_by_another_process() {
        let me = std::process::id() as i32;
        let (root, c) = container("facts-reused", me, own_start_time() + 1);
        assert!(c.facts().init.is_some());
        assert_eq!(c.status(), Status::Stopped);
        assert!(!c.init_alive());
        assert!(c.init_pidfd().is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Pid 0: `create` (this container, holding the lock) or a reader while it runs sees
    /// creating; once the lock is gone, a create that died.
    #[test]
    fn facts_of_a_container_without_init() {
        let (root, c) = container("facts-unstarted", 0, 0);
        // The command holding the lock is not another create.
        assert!(!c.facts().locked_by_create);
        assert_eq!(c.status(), Status::Stopped);
        let reader = Container::peek(&root, "c").unwrap();
        assert!(reader.facts().locked_by_create);
        assert_eq!(reader.status(), Status::Creating);
        assert_eq!(reader.facts().init, None);
        drop(c);
        assert!(!reader.facts().locked_by_create);
        assert_eq!(reader.status(), Status::Stopped);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The freezer as `facts` reads it: v1's freezer.state (FREEZING counts as frozen: its
    /// processes are stopping), v2's cgroup.freeze; a file missing or unreadable is not
    /// frozen. A v2 container frozen through an ancestor (cgroup.events) is running, as runc
    /// says, though frozen for `create`'s check.
    #[test]
    fn facts_read_the_freezer_of_each_layout() {
        let me = std::process::id() as i32;
        let (root, mut c) = container("facts-freezer", me, own_start_time());
        let cg = root.join("cg");
        std::fs::create_dir(&cg).unwrap();
        c.state.cgroup_paths = [("freezer".to_owned(), cg.clone())].into();
        assert_eq!(c.status(), Status::Running);
        for (text, want) in [
            ("THAWED\n", Status::Running),
            ("FROZEN\n", Status::Paused),
            ("FREEZING\n", Status::Paused),
        ] {
            std::fs::write(cg.join("freezer.state"), text).unwrap();
            assert_eq!(c.status(), want, "{text:?}");
        }
        std::fs::remove_file(cg.join("freezer.state")).unwrap();
        c.state.cgroup_paths = [(String::new(), cg.clone())].into();
        assert_eq!(c.status(), Status::Running);
        for (file, text, want) in [
            ("cgroup.freeze", "0\n", Status::Running),
            ("cgroup.freeze", "1\n", Status::Paused),
            ("cgroup.freeze", "0\n", Status::Running),
            ("cgroup.events", "populated 1\nfrozen 0\n", Status::Running),
            ("cgroup.events", "populated 1\nfrozen 1\n", Status::Running),
        ] {
            std::fs::write(cg.join(file), text).unwrap();
            assert_eq!(c.status(), want, "{file}: {text:?}");
        }
        assert!(c.cgroup().unwrap().frozen());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
