//! A cgroup's statistics in the JSON shape of `runc events` (libcontainer's events types, field
//! for field, including Go's `omitempty` quirks: empty structs stay, zero numbers go).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

fn zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize, Default, Debug)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: Empty,
    /// runc reports none (a nil slice).
    pub network_interfaces: Option<()>,
}

#[derive(Serialize, Default, Debug)]
pub struct Empty {}

#[derive(Serialize, Default, Debug)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Serialize, Default, Debug)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Serialize, Default, Debug)]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Serialize, Default, Debug)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced: Vec<BlkioEntry>,
}

#[derive(Serialize, Default, Debug)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

// ------------------------------------------------------------------ reading files

/// A number file; "max" (v2's "no limit") reads as u64::MAX, as runc reports it.
pub fn num(dir: &Path, file: &str) -> u64 {
    let s = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    let s = s.trim();
    if s == "max" {
        u64::MAX
    } else {
        s.parse().unwrap_or(0)
    }
}

/// A flat keyed file (`memory.stat`, `cpu.stat`, `memory.events`): `key value` per line.
pub fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    let s = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    s.lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
        .collect()
}

fn list(dir: &Path, file: &str) -> Vec<u64> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// `0-3,5` as a list of numbers.
fn ranges(dir: &Path, file: &str) -> Vec<u16> {
    let s = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    let mut out = vec![];
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
            out.extend(a..=b);
        }
    }
    out
}

pub fn cpuset(dir: &Path, prefix: &str) -> CpuSet {
    let n = |f: &str| num(dir, &format!("{prefix}{f}"));
    let (cpus, mems) = if prefix.is_empty() {
        ("cpuset.effective_cpus", "cpuset.effective_mems")
    } else {
        ("cpuset.cpus.effective", "cpuset.mems.effective")
    };
    CpuSet {
        cpus: ranges(dir, cpus),
        mems: ranges(dir, mems),
        cpu_exclusive: n("cpuset.cpu_exclusive"),
        mem_hardwall: n("cpuset.mem_hardwall"),
        mem_exclusive: n("cpuset.mem_exclusive"),
        memory_migrate: n("cpuset.memory_migrate"),
        memory_spread_page: n("cpuset.memory_spread_page"),
        memory_spread_slab: n("cpuset.memory_spread_slab"),
        memory_pressure: n("cpuset.memory_pressure"),
        sched_load_balance: n("cpuset.sched_load_balance"),
        sched_relax_domain_level: std::fs::read_to_string(
            dir.join(format!("{prefix}cpuset.sched_relax_domain_level")),
        )
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0),
    }
}

pub fn cpu_v1(cpu: Option<&Path>, cpuacct: Option<&Path>) -> Cpu {
    let mut out = Cpu::default();
    if let Some(d) = cpuacct {
        let ticks = |v: u64| v * 1_000_000_000 / clock_ticks();
        let stat = keyed(d, "cpuacct.stat");
        out.usage = CpuUsage {
            total: num(d, "cpuacct.usage"),
            percpu: list(d, "cpuacct.usage_percpu"),
            percpu_kernel: list(d, "cpuacct.usage_percpu_sys"),
            percpu_user: list(d, "cpuacct.usage_percpu_user"),
            kernel: ticks(stat.get("system").copied().unwrap_or(0)),
            user: ticks(stat.get("user").copied().unwrap_or(0)),
        };
    }
    if let Some(d) = cpu {
        let s = keyed(d, "cpu.stat");
        out.throttling = Throttling {
            periods: s.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: s.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: s.get("throttled_time").copied().unwrap_or(0),
        };
    }
    out
}

pub fn cpu_v2(d: &Path) -> Cpu {
    let s = keyed(d, "cpu.stat");
    let us = |k: &str| s.get(k).copied().unwrap_or(0) * 1000;
    Cpu {
        usage: CpuUsage {
            total: us("usage_usec"),
            kernel: us("system_usec"),
            user: us("user_usec"),
            ..Default::default()
        },
        throttling: Throttling {
            periods: s.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: s.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: us("throttled_usec"),
        },
    }
}

