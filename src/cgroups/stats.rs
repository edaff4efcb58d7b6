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

/// A cgroup file's text; a missing file (a controller or kernel without it) reads as empty, and
/// so as zero or nothing.
fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default()
}

/// A number file; "max" (v2's "no limit") reads as u64::MAX, as runc reports it.
pub fn num(dir: &Path, file: &str) -> u64 {
    parse_num(&read(dir, file))
}

fn parse_num(text: &str) -> u64 {
    let s = text.trim();
    if s == "max" {
        u64::MAX
    } else {
        s.parse().unwrap_or(0)
    }
}

/// A flat keyed file (`memory.stat`, `cpu.stat`, `memory.events`).
pub fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    parse_keyed(&read(dir, file))
}

/// `key value` per line; a line without a number is left out.
fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
        .collect()
}

/// Numbers separated by white space (`cpuacct.usage_percpu`).
fn parse_list(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// `0-3,5` as a list of numbers.
fn parse_ranges(text: &str) -> Vec<u16> {
    let mut out = vec![];
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
            out.extend(a..=b);
        }
    }
    out
}

/// v1 reports the cpuset's settings here; runc 1.1 reports no cpuset statistics on v2, and
/// neither does kiln (the v2 manager leaves them empty).
pub fn cpuset(dir: &Path) -> CpuSet {
    let n = |f: &str| num(dir, f);
    CpuSet {
        cpus: parse_ranges(&read(dir, "cpuset.effective_cpus")),
        mems: parse_ranges(&read(dir, "cpuset.effective_mems")),
        cpu_exclusive: n("cpuset.cpu_exclusive"),
        mem_hardwall: n("cpuset.mem_hardwall"),
        mem_exclusive: n("cpuset.mem_exclusive"),
        memory_migrate: n("cpuset.memory_migrate"),
        memory_spread_page: n("cpuset.memory_spread_page"),
        memory_spread_slab: n("cpuset.memory_spread_slab"),
        memory_pressure: n("cpuset.memory_pressure"),
        sched_load_balance: n("cpuset.sched_load_balance"),
        sched_relax_domain_level: read(dir, "cpuset.sched_relax_domain_level")
            .trim()
            .parse()
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
            percpu: parse_list(&read(d, "cpuacct.usage_percpu")),
            percpu_kernel: parse_list(&read(d, "cpuacct.usage_percpu_sys")),
            percpu_user: parse_list(&read(d, "cpuacct.usage_percpu_user")),
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
    Blkio {
        io_service_bytes: parse_blkio_v1(&read(d, "blkio.throttle.io_service_bytes_recursive")),
        io_serviced: parse_blkio_v1(&read(d, "blkio.throttle.io_serviced_recursive")),
    }
}

/// `MAJOR:MINOR Op value` per line; the closing `Total value` (no device) is left out.
fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
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
}

pub fn io_v2(d: &Path) -> Blkio {
    parse_io_stat(&read(d, "io.stat"))
}

