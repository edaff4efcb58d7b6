//! `exec`: another process in a container that runs. The process is the one `--process`
//! describes, or the container's own (config.json's) changed by exec's flags, as runc builds
//! it; then `process::exec` joins the container with it.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use crate::container::{Container, Status};
use crate::error::{Context, Error, Result};
use crate::namespaces;
use crate::process::Peer;
use crate::process::exec::ExecOptions;
use crate::process::spawn::{self, Init};
use crate::spec::Bundle;

/// exec's flags that change the container's process (runc's meanings).
#[derive(Default)]
pub struct Changes {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// `uid[:gid]`.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub tty: bool,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
}

pub enum ProcessSource {
    /// `--process FILE`: the whole process, as in config.json.
    File(PathBuf),
    Flags(Changes),
}

pub struct Options {
    pub process: ProcessSource,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// `--cgroup`: sub-cgroups of the container's for the process.
    pub sub_cgroups: Vec<String>,
    /// kiln relays the terminal itself: no console socket needed.
    pub foreground: bool,
}

pub fn exec(c: &Container, o: &Options) -> Result<Init> {
    let status = c.status();
    match status {
        Status::Running | Status::Created => {}
        Status::Paused if o.ignore_paused => {}
        Status::Paused => {
            return Err(c.wrong_state(
                Status::Paused,
                "its processes are frozen: resume it first, or use exec --ignore-paused",
            ));
        }
        status => {
            return Err(c.wrong_state(status, "only a running container can run another process"));
        }
    }
    let init = c
        .init_pidfd()
        .ok_or_else(|| c.wrong_state(Status::Stopped, "its init exited"))?;
    let bundle = Bundle::load(&c.state.bundle)?;
    // Where the process was read, and its field there, for errors about it.
    let (process, file, at) = match &o.process {
        ProcessSource::File(path) => {
            let bytes = std::fs::read(path).ctx(|| format!("--process {}", path.display()))?;
            let p = parse_process(path, &bytes)?;
            crate::spec::check_user("user", p.user()).map_err(|e| e.in_file(path))?;
            (p, path.as_path(), "")
        }
        ProcessSource::Flags(changes) => {
            let base = bundle
                .spec
                .process()
                .clone()
                .ok_or_else(|| Error::config(&bundle.config, "process", "missing"))?;
            (apply(base, changes)?, bundle.config.as_path(), "process.")
        }
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Usage(
            "exec needs a command to run, or --process".into(),
        ));
    }
    crate::process::check(
        &process,
        o.foreground,
        o.console_socket.as_deref(),
        "--tty",
        file,
        at,
    )?;
    let seccomp = c.read_json::<crate::seccomp::Filter>(crate::seccomp::SAVED)?;
    let linux = bundle.spec.linux().as_ref();
    let cgroup = crate::cgroups::from_paths(crate::cgroups::sub_paths(
        c.state.cgroup_paths.clone(),
        &o.sub_cgroups,
    )?);
    let opts = ExecOptions {
        peer: Peer {
            cgroup: cgroup.as_ref(),
            console_socket: o.console_socket.as_deref(),
            seccomp: seccomp.as_ref(),
            state: c.state.hook_state(),
            status,
            pid: c.state.pid,
            lock: c.lock_fd(),
        },
        process: &process,
        init: init.as_fd(),
        personality: linux.and_then(|l| l.personality().as_ref()),
        memory_policy: linux.and_then(|l| l.memory_policy().as_ref()),
        affinity: crate::spec::cpulist::affinity(at, &process).map_err(|e| e.in_file(file))?,
        namespaces: namespaces::of_other(c.state.pid)?,
        extra_fds: o.preserve_fds,
        join_cgroup_last: status == Status::Paused,
    };
    let spawned = spawn::spawn_exec(&opts)?;
    // Into the container's resctrl group too (runc: after the cgroup, as here).
    let placed = c
        .state
        .intel_rdt
        .as_ref()
        .map_or(Ok(()), |g| crate::cgroups::resctrl::join(g, spawned.pid))
        .and_then(|()| {
            o.pid_file.as_ref().map_or(Ok(()), |path| {
                crate::container::lifecycle::write_pid_file(path, spawned.pid)
            })
        });
    if let Err(e) = placed {
        let _ = crate::sys::pidfd_send_signal(spawned.pidfd.as_fd(), libc::SIGKILL);
        crate::signals::restore(&spawned.saved_mask);
        return Err(e);
    }
    Ok(spawned)
}

