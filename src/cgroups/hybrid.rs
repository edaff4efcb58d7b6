//! Hybrid hosts: v1 hierarchies for the controllers mounted there, and a cgroup2 mount (often
//! `/sys/fs/cgroup/unified`) that the container joins too. Everything v1 has goes to v1; what
//! only the unified hierarchy has (hugetlb on this project's machines) and the `unified` keys go
//! there, instead of being dropped as runc drops them.

use oci_spec::runtime::LinuxResources;

use super::v1::V1;
use super::v2::V2;
use super::{Entry, Made, Manager, OomWatch, Paths, Stats};
use crate::error::Result;

pub struct Hybrid {
    v1: V1,
    v2: V2,
}

impl Hybrid {
    pub fn new(v1: V1, v2: V2) -> Hybrid {
        Hybrid { v1, v2 }
    }

    /// `r` split in what v1 applies and what the unified hierarchy applies.
    fn split(&self, r: &LinuxResources) -> (LinuxResources, LinuxResources) {
        let mut v1 = r.clone();
        let mut v2 = LinuxResources::default();
        v2.set_unified(v1.unified().clone());
        v1.set_unified(None);
        if !self.v1.has("hugetlb") {
            v2.set_hugepage_limits(v1.hugepage_limits().clone());
            v1.set_hugepage_limits(None);
        }
        if !self.v1.has("rdma") {
            v2.set_rdma(v1.rdma().clone());
            v1.set_rdma(None);
        }
        (v1, v2)
    }
}

impl Manager for Hybrid {
    fn paths(&self) -> Paths {
        let mut p = self.v1.paths();
        p.extend(self.v2.paths());
        p
    }

    fn create(&self, made: &mut Made) -> Result<()> {
        self.v1.create(made)?;
        self.v2.create(made)
    }

    /// The unified hierarchy at clone3 (CLONE_INTO_CGROUP works on any cgroup2 mount), the v1
    /// ones by the child itself: neither takes the lock a write by pid takes (`Tasks`). Where
    /// the child cannot enter v1 itself, the parent moves it into both, as one.
    fn entry(&self) -> Result<Entry> {
        match self.v1.tasks() {
            Some(tasks) => Ok(Entry::Itself(Some(self.v2.open_dir()?), tasks)),
            None => Ok(Entry::Parent),
        }
    }

    fn join(&self, pid: i32) -> Result<()> {
        self.v1.join(pid)?;
        self.v2.join(pid)
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        let (v1, v2) = self.split(r);
        self.v1.set(&v1)?;
        self.v2.set_filtered(&v2, false)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        self.v1.pids()
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        self.v1.freeze(frozen)
    }

    fn frozen(&self) -> bool {
        self.v1.frozen()
    }

    fn paused(&self) -> bool {
        self.v1.paused()
    }

    fn kill_all(&self) -> Result<()> {
        self.v1.kill_all()
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = self.v1.stats()?;
        if !self.v1.has("hugetlb") {
            s.hugetlb = super::stats::hugetlb(self.v2.dir(), true);
        }
        Ok(s)
    }

    fn oom_watch(&self) -> Result<Box<dyn OomWatch>> {
        self.v1.oom_watch()
    }
}