/// `MAJOR:MINOR key=value...` per device, as v1's entries: bytes and operations, read and
/// write (v1's op names); the other keys (discards) are left out.
fn parse_io_stat(text: &str) -> Blkio {
    let mut out = Blkio::default();
    for line in text.lines() {
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
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(dir: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/cgroups/testdata/stats")
            .join(dir)
    }

    fn entry(major: u64, minor: u64, op: &str, value: u64) -> (u64, u64, String, u64) {
        (major, minor, op.to_owned(), value)
    }

    fn entries(e: &[BlkioEntry]) -> Vec<(u64, u64, String, u64)> {
        e.iter()
            .map(|e| (e.major, e.minor, e.op.clone(), e.value))
            .collect()
    }

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

    #[test]
    fn numbers() {
        assert_eq!(parse_num("67108864\n"), 67108864);
        assert_eq!(parse_num("max\n"), u64::MAX);
        // A missing file, or what is not a count.
        assert_eq!(parse_num(""), 0);
        assert_eq!(parse_num("-1\n"), 0);
        assert_eq!(num(&fixture("v2"), "no.such.file"), 0);
    }

    #[test]
    fn keyed_lines() {
        let k = parse_keyed("user 48\nsystem 9\nnot-a-pair\nname value\n");
        assert_eq!(
            k,
            BTreeMap::from([("system".into(), 9), ("user".into(), 48)])
        );
    }

    #[test]
    fn lists_and_ranges() {
        assert_eq!(parse_list("96426727 482086261 \n"), [96426727, 482086261]);
        assert_eq!(parse_ranges("0-3,5\n"), [0, 1, 2, 3, 5]);
        assert_eq!(parse_ranges("0-1\n"), [0, 1]);
        assert_eq!(parse_ranges("\n"), Vec::<u16>::new());
        assert_eq!(parse_ranges("x,2,3-y\n"), [2]);
    }

    #[test]
    fn cpu_v1_from_cpu_and_cpuacct() {
        let ns = |ticks: u64| ticks * 1_000_000_000 / clock_ticks();
        let c = cpu_v1(Some(&fixture("v1/cpu")), Some(&fixture("v1/cpuacct")));
        assert_eq!(c.usage.total, 578512988);
        assert_eq!(c.usage.percpu, [96426727, 482086261]);
        assert_eq!(c.usage.percpu_kernel, [16000000, 83927294]);
        assert_eq!(c.usage.percpu_user, [96000000, 435982570]);
        assert_eq!((c.usage.user, c.usage.kernel), (ns(48), ns(9)));
        assert_eq!(c.throttling.periods, 31);
        assert_eq!(c.throttling.throttled_periods, 28);
        assert_eq!(c.throttling.throttled_time, 2111152119);
        // Either hierarchy may be missing: its part stays empty.
        let only_cpu = cpu_v1(Some(&fixture("v1/cpu")), None);
        assert_eq!((only_cpu.usage.total, only_cpu.throttling.periods), (0, 31));
        let only_acct = cpu_v1(None, Some(&fixture("v1/cpuacct")));
        assert_eq!(
            (only_acct.usage.total, only_acct.throttling.periods),
            (578512988, 0)
        );
    }

    /// v2 counts microseconds; runc reports nanoseconds, as v1 does.
    #[test]
    fn cpu_v2_in_nanoseconds() {
        let c = cpu_v2(&fixture("v2"));
        assert_eq!(c.usage.total, 15415218000);
        assert_eq!(c.usage.user, 13214269000);
        assert_eq!(c.usage.kernel, 2200948000);
        assert!(c.usage.percpu.is_empty());
        assert_eq!(c.throttling.periods, 169);
        assert_eq!(c.throttling.throttled_periods, 20);
        assert_eq!(c.throttling.throttled_time, 48623000);
    }

    #[test]
    fn cpuset_v1() {
        let c = cpuset(&fixture("v1/cpuset"));
        assert_eq!((c.cpus, c.mems), (vec![0, 1], vec![0]));
        assert_eq!(c.sched_load_balance, 1);
        assert_eq!(c.sched_relax_domain_level, -1);
        assert_eq!(c.cpu_exclusive + c.mem_exclusive + c.memory_pressure, 0);
    }

    #[test]
    fn memory_v1_entries() {
        let m = memory_v1(&fixture("v1/memory"));
        assert_eq!(
            (m.usage.limit, m.usage.usage, m.usage.max, m.usage.failcnt),
            (67108864, 724992, 20459520, 0)
        );
        assert_eq!(
            (m.swap.limit, m.swap.usage, m.swap.max),
            (134217728, 724992, 20459520)
        );
        assert_eq!(
            (m.kernel.limit, m.kernel.usage, m.kernel.max),
            (9223372036854771712, 126976, 290816)
        );
        assert_eq!(
            (m.kernel_tcp.limit, m.kernel_tcp.usage),
            (9223372036854771712, 0)
        );
        assert_eq!(m.cache, 0);
        assert_eq!(m.raw["rss"], 221184);
        assert_eq!(
            m.raw.len(),
            parse_keyed(&read(&fixture("v1/memory"), "memory.stat")).len()
        );
    }

    #[test]
    fn memory_v2_entries() {
        let m = memory_v2(&fixture("v2"));
        assert_eq!(m.cache, 8032256);
        // failcnt: how often the limit was hit (memory.events max).
        assert_eq!(
            (m.usage.limit, m.usage.usage, m.usage.max, m.usage.failcnt),
            (67108864, 11640832, 16777216, 118)
        );
        // memory+swap, as v1's memsw: swap.current is 0 here.
        assert_eq!((m.swap.limit, m.swap.usage), (u64::MAX, 11640832));
        assert_eq!(m.raw["anon"], 2990080);
        assert_eq!(m.kernel.limit, 0);
    }

    #[test]
    fn pids_limits() {
        let v1 = pids(&fixture("v1/pids"));
        assert_eq!((v1.current, v1.limit), (2, 50));
        let v2 = pids(&fixture("v2"));
        assert_eq!((v2.current, v2.limit), (2, 100));
        // "max" is no limit: reported as 0, which the JSON leaves out.
        let new = pids(&fixture("v1-new/pids"));
        assert_eq!((new.current, new.limit), (0, 0));
        assert_eq!(serde_json::to_string(&new).unwrap(), "{}");
    }

    #[test]
    fn blkio_v1_entries() {
        let b = blkio_v1(&fixture("v1/blkio"));
        let ops = |v: [u64; 6]| {
            ["Read", "Write", "Sync", "Async", "Discard", "Total"]
                .iter()
                .zip(v)
                .map(|(op, v)| entry(254, 0, op, v))
                .collect::<Vec<_>>()
        };
        // The last line, `Total N`, names no device.
        assert_eq!(
            entries(&b.io_service_bytes),
            ops([4194304, 4194304, 12582912, 0, 4194304, 12582912])
        );
        assert_eq!(entries(&b.io_serviced), ops([64, 64, 130, 0, 2, 130]));
        assert!(parse_blkio_v1("8:x Read 1\nx Read 1\n8:0 Read x\n8:0 Read\n").is_empty());
    }

    #[test]
    fn io_v2_as_v1_entries() {
        let b = io_v2(&fixture("v2"));
        assert_eq!(
            entries(&b.io_service_bytes),
            [entry(7, 0, "Read", 2097152), entry(7, 0, "Write", 4194304)]
        );
        assert_eq!(
            entries(&b.io_serviced),
            [entry(7, 0, "Read", 32), entry(7, 0, "Write", 64)]
        );
        // Lines without a device, unknown and malformed keys; a bad value counts 0.
        let b = parse_io_stat("x rbytes=1\n8 rbytes=1\n8:x rbytes=1\n8:1 rbytes wios=x dbytes=5\n");
        assert!(b.io_service_bytes.is_empty());
        assert_eq!(entries(&b.io_serviced), [entry(8, 1, "Write", 0)]);
    }

    #[test]
    fn hugetlb_v1_per_size() {
        let h = hugetlb(&fixture("v1-hugetlb"), false);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["1GB", "2MB"]);
        let two = &h["2MB"];
        assert_eq!((two.usage, two.max, two.failcnt), (2097152, 4194304, 3));
        assert_eq!(h["1GB"].usage, 0);
    }

    /// The reservation files (`hugetlb.2MB.rsvd.current`) are no page size of their own.
    #[test]
    fn hugetlb_v2_per_size() {
        let h = hugetlb(&fixture("v2"), true);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["1GB", "2MB"]);
        let two = &h["2MB"];
        assert_eq!((two.usage, two.max, two.failcnt), (2097152, 0, 1));
        assert!(hugetlb(&fixture("no-such-cgroup"), true).is_empty());
    }

    /// A scratch cgroup directory holding `files`, for the readers' edge cases.
    fn cgroup_dir(test: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kiln-stats-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        for (name, text) in files {
            std::fs::write(d.join(name), text).unwrap();
        }
        d
    }

    #[test]
    fn num_takes_surrounding_white_space() {
        assert_eq!(parse_num("  42 \n"), 42);
        assert_eq!(parse_num(" max \n"), u64::MAX);
    }

    #[test]
    fn num_at_the_edges_of_u64() {
        assert_eq!(parse_num("18446744073709551615\n"), u64::MAX);
        // One more does not fit: no count.
        assert_eq!(parse_num("18446744073709551616\n"), 0);
        // v1's "unlimited" is a number.
        assert_eq!(parse_num("9223372036854771712\n"), 9223372036854771712);
    }

    #[test]
    fn num_refuses_what_is_no_count() {
        for bad in ["Max\n", "1.5\n", "1 2\n", "0x10\n", "+-1\n"] {
            assert_eq!(parse_num(bad), 0, "{bad:?}");
        }
    }

    #[test]
    fn keyed_real_v1_memory_stat_lines() {
        let k = parse_keyed(
            "cache 0\nrss 221184\nhierarchical_memory_limit 67108864\nhierarchical_memsw_limit 134217728\ntotal_rss 221184\n",
        );
        assert_eq!(k.len(), 5);
        assert_eq!(k["hierarchical_memsw_limit"], 134217728);
        assert_eq!(k["cache"], 0);
    }

    #[test]
    fn keyed_real_v2_cpu_stat() {
        let k = parse_keyed(&read(&fixture("v2"), "cpu.stat"));
        assert_eq!(k.len(), 8);
        assert_eq!(k["nr_bursts"], 0);
        assert_eq!(k["usage_usec"], 15415218);
    }

    #[test]
    fn keyed_leaves_out_a_key_without_a_number() {
        let k = parse_keyed("a\nb \nc x\nd 1 2\ne -1\n\nf 3\n");
        assert_eq!(k, BTreeMap::from([("f".into(), 3)]));
    }

    /// More than one space before the value, or one after, as some kernels' files have.
    #[test]
    fn keyed_trims_the_value() {
        let k = parse_keyed("a  1\nb 2 \n");
        assert_eq!(k, BTreeMap::from([("a".into(), 1), ("b".into(), 2)]));
    }

    #[test]
    fn keyed_key_given_twice_keeps_the_last() {
        assert_eq!(parse_keyed("a 1\na 2\n")["a"], 2);
    }

    #[test]
    fn keyed_missing_file_is_empty() {
        assert!(keyed(&fixture("v2"), "no.such.file").is_empty());
    }

    #[test]
    fn list_skips_what_is_no_number() {
        assert_eq!(parse_list(""), Vec::<u64>::new());
        assert_eq!(parse_list("1 x 3\n4\t5\n"), [1, 3, 4, 5]);
    }

    #[test]
    fn ranges_single_and_degenerate() {
        assert_eq!(parse_ranges("0\n"), [0]);
        assert_eq!(parse_ranges("7-7\n"), [7]);
        // A range written backwards holds nothing.
        assert_eq!(parse_ranges("3-1\n"), Vec::<u16>::new());
    }

    #[test]
    fn ranges_overlapping_and_trailing_commas() {
        assert_eq!(parse_ranges("0-2,1-3\n"), [0, 1, 2, 1, 2, 3]);
        assert_eq!(parse_ranges(",1,,2,\n"), [1, 2]);
    }

    #[test]
    fn ranges_beyond_u16_are_left_out() {
        assert_eq!(parse_ranges("65535,65536,1-70000\n"), [65535]);
    }

    #[test]
    fn cpuset_of_a_missing_directory_is_empty() {
        let c = cpuset(&fixture("no-such-cgroup"));
        assert!(c.cpus.is_empty() && c.mems.is_empty());
        assert_eq!((c.sched_load_balance, c.sched_relax_domain_level), (0, 0));
    }

    #[test]
    fn cpuset_relax_domain_level_not_a_number_is_zero() {
        let d = cgroup_dir("relax", &[("cpuset.sched_relax_domain_level", "x\n")]);
        assert_eq!(cpuset(&d).sched_relax_domain_level, 0);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn cpu_v1_without_either_hierarchy_is_zero() {
        let c = cpu_v1(None, None);
        assert_eq!(
            (c.usage.total, c.usage.user, c.throttling.periods),
            (0, 0, 0)
        );
        assert!(c.usage.percpu.is_empty());
    }

    /// cpuacct.stat counts clock ticks: user and system converted to nanoseconds.
    #[test]
    fn cpu_v1_ticks_are_nanoseconds() {
        let d = cgroup_dir("ticks", &[("cpuacct.stat", "user 100\nsystem 0\n")]);
        let c = cpu_v1(None, Some(&d));
        assert_eq!(c.usage.user, 100 * 1_000_000_000 / clock_ticks());
        assert_eq!(c.usage.kernel, 0);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn cpu_v2_of_a_missing_directory_is_zero() {
        let c = cpu_v2(&fixture("no-such-cgroup"));
        assert_eq!((c.usage.total, c.throttling.throttled_time), (0, 0));
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"usage":{"kernel":0,"user":0},"throttling":{}}"#
        );
    }

    /// A cpu.stat without the cpu controller enabled has the usage lines only.
    #[test]
    fn cpu_v2_without_throttling_lines() {
        let d = cgroup_dir(
            "cpu-usage",
            &[("cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\n")],
        );
        let c = cpu_v2(&d);
        assert_eq!(
            (c.usage.total, c.usage.user, c.usage.kernel),
            (10000, 6000, 4000)
        );
        assert_eq!(c.throttling.periods, 0);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn cpu_v1_serialises_as_runc() {
        let c = cpu_v1(Some(&fixture("v1/cpu")), Some(&fixture("v1/cpuacct")));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["usage"]["total"], 578512988);
        assert_eq!(
            v["usage"]["percpu"],
            serde_json::json!([96426727, 482086261])
        );
        assert_eq!(v["throttling"]["throttled_periods"], 28);
    }

    #[test]
    fn memory_v1_of_a_missing_directory_is_empty() {
        let m = memory_v1(&fixture("no-such-cgroup"));
        assert!(m.raw.is_empty());
        assert_eq!((m.usage.limit, m.swap.limit, m.kernel.limit), (0, 0, 0));
    }

    /// v1 without swap accounting has no memsw files: swap stays zero.
    #[test]
    fn memory_v1_without_swap_accounting() {
        let d = cgroup_dir(
            "no-memsw",
            &[
                ("memory.limit_in_bytes", "1048576\n"),
                ("memory.usage_in_bytes", "4096\n"),
                ("memory.failcnt", "3\n"),
                ("memory.stat", "cache 8192\nrss 4096\n"),
            ],
        );
        let m = memory_v1(&d);
        assert_eq!(
            (m.usage.limit, m.usage.usage, m.usage.failcnt),
            (1048576, 4096, 3)
        );
        assert_eq!((m.swap.limit, m.swap.usage), (0, 0));
        assert_eq!(m.cache, 8192);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn memory_v2_counts_swap_with_memory() {
        let d = cgroup_dir(
            "swap",
            &[
                ("memory.current", "1000\n"),
                ("memory.swap.current", "24\n"),
                ("memory.swap.max", "max\n"),
                ("memory.max", "4096\n"),
            ],
        );
        let m = memory_v2(&d);
        assert_eq!((m.swap.usage, m.swap.limit), (1024, u64::MAX));
        assert_eq!(m.usage.limit, 4096);
        // No memory.peak (kernels before 5.19): no max.
        assert_eq!(m.usage.max, 0);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn memory_v2_without_events_has_no_failcnt() {
        let d = cgroup_dir("no-events", &[("memory.current", "1\n")]);
        assert_eq!(memory_v2(&d).usage.failcnt, 0);
        std::fs::remove_dir_all(d).unwrap();
    }

    /// runc's omitempty: limit and failcnt always, usage and max only when non-zero.
    #[test]
    fn memory_entry_serialises_as_runc() {
        let e = MemoryEntry::default();
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"limit":0,"failcnt":0}"#
        );
        let m = memory_v2(&fixture("v2"));
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["usage"]["max"], 16777216);
        assert_eq!(v["kernelTCP"], serde_json::json!({"limit":0,"failcnt":0}));
        assert_eq!(v["cache"], 8032256);
    }

    #[test]
    fn pids_missing_files_are_zero() {
        let p = pids(&fixture("no-such-cgroup"));
        assert_eq!((p.current, p.limit), (0, 0));
    }

    #[test]
    fn pids_malformed_limit_is_zero() {
        let d = cgroup_dir(
            "pids-bad",
            &[("pids.max", "lots\n"), ("pids.current", "3\n")],
        );
        let p = pids(&d);
        assert_eq!((p.current, p.limit), (3, 0));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn blkio_v1_several_devices_in_order() {
        let b = parse_blkio_v1("8:0 Read 10\n8:16 Read 20\n8:0 Write 30\nTotal 60\n");
        assert_eq!(
            entries(&b),
            [
                entry(8, 0, "Read", 10),
                entry(8, 16, "Read", 20),
                entry(8, 0, "Write", 30)
            ]
        );
    }

    #[test]
    fn blkio_v1_empty_files() {
        assert!(parse_blkio_v1("").is_empty());
        // An empty cgroup's file: only the total.
        assert!(parse_blkio_v1("Total 0\n").is_empty());
        let b = blkio_v1(&fixture("no-such-cgroup"));
        assert!(b.io_service_bytes.is_empty() && b.io_serviced.is_empty());
    }

    #[test]
    fn blkio_v1_extra_fields_are_ignored() {
        assert_eq!(
            entries(&parse_blkio_v1("8:0 Read 10 extra\n")),
            [entry(8, 0, "Read", 10)]
        );
    }

    /// runc's omitempty drops a zero minor and value: 254:0's entries have no minor.
    #[test]
    fn blkio_entry_serialises_as_runc() {
        let b = blkio_v1(&fixture("v1/blkio"));
        assert_eq!(
            serde_json::to_string(&b.io_serviced[3]).unwrap(),
            r#"{"major":254,"op":"Async"}"#
        );
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v["ioServiceBytesRecursive"][0],
            serde_json::json!({"major":254,"op":"Read","value":4194304})
        );
        assert!(v["ioServicedRecursive"].is_array());
    }

    #[test]
    fn io_stat_several_devices() {
        let b = parse_io_stat(
            "259:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n7:0 rbytes=5 wbytes=6 rios=7 wios=8 dbytes=9 dios=1\n",
        );
        assert_eq!(
            entries(&b.io_service_bytes),
            [
                entry(259, 0, "Read", 1),
                entry(259, 0, "Write", 2),
                entry(7, 0, "Read", 5),
                entry(7, 0, "Write", 6)
            ]
        );
        assert_eq!(entries(&b.io_serviced).len(), 4);
    }

    #[test]
    fn io_stat_empty_and_device_only_lines() {
        let b = parse_io_stat("\n8:0\n");
        assert!(b.io_service_bytes.is_empty() && b.io_serviced.is_empty());
        let b = io_v2(&fixture("no-such-cgroup"));
        assert_eq!(serde_json::to_string(&b).unwrap(), "{}");
    }

    #[test]
    fn hugetlb_v1_ignores_the_reservation_files() {
        let h = hugetlb(&fixture("v1-hugetlb"), false);
        assert!(h.keys().all(|k| !k.contains("rsvd")));
        assert_eq!(h.len(), 2);
    }

    /// v1's file names are not v2's: read as the other layout, nothing is found.
    #[test]
    fn hugetlb_layouts_do_not_mix() {
        assert!(hugetlb(&fixture("v1-hugetlb"), true).is_empty());
        assert!(hugetlb(&fixture("v2"), false).is_empty());
    }

    #[test]
    fn hugetlb_v2_without_events_has_no_failcnt() {
        let d = cgroup_dir("huge", &[("hugetlb.64KB.current", "65536\n")]);
        let h = hugetlb(&d, true);
        let k = &h["64KB"];
        assert_eq!((k.usage, k.max, k.failcnt), (65536, 0, 0));
        assert_eq!(
            serde_json::to_string(k).unwrap(),
            r#"{"usage":65536,"failcnt":0}"#
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn stats_of_the_v2_fixture_serialise_whole() {
        let d = fixture("v2");
        let s = Stats {
            cpu: cpu_v2(&d),
            memory: memory_v2(&d),
            pids: pids(&d),
            blkio: io_v2(&d),
            hugetlb: hugetlb(&d, true),
            ..Default::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["pids"], serde_json::json!({"current":2,"limit":100}));
        assert_eq!(
            v["hugetlb"]["2MB"],
            serde_json::json!({"usage":2097152,"failcnt":1})
        );
        assert_eq!(v["network_interfaces"], serde_json::Value::Null);
        assert_eq!(v["intel_rdt"], serde_json::json!({}));
    }
}