pub fn memory_v1(d: &Path) -> Memory {
    let entry = |p: &str| MemoryEntry {
        limit: num(d, &format!("{p}limit_in_bytes")),
        usage: num(d, &format!("{p}usage_in_bytes")),
        max: num(d, &format!("{p}max_usage_in_bytes")),
        failcnt: num(d, &format!("{p}failcnt")),
    };
    let raw = keyed(d, "memory.stat");
    Memory {
        cache: raw.get("cache").copied().unwrap_or(0),
        usage: entry("memory."),
        swap: entry("memory.memsw."),
        kernel: entry("memory.kmem."),
        kernel_tcp: entry("memory.kmem.tcp."),
        raw,
    }
}

pub fn memory_v2(d: &Path) -> Memory {
    let raw = keyed(d, "memory.stat");
    let events = keyed(d, "memory.events");
    let usage = num(d, "memory.current");
    Memory {
        cache: raw.get("file").copied().unwrap_or(0),
        usage: MemoryEntry {
            limit: num(d, "memory.max"),
            usage,
            max: num(d, "memory.peak"),
            failcnt: events.get("max").copied().unwrap_or(0),
        },
        // runc reports memory+swap here, as v1's memsw: clients compute swap alone from it.
        swap: MemoryEntry {
            limit: num(d, "memory.swap.max"),
            usage: usage + num(d, "memory.swap.current"),
            ..Default::default()
        },
        raw,
        ..Default::default()
    }
}

pub fn pids(d: &Path) -> Pids {
    let limit = num(d, "pids.max");
    Pids {
        current: num(d, "pids.current"),
        limit: if limit == u64::MAX { 0 } else { limit },
    }
}

pub fn blkio_v1(d: &Path) -> Blkio {
    let entries = |file: &str| -> Vec<BlkioEntry> {
        let s = std::fs::read_to_string(d.join(file)).unwrap_or_default();
        s.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (dev, op, value) = (f.next()?, f.next()?, f.next()?.parse().ok()?);
                let (major, minor) = dev.split_once(':')?;
                Some(BlkioEntry {
                    major: major.parse().ok()?,
                    minor: minor.parse().ok()?,
                    op: op.to_owned(),
                    value,
                })
            })
            .collect()
    };
    Blkio {
        io_service_bytes: entries("blkio.throttle.io_service_bytes_recursive"),
        io_serviced: entries("blkio.throttle.io_serviced_recursive"),
    }
}

pub fn io_v2(d: &Path) -> Blkio {
    let mut out = Blkio::default();
    let s = std::fs::read_to_string(d.join("io.stat")).unwrap_or_default();
    for line in s.lines() {
        let mut f = line.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|dev| dev.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let value = v.parse().unwrap_or(0);
            let (list, op) = match k {
                "rbytes" => (&mut out.io_service_bytes, "Read"),
                "wbytes" => (&mut out.io_service_bytes, "Write"),
                "rios" => (&mut out.io_serviced, "Read"),
                "wios" => (&mut out.io_serviced, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    out
}

/// Per page size, from the `hugetlb.<size>.*` files present.
pub fn hugetlb(d: &Path, v2: bool) -> BTreeMap<String, Hugetlb> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(d) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|r| r.strip_suffix(if v2 { ".current" } else { ".usage_in_bytes" }))
        else {
            continue;
        };
        if size.contains('.') {
            continue;
        }
        let h = if v2 {
            Hugetlb {
                usage: num(d, &name),
                max: 0,
                failcnt: keyed(d, &format!("hugetlb.{size}.events"))
                    .get("max")
                    .copied()
                    .unwrap_or(0),
            }
        } else {
            Hugetlb {
                usage: num(d, &name),
                max: num(d, &format!("hugetlb.{size}.max_usage_in_bytes")),
                failcnt: num(d, &format!("hugetlb.{size}.failcnt")),
            }
        };
        out.insert(size.to_owned(), h);
    }
    out
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stats_serialise_as_runc() {
        let s = serde_json::to_string(&Stats::default()).unwrap();
        assert!(s.starts_with(r#"{"cpu":{"usage":{"kernel":0,"user":0},"throttling":{}},"cpuset":{"cpu_exclusive":0,"#), "{s}");
        assert!(
            s.ends_with(
                r#""pids":{},"blkio":{},"hugetlb":{},"intel_rdt":{},"network_interfaces":null}"#
            ),
            "{s}"
        );
    }
}
