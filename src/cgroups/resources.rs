//! What `linux.resources` means as cgroup file writes, on v1 and on v2. Pure planning: the
//! managers execute the plan; the conversions (shares → weight, memory+swap → swap, blkio →
//! io) are runc's and are unit-tested here.

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

/// One write to a cgroup file.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The spec field this write comes from, for errors (`linux.resources.memory.limit`).
    pub field: String,
    /// The controller whose hierarchy (v1) or availability (v2) the file belongs to.
    pub controller: &'static str,
    /// (file, value) choices: the first file that exists is written. More than one only where
    /// kernels differ (`blkio.weight` or `blkio.bfq.weight`).
    pub choices: Vec<(String, String)>,
    pub need: Need,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Need {
    /// A missing controller or file is an error that names the field.
    Required,
    /// Skipped where the kernel lacks the file (kernel memory limits, reservation variants).
    IfExists,
    /// EINVAL is not final: the write is repeated after the next one (a cpu period the kernel
    /// refuses until the new quota is in).
    RetryAfterNext,
}

/// What a plan needs to read from the cgroup first.
pub trait Current {
    /// v1 `memory.limit_in_bytes`: decides whether memsw must be raised before the limit.
    fn memory_limit(&self) -> Option<i64>;
}

fn w(field: &str, controller: &'static str, file: &str, value: impl ToString) -> Write {
    Write {
        field: field.to_owned(),
        controller,
        choices: vec![(file.to_owned(), value.to_string())],
        need: Need::Required,
    }
}

/// A write whose file differs between kernels: the first of `choices` that exists.
fn either(field: String, controller: &'static str, choices: [(&str, String); 2]) -> Write {
    Write {
        field,
        controller,
        choices: choices.map(|(f, v)| (f.to_owned(), v)).to_vec(),
        need: Need::Required,
    }
}

fn with(mut write: Write, need: Need) -> Write {
    write.need = need;
    write
}

/// Errors of the plan itself: a value no kernel would take, named by its field.
pub type PlanError = (String, String);

pub fn v1(r: &LinuxResources, cur: &dyn Current) -> Result<Vec<Write>, PlanError> {
    let mut out = vec![];
    if let Some(m) = r.memory() {
        memory_v1(m, cur, &mut out)?;
    }
    if let Some(c) = r.cpu() {
        cpu_v1(c, &mut out);
    }
    pids(r, "pids.max", &mut out);
    if let Some(b) = r.block_io() {
        blkio_v1(b, &mut out);
    }
    hugetlb(r, "limit_in_bytes", "rsvd.limit_in_bytes", &mut out)?;
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            out.push(w(
                "linux.resources.network.classID",
                "net_cls",
                "net_cls.classid",
                id,
            ));
        }
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            let field = format!("linux.resources.network.priorities[{i}]");
            out.push(w(
                &field,
                "net_prio",
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            ));
        }
    }
    rdma(r, &mut out);
    Ok(out)
}

pub fn v2(r: &LinuxResources) -> Result<Vec<Write>, PlanError> {
    let mut out = vec![];
    if let Some(m) = r.memory() {
        memory_v2(m, &mut out)?;
    }
    if let Some(c) = r.cpu() {
        cpu_v2(c, &mut out)?;
    }
    pids(r, "pids.max", &mut out);
    if let Some(b) = r.block_io() {
        io_v2(b, &mut out);
    }
    hugetlb(r, "max", "rsvd.max", &mut out)?;
    rdma(r, &mut out);
    // network (net_cls, net_prio) has no v2 controller; runc ignores it there too.
    Ok(out)
}

