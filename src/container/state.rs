//! What kiln keeps about a container between commands, and runc's `state` output (clients
//! parse it); the runtime spec's state for hooks is `hooks::SpecState`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::runtime::Hooks;
use serde::{Deserialize, Serialize};

use crate::hooks::SpecState;
pub use crate::hooks::Status;

/// The state file, `ROOT/ID/state.json`, replaced atomically on every change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The config's ociVersion, which runc's `state` reports.
    pub oci_version: String,
    pub id: String,
    /// Init's host pid; 0 until init is ready.
    pub pid: i32,
    /// Init's start time: with the pid, it identifies init for good (pid reuse).
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    /// poststart runs at `start`, poststop at `delete`: both long after config.json was read.
    pub hooks: Option<Hooks>,
    /// The container's cgroup in each hierarchy, as resolved at `create`.
    #[serde(default)]
    pub cgroup_paths: crate::cgroups::Paths,
    /// The systemd unit holding the cgroup (`--systemd-cgroup`): `delete` stops it, `update`
    /// sets its properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// The resources in force (config.json's, then as `update` changed them): `update` merges
    /// into these, since some values only make sense together (memory and swap). Kept as JSON
    /// text, parsed by `update` alone: every other command (`state`, `kill`, each container of
    /// `list`) would spend most of its parsing on them.
    #[serde(default)]
    pub resources: Option<Box<serde_json::value::RawValue>>,
    /// The container's resctrl group (linux.intelRdt), once init is in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<crate::cgroups::resctrl::Group>,
}

/// What `delete --force` needs when `state.json` is lost or damaged: where the container's
/// cgroups are and which process is its init. Kept apart from `state.json` (`recovery.json`),
/// small, and written only twice: before the first cgroup directory is made, and once init's
/// pid is known. `state.json` is rewritten by every `update`, holds the whole config and can
/// be hand-edited; this record is what is left to find the container's processes then.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub pid: i32,
    pub start_time: u64,
    pub cgroup_paths: crate::cgroups::Paths,
    /// The systemd unit holding the cgroup (`--systemd-cgroup`): `delete` stops it, `update`
    /// sets its properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
}

/// runc's `state` JSON, field for field and in its order.
#[derive(Serialize)]
pub struct RuncState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'a str,
    pub bundle: &'a std::path::Path,
    pub rootfs: &'a std::path::Path,
    pub created: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
    pub owner: &'a str,
}

impl State {
    /// A damaged container's state, known only by its ID and record (an empty one when that
    /// is damaged too): what `delete --force` removes (no hooks: they are unknown), and what
    /// `list` shows of it.
    pub fn recovered(id: &str, r: Record) -> State {
        State {
            oci_version: String::new(),
            id: id.to_owned(),
            pid: r.pid,
            start_time: r.start_time,
            bundle: PathBuf::new(),
            rootfs: PathBuf::new(),
            // Go's zero time, as runc would print a container it knows nothing of: clients
            // parse `created` as RFC 3339.
            created: "0001-01-01T00:00:00Z".to_owned(),
            annotations: BTreeMap::new(),
            hooks: None,
            cgroup_paths: r.cgroup_paths,
            systemd_unit: r.systemd_unit,
            resources: None,
            intel_rdt: None,
        }
    }

    pub fn record(&self) -> Record {
        Record {
            pid: self.pid,
            start_time: self.start_time,
            cgroup_paths: self.cgroup_paths.clone(),
            systemd_unit: self.systemd_unit.clone(),
        }
    }

    pub fn runc_json<'a>(&'a self, status: Status, owner: &'a str) -> RuncState<'a> {
        RuncState {
            oci_version: &self.oci_version,
            id: &self.id,
            // runc reports no pid for a stopped container: the number may already be another's.
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            annotations: &self.annotations,
            owner,
        }
    }

    /// What hooks and a seccomp listener are told of the container, its status and pid apart.
    pub fn hook_state(&self) -> SpecState<'_> {
        SpecState {
            oci_version: &self.oci_version,
            id: &self.id,
            bundle: &self.bundle,
            annotations: &self.annotations,
        }
    }

    /// The state given to hooks, with `pid` as the hook should see it.
    pub fn for_hooks(&self, status: Status, pid: i32) -> String {
        self.hook_state().json(status, pid)
    }
}
