//! The five capability sets of `process.capabilities`. Absent means none at all, as in runc.

use std::collections::HashSet;
use std::path::Path;

use caps::{CapSet, Capability};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Error, Result};

fn convert(set: Option<&Capabilities>) -> HashSet<Capability> {
    set.into_iter()
        .flatten()
        // oci-spec prints AUDIT_CONTROL for CAP_AUDIT_CONTROL, and every name it parses is one
        // the caps crate knows.
        .filter_map(|c| format!("CAP_{c}").parse().ok())
        .collect()
}

/// Refuses a config that asks for a capability kiln itself cannot grant: the capset would fail
/// deep inside init with a bare EPERM, so say which capability and why, before creating anything.
/// The error names `file` and the field, below `at` (the process object's path in that file).
pub fn check_grantable(c: Option<&LinuxCapabilities>, file: &Path, at: &str) -> Result<()> {
    let Some(c) = c else { return Ok(()) };
    let sets = [
        ("effective", convert(c.effective().as_ref())),
        ("permitted", convert(c.permitted().as_ref())),
        ("inheritable", convert(c.inheritable().as_ref())),
        ("ambient", convert(c.ambient().as_ref())),
    ];
    // Only the capabilities asked for are looked up in kiln's bounding set: one prctl each,
    // however many sets name it, not one for every capability there is. One the kernel does
    // not know (EINVAL) is not in it.
    let asked: HashSet<Capability> = sets.iter().flat_map(|(_, set)| set).copied().collect();
    let ours: HashSet<Capability> = asked
        .into_iter()
        .filter(|&cap| caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false))
        .collect();
    for (name, set) in sets {
        let mut missing: Vec<_> = set.difference(&ours).map(|c| c.to_string()).collect();
        missing.sort();
        if let Some(first) = missing.first() {
            return Err(Error::config(
                file,
                format!("{at}capabilities.{name}"),
                format!(
                    "{first} is not in kiln's own bounding set, so no container started from here can have it"
                ),
            ));
        }
    }
    Ok(())
}

/// The configured sets, worked out before the seccomp filter so that applying them makes only
/// the prctl, capget and capset calls.
pub struct Plan {
    /// What the bounding set must lose: every capability the config does not list.
    unbound: Vec<Capability>,
    effective: HashSet<Capability>,
    permitted: HashSet<Capability>,
    inheritable: HashSet<Capability>,
    ambient: Vec<Capability>,
}

impl Plan {
    pub fn new(c: Option<&LinuxCapabilities>) -> Plan {
        let bounding = convert(c.and_then(|c| c.bounding().as_ref()));
        Plan {
            unbound: caps::all()
                .into_iter()
                .filter(|cap| !bounding.contains(cap))
                .collect(),
            effective: convert(c.and_then(|c| c.effective().as_ref())),
            permitted: convert(c.and_then(|c| c.permitted().as_ref())),
            inheritable: convert(c.and_then(|c| c.inheritable().as_ref())),
            ambient: convert(c.and_then(|c| c.ambient().as_ref()))
                .into_iter()
                .collect(),
        }
    }

    /// Drops from the bounding set what the config does not list. Needs CAP_SETPCAP, so it
    /// runs before the user switch.
    pub fn apply_bounding(&self) -> Result<()> {
        // One prctl per capability: dropping one that is not in the set succeeds. A failed
        // drop matters only for one still there: the kernel refuses one it does not know
        // (EINVAL; caps::all() may be newer than the kernel), which no process can have.
        for &cap in &self.unbound {
            if let Err(e) = caps::drop(None, CapSet::Bounding, cap)
                && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false)
            {
                return Err(Error::refused(
                    format!("process.capabilities.bounding: dropping {cap}"),
                    e.to_string(),
                ));
            }
        }
        Ok(())
    }

    /// Sets effective, permitted, inheritable and ambient, after the user switch (which kept
    /// the permitted set through PR_SET_KEEPCAPS). Effective first: each capset must leave
    /// effective within permitted.
    pub fn apply(&self) -> Result<()> {
        let sets = [
            (CapSet::Effective, &self.effective, "effective"),
            (CapSet::Permitted, &self.permitted, "permitted"),
            (CapSet::Inheritable, &self.inheritable, "inheritable"),
        ];
        for (set, wanted, name) in sets {
            caps::set(None, set, wanted).map_err(|e| {
                Error::refused(format!("process.capabilities.{name}"), e.to_string())
            })?;
        }
        caps::clear(None, CapSet::Ambient)
            .map_err(|e| Error::refused("process.capabilities.ambient", e.to_string()))?;
        // The kernel only raises an ambient capability that is also permitted and inheritable.
        // runc's own default config lists ambient ones without inheritable, and runc says
        // nothing: only --debug tells.
        for &cap in &self.ambient {
            if let Err(e) = caps::raise(None, CapSet::Ambient, cap) {
                crate::log::debug(|| {
                    format!(
                        "process.capabilities.ambient: cannot raise {cap} (it must also be permitted and inheritable): {e}"
                    )
                });
            }
        }
        Ok(())
    }
}