/// -1 (or any negative) is "no limit": v1 takes -1, v2 "max".
fn limit_v2(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

fn memory_v1(m: &LinuxMemory, cur: &dyn Current, out: &mut Vec<Write>) -> Result<(), PlanError> {
    const F: &str = "linux.resources.memory";
    let limit = m.limit();
    // runc: an unlimited memory with swap unset means unlimited swap too.
    let swap = match (limit, m.swap()) {
        (Some(-1), None | Some(0)) => Some(-1),
        (_, s) => s.filter(|&s| s != 0),
    };
    let limit = limit.filter(|&l| l != 0);
    let lw = |l: i64| w(&format!("{F}.limit"), "memory", "memory.limit_in_bytes", l);
    let sw = |s: i64| {
        w(
            &format!("{F}.swap"),
            "memory",
            "memory.memsw.limit_in_bytes",
            s,
        )
    };
    match (limit, swap) {
        // The kernel keeps memsw >= limit at every step: raise memsw first when it grows.
        (Some(l), Some(s)) => {
            if s == -1 || cur.memory_limit().is_some_and(|c| c < s) {
                out.extend([sw(s), lw(l)]);
            } else {
                out.extend([lw(l), sw(s)]);
            }
        }
        (Some(l), None) => out.push(lw(l)),
        (None, Some(s)) => out.push(sw(s)),
        (None, None) => {}
    }
    if let Some(v) = m.reservation() {
        out.push(w(
            &format!("{F}.reservation"),
            "memory",
            "memory.soft_limit_in_bytes",
            v,
        ));
    }
    if let Some(v) = m.kernel() {
        out.push(with(
            w(
                &format!("{F}.kernel"),
                "memory",
                "memory.kmem.limit_in_bytes",
                v,
            ),
            Need::IfExists,
        ));
    }
    if let Some(v) = m.kernel_tcp() {
        out.push(with(
            w(
                &format!("{F}.kernelTCP"),
                "memory",
                "memory.kmem.tcp.limit_in_bytes",
                v,
            ),
            Need::IfExists,
        ));
    }
    if let Some(v) = swappiness(m)? {
        out.push(w(
            &format!("{F}.swappiness"),
            "memory",
            "memory.swappiness",
            v,
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        out.push(w(
            &format!("{F}.disableOOMKiller"),
            "memory",
            "memory.oom_control",
            1,
        ));
    }
    if let Some(v) = m.use_hierarchy() {
        out.push(w(
            &format!("{F}.useHierarchy"),
            "memory",
            "memory.use_hierarchy",
            u8::from(v),
        ));
    }
    Ok(())
}

fn memory_v2(m: &LinuxMemory, out: &mut Vec<Write>) -> Result<(), PlanError> {
    const F: &str = "linux.resources.memory";
    if let Some(l) = m.limit().filter(|&l| l != 0) {
        out.push(w(
            &format!("{F}.limit"),
            "memory",
            "memory.max",
            limit_v2(l),
        ));
    }
    if let Some(s) = swap_v2(m.limit().unwrap_or(0), m.swap().unwrap_or(0))
        .map_err(|e| (format!("{F}.swap"), e))?
    {
        out.push(w(&format!("{F}.swap"), "memory", "memory.swap.max", s));
    }
    if let Some(v) = m.reservation() {
        out.push(w(
            &format!("{F}.reservation"),
            "memory",
            "memory.low",
            limit_v2(v),
        ));
    }
    // swappiness, kernel, kernelTCP, disableOOMKiller and useHierarchy have no v2 file; runc
    // ignores them there too. A swappiness no kernel takes is still a config error.
    swappiness(m)?;
    Ok(())
}

fn swappiness(m: &LinuxMemory) -> Result<Option<u64>, PlanError> {
    match m.swappiness() {
        Some(v) if v > 100 => Err((
            "linux.resources.memory.swappiness".into(),
            format!("{v} is out of range (0 to 100)"),
        )),
        v => Ok(v),
    }
}

/// v1's swap limit is memory+swap; v2's is swap alone. runc's conversion.
pub fn swap_v2(limit: i64, swap: i64) -> Result<Option<String>, String> {
    if limit == -1 && swap == 0 {
        return Ok(Some("max".into()));
    }
    match swap {
        0 => Ok(None),
        -1 => Ok(Some("max".into())),
        _ if limit == 0 || limit == -1 => Err("a swap limit needs a memory limit".into()),
        _ if swap < limit => Err(format!(
            "memory+swap ({swap}) must be at least the memory limit ({limit})"
        )),
        _ => Ok(Some((swap - limit).to_string())),
    }
}

fn cpu_v1(c: &LinuxCpu, out: &mut Vec<Write>) {
    const F: &str = "linux.resources.cpu";
    if let Some(v) = c.shares().filter(|&v| v != 0) {
        out.push(w(&format!("{F}.shares"), "cpu", "cpu.shares", v));
    }
    let period = c.period().filter(|&p| p != 0);
    let quota = c.quota().filter(|&q| q != 0);
    if let Some(p) = period {
        let need = if quota.is_some() {
            Need::RetryAfterNext
        } else {
            Need::Required
        };
        out.push(with(
            w(&format!("{F}.period"), "cpu", "cpu.cfs_period_us", p),
            need,
        ));
    }
    if let Some(q) = quota {
        out.push(w(&format!("{F}.quota"), "cpu", "cpu.cfs_quota_us", q));
    }
    if let Some(v) = c.burst() {
        out.push(w(&format!("{F}.burst"), "cpu", "cpu.cfs_burst_us", v));
    }
    if let Some(v) = c.realtime_period().filter(|&v| v != 0) {
        out.push(w(
            &format!("{F}.realtimePeriod"),
            "cpu",
            "cpu.rt_period_us",
            v,
        ));
    }
    if let Some(v) = c.realtime_runtime().filter(|&v| v != 0) {
        out.push(w(
            &format!("{F}.realtimeRuntime"),
            "cpu",
            "cpu.rt_runtime_us",
            v,
        ));
    }
    if let Some(v) = c.idle() {
        out.push(w(&format!("{F}.idle"), "cpu", "cpu.idle", v));
    }
    cpuset(c, out);
}

fn cpuset(c: &LinuxCpu, out: &mut Vec<Write>) {
    if let Some(v) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
        out.push(w("linux.resources.cpu.cpus", "cpuset", "cpuset.cpus", v));
    }
    if let Some(v) = c.mems().as_deref().filter(|v| !v.is_empty()) {
        out.push(w("linux.resources.cpu.mems", "cpuset", "cpuset.mems", v));
    }
}

fn cpu_v2(c: &LinuxCpu, out: &mut Vec<Write>) -> Result<(), PlanError> {
    const F: &str = "linux.resources.cpu";
    if let Some(v) = c.shares().filter(|&v| v != 0) {
        out.push(w(
            &format!("{F}.shares"),
            "cpu",
            "cpu.weight",
            shares_to_weight(v),
        ));
    }
    let quota = c.quota().filter(|&q| q != 0);
    let period = c.period().filter(|&p| p != 0);
    if quota.is_some() || period.is_some() {
        let mut v = match quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".into(),
        };
        if let Some(p) = period {
            v = format!("{v} {p}");
        }
        let field = if quota.is_some() { "quota" } else { "period" };
        out.push(w(&format!("{F}.{field}"), "cpu", "cpu.max", v));
    }
    if let Some(v) = c.burst() {
        out.push(w(&format!("{F}.burst"), "cpu", "cpu.max.burst", v));
    }
    if c.realtime_period().is_some_and(|v| v != 0) || c.realtime_runtime().is_some_and(|v| v != 0) {
        return Err((
            format!("{F}.realtimeRuntime"),
            "cgroup v2 has no realtime CPU limits".into(),
        ));
    }
    if let Some(v) = c.idle() {
        out.push(w(&format!("{F}.idle"), "cpu", "cpu.idle", v));
    }
    cpuset(c, out);
    Ok(())
}

/// cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default 100), as runc maps it.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262144);
    1 + ((s - 2) * 9999) / 262142
}

