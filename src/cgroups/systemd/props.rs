//! The unit properties a container's unit gets: pure functions of the unit, the resources and
//! the annotations, as runc's systemd driver sets them (its v1 and v2 names). kiln's cgroupfs
//! manager then writes every resource file itself too, as runc does: systemd's properties keep
//! the limits where systemd would otherwise reset them (a daemon-reload), the files cover what
//! systemd has no property for.

use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::dbus::Value;
use super::unit::Unit;

pub type Props = Vec<(String, Value)>;

/// The hierarchy systemd writes the properties to: pure v2, or v1 (hybrid included: systemd
/// puts no controller in the unified hierarchy there).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Version {
    V1,
    V2,
}

/// runc's default CFS period, for a quota given without one.
const DEFAULT_PERIOD: u64 = 100_000;

/// The first systemd whose CPUWeight takes 0, "idle" (it writes cpu.idle 1): runc's
/// cpuIdleSupportedVersion. An older one gets no property for idle, only the file.
pub const CPU_IDLE_SYSTEMD: u32 = 252;

/// Where the properties go: the hierarchy systemd writes them to, and systemd's version
/// (the manager's own, for the properties only newer ones take).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Host {
    pub version: Version,
    pub systemd: u32,
}

fn strings(items: &[&str]) -> Value {
    Value::Array("s".into(), items.iter().map(|s| Value::str(*s)).collect())
}

/// StartTransientUnit's properties: the unit's own (runc's Apply), then the resources, then
/// the `org.systemd.property.` annotations (which may override either). `pid` is the
/// container's init, for a scope; a slice holds no process of its own in systemd's view, and
/// kiln moves init into it.
pub fn start(
    id: &str,
    unit: &Unit,
    pid: u32,
    host: Host,
    r: &LinuxResources,
    devices: &[(char, u32, String)],
    annotations: &Props,
) -> Result<Props, (String, String)> {
    let mut p: Props = vec![(
        "Description".into(),
        Value::str(format!("kiln container {id}")),
    )];
    if unit.is_slice() {
        p.push(("Wants".into(), strings(&[&unit.slice])));
    } else {
        p.push(("Slice".into(), Value::str(&unit.slice)));
        p.push(("Delegate".into(), Value::Bool(true)));
        p.push((
            "PIDs".into(),
            Value::Array("u".into(), vec![Value::U32(pid)]),
        ));
    }
    let io = match host.version {
        Version::V1 => "BlockIOAccounting",
        Version::V2 => "IOAccounting",
    };
    for acct in ["MemoryAccounting", "CPUAccounting", io, "TasksAccounting"] {
        p.push((acct.into(), Value::Bool(true)));
    }
    p.push(("DefaultDependencies".into(), Value::Bool(false)));
    p.extend(resources(host, r, devices)?);
    p.extend(annotations.iter().cloned());
    Ok(p)
}

/// systemd's version number from its Version property, as runc's systemdVersionAtoi reads it:
/// quotes and a `v` before, anything after the first number ignored ("252.38-1~deb12u1").
pub fn parse_version(text: &str) -> Option<u32> {
    let t = text.trim_start_matches(['"', 'v']);
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    t[..end].parse().ok()
}

/// A limit in bytes or a count: -1 is systemd's "infinity".
fn limit(v: i64) -> Value {
    Value::U64(if v < 0 { u64::MAX } else { v as u64 })
}

