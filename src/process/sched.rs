//! Scheduling attributes of the process: oomScoreAdj, personality, scheduler, ioPriority.
//! All are inherited across execve, and lowering oom_score_adj or taking a real-time policy
//! needs privileges, so init sets them before dropping any.

use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Process, Scheduler,
};

use crate::error::{Context, Error, Result};

/// `process.oomScoreAdj` of init in a new user namespace, written by the parent (which has the
/// host's CAP_SYS_RESOURCE, as runc's does), since init in the namespace can no longer open it.
pub fn oom_score_adj_of(pid: i32, p: &Process) -> Result<()> {
    if let Some(adj) = p.oom_score_adj() {
        crate::procfs::update(format!("/proc/{pid}/oom_score_adj"), &adj.to_string())
            .ctx(|| format!("process.oomScoreAdj: {adj}"))?;
    }
    Ok(())
}

pub fn apply(p: &Process, personality: Option<&LinuxPersonality>) -> Result<()> {
    if let Some(adj) = p.oom_score_adj() {
        // Podman sets the value kiln already has, which inside a user namespace cannot even be
        // opened for writing: leave it be. Another value was written from the parent.
        crate::procfs::update("/proc/self/oom_score_adj", &adj.to_string())
            .ctx(|| format!("process.oomScoreAdj: {adj}"))?;
    }
    if let Some(pers) = personality {
        let persona = match pers.domain() {
            LinuxPersonalityDomain::PerLinux => 0x0000,
            LinuxPersonalityDomain::PerLinux32 => 0x0008,
        };
        nix::sys::personality::set(nix::sys::personality::Persona::from_bits_retain(persona))
            .ctx(|| "linux.personality")?;
    }
    if let Some(s) = p.scheduler() {
        scheduler(s)?;
    }
    if let Some(io) = p.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        let prio = (class << 13) | io.priority();
        crate::sys::ioprio_set_self(prio)
            .ctx(|| format!("process.ioPriority: {:?} {}", io.class(), io.priority()))?;
    }
    Ok(())
}

fn scheduler(s: &Scheduler) -> Result<()> {
    use LinuxSchedulerPolicy as P;
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().fold(0u64, |acc, f| {
        acc | match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        }
    });
    let attr = crate::sys::SchedAttr {
        size: size_of::<crate::sys::SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    crate::sys::sched_setattr_self(&attr)
        .map_err(|e| Error::os(format!("process.scheduler: {:?}", s.policy()), e))
}
