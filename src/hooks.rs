//! OCI hooks: each runs with the container's state JSON on stdin, its own args and its
//! `timeout`. Where a failure stops the lifecycle and where it is only a warning is the spec's.
//!
//! Environment and working directory are runc's (which hook tools rely on): with `env`, exactly
//! that; without, the hooks of the runtime namespace inherit kiln's environment while those run
//! by init in the container (createContainer, startContainer) get an empty one, since runc's
//! init clears its own. The cwd is the caller's, except where the caller names one: runc runs
//! createContainer hooks in the container's rootfs and the hooks of `create` in the bundle.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

use oci_spec::runtime::Hook;
use serde::Serialize;

use crate::error::{Error, Result};

/// A container's status, as the runtime spec's state names it (runc adds `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    /// Running, but frozen by `pause`.
    Paused,
    Stopped,
    /// Its state cannot be read (damaged or missing): only `list` shows it, to say that it
    /// exists and that `delete --force` removes it.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
            Status::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The runtime spec's state of a container, but its status and pid: those change while the same
/// container is described (`creating` to prestart, `created` to startContainer, ...).
#[derive(Clone, Copy)]
pub struct SpecState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub annotations: &'a BTreeMap<String, String>,
}

/// The runtime spec's state, which hooks read on stdin.
#[derive(Serialize)]
struct Json<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    id: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    pid: i32,
    bundle: &'a Path,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl SpecState<'_> {
    /// The state as hooks and a seccomp listener read it, with `pid` as they should see it.
    pub fn json(&self, status: Status, pid: i32) -> String {
        let s = Json {
            oci_version: self.oci_version,
            id: self.id,
            status: status.as_str(),
            pid,
            bundle: self.bundle,
            annotations: self.annotations,
        };
        serde_json::to_string(&s).expect("state serialises")
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Stage {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prestart => "prestart",
            Stage::CreateRuntime => "createRuntime",
            Stage::CreateContainer => "createContainer",
            Stage::StartContainer => "startContainer",
            Stage::Poststart => "poststart",
            Stage::Poststop => "poststop",
        }
    }

    /// Run by init, in the container's namespaces.
    fn in_container(self) -> bool {
        matches!(self, Stage::CreateContainer | Stage::StartContainer)
    }

    pub fn hooks(self, hooks: &Option<oci_spec::runtime::Hooks>) -> &[Hook] {
        let Some(h) = hooks else { return &[] };
        match self {
            Stage::Prestart => h.prestart(),
            Stage::CreateRuntime => h.create_runtime(),
            Stage::CreateContainer => h.create_container(),
            Stage::StartContainer => h.start_container(),
            Stage::Poststart => h.poststart(),
            Stage::Poststop => h.poststop(),
        }
        .as_deref()
        .unwrap_or_default()
    }
}

/// Runs the stage's hooks in order, in `cwd` if given; the first failure stops them and is
/// returned.
pub fn run(
    stage: Stage,
    hooks: &Option<oci_spec::runtime::Hooks>,
    state: &str,
    cwd: Option<&Path>,
) -> Result<()> {
    for hook in stage.hooks(hooks) {
        run_one(stage, hook, state, cwd).map_err(|msg| Error::Hook {
            stage: stage.name(),
            path: hook.path().clone(),
            msg,
        })?;
    }
    Ok(())
}

/// poststop: a failure is logged and the rest still run (runtime spec).
pub fn run_warn(stage: Stage, hooks: &Option<oci_spec::runtime::Hooks>, state: &str) {
    for hook in stage.hooks(hooks) {
        if let Err(msg) = run_one(stage, hook, state, None) {
            crate::log::warn(
                &Error::Hook {
                    stage: stage.name(),
                    path: hook.path().clone(),
                    msg,
                }
                .to_string(),
            );
        }
    }
}

fn run_one(
    stage: Stage,
    hook: &Hook,
    state: &str,
    cwd: Option<&Path>,
) -> std::result::Result<(), String> {
    // The hook's output goes to an unnamed file, not a pipe: a chatty hook can never block on a
    // full pipe while we wait for it, and what it said ends up in the error.
    let out =
        nix::sys::memfd::memfd_create(c"kiln-hook", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)
            .map_err(|e| e.to_string())?;
    let mut out = std::fs::File::from(out);
    let args = hook.args().as_deref().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    if hook.env().is_some() || stage.in_container() {
        cmd.env_clear();
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.args(args.iter().skip(1))
        .envs(
            hook.env()
                .iter()
                .flatten()
                .filter_map(|kv| kv.split_once('=')),
        )
        .stdin(Stdio::piped())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(out.try_clone().map_err(|e| e.to_string())?);
    let mut child = crate::sys::without_inherited_fds(&mut cmd)
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    let pidfd = crate::sys::pidfd_open(child.id() as i32).map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state.as_bytes());
    }
    let timeout = hook
        .timeout()
        .map(|t| std::time::Duration::from_secs(t as u64));
    let timed_out = !crate::sys::wait_readable(pidfd.as_fd(), timeout);
    if timed_out {
        let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut said = String::new();
    let _ = out.rewind();
    let _ = out.read_to_string(&mut said);
    let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    if timed_out {
        return Err(format!(
            "timed out after {}s{said}",
            timeout.unwrap_or_default().as_secs()
        ));
    }
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(c), _) => Err(format!("exited with status {c}{said}")),
        (_, Some(s)) => Err(format!("killed by signal {s}{said}")),
        _ => Err(format!("failed{said}")),
    }
}
