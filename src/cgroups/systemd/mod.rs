//! `--systemd-cgroup`: the container's cgroup is a transient systemd unit, as runc's systemd
//! driver makes it. systemd is asked over D-Bus (`dbus`) to start a scope (or slice) named
//! from cgroupsPath (`unit`) with the container's init in it and the resources as unit
//! properties (`props`); the directories systemd made are then handed to kiln's cgroupfs
//! manager, which writes every resource file (what systemd has no property for too), freezes,
//! kills and reads the statistics, as on a host without systemd. `delete` stops the unit.
//!
//! A rootless container's unit is the user's own: kiln asks the caller's `systemd --user`
//! over the user's bus ($DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus), as runc does,
//! and the unit's cgroup is below that manager's (user@UID.service), which delegates its
//! controllers to the user.

mod dbus;
mod props;
mod unit;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use super::{Hierarchy, Made, Manager, OomWatch, Paths, Request, Stats};
use crate::error::{Error, Result};
use dbus::{Call, Conn, DbusError, Value};
use props::{Host, Props, Version};
use unit::Unit;

/// runc's bound on each job systemd runs for it (starting or stopping the unit).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

const PRIVATE_SOCKET: &str = "/run/systemd/private";
const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// The unit of a new container, checked before anything exists: cgroupsPath's shape, systemd
/// running here, and for a rootless container the user's bus and cgroup v2.
pub fn new(req: &Request, all: &[Hierarchy]) -> Result<Box<dyn Manager>> {
    let path_error = |msg: String| Error::Cgroup {
        field: "linux.cgroupsPath".into(),
        msg,
    };
    let unit = unit::parse(req.cgroups_path, req.id, req.rootless).map_err(path_error)?;
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
    let (bus, manager) = if req.rootless {
        let uid = nix::unistd::geteuid().as_raw();
        let env = |k| std::env::var_os(k).map(PathBuf::from);
        let bus = user_bus(env("DBUS_SESSION_BUS_ADDRESS"), env("XDG_RUNTIME_DIR"), uid)
            .map_err(|why| refuse(&why))?;
        if !bus.exists() {
            return Err(refuse(&format!(
                "no systemd user instance for uid {uid}: no bus at {} (is user@{uid}.service running? loginctl enable-linger)",
                bus.display()
            )));
        }
        if !matches!(all, [v2] if v2.controllers.is_empty()) {
            return Err(refuse(
                "systemd's user instance delegates cgroups on cgroup v2 only",
            ));
        }
        (Bus::User(bus), unit::user_manager(uid))
    } else {
        (Bus::System, String::new())
    };
    let annotations = props::annotations(req.annotations).map_err(props_error)?;
    let paths = unit::paths(all, &unit, &manager).map_err(path_error)?;
    let mut m = Systemd::open(unit.name.clone(), paths, bus);
    // A value no property can take is refused before the unit exists.
    props::resources(m.host(), req.resources, &[]).map_err(props_error)?;
    m.start = Some(Start {
        id: req.id.to_owned(),
        unit,
        resources: req.resources.clone(),
        annotations,
    });
    Ok(Box::new(m))
}

fn props_error((field, msg): (String, String)) -> Error {
    Error::Cgroup { field, msg }
}

/// sd_booted(3)'s test: systemd is PID 1 and manages this host.
pub fn running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The manager of an existing container's unit, from what its state recorded: a unit below
/// a user@UID.service is the user's, asked over the caller's user bus.
pub fn existing(unit: String, paths: Paths) -> Box<dyn Manager> {
    let user = paths.values().any(|p| {
        p.components().any(|c| {
            let c = c.as_os_str().to_string_lossy();
            c.starts_with("user@") && c.ends_with(".service")
        })
    });
    let bus = if user {
        let env = |k| std::env::var_os(k).map(PathBuf::from);
        let uid = nix::unistd::geteuid().as_raw();
        // No address to be had: connecting fails naming the path, at the first call.
        user_bus(env("DBUS_SESSION_BUS_ADDRESS"), env("XDG_RUNTIME_DIR"), uid)
            .map(Bus::User)
            .unwrap_or(Bus::System)
    } else {
        Bus::System
    };
    Box::new(Systemd::open(unit, paths, bus))
}

/// Which systemd instance a unit belongs to.
#[derive(Debug, Clone, PartialEq)]
enum Bus {
    /// The system bus (else systemd's private socket).
    System,
    /// A user's session bus, where `systemd --user` is `org.freedesktop.systemd1`.
    User(PathBuf),
}

/// The user's bus, as sd-bus and runc find it: $DBUS_SESSION_BUS_ADDRESS's `unix:path=`,
/// else $XDG_RUNTIME_DIR/bus, else /run/user/UID/bus (logind's runtime directory).
fn user_bus(
    address: Option<PathBuf>,
    runtime_dir: Option<PathBuf>,
    uid: u32,
) -> std::result::Result<PathBuf, String> {
    if let Some(a) = address.filter(|a| !a.as_os_str().is_empty()) {
        let a = a.to_string_lossy();
        // An address list is `;`-separated, each `transport:key=value,...`; the first unix path.
        let path = a.split(';').find_map(|one| {
            let kv = one.strip_prefix("unix:")?;
            kv.split(',').find_map(|p| p.strip_prefix("path="))
        });
        return path.map(PathBuf::from).ok_or_else(|| {
            format!(
                "DBUS_SESSION_BUS_ADDRESS={a:?} has no unix:path= (kiln connects to a socket path)"
            )
        });
    }
    Ok(runtime_dir
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{uid}")))
        .join("bus"))
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
    bus: Bus,
    conn: RefCell<Option<Conn>>,
    /// systemd's version, asked at the first need (`host`).
    systemd: Cell<Option<u32>>,
    /// The directories kiln made itself (where systemd did not), for a failed create.
    made: RefCell<Made>,
    started: Cell<bool>,
}

