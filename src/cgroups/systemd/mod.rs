//! `--systemd-cgroup`: the container's cgroup is a transient systemd unit, as runc's systemd
//! driver makes it. systemd is asked over D-Bus (`dbus`) to start a scope (or slice) named
//! from cgroupsPath (`unit`) with the container's init in it and the resources as unit
//! properties (`props`); the directories systemd made are then handed to kiln's cgroupfs
//! manager, which writes every resource file (what systemd has no property for too), freezes,
//! kills and reads the statistics, as on a host without systemd. `delete` stops the unit.
//!
//! The system instance only: rootless containers (systemd's user instance) are refused.

mod dbus;
mod props;
mod unit;

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use super::{Hierarchy, Made, Manager, OomWatch, Paths, Request, Stats};
use crate::error::{Error, Result};
use dbus::{Call, Conn, DbusError, Value};
use props::{Props, Version};
use unit::Unit;

/// runc's bound on each job systemd runs for it (starting or stopping the unit).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

const PRIVATE_SOCKET: &str = "/run/systemd/private";
const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// The unit of a new container, checked before anything exists: cgroupsPath's shape, systemd
/// running here, not rootless.
pub fn new(req: &Request, all: &[Hierarchy]) -> Result<Box<dyn Manager>> {
    let path_error = |msg: String| Error::Cgroup {
        field: "linux.cgroupsPath".into(),
        msg,
    };
    let unit = unit::parse(req.cgroups_path, req.id).map_err(path_error)?;
    let refuse = |why: &str| Error::Cgroup {
        field: "--systemd-cgroup".into(),
        msg: format!(
            "cannot create {}/{}: {why}; run without --systemd-cgroup",
            unit.slice, unit.name
        ),
    };
    if !running() {
        return Err(refuse(
            "systemd is not running on this host (no /run/systemd/system)",
        ));
    }
    if req.rootless {
        return Err(refuse(
            "kiln talks to systemd's system instance only, not to a user's (rootless)",
        ));
    }
    let annotations =
        props::annotations(req.annotations).map_err(|(field, msg)| Error::Cgroup { field, msg })?;
    let paths = unit::paths(all, &unit).map_err(path_error)?;
    let mut m = Systemd::open(unit.name.clone(), paths);
    m.start = Some(Start {
        id: req.id.to_owned(),
        unit,
        resources: req.resources.clone(),
        annotations,
    });
    Ok(Box::new(m))
}

/// sd_booted(3)'s test: systemd is PID 1 and manages this host.
pub fn running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The manager of an existing container's unit, from what its state recorded.
pub fn existing(unit: String, paths: Paths) -> Box<dyn Manager> {
    Box::new(Systemd::open(unit, paths))
}

/// What starting the unit needs once init's pid is known.
struct Start {
    id: String,
    unit: Unit,
    resources: LinuxResources,
    annotations: Props,
}

pub struct Systemd {
    unit: String,
    version: Version,
    fs: Box<dyn Manager>,
    start: Option<Start>,
    conn: RefCell<Option<Conn>>,
    /// The directories kiln made itself (where systemd did not), for a failed create.
    made: RefCell<Made>,
    started: Cell<bool>,
}

impl Systemd {
    fn open(unit: String, paths: Paths) -> Systemd {
        let version = if paths.keys().all(String::is_empty) {
            Version::V2
        } else {
            Version::V1
        };
        Systemd {
            unit,
            version,
            fs: super::from_paths(paths),
            start: None,
            conn: RefCell::new(None),
            made: RefCell::new(Made::default()),
            started: Cell::new(false),
        }
    }

    fn error(&self, method: &str, e: DbusError) -> Error {
        Error::Cgroup {
            field: format!("systemd unit {}", self.unit),
            msg: format!("{method}: {e}"),
        }
    }