/// What `r` sets, as properties; what it leaves unset is left out (an update passes only what
/// changes). Typed values the cgroupfs planner refuses are left out here: its error names the
/// field. A unified value systemd's property cannot take is refused: (field, message).
pub fn resources(
    host: Host,
    r: &LinuxResources,
    devices: &[(char, u32, String)],
) -> Result<Props, (String, String)> {
    let Host { version, systemd } = host;
    let mut p = Props::new();
    if let Some(rules) = r.devices() {
        p.extend(device_props(rules, devices));
    }
    if let Some(m) = r.memory() {
        let mem = m.limit().filter(|&l| l != 0);
        match version {
            Version::V1 => p.extend(mem.map(|l| ("MemoryLimit".into(), limit(l)))),
            Version::V2 => {
                p.extend(mem.map(|l| ("MemoryMax".into(), limit(l))));
                if let Some(low) = m.reservation().filter(|&l| l != 0) {
                    p.push(("MemoryLow".into(), limit(low)));
                }
                // "max" is the one value that does not parse.
                if let Some(swap) = m.swap().filter(|&s| s != 0)
                    && let Ok(Some(v)) =
                        super::super::resources::swap_v2(m.limit().unwrap_or(0), swap)
                {
                    let v = v.parse().unwrap_or(u64::MAX);
                    p.push(("MemorySwapMax".into(), Value::U64(v)));
                }
            }
        }
    }
    if let Some(c) = r.cpu() {
        // runc's CPUIdle: idle 1 is CPUWeight 0 where systemd takes it, and then the weight
        // the shares make is no property (systemd keeps one CPUWeight; the file still gets
        // it). Idle 0 has no property: systemd cannot be told to clear cpu.idle, the file is.
        let idle = version == Version::V2 && c.idle() == Some(1) && systemd >= CPU_IDLE_SYSTEMD;
        if idle {
            p.push(("CPUWeight".into(), Value::U64(0)));
        }
        if let Some(shares) = c.shares().filter(|&s| s != 0) {
            match version {
                Version::V1 => p.push(("CPUShares".into(), Value::U64(shares))),
                Version::V2 if idle => {}
                Version::V2 => p.push((
                    "CPUWeight".into(),
                    Value::U64(super::super::resources::shares_to_weight(shares)),
                )),
            }
        }
        p.extend(cpu_quota(c.quota().unwrap_or(0), c.period().unwrap_or(0)));
        for (name, list) in [("AllowedCPUs", c.cpus()), ("AllowedMemoryNodes", c.mems())] {
            if let Some(bits) = list.as_deref().filter(|l| !l.is_empty()).and_then(bitmask) {
                let bytes = bits.into_iter().map(Value::Byte).collect();
                p.push((name.into(), Value::Array("y".into(), bytes)));
            }
        }
    }
    if let Some(pids) = r
        .pids()
        .as_ref()
        .filter(|p| p.limit() > 0 || p.limit() == -1)
    {
        p.push(("TasksMax".into(), limit(pids.limit())));
    }
    if version == Version::V1 {
        let weight = r.block_io().as_ref().and_then(|b| b.weight());
        if let Some(w) = weight.filter(|&w| w != 0) {
            p.push(("BlockIOWeight".into(), Value::U64(w.into())));
        }
    }
    if version == Version::V2
        && let Some(keys) = r.unified()
    {
        p.extend(unified(&keys.iter().collect(), systemd)?);
    }
    Ok(p)
}

/// `linux.resources.unified` keys systemd has a property for, as runc's unifiedResToSystemdProps
/// converts them; they come after the typed resources, so a key overrides the field it shares
/// a property with (systemd keeps the last value). A value runc cannot convert is refused, as
/// runc refuses it, naming `linux.resources.unified.<key>`; other keys are left to the cgroupfs
/// manager, which writes every key to its file. Keys in name order, so that the properties are
/// the same each time.
fn unified(keys: &BTreeMap<&String, &String>, systemd: u32) -> Result<Props, (String, String)> {
    let mut p = Props::new();
    // cpu.idle "1" is CPUWeight 0 where systemd takes it (runc's shouldSetCPUIdle); then
    // cpu.weight is no property, not even checked, as runc skips it.
    let idle = systemd >= CPU_IDLE_SYSTEMD
        && keys
            .iter()
            .any(|(k, v)| k.as_str() == "cpu.idle" && v.trim() == "1");
    for (key, value) in keys {
        let bad = |what: &str| {
            (
                format!("linux.resources.unified.{key}"),
                format!("{value:?}: {what}"),
            )
        };
        // "max" or a count: what runc's ParseUint takes.
        let number = |v: &str| match v {
            "max" => Ok(u64::MAX),
            v => v.parse::<u64>().map_err(|_| bad("not a number or \"max\"")),
        };
        // The kernel ignores whitespace around a value, and so does runc.
        let v = value.trim();
        match key.as_str() {
            "cpu.max" => {
                let f: Vec<&str> = v.split_whitespace().collect();
                if f.is_empty() || f.len() > 2 {
                    return Err(bad("expected \"QUOTA [PERIOD]\""));
                }
                let quota = match f[0] {
                    "max" => 0,
                    q => q
                        .parse::<i64>()
                        .map_err(|_| bad("the quota is not a number or \"max\""))?,
                };
                let period = match f.get(1) {
                    Some(t) => t
                        .parse::<u64>()
                        .map_err(|_| bad("the period is not a number"))?,
                    None => DEFAULT_PERIOD,
                };
                p.extend(cpu_quota(quota, period));
            }
            "cpu.idle" if idle => p.push(("CPUWeight".into(), Value::U64(0))),
            "cpu.weight" if idle => {}
            "cpu.weight" => {
                let w = v.parse().map_err(|_| bad("not a number"))?;
                p.push(("CPUWeight".into(), Value::U64(w)));
            }
            k @ ("cpuset.cpus" | "cpuset.mems") => {
                let name = if k == "cpuset.cpus" {
                    "AllowedCPUs"
                } else {
                    "AllowedMemoryNodes"
                };
                let bits = bitmask(v).ok_or_else(|| bad("not a list of ranges like \"0-3,8\""))?;
                let bytes = bits.into_iter().map(Value::Byte).collect();
                p.push((name.into(), Value::Array("y".into(), bytes)));
            }
            k @ ("memory.high" | "memory.low" | "memory.min" | "memory.max" | "memory.swap.max"
            | "pids.max") => {
                let name = match k {
                    "memory.high" => "MemoryHigh",
                    "memory.low" => "MemoryLow",
                    "memory.min" => "MemoryMin",
                    "memory.max" => "MemoryMax",
                    "memory.swap.max" => "MemorySwapMax",
                    _ => "TasksMax",
                };
                p.push((name.into(), Value::U64(number(v)?)));
            }
            _ => {}
        }
    }
    Ok(p)
}