/// blkio weight (10..1000) to io.weight (1..10000), as runc maps it.
fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + ((w - 10) * 9999) / 990
}

fn pids(r: &LinuxResources, file: &str, out: &mut Vec<Write>) {
    // runc: 0 (also what a missing limit parses as) leaves pids.max alone; negative is "max".
    if let Some(p) = r.pids().as_ref().filter(|p| p.limit() != 0) {
        out.push(w(
            "linux.resources.pids.limit",
            "pids",
            file,
            limit_v2(p.limit()),
        ));
    }
}

/// A blkio weight of 0 is no weight, as runc reads it: the kernel's range starts at 1 (10 for
/// `blkio.weight`), and Docker writes `"weight": 0` into every config whose user set none.
fn nonzero(weight: Option<u16>) -> Option<u16> {
    weight.filter(|&w| w != 0)
}

fn blkio_v1(b: &LinuxBlockIo, out: &mut Vec<Write>) {
    const F: &str = "linux.resources.blockIO";
    if let Some(v) = nonzero(b.weight()) {
        out.push(either(
            format!("{F}.weight"),
            "blkio",
            [
                ("blkio.weight", v.to_string()),
                ("blkio.bfq.weight", v.to_string()),
            ],
        ));
    }
    if let Some(v) = nonzero(b.leaf_weight()) {
        out.push(w(
            &format!("{F}.leafWeight"),
            "blkio",
            "blkio.leaf_weight",
            v,
        ));
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        if let Some(v) = nonzero(d.weight()) {
            let value = format!("{}:{} {v}", d.major(), d.minor());
            out.push(either(
                format!("{F}.weightDevice[{i}]"),
                "blkio",
                [
                    ("blkio.weight_device", value.clone()),
                    ("blkio.bfq.weight_device", value),
                ],
            ));
        }
        if let Some(v) = nonzero(d.leaf_weight()) {
            out.push(w(
                &format!("{F}.weightDevice[{i}].leafWeight"),
                "blkio",
                "blkio.leaf_weight_device",
                format!("{}:{} {v}", d.major(), d.minor()),
            ));
        }
    }
    for (name, file, list) in throttles(b) {
        for (i, t) in list.iter().enumerate() {
            out.push(w(
                &format!("{F}.{name}[{i}]"),
                "blkio",
                &format!("blkio.throttle.{file}_device"),
                format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            ));
        }
    }
}