    /// One connection per kiln command, made at the first call: the system bus, else systemd's
    /// private socket, as runc (go-systemd) chooses; subscribed to job signals. Through the
    /// private socket first, about one call in four waited its whole 30 s for an answer in the
    /// systemd guest (never under strace); through the bus, none in 8 cycles and the tests.
    fn call(&self, member: &str, args: Vec<Value>) -> std::result::Result<Vec<Value>, DbusError> {
        let mut conn = self.conn.borrow_mut();
        if conn.is_none() {
            *conn = Some(connect()?);
        }
        let c = conn.as_mut().expect("connected above");
        c.call(&manager_call(member, args))
    }

    /// Waits (bounded by the connection's deadline) for the job's JobRemoved signal, and
    /// returns its result (`done`, `failed`, `timeout`, ...).
    fn job_result(&self, job: &[Value]) -> std::result::Result<String, DbusError> {
        let Some(Value::Path(job)) = job.first() else {
            return Err(DbusError::Malformed(format!(
                "a job path expected, got {job:?}"
            )));
        };
        let mut conn = self.conn.borrow_mut();
        let c = conn.as_mut().expect("a call made the connection");
        // JobRemoved: (u id, o job, s unit, s result).
        let body = c.wait_signal(MANAGER, "JobRemoved", |b| {
            b.get(1) == Some(&Value::Path(job.clone()))
        })?;
        Ok(body
            .get(3)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned())
    }

    fn start_unit(&self, start: &Start, pid: i32) -> Result<()> {
        let devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
        let props = props::start(
            &start.id,
            &start.unit,
            pid as u32,
            self.version,
            &start.resources,
            &props::parse_proc_devices(&devices),
            &start.annotations,
        );
        let args = vec![
            Value::str(&self.unit),
            Value::str("replace"),
            props_value(props),
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let method = "StartTransientUnit";
        let job = match self.call(method, args.clone()) {
            // A failed unit of the same name stays loaded until reset: runc resets it and
            // tries once more.
            Err(DbusError::Reply { name, .. }) if name.ends_with(".UnitExists") => {
                let _ = self.call("ResetFailedUnit", vec![Value::str(&self.unit)]);
                self.call(method, args)
            }
            r => r,
        }
        .map_err(|e| self.error(method, e))?;
        self.started.set(true);
        let result = self.job_result(&job).map_err(|e| self.error(method, e))?;
        if result != "done" {
            return Err(self.error(
                method,
                DbusError::Io(format!(
                    "systemd's job to start the unit ended {result:?} (see journalctl -u {})",
                    self.unit
                )),
            ));
        }
        Ok(())
    }

    /// Stops the unit and waits until it is gone; one that is gone already is no error.
    fn stop_unit(&self) -> Result<()> {
        let method = "StopUnit";
        match self.call(method, vec![Value::str(&self.unit), Value::str("replace")]) {
            // As runc: a stop job that ends otherwise, or not in time, is a warning; the
            // directories are removed after it all the same.
            Ok(job) => match self.job_result(&job) {
                Ok(result) if result == "done" => {}
                Ok(result) => crate::log::warn(&format!(
                    "systemd unit {}: stopping it ended {result:?}",
                    self.unit
                )),
                Err(e @ DbusError::Timeout(_)) => {
                    crate::log::warn(&self.error(method, e).to_string());
                    return Ok(());
                }
                Err(e) => return Err(self.error(method, e)),
            },
            Err(DbusError::Reply { name, .. }) if name.ends_with(".NoSuchUnit") => {}
            Err(e) => return Err(self.error(method, e)),
        }
        // A unit that failed stays listed (and keeps its name taken) until reset.
        match self.call("ResetFailedUnit", vec![Value::str(&self.unit)]) {
            Err(DbusError::Reply { name, .. })
                if name.ends_with(".NoSuchUnit") || name.ends_with(".LoadFailed") => {}
            Err(e) => crate::log::debug(|| format!("ResetFailedUnit {}: {e}", self.unit)),
            Ok(_) => {}
        }
        Ok(())
    }

    /// Whether any of the unit's directories is there: systemd removes a scope's cgroup when
    /// its last process exits, and a stopped container's then has nothing left to kill or list.
    fn exists(&self) -> bool {
        self.fs.paths().values().any(|d| d.exists())
    }
}

fn manager_call(member: &str, args: Vec<Value>) -> Call<'_> {
    Call {
        destination: "org.freedesktop.systemd1",
        path: "/org/freedesktop/systemd1",
        interface: MANAGER,
        member,
        args,
    }
}