/// `--process FILE`. The schema does not require `user`: a process without one runs as 0:0,
/// as runc's (Go's zero value).
fn parse_process(path: &Path, bytes: &[u8]) -> Result<Process> {
    match serde_json::from_slice(bytes) {
        Ok(serde_json::Value::Object(o)) if !o.contains_key("user") => {
            crate::spec::parse_completed_as(path, bytes, r#""user":{"uid":0,"gid":0}"#)
        }
        _ => crate::spec::parse_as(path, bytes),
    }
}

/// No capability at all, as an absent `process.capabilities` means (oci-spec's default would
/// be runc's three in every set).
fn none() -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    c.set_bounding(None)
        .set_effective(None)
        .set_permitted(None)
        .set_inheritable(None)
        .set_ambient(None);
    c
}

/// The container's process with exec's flags applied.
fn apply(mut p: Process, c: &Changes) -> Result<Process> {
    p.set_args(Some(c.args.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    for e in &c.env {
        // A variable given again replaces the container's.
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        env.retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != key);
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &c.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut user = p.user().clone();
    if let Some(spec) = &c.user {
        let bad = || Error::Usage(format!("--user {spec:?}: expected uid[:gid], numbers"));
        let (uid, gid) = match spec.split_once(':') {
            Some((u, g)) => (
                u.parse().map_err(|_| bad())?,
                Some(g.parse().map_err(|_| bad())?),
            ),
            None => (spec.parse().map_err(|_| bad())?, None),
        };
        for id in std::iter::once(uid).chain(gid) {
            crate::spec::check_id(id).map_err(|e| Error::Usage(format!("--user {spec:?}: {e}")))?;
        }
        user.set_uid(uid);
        if let Some(gid) = gid {
            user.set_gid(gid);
        }
    }
    for g in &c.additional_gids {
        crate::spec::check_id(*g).map_err(|e| Error::Usage(format!("--additional-gids: {e}")))?;
    }
    if !c.additional_gids.is_empty() {
        user.set_additional_gids(Some(c.additional_gids.clone()));
    }
    p.set_user(user);
    if !c.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_else(none);
        for name in &c.caps {
            let cap: Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| Error::Usage(format!("--cap {name:?}: not a capability")))?;
            let add = |set: &Option<std::collections::HashSet<Capability>>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            // Never inheritable: a process with inheritable capabilities gains them from a
            // file's inheritable ones at execve (CVE-2022-29162). Ambient, which the kernel
            // raises only where inheritable has it, only when the config lists inheritable, as
            // runc.
            if caps.inheritable().is_some() {
                caps.set_ambient(add(caps.ambient()));
            }
        }
        p.set_capabilities(Some(caps));
    }
    p.set_terminal(Some(c.tty));
    if c.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &c.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &c.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[Capability]) -> Option<std::collections::HashSet<Capability>> {
        Some(names.iter().copied().collect())
    }

    fn with_cap(caps: Option<LinuxCapabilities>) -> LinuxCapabilities {
        let mut p = Process::default();
        p.set_capabilities(caps);
        let changes = Changes {
            args: vec!["true".into()],
            caps: vec!["CAP_NET_RAW".into()],
            ..Default::default()
        };
        apply(p, &changes).unwrap().capabilities().clone().unwrap()
    }

    #[test]
    fn cap_grows_bounding_effective_permitted_only() {
        let kill = set(&[Capability::Kill]);
        let mut c = none();
        c.set_bounding(kill.clone())
            .set_effective(kill.clone())
            .set_permitted(kill.clone())
            .set_ambient(kill.clone());
        let c = with_cap(Some(c));
        for s in [c.bounding(), c.effective(), c.permitted()] {
            assert_eq!(s, &set(&[Capability::Kill, Capability::NetRaw]));
        }
        assert_eq!((c.inheritable(), c.ambient()), (&None, &kill));
    }

    #[test]
    fn cap_goes_to_ambient_only_beside_a_configured_inheritable_set() {
        let mut c = none();
        c.set_inheritable(set(&[Capability::Chown]));
        let c = with_cap(Some(c));
        assert_eq!(c.inheritable(), &set(&[Capability::Chown]));
        assert_eq!(c.ambient(), &set(&[Capability::NetRaw]));
    }

    #[test]
    fn cap_without_configured_capabilities_is_the_only_one() {
        let c = with_cap(None);
        assert_eq!(c.effective(), &set(&[Capability::NetRaw]));
        assert_eq!((c.inheritable(), c.ambient()), (&None, &None));
    }

    #[test]
    fn process_file_without_user_is_root() {
        let p = parse_process(Path::new("p.json"), br#"{"args":["id"],"cwd":"/"}"#).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
        let e = parse_process(
            Path::new("p.json"),
            br#"{"args":["id"],"cwd":"/","terminal":"yes"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("terminal"), "{e}");
        let p = parse_process(
            Path::new("p.json"),
            br#"{"args":["id"],"cwd":"/","user":{"uid":5,"gid":6}}"#,
        )
        .unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (5, 6));
    }
}
