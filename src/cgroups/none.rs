//! A rootless container without a cgroup: no hierarchy was delegated to its user (see
//! `cgroups::new`). It runs where its creator's processes run; what needs a cgroup of its own
//! (limits, listing or freezing its processes, statistics) says so, naming why.

use oci_spec::runtime::LinuxResources;

use super::{Made, Manager, OomWatch, Paths, Stats};
use crate::error::{Error, Result};

pub struct NoCgroup;

fn unavailable(field: &str, what: &str) -> Error {
    Error::Cgroup {
        field: field.to_owned(),
        msg: format!(
            "cannot {what}: the container has no cgroup (rootless, and no cgroup is delegated to its user)"
        ),
    }
}

impl Manager for NoCgroup {
    fn paths(&self) -> Paths {
        Paths::new()
    }

    fn create(&self, _made: &mut Made) -> Result<()> {
        Ok(())
    }

    fn entry(&self) -> Result<super::Entry> {
        Ok(super::Entry::Parent)
    }

    fn join(&self, _pid: i32) -> Result<()> {
        Ok(())
    }

    /// Device rules are skipped, as runc skips them rootless: in a user namespace no device can
    /// be made, only bind-mounted ones the user may open anyway.
    fn set(&self, r: &LinuxResources) -> Result<()> {
        if super::requests_limits(r) {
            return Err(unavailable("linux.resources", "set limits"));
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        Err(unavailable("cgroup", "list the container's processes"))
    }

    fn freeze(&self, _frozen: bool) -> Result<()> {
        Err(unavailable("cgroup", "freeze or thaw the container"))
    }

    fn frozen(&self) -> bool {
        false
    }

    /// Nothing to find the processes by: killing init (by the caller) ends a container with a
    /// pid namespace of its own; without one, its other processes stay, as with runc.
    fn kill_all(&self) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> Result<Stats> {
        Err(unavailable("cgroup", "read statistics"))
    }

    fn oom_watch(&self) -> Result<Box<dyn OomWatch>> {
        Err(unavailable("cgroup", "watch for OOM kills"))
    }
}