/// runc's addCpuQuota: systemd takes the quota per second, which it rounds to 10 ms steps
/// itself; runc rounds up first so that a small quota is not rounded down to nothing.
fn cpu_quota(quota: i64, period: u64) -> Props {
    let mut p = Props::new();
    if period != 0 {
        p.push(("CPUQuotaPeriodUSec".into(), Value::U64(period)));
    }
    if quota != 0 || period != 0 {
        let mut per_sec = u64::MAX;
        if quota > 0 {
            let period = if period == 0 { DEFAULT_PERIOD } else { period };
            per_sec = (quota as u64).saturating_mul(1_000_000) / period;
            if per_sec % 10_000 != 0 {
                per_sec = (per_sec / 10_000 + 1) * 10_000;
            }
        }
        p.push(("CPUQuotaPerSecUSec".into(), Value::U64(per_sec)));
    }
    p
}

/// A cpuset list (`0-3,8`) as systemd's bitmask: byte 0 holds CPUs 0 to 7, lowest bit first.
/// None for a list that is not one (the cgroupfs write then fails naming the field).
fn bitmask(list: &str) -> Option<Vec<u8>> {
    let mut ids = vec![];
    for part in list.split(',') {
        // runc's RangeToBits allows empty elements (extra commas), not an empty list.
        if part.trim().is_empty() {
            continue;
        }
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.trim().parse::<usize>().ok()?, hi.trim().parse().ok()?),
            None => {
                let n = part.trim().parse().ok()?;
                (n, n)
            }
        };
        // The kernel's own limit on CPU numbers (NR_CPUS at most 8192).
        if lo > hi || hi >= 8192 {
            return None;
        }
        ids.extend(lo..=hi);
    }
    let mut bits = vec![0u8; ids.iter().max()? / 8 + 1];
    for i in ids {
        bits[i / 8] |= 1 << (i % 8);
    }
    Some(bits)
}

/// /proc/devices: (`c` or `b`, major, the driver's name), for rules on a whole major.
pub fn parse_proc_devices(text: &str) -> Vec<(char, u32, String)> {
    let mut typ = None;
    let mut out = vec![];
    for line in text.lines() {
        match line.trim() {
            "Character devices:" => typ = Some('c'),
            "Block devices:" => typ = Some('b'),
            l => {
                let mut f = l.split_whitespace();
                if let (Some(t), Some(Ok(major)), Some(name)) =
                    (typ, f.next().map(str::parse), f.next())
                {
                    out.push((t, major, name.to_owned()));
                }
            }
        }
    }
    out
}