fn io_v2(b: &LinuxBlockIo, out: &mut Vec<Write>) {
    const F: &str = "linux.resources.blockIO";
    if let Some(v) = nonzero(b.weight()) {
        out.push(either(
            format!("{F}.weight"),
            "io",
            [
                ("io.bfq.weight", v.to_string()),
                ("io.weight", blkio_to_io_weight(v).to_string()),
            ],
        ));
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        if let Some(v) = nonzero(d.weight()) {
            let (maj, min) = (d.major(), d.minor());
            out.push(either(
                format!("{F}.weightDevice[{i}]"),
                "io",
                [
                    ("io.bfq.weight", format!("{maj}:{min} {v}")),
                    (
                        "io.weight",
                        format!("{maj}:{min} {}", blkio_to_io_weight(v)),
                    ),
                ],
            ));
        }
    }
    for (name, file, list) in throttles(b) {
        let key = match file {
            "read_bps" => "rbps",
            "write_bps" => "wbps",
            "read_iops" => "riops",
            _ => "wiops",
        };
        for (i, t) in list.iter().enumerate() {
            // 0 means "no limit" in v1's files; io.max spells it "max".
            let rate = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            out.push(w(
                &format!("{F}.{name}[{i}]"),
                "io",
                "io.max",
                format!("{}:{} {key}={rate}", t.major(), t.minor()),
            ));
        }
    }
}

fn throttles(
    b: &LinuxBlockIo,
) -> [(
    &'static str,
    &'static str,
    &[oci_spec::runtime::LinuxThrottleDevice],
); 4] {
    [
        (
            "throttleReadBpsDevice",
            "read_bps",
            b.throttle_read_bps_device().as_deref().unwrap_or_default(),
        ),
        (
            "throttleWriteBpsDevice",
            "write_bps",
            b.throttle_write_bps_device().as_deref().unwrap_or_default(),
        ),
        (
            "throttleReadIOPSDevice",
            "read_iops",
            b.throttle_read_iops_device().as_deref().unwrap_or_default(),
        ),
        (
            "throttleWriteIOPSDevice",
            "write_iops",
            b.throttle_write_iops_device()
                .as_deref()
                .unwrap_or_default(),
        ),
    ]
}

fn hugetlb(
    r: &LinuxResources,
    suffix: &str,
    rsvd: &str,
    out: &mut Vec<Write>,
) -> Result<(), PlanError> {
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        let size = h.page_size();
        let digits = size.trim_end_matches(['K', 'M', 'G', 'B']);
        if !(size.ends_with("KB") || size.ends_with("MB") || size.ends_with("GB"))
            || digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err((
                format!("{field}.pageSize"),
                format!("{size:?} is not a page size like \"2MB\" or \"1GB\""),
            ));
        }
        let value = if suffix == "max" {
            limit_v2(h.limit())
        } else {
            h.limit().to_string()
        };
        out.push(w(
            &format!("{field}.limit"),
            "hugetlb",
            &format!("hugetlb.{size}.{suffix}"),
            &value,
        ));
        out.push(with(
            w(
                &format!("{field}.limit"),
                "hugetlb",
                &format!("hugetlb.{size}.{rsvd}"),
                value,
            ),
            Need::IfExists,
        ));
    }
    Ok(())
}

