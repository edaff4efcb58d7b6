use std::io::Read;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;
use serde_json::{Value, json};

use crate::cli::Globals;
use crate::container::Container;
use crate::error::{Context, Error};

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// A file with the OCI resources JSON to apply, or - for stdin. The other flags are then
    /// ignored, as by runc.
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Per cgroup weight, 10 to 1000.
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1: none).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds per period.
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Kernel memory limit (obsolete; accepted as runc does).
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP buffer limit (obsolete).
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit (bytes, or with a unit: 512m, 1g; -1: none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of processes (-1: none).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// CPU CFS burst in microseconds (cgroup v2 cpu.max.burst, v1 cpu.cfs_burst_us).
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// SCHED_IDLE for the cgroup: 1 on, 0 off (cpu.idle).
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    pub cpu_idle: Option<i64>,
    /// Intel RDT L3 cache schema, into the container's resctrl group (linux.intelRdt).
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema, into the container's resctrl group.
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    let mut c = Container::load(&g.root, &a.id)?;
    let schemata: Vec<&str> = [&a.l3_cache_schema, &a.mem_bw_schema]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if a.resources.is_none() && !schemata.is_empty() {
        crate::container::update::schemata(&c, &schemata)?;
    }
    let request = match &a.resources {
        Some(path) => read_resources(path)?,
        None => from_flags(&a)?,
    };
    crate::container::update::update(&mut c, &request)?;
    Ok(0)
}

fn read_resources(path: &std::path::Path) -> Result<LinuxResources, Error> {
    let mut data = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .ctx(|| "--resources: reading stdin")?;
    } else {
        data = std::fs::read(path).ctx(|| format!("--resources {}", path.display()))?;
    }
    crate::spec::parse_as(path, &data)
}

fn from_flags(a: &Args) -> Result<LinuxResources, Error> {
    let bytes = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|v| parse_bytes(v).map_err(|e| Error::Usage(format!("--{flag} {v:?}: {e}"))))
            .transpose()
    };
    let mut r = json!({});
    let mut put = |group: &str, key: &str, v: Value| {
        if !v.is_null() {
            r[group][key] = v;
        }
    };
    put("blockIO", "weight", json!(a.blkio_weight));
    put("cpu", "period", json!(a.cpu_period));
    put("cpu", "quota", json!(a.cpu_quota));
    put("cpu", "shares", json!(a.cpu_share));
    put("cpu", "realtimePeriod", json!(a.cpu_rt_period));
    put("cpu", "realtimeRuntime", json!(a.cpu_rt_runtime));
    put("cpu", "burst", json!(a.cpu_burst));
    put("cpu", "idle", json!(a.cpu_idle));
    put("cpu", "cpus", json!(a.cpuset_cpus));
    put("cpu", "mems", json!(a.cpuset_mems));
    put(
        "memory",
        "kernel",
        json!(bytes("kernel-memory", &a.kernel_memory)?),
    );
    put(
        "memory",
        "kernelTCP",
        json!(bytes("kernel-memory-tcp", &a.kernel_memory_tcp)?),
    );
    let limit = bytes("memory", &a.memory)?;
    put("memory", "limit", json!(limit));
    put(
        "memory",
        "reservation",
        json!(bytes("memory-reservation", &a.memory_reservation)?),
    );
    // runc: an unlimited memory with swap not given means unlimited swap too.
    let swap =
        bytes("memory-swap", &a.memory_swap)?.or(if limit == Some(-1) { Some(-1) } else { None });
    put("memory", "swap", json!(swap));
    put("pids", "limit", json!(a.pids_limit));
    crate::container::update::from_value(&r)
}

/// runc's (docker's units.RAMInBytes) sizes: a number with an optional binary unit, b k m g t
/// p, with or without a trailing "b" or "ib"; -1 for "no limit".
fn parse_bytes(v: &str) -> Result<i64, String> {
    if v == "-1" {
        return Ok(-1);
    }
    let lower = v.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let num: f64 = num
        .parse()
        .map_err(|_| "not a size (like 512m or 1g)".to_string())?;
    let unit = unit
        .trim_start()
        .trim_end_matches('b')
        .trim_end_matches('i');
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(format!("unknown unit {unit:?}")),
    };
    Ok((num * (1u64 << shift) as f64) as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_as_runc() {
        assert_eq!(super::parse_bytes("512m"), Ok(512 << 20));
        assert_eq!(super::parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(super::parse_bytes("1gb"), Ok(1 << 30));
        assert_eq!(super::parse_bytes("100"), Ok(100));
        assert_eq!(super::parse_bytes("-1"), Ok(-1));
        assert!(super::parse_bytes("12x").is_err());
    }
}