/// The device rules as DevicePolicy and DeviceAllow, as runc maps them: a list that allows
/// everything is `auto` (no restriction), any other `strict` with one entry per allowed
/// device: `/dev/char/M:N`, `char-NAME` for a whole major (named in /proc/devices), `char-*`
/// for every major. systemd has no deny entries: a later deny of one allowed device drops its
/// entry, other denies are left to kiln's own device filter, which the cgroupfs manager
/// installs as well. systemd's program can only allow more than kiln's, never less.
fn device_props(rules: &[LinuxDeviceCgroup], names: &[(char, u32, String)]) -> Props {
    let mut open = true;
    let mut allowed: Vec<(String, String)> = vec![];
    for r in rules {
        let typ = r.typ().unwrap_or(LinuxDeviceType::A);
        let access = r.access().clone().unwrap_or_else(|| "rwm".into());
        let t = match typ {
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::P => continue,
            LinuxDeviceType::A => {
                // `a` is every device, whatever its numbers say (devices.allow's meaning).
                open = r.allow();
                allowed.clear();
                continue;
            }
        };
        let group = if t == 'c' { "char" } else { "block" };
        let entry = match (r.major(), r.minor()) {
            (None, _) => format!("{group}-*"),
            (Some(major), None) => names
                .iter()
                .find(|(nt, nm, _)| *nt == t && i64::from(*nm) == major)
                .map(|(_, _, name)| format!("{group}-{name}"))
                .unwrap_or_else(|| format!("{group}-*")),
            (Some(major), Some(minor)) => format!("/dev/{group}/{major}:{minor}"),
        };
        if r.allow() {
            if !open {
                allowed.push((entry, access));
            }
        } else {
            allowed.retain(|(e, _)| *e != entry);
        }
    }
    if open {
        return vec![
            ("DevicePolicy".into(), Value::str("auto")),
            ("DeviceAllow".into(), Value::Array("(ss)".into(), vec![])),
        ];
    }
    let entries = allowed
        .into_iter()
        .map(|(e, a)| Value::Struct(vec![Value::Str(e), Value::Str(a)]))
        .collect();
    vec![
        ("DevicePolicy".into(), Value::str("strict")),
        ("DeviceAllow".into(), Value::Array("(ss)".into(), entries)),
    ]
}

const ANNOTATION: &str = "org.systemd.property.";

/// `org.systemd.property.NAME=VALUE` annotations: NAME set to VALUE, a GVariant text (as runc
/// reads them): `true`/`false`, `uint64 N` or `@t N` (also u, x, i), a bare integer (int32)
/// or float (double), a quoted string. A NAME ending in a lower-case letter then `Sec` takes
/// seconds and is passed as `...USec`, as runc converts it. Anything else is refused naming
/// the annotation.
pub fn annotations(all: &BTreeMap<String, String>) -> Result<Props, (String, String)> {
    let mut p = Props::new();
    for (key, text) in all {
        let Some(name) = key.strip_prefix(ANNOTATION) else {
            continue;
        };
        let err = |msg: String| Err((format!("annotations.{key:?}"), msg));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return err(format!("{name:?} is not a systemd property name"));
        }
        let value = match gvariant(text) {
            Ok(v) => v,
            Err(why) => return err(why),
        };
        let sec = name
            .strip_suffix("Sec")
            .filter(|base| base.ends_with(|c: char| c.is_ascii_lowercase()));
        match sec {
            Some(base) => match seconds_to_usec(&value) {
                Some(usec) => p.push((format!("{base}USec"), Value::U64(usec))),
                None => return err(format!("{text:?}: {name} takes a number of seconds")),
            },
            None => p.push((name.to_owned(), value)),
        }
    }
    Ok(p)
}

fn seconds_to_usec(v: &Value) -> Option<u64> {
    let usec = match v {
        Value::U64(n) => n.checked_mul(1_000_000)?,
        Value::U32(n) => u64::from(*n) * 1_000_000,
        Value::I64(n) => u64::try_from(*n).ok()?.checked_mul(1_000_000)?,
        Value::I32(n) => u64::try_from(*n).ok()? * 1_000_000,
        Value::F64(f) if *f >= 0.0 && f.is_finite() => (f * 1e6) as u64,
        _ => return None,
    };
    Some(usec)
}

/// The GVariant text forms kiln reads; others are refused by name.
fn gvariant(text: &str) -> Result<Value, String> {
    let t = text.trim();
    let refuse = || {
        format!(
            "{text:?}: kiln reads booleans, numbers (uint64 N, @t N, uint32, int64, int32) and quoted strings"
        )
    };
    match t {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if let Some(q @ ('\'' | '"')) = t.chars().next() {
        return unquote(t, q).map(Value::Str).ok_or_else(refuse);
    }
    let typed = [
        ("uint64 ", 't'),
        ("@t ", 't'),
        ("uint32 ", 'u'),
        ("@u ", 'u'),
        ("int64 ", 'x'),
        ("@x ", 'x'),
        ("int32 ", 'i'),
        ("@i ", 'i'),
    ];
    let (num, ty) = typed
        .iter()
        .find_map(|(p, ty)| t.strip_prefix(p).map(|n| (n.trim(), Some(*ty))))
        .unwrap_or((t, None));
    let v = match ty {
        Some('t') => num.parse().map(Value::U64).ok(),
        Some('u') => num.parse().map(Value::U32).ok(),
        Some('x') => num.parse().map(Value::I64).ok(),
        Some(_) => num.parse().map(Value::I32).ok(),
        None => num.parse().map(Value::I32).ok().or_else(|| {
            num.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Value::F64)
        }),
    };
    v.ok_or_else(refuse)
}