impl Systemd {
    fn open(unit: String, paths: Paths, bus: Bus) -> Systemd {
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
            bus,
            conn: RefCell::new(None),
            systemd: Cell::new(None),
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
        self.call_on(MANAGER, member, args)
    }

    /// A call of the manager object's `interface`.
    fn call_on(
        &self,
        interface: &str,
        member: &str,
        args: Vec<Value>,
    ) -> std::result::Result<Vec<Value>, DbusError> {
        let mut conn = self.conn.borrow_mut();
        if conn.is_none() {
            *conn = Some(connect(&self.bus)?);
        }
        let c = conn.as_mut().expect("connected above");
        c.call(&manager_call(interface, member, args))
    }

    /// The hierarchy and systemd's version, for the properties. The version is the manager's
    /// Version property ("252.38-1~deb12u1"), asked once; one that cannot be had is 0, which
    /// gets none of the properties only newer systemds take, as runc does then.
    fn host(&self) -> Host {
        let systemd = self.systemd.get().unwrap_or_else(|| {
            let args = vec![Value::str(MANAGER), Value::str("Version")];
            let v = match self.call_on(PROPERTIES, "Get", args) {
                Ok(reply) => match reply.first() {
                    Some(Value::Variant(v)) => v.as_str().and_then(props::parse_version),
                    _ => None,
                },
                Err(e) => {
                    crate::log::warn(&format!("systemd's version: {e}"));
                    None
                }
            };
            let v = v.unwrap_or(0);
            self.systemd.set(Some(v));
            v
        });
        Host {
            version: self.version,
            systemd,
        }
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
            self.host(),
            &start.resources,
            &props::parse_proc_devices(&devices),
            &start.annotations,
        )
        .map_err(props_error)?;
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

fn manager_call<'a>(interface: &'a str, member: &'a str, args: Vec<Value>) -> Call<'a> {
    Call {
        destination: "org.freedesktop.systemd1",
        path: "/org/freedesktop/systemd1",
        interface,
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

fn connect(bus: &Bus) -> std::result::Result<Conn, DbusError> {
    let deadline = Instant::now() + JOB_TIMEOUT;
    let (first, private) = match bus {
        Bus::System => (Path::new(SYSTEM_BUS), Some(PRIVATE_SOCKET)),
        Bus::User(path) => (path.as_path(), None),
    };
    let mut c = match Conn::open(first, true, deadline) {
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
            let Some(private) = private else {
                return Err(e);
            };
            crate::log::debug(|| format!("{SYSTEM_BUS}: {e}; trying {private}"));
            Conn::open(Path::new(private), false, deadline)?
        }
    };
    c.call(&manager_call(MANAGER, "Subscribe", vec![]))?;
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

    fn entry(&self) -> Result<super::Entry> {
        Ok(super::Entry::Parent)
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

    fn preload(&self, r: &LinuxResources) -> Result<()> {
        self.fs.preload(r)
    }

    /// The unit's properties (systemd keeps them across a daemon-reload), then the files. At
    /// create the properties went with StartTransientUnit already.
    fn set(&self, r: &LinuxResources) -> Result<()> {
        if !self.started.get() {
            let devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
            let p = props::resources(self.host(), r, &props::parse_proc_devices(&devices))
                .map_err(props_error)?;
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

    fn paused(&self) -> bool {
        self.fs.paused()
    }

    fn kill_all(&self) -> Result<()> {
        if !self.exists() {
            return Ok(());
        }
        // systemd may remove the scope between the check and the write (its last process
        // exited): nothing is left to kill then.
        match self.fs.kill_all() {
            Err(_) if !self.exists() => Ok(()),
            r => r,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<PathBuf> {
        Some(PathBuf::from(s))
    }

    #[test]
    fn the_user_bus_is_found_as_sd_bus_finds_it() {
        let addr = p("unix:path=/run/user/7/bus,guid=abc");
        assert_eq!(
            user_bus(addr, p("/x"), 7).unwrap(),
            Path::new("/run/user/7/bus")
        );
        let list = p("tcp:host=h;unix:path=/tmp/b");
        assert_eq!(user_bus(list, None, 7).unwrap(), Path::new("/tmp/b"));
        assert_eq!(
            user_bus(None, p("/run/user/9"), 7).unwrap(),
            Path::new("/run/user/9/bus")
        );
        assert_eq!(
            user_bus(p(""), p(""), 7).unwrap(),
            Path::new("/run/user/7/bus")
        );
        let abstract_only = user_bus(p("unix:abstract=/tmp/dbus-x"), None, 7).unwrap_err();
        assert!(
            abstract_only.contains("DBUS_SESSION_BUS_ADDRESS"),
            "{abstract_only}"
        );
    }
}