fn rdma(r: &LinuxResources, out: &mut Vec<Write>) {
    let mut devices: Vec<_> = r.rdma().iter().flatten().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, l) in devices {
        let mut v = dev.clone();
        if let Some(h) = l.hca_handles() {
            v += &format!(" hca_handle={h}");
        }
        if let Some(o) = l.hca_objects() {
            v += &format!(" hca_object={o}");
        }
        out.push(w(
            &format!("linux.resources.rdma.{dev}"),
            "rdma",
            "rdma.max",
            v,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Cur(Option<i64>);
    impl Current for Cur {
        fn memory_limit(&self) -> Option<i64> {
            self.0
        }
    }

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn files(ws: &[Write]) -> Vec<(String, String)> {
        ws.iter().map(|w| w.choices[0].clone()).collect()
    }

    #[test]
    fn shares_map_to_weight_as_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(1), 1);
    }

    #[test]
    fn swap_is_converted_for_v2() {
        assert_eq!(swap_v2(100, 300), Ok(Some("200".into())));
        assert_eq!(swap_v2(100, -1), Ok(Some("max".into())));
        assert_eq!(swap_v2(-1, 0), Ok(Some("max".into())));
        assert_eq!(swap_v2(100, 0), Ok(None));
        assert!(swap_v2(0, 300).is_err());
        assert!(swap_v2(300, 100).is_err());
    }

    #[test]
    fn memsw_grows_before_the_limit() {
        let r = res(r#"{"memory":{"limit":100,"swap":300}}"#);
        let plan = v1(&r, &Cur(Some(50))).unwrap();
        assert_eq!(files(&plan)[0].0, "memory.memsw.limit_in_bytes");
        let plan = v1(&r, &Cur(Some(1000))).unwrap();
        assert_eq!(files(&plan)[0].0, "memory.limit_in_bytes");
    }

    #[test]
    fn cpu_v2_writes_one_cpu_max() {
        let r = res(r#"{"cpu":{"quota":50000,"period":100000,"shares":1024}}"#);
        let f = files(&v2(&r).unwrap());
        assert!(f.contains(&("cpu.max".into(), "50000 100000".into())));
        assert!(f.contains(&("cpu.weight".into(), "39".into())));
        let r = res(r#"{"cpu":{"quota":-1}}"#);
        assert_eq!(
            files(&v2(&r).unwrap()),
            vec![("cpu.max".to_string(), "max".to_string())]
        );
        assert!(v2(&res(r#"{"cpu":{"realtimeRuntime":5}}"#)).is_err());
    }

    #[test]
    fn pids_and_io() {
        let r = res(
            r#"{"pids":{"limit":-1},"blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]}}"#,
        );
        let plan = v2(&r).unwrap();
        assert!(files(&plan).contains(&("pids.max".into(), "max".into())));
        assert!(files(&plan).contains(&("io.max".into(), "8:0 rbps=1048576".into())));
        let weight = plan.iter().find(|w| w.field.ends_with("weight")).unwrap();
        assert_eq!(weight.choices[1], ("io.weight".into(), "4950".into()));
        assert!(v2(&res(r#"{"pids":{"limit":0}}"#)).unwrap().is_empty());
    }

    #[test]
    fn zero_blkio_weights_are_unset_as_docker_sends_them() {
        let r = res(
            r#"{"blockIO":{"weight":0,"leafWeight":0,"weightDevice":[{"major":8,"minor":0,"weight":0,"leafWeight":0}]}}"#,
        );
        assert!(v1(&r, &Cur(None)).unwrap().is_empty());
        assert!(v2(&r).unwrap().is_empty());
    }

    #[test]
    fn hugepage_sizes_are_checked() {
        let r = res(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#);
        assert_eq!(
            files(&v2(&r).unwrap())[0],
            ("hugetlb.2MB.max".into(), "4194304".into())
        );
        let e = v1(
            &res(r#"{"hugepageLimits":[{"pageSize":"2M","limit":1}]}"#),
            &Cur(None),
        )
        .unwrap_err();
        assert_eq!(e.0, "linux.resources.hugepageLimits[0].pageSize");
    }
}