/// A GVariant string literal's text: quoted with `q`, `\` escaping the next character.
fn unquote(t: &str, q: char) -> Option<String> {
    let inner = t.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            c if c == q => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// systemd 252, the systemd guest's (Debian 12).
    fn host(version: Version) -> Host {
        Host {
            version,
            systemd: 252,
        }
    }

    fn resources_ok(v: Version, r: &LinuxResources, devices: &[(char, u32, String)]) -> Props {
        resources(host(v), r, devices).unwrap()
    }

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn names(p: &Props) -> Vec<&str> {
        p.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn get<'a>(p: &'a Props, name: &str) -> &'a Value {
        &p.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn scope() -> Unit {
        Unit {
            slice: "system.slice".into(),
            name: "kiln-c1.scope".into(),
        }
    }

    #[test]
    fn a_scope_starts_as_runc_starts_one() {
        let p = start(
            "c1",
            &scope(),
            42,
            host(Version::V2),
            &res("{}"),
            &[],
            &vec![],
        )
        .unwrap();
        assert_eq!(
            names(&p),
            [
                "Description",
                "Slice",
                "Delegate",
                "PIDs",
                "MemoryAccounting",
                "CPUAccounting",
                "IOAccounting",
                "TasksAccounting",
                "DefaultDependencies"
            ]
        );
        assert_eq!(
            get(&p, "PIDs"),
            &Value::Array("u".into(), vec![Value::U32(42)])
        );
        assert_eq!(get(&p, "Slice"), &Value::str("system.slice"));
        assert_eq!(get(&p, "DefaultDependencies"), &Value::Bool(false));
        let v1 = start(
            "c1",
            &scope(),
            42,
            host(Version::V1),
            &res("{}"),
            &[],
            &vec![],
        )
        .unwrap();
        assert!(names(&v1).contains(&"BlockIOAccounting"));
        assert!(!names(&v1).contains(&"IOAccounting"));
    }

    #[test]
    fn a_slice_wants_its_parent_and_holds_no_pid() {
        let u = Unit {
            slice: "system.slice".into(),
            name: "sub-c1.slice".into(),
        };
        let p = start("c1", &u, 42, host(Version::V2), &res("{}"), &[], &vec![]).unwrap();
        assert_eq!(
            get(&p, "Wants"),
            &Value::Array("s".into(), vec![Value::str("system.slice")])
        );
        assert!(!names(&p).contains(&"PIDs"));
        assert!(!names(&p).contains(&"Slice"));
        assert!(!names(&p).contains(&"Delegate"));
    }

    #[test]
    fn annotations_come_last_and_override() {
        let extra = vec![("CPUWeight".to_owned(), Value::U64(5))];
        let p = start(
            "c1",
            &scope(),
            1,
            host(Version::V2),
            &res(r#"{"cpu":{"shares":1024}}"#),
            &[],
            &extra,
        )
        .unwrap();
        assert_eq!(p.last().unwrap(), &("CPUWeight".to_owned(), Value::U64(5)));
    }

    #[test]
    fn memory_v2_and_v1() {
        let r = res(r#"{"memory":{"limit":1048576,"reservation":-1,"swap":3145728}}"#);
        let p = resources_ok(Version::V2, &r, &[]);
        assert_eq!(get(&p, "MemoryMax"), &Value::U64(1 << 20));
        assert_eq!(get(&p, "MemoryLow"), &Value::U64(u64::MAX));
        assert_eq!(get(&p, "MemorySwapMax"), &Value::U64(2 << 20));
        let p = resources_ok(Version::V1, &r, &[]);
        assert_eq!(names(&p), ["MemoryLimit"]);
        let unlimited = resources_ok(Version::V2, &res(r#"{"memory":{"limit":-1}}"#), &[]);
        assert_eq!(get(&unlimited, "MemoryMax"), &Value::U64(u64::MAX));
        // A swap limit below the memory limit is the cgroupfs planner's error to report.
        let bad = resources_ok(
            Version::V2,
            &res(r#"{"memory":{"limit":100,"swap":50}}"#),
            &[],
        );
        assert_eq!(names(&bad), ["MemoryMax"]);
    }

    #[test]
    fn unified_keys_become_properties_after_the_typed_fields() {
        let r = res(
            r#"{"memory":{"limit":1048576},"pids":{"limit":10},"unified":{
            "memory.max":" 2097152 ","memory.high":"max","memory.min":"4096","memory.low":"8192",
            "memory.swap.max":"0","pids.max":"max","cpu.weight":"7","cpu.max":"max 50000",
            "cpuset.cpus":"0-1","cpuset.mems":"0","io.max":"8:0 rbps=1","memory.oom.group":"1"}}"#,
        );
        let p = resources_ok(Version::V2, &r, &[]);
        let shown: Vec<String> = p.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
        assert_eq!(
            shown,
            [
                "MemoryMax=U64(1048576)",
                "TasksMax=U64(10)",
                "CPUQuotaPeriodUSec=U64(50000)",
                "CPUQuotaPerSecUSec=U64(18446744073709551615)",
                "CPUWeight=U64(7)",
                "AllowedCPUs=Array(\"y\", [Byte(3)])",
                "AllowedMemoryNodes=Array(\"y\", [Byte(1)])",
                "MemoryHigh=U64(18446744073709551615)",
                "MemoryLow=U64(8192)",
                "MemoryMax=U64(2097152)",
                "MemoryMin=U64(4096)",
                "MemorySwapMax=U64(0)",
                "TasksMax=U64(18446744073709551615)",
            ]
        );
        // v1 has no unified hierarchy to speak of.
        assert_eq!(
            names(&resources_ok(Version::V1, &r, &[])),
            ["MemoryLimit", "TasksMax"]
        );
    }

    #[test]
    fn unified_values_runc_cannot_convert_are_refused_naming_the_key() {
        for (key, value, why) in [
            ("cpu.max", "1 2 3", "expected \"QUOTA [PERIOD]\""),
            ("cpu.max", "", "expected \"QUOTA [PERIOD]\""),
            ("cpu.max", "lots", "the quota is not a number or \"max\""),
            ("cpu.max", "max -1", "the period is not a number"),
            ("memory.max", "-1", "not a number or \"max\""),
            ("memory.high", "1G", "not a number or \"max\""),
            ("pids.max", "x", "not a number or \"max\""),
            ("cpu.weight", "heavy", "not a number"),
            ("cpuset.cpus", "3-1", "not a list of ranges like \"0-3,8\""),
            ("cpuset.mems", ",", "not a list of ranges like \"0-3,8\""),
        ] {
            let r = res(&format!(r#"{{"unified":{{"{key}":"{value}"}}}}"#));
            assert_eq!(
                resources(host(Version::V2), &r, &[]),
                Err((
                    format!("linux.resources.unified.{key}"),
                    format!("{value:?}: {why}")
                )),
                "{key}={value}"
            );
        }
        // v1 has no unified keys to convert (the cgroupfs manager refuses them there).
        let r = res(r#"{"unified":{"pids.max":"x"}}"#);
        assert!(resources_ok(Version::V1, &r, &[]).is_empty());
        // Extra commas, as runc's RangeToBits allows, and keys systemd has no property for.
        let r = res(r#"{"unified":{"cpuset.cpus":"0,,1,","memory.oom.group":"x"}}"#);
        assert_eq!(names(&resources_ok(Version::V2, &r, &[])), ["AllowedCPUs"]);
        let quota = res(r#"{"unified":{"cpu.max":"25000"}}"#);
        assert_eq!(
            names(&resources_ok(Version::V2, &quota, &[])),
            ["CPUQuotaPeriodUSec", "CPUQuotaPerSecUSec"]
        );
    }

    #[test]
    fn versions_are_read_as_runc_reads_them() {
        for (text, v) in [
            ("252.38-1~deb12u1", Some(252)),
            ("\"v245.4-1.fc32\"", Some(245)),
            ("245", Some(245)),
            ("v245-1.fc32", Some(245)),
            ("", None),
            ("x1", None),
        ] {
            assert_eq!(parse_version(text), v, "{text}");
        }
    }

    #[test]
    fn idle_is_cpu_weight_0_where_systemd_takes_it() {
        let show = |p: Props| {
            p.into_iter()
                .map(|(n, v)| format!("{n}={v:?}"))
                .collect::<Vec<_>>()
        };
        let on = |systemd, version, json: &str| {
            show(resources(Host { version, systemd }, &res(json), &[]).unwrap())
        };
        // Idle wins over the shares' weight (one CPUWeight), as runc's CPUIdle.
        let typed = r#"{"cpu":{"idle":1,"shares":1024}}"#;
        assert_eq!(on(252, Version::V2, typed), ["CPUWeight=U64(0)"]);
        // An older systemd gets the weight alone; idle goes to the file only.
        assert_eq!(on(251, Version::V2, typed), ["CPUWeight=U64(39)"]);
        // Idle 0 is no property (systemd cannot clear cpu.idle); v1 has no idle.
        assert_eq!(
            on(252, Version::V2, r#"{"cpu":{"idle":0,"shares":1024}}"#),
            ["CPUWeight=U64(39)"]
        );
        assert_eq!(on(252, Version::V1, typed), ["CPUShares=U64(1024)"]);
        // The unified key: cpu.weight is then skipped, not even parsed, as runc skips it.
        let unified = r#"{"unified":{"cpu.idle":" 1 ","cpu.weight":"heavy"}}"#;
        assert_eq!(on(252, Version::V2, unified), ["CPUWeight=U64(0)"]);
        assert_eq!(
            resources(
                host(Version::V2),
                &res(r#"{"unified":{"cpu.idle":"1"}}"#),
                &[]
            ),
            Ok(vec![("CPUWeight".to_owned(), Value::U64(0))])
        );
        let old = resources(
            Host {
                version: Version::V2,
                systemd: 251,
            },
            &res(unified),
            &[],
        );
        assert_eq!(old.unwrap_err().0, "linux.resources.unified.cpu.weight");
        assert_eq!(
            on(
                252,
                Version::V2,
                r#"{"unified":{"cpu.idle":"0","cpu.weight":"7"}}"#
            ),
            ["CPUWeight=U64(7)"]
        );
    }

    #[test]
    fn shares_become_weight_on_v2() {
        let r = res(r#"{"cpu":{"shares":1024}}"#);
        assert_eq!(
            get(&resources_ok(Version::V2, &r, &[]), "CPUWeight"),
            &Value::U64(39)
        );
        assert_eq!(
            get(&resources_ok(Version::V1, &r, &[]), "CPUShares"),
            &Value::U64(1024)
        );
        assert!(resources_ok(Version::V2, &res(r#"{"cpu":{"shares":0}}"#), &[]).is_empty());
    }

    #[test]
    fn quota_is_per_second_rounded_up_to_10ms() {
        let q = |quota, period| {
            cpu_quota(quota, period)
                .into_iter()
                .map(|(n, v)| format!("{n}={v:?}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            q(50_000, 100_000),
            [
                "CPUQuotaPeriodUSec=U64(100000)",
                "CPUQuotaPerSecUSec=U64(500000)"
            ]
        );
        // 1234/100000 of a second: 12340 us, rounded up to 20000.
        assert_eq!(q(1234, 0), ["CPUQuotaPerSecUSec=U64(20000)"]);
        assert_eq!(
            q(-1, 50_000),
            [
                "CPUQuotaPeriodUSec=U64(50000)",
                "CPUQuotaPerSecUSec=U64(18446744073709551615)"
            ]
        );
        assert!(q(0, 0).is_empty());
    }

    #[test]
    fn cpusets_are_bitmasks_lowest_cpu_first() {
        assert_eq!(bitmask("0").unwrap(), [1]);
        assert_eq!(bitmask("0-3,9").unwrap(), [0x0f, 0x02]);
        assert_eq!(bitmask("8").unwrap(), [0, 1]);
        assert_eq!(bitmask(" 1 , 3-4 ").unwrap(), [0x1a]);
        for bad in ["", "a", "3-1", "1-", "9000"] {
            assert_eq!(bitmask(bad), None, "{bad}");
        }
        let r = res(r#"{"cpu":{"cpus":"0-1","mems":"0"}}"#);
        let p = resources_ok(Version::V2, &r, &[]);
        assert_eq!(
            get(&p, "AllowedCPUs"),
            &Value::Array("y".into(), vec![Value::Byte(3)])
        );
        assert_eq!(
            get(&p, "AllowedMemoryNodes"),
            &Value::Array("y".into(), vec![Value::Byte(1)])
        );
    }

    #[test]
    fn tasks_max_as_runc_sets_it() {
        let p = |json| resources_ok(Version::V2, &res(json), &[]);
        assert_eq!(
            get(&p(r#"{"pids":{"limit":10}}"#), "TasksMax"),
            &Value::U64(10)
        );
        assert_eq!(
            get(&p(r#"{"pids":{"limit":-1}}"#), "TasksMax"),
            &Value::U64(u64::MAX)
        );
        assert!(p(r#"{"pids":{"limit":0}}"#).is_empty());
    }

    #[test]
    fn blkio_weight_only_on_v1() {
        let r = res(r#"{"blockIO":{"weight":300}}"#);
        assert_eq!(
            get(&resources_ok(Version::V1, &r, &[]), "BlockIOWeight"),
            &Value::U64(300)
        );
        assert!(resources_ok(Version::V2, &r, &[]).is_empty());
    }

    #[test]
    fn proc_devices_is_parsed() {
        let text = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n";
        assert_eq!(
            parse_proc_devices(text),
            [
                ('c', 1, "mem".into()),
                ('c', 136, "pts".into()),
                ('b', 8, "sd".into())
            ]
        );
    }

    fn allowed(p: &Props) -> Vec<(String, String)> {
        let Value::Array(_, items) = get(p, "DeviceAllow") else {
            panic!()
        };
        items
            .iter()
            .map(|i| match i {
                Value::Struct(f) => (
                    f[0].as_str().unwrap().to_owned(),
                    f[1].as_str().unwrap().to_owned(),
                ),
                _ => panic!(),
            })
            .collect()
    }

    #[test]
    fn kiln_default_devices_are_strict_entries() {
        let rules = super::super::super::devices::rules(&[]).unwrap();
        let names = [('c', 136, "pts".to_owned())];
        let r = res("{}");
        let mut r = r;
        r.set_devices(Some(rules));
        let p = resources_ok(Version::V2, &r, &names);
        assert_eq!(get(&p, "DevicePolicy"), &Value::str("strict"));
        let a = allowed(&p);
        assert!(a.contains(&("char-*".into(), "m".into())), "{a:?}");
        assert!(a.contains(&("block-*".into(), "m".into())), "{a:?}");
        assert!(a.contains(&("/dev/char/1:3".into(), "rwm".into())), "{a:?}");
        assert!(a.contains(&("char-pts".into(), "rwm".into())), "{a:?}");
    }

    #[test]
    fn allowing_everything_is_auto() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"access":"rwm"}]"#,
        )
        .unwrap();
        let p = device_props(&rules, &[]);
        assert_eq!(get(&p, "DevicePolicy"), &Value::str("auto"));
        assert!(allowed(&p).is_empty());
    }

    #[test]
    fn a_later_deny_drops_the_entry() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"},
                {"allow":true,"type":"b","major":8,"minor":0,"access":"r"},
                {"allow":false,"type":"c","major":1,"minor":3}]"#,
        )
        .unwrap();
        let p = device_props(&rules, &[]);
        assert_eq!(allowed(&p), [("/dev/block/8:0".to_owned(), "r".to_owned())]);
    }

    #[test]
    fn an_unnamed_major_is_every_major_of_its_type() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false},{"allow":true,"type":"c","major":240,"access":"rw"}]"#,
        )
        .unwrap();
        assert_eq!(
            allowed(&device_props(&rules, &[])),
            [("char-*".to_owned(), "rw".to_owned())]
        );
    }

    fn ann(pairs: &[(&str, &str)]) -> Result<Props, (String, String)> {
        annotations(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn annotations_are_gvariant_text() {
        let p = ann(&[
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.TasksMax", "uint64 77"),
            ("org.systemd.property.CPUWeight", "@t 5"),
            ("org.systemd.property.IOWeight", "uint32 9"),
            ("org.systemd.property.Delegate", "true"),
            ("org.systemd.property.Nice", "-3"),
            ("other.annotation", "ignored"),
        ])
        .unwrap();
        assert_eq!(
            p,
            vec![
                ("CPUWeight".to_owned(), Value::U64(5)),
                ("CollectMode".to_owned(), Value::str("inactive-or-failed")),
                ("Delegate".to_owned(), Value::Bool(true)),
                ("IOWeight".to_owned(), Value::U32(9)),
                ("Nice".to_owned(), Value::I32(-3)),
                ("TasksMax".to_owned(), Value::U64(77)),
            ]
        );
        assert_eq!(gvariant(r#""a \"b\"""#).unwrap(), Value::str("a \"b\""));
    }

    #[test]
    fn sec_properties_become_usec() {
        let p = ann(&[
            ("org.systemd.property.TimeoutStopSec", "uint64 3"),
            ("org.systemd.property.RuntimeMaxSec", "1.5"),
        ])
        .unwrap();
        assert_eq!(
            p,
            vec![
                ("RuntimeMaxUSec".to_owned(), Value::U64(1_500_000)),
                ("TimeoutStopUSec".to_owned(), Value::U64(3_000_000)),
            ]
        );
        let err = ann(&[("org.systemd.property.TimeoutStopSec", "'x'")]).unwrap_err();
        assert!(err.1.contains("seconds"), "{err:?}");
    }

    #[test]
    fn other_annotations_are_refused_naming_them() {
        for (k, v) in [
            ("org.systemd.property.DeviceAllow", "[('/dev/null', 'rw')]"),
            ("org.systemd.property.X", "uint64 -1"),
            ("org.systemd.property.X", "'unterminated"),
            ("org.systemd.property.X", "'a'b'"),
            ("org.systemd.property.A-B", "1"),
            ("org.systemd.property.", "1"),
        ] {
            let (field, _) = ann(&[(k, v)]).unwrap_err();
            assert!(field.contains(k), "{field}");
        }
    }
}
