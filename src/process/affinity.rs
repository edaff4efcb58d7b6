//! CPU affinity, as runc 1.2+ sets it: an exec'd process runs on `execCPUAffinity.initial`
//! until it has joined the container's cgroup (so that the setup, which the cgroup would
//! charge, stays off the CPUs the container's work uses), then on `final`. Without either,
//! and for init always, the affinity kiln was started with is dropped once in the cgroup: the
//! process gets every CPU of the container's cpuset, not kiln's own pinning (`taskset kiln
//! run`). With `initial` only, the kernel decides after the move (the spec's rule).

use crate::error::{Error, Result};
use crate::spec::cpulist::{Affinity, MAX_ID};

/// Before joining the cgroup: `initial`, then the debug line runc's tests read.
pub fn before_cgroup(a: &Affinity) -> Result<()> {
    if let Some(initial) = &a.initial {
        crate::sys::sched_setaffinity(0, &initial.0)
            .map_err(|e| Error::os("execCPUAffinity.initial: sched_setaffinity", e))?;
    }
    log();
    Ok(())
}

/// Once in the cgroup: `final`, or every CPU where the process asked for nothing.
pub fn in_cgroup(a: &Affinity) -> Result<()> {
    match (&a.initial, &a.last) {
        (_, Some(last)) => crate::sys::sched_setaffinity(0, &last.0)
            .map_err(|e| Error::os("execCPUAffinity.final: sched_setaffinity", e)),
        (None, None) => {
            reset();
            Ok(())
        }
        (Some(_), None) => Ok(()),
    }
}

/// Every CPU there may ever be (the kernel keeps those of the cpuset), as runc's
/// tryResetCPUAffinity; a failure leaves kiln's affinity, as runc warns.
pub fn reset() {
    let all = vec![u64::MAX; MAX_ID as usize / 64];
    if let Err(e) = crate::sys::sched_setaffinity(0, &all) {
        crate::log::warn(&format!(
            "resetting the CPU affinity failed, the process keeps kiln's: {e}"
        ));
    }
}

/// `affinity: 0x3` at debug level, runc's line (the first 64 CPUs).
pub fn log() {
    crate::log::debug(|| match crate::sys::sched_getaffinity_low() {
        Ok(mask) => format!("affinity: {mask:#x}"),
        Err(e) => format!("sched_getaffinity: {e}"),
    });
}