fn props_value(props: Props) -> Value {
    Value::Array(
        "(sv)".into(),
        props
            .into_iter()
            .map(|(n, v)| Value::Struct(vec![Value::Str(n), Value::variant(v)]))
            .collect(),
    )
}

fn connect() -> std::result::Result<Conn, DbusError> {
    let deadline = Instant::now() + JOB_TIMEOUT;
    let mut c = match Conn::open(Path::new(SYSTEM_BUS), true, deadline) {
        Ok(mut c) => {
            c.call(&Call {
                destination: "org.freedesktop.DBus",
                path: "/org/freedesktop/DBus",
                interface: "org.freedesktop.DBus",
                member: "AddMatch",
                args: vec![Value::str(format!(
                    "type='signal',interface='{MANAGER}',member='JobRemoved'"
                ))],
            })?;
            c
        }
        Err(e) => {
            crate::log::debug(|| format!("{SYSTEM_BUS}: {e}; trying {PRIVATE_SOCKET}"));
            Conn::open(Path::new(PRIVATE_SOCKET), false, deadline)?
        }
    };
    c.call(&manager_call("Subscribe", vec![]))?;
    Ok(c)
}

impl Manager for Systemd {
    fn paths(&self) -> Paths {
        self.fs.paths()
    }

    fn systemd_unit(&self) -> Option<String> {
        Some(self.unit.clone())
    }

    /// Nothing yet: systemd makes the unit with init in it (a scope cannot start empty), at
    /// `join`.
    fn create(&self, _made: &mut Made) -> Result<()> {
        Ok(())
    }

    fn clone_into(&self) -> Result<Option<OwnedFd>> {
        Ok(None)
    }

    /// At create: the unit, started with `pid` in it; then the hierarchies systemd does not
    /// manage, made and joined by kiln (as runc joins them). Otherwise (a process joining an
    /// existing container) the cgroupfs join.
    fn join(&self, pid: i32) -> Result<()> {
        if let (Some(start), false) = (&self.start, self.started.get()) {
            self.start_unit(start, pid)?;
            self.fs.create(&mut self.made.borrow_mut())?;
        }
        self.fs.join(pid)
    }

    /// The unit's properties (systemd keeps them across a daemon-reload), then the files. At
    /// create the properties went with StartTransientUnit already.
    fn set(&self, r: &LinuxResources) -> Result<()> {
        if !self.started.get() {
            let devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
            let p = props::resources(self.version, r, &props::parse_proc_devices(&devices));
            if !p.is_empty() {
                let method = "SetUnitProperties";
                let args = vec![Value::str(&self.unit), Value::Bool(true), props_value(p)];
                self.call(method, args).map_err(|e| self.error(method, e))?;
            }
        }
        self.fs.set(r)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        if !self.exists() {
            return Ok(vec![]);
        }
        self.fs.pids()
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        self.fs.freeze(frozen)
    }

    fn frozen(&self) -> bool {
        self.fs.frozen()
    }

    fn kill_all(&self) -> Result<()> {
        if !self.exists() {
            return Ok(());
        }
        self.fs.kill_all()
    }

    /// StopUnit (systemd removes the directories it made), then what kiln made.
    fn remove(&self) -> Result<()> {
        self.stop_unit()?;
        self.fs.remove()
    }

    /// A failed create: the unit, if it was started, and the directories kiln made.
    fn release(&self, made: &mut Made) -> Result<()> {
        let stopped = if self.started.get() {
            self.stop_unit()
        } else {
            Ok(())
        };
        let removed = self.made.borrow_mut().remove().and(made.remove());
        stopped.and(removed)
    }

    fn stats(&self) -> Result<Stats> {
        self.fs.stats()
    }

    fn oom_watch(&self) -> Result<Box<dyn OomWatch>> {
        self.fs.oom_watch()
    }
}
