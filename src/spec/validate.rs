//! Cross-field checks on a parsed config: the contradictions runc rejects, caught before any
//! state directory, namespace or process exists. Each failure is an [`Invalid`]: the field and
//! the [`Problem`] with it. The checks read the spec and [`Host`] only, so that the tests decide
//! what the host is.

use std::collections::HashSet;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec, User};

use super::check_id;
use super::invalid::{Invalid, Problem};
use crate::error::bare;

type Check<T = ()> = std::result::Result<T, Invalid>;

fn fail<T>(field: impl Into<String>, problem: Problem) -> Check<T> {
    Err(Invalid::new(field, problem))
}

/// The most hooks one stage may list: each is a process, run one after the other while the
/// caller waits (about 2 ms each at best: 100,000 would hold `create` for minutes).
const MAX_HOOKS_PER_STAGE: usize = 1000;

/// What validation needs to know of the host.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// The caller's effective uid: other than 0, the kernel grants namespaces only inside a
    /// user namespace.
    pub euid: u32,
    /// Whether SELinux, AppArmor is on: each reads a file, so it is asked only of a config
    /// that sets a label.
    pub selinux: fn() -> bool,
    pub apparmor: fn() -> bool,
}

impl Host {
    pub fn current() -> Host {
        Host {
            euid: nix::unistd::geteuid().as_raw(),
            selinux: crate::lsm::selinux_enabled,
            apparmor: crate::lsm::apparmor_enabled,
        }
    }
}

pub fn check(spec: &Spec, host: &Host) -> Check {
    check_process(spec)?;
    let namespaces = check_namespaces(spec, host)?;
    check_uts(spec, &namespaces)?;
    check_sysctl(spec, &namespaces)?;
    check_mounts(spec)?;
    check_devices(spec)?;
    check_hooks(spec)?;
    check_lsm(spec, host)?;
    if let Some(policy) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        super::mempolicy::plan(policy)?;
    }
    check_net_devices(spec, &namespaces, host)?;
    Ok(())
}

fn check_process(spec: &Spec) -> Check {
    let Some(p) = spec.process() else {
        return fail("process", Problem::NoProcess);
    };
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return fail("process.args", Problem::NoArgs);
    }
    check_user("process.user", p.user())?;
    super::cpulist::affinity("process.", p)?;
    if !p.cwd().is_absolute() {
        return fail("process.cwd", Problem::CwdNotAbsolute(p.cwd().clone()));
    }
    let mut seen = Vec::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        if seen.contains(&r.typ()) {
            return fail(
                format!("process.rlimits[{i}].type"),
                Problem::RlimitTwice(r.typ()),
            );
        }
        if r.soft() > r.hard() {
            return fail(
                format!("process.rlimits[{i}].soft"),
                Problem::SoftAboveHard {
                    typ: r.typ(),
                    soft: r.soft(),
                    hard: r.hard(),
                },
            );
        }
        seen.push(r.typ());
    }
    for (i, e) in p.env().iter().flatten().enumerate() {
        if !e.contains('=') {
            return fail(
                format!("process.env[{i}]"),
                Problem::EnvNotKeyValue(e.clone()),
            );
        }
    }
    Ok(())
}

/// The ids of a process's user (`prefix` is the field holding it: `process.user` in a config,
/// `user` in exec's process.json).
pub fn check_user(prefix: &str, u: &User) -> Check {
    check_id(u.uid()).or_else(|e| fail(format!("{prefix}.uid"), e))?;
    check_id(u.gid()).or_else(|e| fail(format!("{prefix}.gid"), e))?;
    for (i, g) in u.additional_gids().iter().flatten().enumerate() {
        check_id(*g).or_else(|e| fail(format!("{prefix}.additionalGids[{i}]"), e))?;
    }
    Ok(())
}

/// Each range of a mapping must lie inside the ids kiln accepts, its end included, and hold
/// at least one id: the kernel refuses a map of size 0 with a bare EINVAL when it is written,
/// after the container's processes exist.
fn check_mappings(field: &str, maps: Option<&Vec<LinuxIdMapping>>) -> Check {
    for (i, m) in maps.into_iter().flatten().enumerate() {
        if m.size() == 0 {
            return fail(
                format!("{field}[{i}].size"),
                Problem::EmptyMapping {
                    container_id: m.container_id(),
                    host_id: m.host_id(),
                },
            );
        }
        for (name, start) in [("containerID", m.container_id()), ("hostID", m.host_id())] {
            check_id(start).or_else(|e| fail(format!("{field}[{i}].{name}"), e))?;
            let last = u64::from(start) + u64::from(m.size()).saturating_sub(1);
            if check_id(last).is_err() {
                return fail(
                    format!("{field}[{i}].size"),
                    Problem::MappingEndOutOfRange {
                        name,
                        start,
                        size: m.size(),
                        last,
                    },
                );
            }
        }
    }
    Ok(())
}

/// The namespaces the container gets (new or joined), after checking for duplicates.
fn check_namespaces(spec: &Spec, host: &Host) -> Check<HashSet<LinuxNamespaceType>> {
    let mut set = HashSet::new();
    let linux = spec.linux().as_ref();
    for (i, ns) in linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !set.insert(ns.typ()) {
            return fail(
                format!("linux.namespaces[{i}]"),
                Problem::NamespaceTwice(ns.typ()),
            );
        }
        if let Some(path) = ns.path()
            && !path.is_absolute()
        {
            return fail(
                format!("linux.namespaces[{i}].path"),
                Problem::NotAbsolute(path.clone()),
            );
        }
    }
    if !set.contains(&LinuxNamespaceType::Mount) {
        // Without a mount namespace the container shares the host's mounts: what would change
        // them for the container would change them for the host.
        let paths = |p: Option<&Vec<String>>| p.is_some_and(|p| !p.is_empty());
        for (field, listed) in [
            (
                "linux.maskedPaths",
                paths(linux.and_then(|l| l.masked_paths().as_ref())),
            ),
            (
                "linux.readonlyPaths",
                paths(linux.and_then(|l| l.readonly_paths().as_ref())),
            ),
        ] {
            if listed {
                return fail(field, Problem::RestrictedPathsNeedMountNamespace);
            }
        }
        if spec
            .root()
            .as_ref()
            .is_some_and(|r| r.readonly().unwrap_or(false))
        {
            return fail("root.readonly", Problem::ReadonlyRootNeedsMountNamespace);
        }
    }
    let has_user = set.contains(&LinuxNamespaceType::User);
    let maps = linux.is_some_and(|l| {
        l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    });
    let user_is_new = linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    check_mappings(
        "linux.uidMappings",
        linux.and_then(|l| l.uid_mappings().as_ref()),
    )?;
    check_mappings(
        "linux.gidMappings",
        linux.and_then(|l| l.gid_mappings().as_ref()),
    )?;
    if maps && !has_user {
        return fail("linux.uidMappings", Problem::MappingsNeedUserNamespace);
    }
    if user_is_new {
        for (field, m) in [
            (
                "linux.uidMappings",
                linux.and_then(|l| l.uid_mappings().as_ref()),
            ),
            (
                "linux.gidMappings",
                linux.and_then(|l| l.gid_mappings().as_ref()),
            ),
        ] {
            if m.is_none_or(|m| m.is_empty()) {
                return fail(field, Problem::UserNamespaceNeedsMapping);
            }
        }
    }
    if linux.is_some_and(|l| l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()))
        && !set.contains(&LinuxNamespaceType::Time)
    {
        return fail("linux.timeOffsets", Problem::OffsetsNeedTimeNamespace);
    }
    // runc's check for an unprivileged caller: the kernel grants it the other namespaces only
    // inside a user namespace, and clone3 would fail with a bare EPERM.
    if host.euid != 0 && !has_user {
        return fail(
            "linux.namespaces",
            Problem::RootlessNeedsUserNamespace { euid: host.euid },
        );
    }
    Ok(set)
}

fn check_uts(spec: &Spec, ns: &HashSet<LinuxNamespaceType>) -> Check {
    if ns.contains(&LinuxNamespaceType::Uts) {
        // The kernel's limit (__NEW_UTS_LEN): above it sethostname fails with a bare EINVAL,
        // in init, after the container's namespaces exist.
        const MAX: usize = 64;
        for (field, name) in [
            ("hostname", spec.hostname()),
            ("domainname", spec.domainname()),
        ] {
            if let Some(name) = name.as_ref().filter(|n| n.len() > MAX) {
                return fail(
                    field,
                    Problem::NameTooLong {
                        name: name.clone(),
                        max: MAX,
                    },
                );
            }
        }
        return Ok(());
    }
    for (field, name) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        if name.as_ref().is_some_and(|h| !h.is_empty()) {
            return fail(field, Problem::NeedsUtsNamespace(field));
        }
    }
    Ok(())
}

/// runc's rule: a sysctl may only change a namespace the container owns.
fn check_sysctl(spec: &Spec, ns: &HashSet<LinuxNamespaceType>) -> Check {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let sysctl = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    for key in sysctl.into_iter().flat_map(|s| s.keys()) {
        let field = format!("linux.sysctl.{}", bare(key));
        let needs = if IPC.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            (LinuxNamespaceType::Ipc, "ipc")
        } else if key.starts_with("net.") {
            (LinuxNamespaceType::Network, "network")
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            (LinuxNamespaceType::Uts, "uts")
        } else {
            return fail(field, Problem::HostSysctl);
        };
        if !ns.contains(&needs.0) {
            return fail(field, Problem::SysctlNeedsNamespace(needs.1));
        }
    }
    Ok(())
}

fn check_mounts(spec: &Spec) -> Check {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest = m.destination();
        if dest.as_os_str().is_empty() {
            return fail(format!("mounts[{i}].destination"), Problem::Empty);
        }
        if let Err(e) =
            super::mount_options::MountOptions::parse(m.options().as_deref().unwrap_or_default())
        {
            return fail(format!("mounts[{i}].options"), e);
        }
        check_mappings(
            &format!("mounts[{i}].uidMappings"),
            m.uid_mappings().as_ref(),
        )?;
        check_mappings(
            &format!("mounts[{i}].gidMappings"),
            m.gid_mappings().as_ref(),
        )?;
    }
    Ok(())
}

fn check_devices(spec: &Spec) -> Check {
    for (i, d) in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !d.path().is_absolute() {
            return fail(
                format!("linux.devices[{i}].path"),
                Problem::NotAbsolute(d.path().clone()),
            );
        }
        for (name, id) in [("uid", d.uid()), ("gid", d.gid())] {
            if let Some(id) = id {
                check_id(id).or_else(|e| fail(format!("linux.devices[{i}].{name}"), e))?;
            }
        }
    }
    Ok(())
}

fn check_hooks(spec: &Spec) -> Check {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    let stages = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (stage, list) in stages {
        let count = list.as_ref().map_or(0, Vec::len);
        if count > MAX_HOOKS_PER_STAGE {
            return fail(
                format!("hooks.{stage}"),
                Problem::TooManyHooks {
                    count,
                    max: MAX_HOOKS_PER_STAGE,
                },
            );
        }
        for (i, h) in list.iter().flatten().enumerate() {
            if !h.path().is_absolute() {
                return fail(
                    format!("hooks.{stage}[{i}].path"),
                    Problem::NotAbsolute(h.path().clone()),
                );
            }
            if h.timeout().is_some_and(|t| t <= 0) {
                return fail(format!("hooks.{stage}[{i}].timeout"), Problem::NotPositive);
            }
        }
    }
    Ok(())
}

/// runc's rules: devices need a network namespace of the container's own (new or joined) to go
/// to, and privileges over the host's.
fn check_net_devices(spec: &Spec, ns: &HashSet<LinuxNamespaceType>, host: &Host) -> Check {
    let devices = super::net_devices::plan(spec);
    if devices.is_empty() {
        return Ok(());
    }
    if !ns.contains(&LinuxNamespaceType::Network) {
        return fail("linux.netDevices", Problem::NetDevicesNeedNetworkNamespace);
    }
    if host.euid != 0 {
        return fail(
            "linux.netDevices",
            Problem::NetDevicesRootless { euid: host.euid },
        );
    }
    super::net_devices::check(&devices)
}

/// A label for an LSM the kernel does not have cannot be honoured: say so instead of running the
/// container less confined than its author asked.
fn check_lsm(spec: &Spec, host: &Host) -> Check {
    let Some(p) = spec.process() else {
        return Ok(());
    };
    if p.selinux_label().as_ref().is_some_and(|l| !l.is_empty()) && !(host.selinux)() {
        return fail("process.selinuxLabel", Problem::LsmNotEnabled("SELinux"));
    }
    if p.apparmor_profile().as_ref().is_some_and(|l| !l.is_empty()) && !(host.apparmor)() {
        return fail(
            "process.apparmorProfile",
            Problem::LsmNotEnabled("AppArmor"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root caller on a host without LSMs: the tests say what else they need.
    const ROOT: Host = Host {
        euid: 0,
        selinux: || false,
        apparmor: || false,
    };

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    fn without_mount_namespace(root: &str, linux_extra: &str) -> Check {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}}},"root":{root},"linux":{{"namespaces":[{{"type":"pid"}}]{linux_extra}}}}}"#
        );
        check(&spec(&json), &ROOT)
    }

    fn base_json(process_extra: &str, extra: &str) -> String {
        format!(
            r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}{process_extra}}},"root":{{"path":"rootfs"}},"linux":{{"namespaces":[{{"type":"pid"}},{{"type":"mount"}},{{"type":"uts"}}]}}{extra}}}"#
        )
    }

    fn base_with(process_extra: &str, extra: &str) -> Check {
        check(&spec(&base_json(process_extra, extra)), &ROOT)
    }

    /// The refusal of a config whose `linux` object is `linux` (namespaces included).
    fn with_linux(linux: &str) -> Check {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}}},"root":{{"path":"rootfs"}},"linux":{linux}}}"#
        );
        check(&spec(&json), &ROOT)
    }

    fn refused(c: Check) -> (String, String) {
        let e = c.expect_err("should be refused");
        (e.field.clone(), e.problem.to_string())
    }

    #[test]
    fn mapping_ends_must_stay_in_range() {
        let map = |c: u32, h: u32, size: u32| {
            serde_json::from_value(
                serde_json::json!([{"containerID": c, "hostID": h, "size": size}]),
            )
            .unwrap()
        };
        assert!(check_mappings("m", Some(&map(0, 0, super::super::MAX_ID + 1))).is_ok());
        let e = check_mappings("m", Some(&map(1, 0, super::super::MAX_ID + 1))).unwrap_err();
        assert_eq!(e.field, "m[0].size");
        assert_eq!(
            e.problem.to_string(),
            "containerID 1 + size 2147483648 ends at 2147483648, out of range: uids and gids must be in range 0-2147483647"
        );
        let e = check_mappings("m", Some(&map(0, u32::MAX, 1))).unwrap_err();
        assert_eq!(e.field, "m[0].hostID");
        assert_eq!(e.problem, Problem::IdOutOfRange(u64::from(u32::MAX)));
        assert!(
            check_mappings(
                "m",
                Some(&map(super::super::MAX_ID, super::super::MAX_ID, 1))
            )
            .is_ok()
        );
    }

    #[test]
    fn no_mount_namespace_runs_unless_it_would_change_the_hosts_mounts() {
        let root = r#"{"path":"rootfs"}"#;
        assert!(without_mount_namespace(root, "").is_ok());
        let e = without_mount_namespace(root, r#","maskedPaths":["/proc/kcore"]"#).unwrap_err();
        assert_eq!(
            e,
            Invalid::new(
                "linux.maskedPaths",
                Problem::RestrictedPathsNeedMountNamespace
            )
        );
        assert_eq!(
            e.to_string(),
            r#"linux.maskedPaths: unable to restrict sys entries without a private MNT namespace (add {"type": "mount"} to linux.namespaces)"#
        );
        assert_eq!(
            without_mount_namespace(root, r#","readonlyPaths":["/proc/sys"]"#)
                .unwrap_err()
                .field,
            "linux.readonlyPaths"
        );
        assert_eq!(
            refused(without_mount_namespace(
                r#"{"path":"rootfs","readonly":true}"#,
                ""
            )),
            (
                "root.readonly".into(),
                r#"a read-only root needs a private MNT namespace (add {"type": "mount"} to linux.namespaces)"#.into()
            )
        );
    }

    #[test]
    fn an_unprivileged_caller_needs_a_user_namespace() {
        let rootless = Host { euid: 1000, ..ROOT };
        let plain = spec(&base_json("", ""));
        assert!(check(&plain, &ROOT).is_ok());
        let e = check(&plain, &rootless).unwrap_err();
        assert_eq!(e.field, "linux.namespaces");
        assert_eq!(
            e.problem.to_string(),
            r#"rootless container requires user namespaces: uid 1000 may create the others only inside one (add {"type": "user"} with uidMappings and gidMappings)"#
        );
        let with_user = spec(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"user"},{"type":"mount"}],"uidMappings":[{"containerID":0,"hostID":1000,"size":1}],"gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}}"#,
        );
        assert!(check(&with_user, &rootless).is_ok());
    }

    #[test]
    fn net_devices_need_a_network_namespace_and_root() {
        let devices = r#","netDevices":{"kt-a":{"name":"eth1"}}}"#;
        let linux = |ns: &str| format!(r#"{{"namespaces":[{ns}]{devices}"#);
        assert!(with_linux(&linux(r#"{"type":"network"}"#)).is_ok());
        let joined = linux(r#"{"type":"network","path":"/run/netns/x"}"#);
        assert!(with_linux(&joined).is_ok());
        assert_eq!(
            refused(with_linux(&linux(r#"{"type":"mount"}"#))),
            (
                "linux.netDevices".into(),
                r#"unable to move network devices without a private NET namespace (add {"type": "network"} to linux.namespaces)"#.into()
            )
        );
        let json = format!(
            r#"{{"ociVersion":"1.3.0","process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}}},"root":{{"path":"rootfs"}},"linux":{{"namespaces":[{{"type":"user"}},{{"type":"network"}}],"uidMappings":[{{"containerID":0,"hostID":1000,"size":1}}],"gidMappings":[{{"containerID":0,"hostID":1000,"size":1}}]{devices}}}"#
        );
        let rootless = Host { euid: 1000, ..ROOT };
        let e = check(&spec(&json), &rootless).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.problem.to_string().as_str()),
            (
                "linux.netDevices",
                "network devices are not supported for rootless containers (uid 1000)"
            )
        );
        assert!(check(&spec(&json), &ROOT).is_ok());
        // The names are checked too (spec::net_devices has the cases).
        let bad = r#"{"namespaces":[{"type":"network"}],"netDevices":{"kt-a":{"name":"a/b"}}}"#;
        assert_eq!(refused(with_linux(bad)).0, "linux.netDevices.kt-a.name");
    }

    #[test]
    fn a_hostname_longer_than_the_kernels_limit_is_named() {
        assert!(base_with("", &format!(r#","hostname":"{}""#, "h".repeat(64))).is_ok());
        let (field, msg) = refused(base_with(
            "",
            &format!(r#","hostname":"{}""#, "h".repeat(1 << 20)),
        ));
        assert_eq!(field, "hostname");
        assert!(msg.len() < 200 && msg.contains("(1048576 bytes)"), "{msg}");
        let (field, msg) = refused(base_with(
            "",
            &format!(r#","domainname":"{}""#, "d".repeat(65)),
        ));
        assert_eq!(field, "domainname");
        assert!(
            msg.ends_with("is longer than the kernel's limit of 64 bytes"),
            "{msg}"
        );
    }

    #[test]
    fn rlimits_name_the_limit_and_the_field() {
        // soft 0, given or left out, is a limit like any other.
        for soft in [r#","soft":0"#, ""] {
            let rlimits = format!(r#","rlimits":[{{"type":"RLIMIT_CORE","hard":0{soft}}}]"#);
            assert!(base_with(&rlimits, "").is_ok(), "{rlimits}");
        }
        let (field, msg) = refused(base_with(
            r#","rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":2}]"#,
            "",
        ));
        assert_eq!(field, "process.rlimits[0].soft");
        assert_eq!(msg, "RLIMIT_NOFILE: soft limit 2 is above hard limit 1");
        let twice = r#","rlimits":[{"type":"RLIMIT_CPU","hard":1},{"type":"RLIMIT_CPU","hard":1}]"#;
        assert_eq!(
            refused(base_with(twice, "")),
            (
                "process.rlimits[1].type".into(),
                "RLIMIT_CPU appears twice".into()
            )
        );
    }

    #[test]
    fn values_in_messages_are_escaped() {
        let (field, msg) = refused(base_with(r#","env":["\u001b[2J\nX"]"#, ""));
        assert_eq!(field, "process.env[0]");
        assert_eq!(msg, r#""\x1b[2J\nX" is not of the form KEY=value"#);
    }

    #[test]
    fn an_id_map_of_size_zero_is_named() {
        let maps: Vec<LinuxIdMapping> = serde_json::from_str(r#"[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":5000,"size":0}]"#).unwrap();
        let e = check_mappings("linux.gidMappings", Some(&maps)).unwrap_err();
        assert_eq!(e.field, "linux.gidMappings[1].size");
        assert_eq!(
            e.problem.to_string(),
            "must be greater than zero (containerID 1, hostID 5000)"
        );
    }

    #[test]
    fn the_base_config_passes() {
        assert_eq!(base_with("", ""), Ok(()));
    }

    #[test]
    fn each_refusal_of_the_process_names_its_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r#","args":[]"#,
                "process.args",
                "must name the program to run",
            ),
            (
                r#","cwd":"rel""#,
                "process.cwd",
                r#""rel" is not an absolute path"#,
            ),
            (
                r#","env":["A=1","B"]"#,
                "process.env[1]",
                r#""B" is not of the form KEY=value"#,
            ),
            (
                r#","user":{"uid":4294967295,"gid":0}"#,
                "process.user.uid",
                "4294967295 is out of range: uids and gids must be in range 0-2147483647",
            ),
            (
                r#","user":{"uid":0,"gid":2147483648}"#,
                "process.user.gid",
                "2147483648 is out of range: uids and gids must be in range 0-2147483647",
            ),
            (
                r#","user":{"uid":0,"gid":0,"additionalGids":[1,4294967295]}"#,
                "process.user.additionalGids[1]",
                "4294967295 is out of range: uids and gids must be in range 0-2147483647",
            ),
        ];
        for (extra, field, msg) in cases {
            let mut json: serde_json::Value = serde_json::from_str(&base_json("", "")).unwrap();
            let patch: serde_json::Value =
                serde_json::from_str(&format!("{{{}}}", &extra[1..])).unwrap();
            for (k, v) in patch.as_object().unwrap() {
                json["process"][k] = v.clone();
            }
            let spec: Spec = serde_json::from_value(json).unwrap();
            assert_eq!(
                refused(check(&spec, &ROOT)),
                (field.to_string(), msg.to_string()),
                "{extra}"
            );
        }
        let none = spec(r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#);
        let e = check(&none, &ROOT).unwrap_err();
        assert_eq!(
            e.to_string(),
            "process: missing: nothing to run in the container"
        );
    }

    #[test]
    fn each_refusal_of_the_namespaces_names_its_field() {
        let map = r#"[{"containerID":0,"hostID":1000,"size":1}]"#;
        let cases = [
            (
                r#"{"namespaces":[{"type":"mount"},{"type":"pid"},{"type":"mount"}]}"#.to_owned(),
                "linux.namespaces[2]",
                "Mount namespace listed twice",
            ),
            (
                r#"{"namespaces":[{"type":"mount"},{"type":"network","path":"run/netns/x"}]}"#
                    .to_owned(),
                "linux.namespaces[1].path",
                r#""run/netns/x" is not absolute"#,
            ),
            (
                format!(r#"{{"namespaces":[{{"type":"mount"}}],"gidMappings":{map}}}"#),
                "linux.uidMappings",
                "mappings need a user namespace in linux.namespaces",
            ),
            (
                format!(
                    r#"{{"namespaces":[{{"type":"mount"}},{{"type":"user"}}],"uidMappings":{map}}}"#
                ),
                "linux.gidMappings",
                "a new user namespace needs at least one mapping",
            ),
            (
                r#"{"namespaces":[{"type":"mount"},{"type":"user"}]}"#.to_owned(),
                "linux.uidMappings",
                "a new user namespace needs at least one mapping",
            ),
            (
                r#"{"namespaces":[{"type":"mount"}],"timeOffsets":{"monotonic":{"secs":1}}}"#
                    .to_owned(),
                "linux.timeOffsets",
                "offsets need a time namespace in linux.namespaces",
            ),
            (
                r#"{"namespaces":[{"type":"mount"}],"uidMappings":[{"containerID":0,"hostID":0,"size":0}]}"#
                    .to_owned(),
                "linux.uidMappings[0].size",
                "must be greater than zero (containerID 0, hostID 0)",
            ),
        ];
        for (linux, field, msg) in &cases {
            assert_eq!(
                refused(with_linux(linux)),
                (field.to_string(), msg.to_string()),
                "{linux}"
            );
        }
        // A joined user namespace brings its own mappings.
        assert!(
            with_linux(
                r#"{"namespaces":[{"type":"mount"},{"type":"user","path":"/proc/1/ns/user"}]}"#
            )
            .is_ok()
        );
        assert!(
            with_linux(r#"{"namespaces":[{"type":"mount"},{"type":"time"}],"timeOffsets":{"monotonic":{"secs":1}}}"#)
                .is_ok()
        );
    }

    #[test]
    fn a_name_without_a_uts_namespace_is_refused() {
        for field in ["hostname", "domainname"] {
            let json = format!(
                r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}}},"root":{{"path":"rootfs"}},"{field}":"x","linux":{{"namespaces":[{{"type":"mount"}}]}}}}"#
            );
            assert_eq!(
                refused(check(&spec(&json), &ROOT)),
                (
                    field.to_owned(),
                    format!(
                        r#"setting a {field} needs a private UTS namespace (add {{"type": "uts"}} to linux.namespaces)"#
                    )
                )
            );
            // An empty name sets nothing.
            let empty = json.replace(r#""x""#, r#""""#);
            assert!(check(&spec(&empty), &ROOT).is_ok(), "{empty}");
        }
    }

    #[test]
    fn a_sysctl_must_belong_to_a_namespace_the_container_owns() {
        let sysctl = |ns: &str, key: &str| {
            with_linux(&format!(
                r#"{{"namespaces":[{{"type":"mount"}}{ns}],"sysctl":{{"{key}":"1"}}}}"#
            ))
        };
        let cases = [
            ("kernel.shmmax", "ipc", r#",{"type":"ipc"}"#),
            ("fs.mqueue.msg_max", "ipc", r#",{"type":"ipc"}"#),
            ("net.ipv4.ip_forward", "network", r#",{"type":"network"}"#),
            ("kernel.hostname", "uts", r#",{"type":"uts"}"#),
            ("kernel.domainname", "uts", r#",{"type":"uts"}"#),
        ];
        for (key, name, ns) in cases {
            assert!(sysctl(ns, key).is_ok(), "{key}");
            assert_eq!(
                refused(sysctl("", key)),
                (
                    format!("linux.sysctl.{key}"),
                    format!("needs a private {name} namespace")
                )
            );
        }
        assert_eq!(
            refused(sysctl(
                r#",{"type":"ipc"},{"type":"network"}"#,
                "vm.swappiness"
            )),
            (
                "linux.sysctl.vm.swappiness".into(),
                "not a namespaced sysctl: setting it would change the host".into()
            )
        );
    }

    #[test]
    fn each_refusal_of_a_mount_names_its_field() {
        let mounts =
            |m: &str| base_with("", &format!(r#","mounts":[{{"destination":"/ok"}},{m}]"#));
        let cases = [
            (
                r#"{"destination":""}"#,
                "mounts[1].destination",
                "must not be empty",
            ),
            (
                r#"{"destination":"/m","options":["ro",""]}"#,
                "mounts[1].options",
                "an empty option",
            ),
            (
                r#"{"destination":"/m","options":["uid=x"]}"#,
                "mounts[1].options",
                r#""uid=x": not a number"#,
            ),
            (
                r#"{"destination":"/m","options":["gid=4294967295"]}"#,
                "mounts[1].options",
                "gid=4294967295 is out of range: uids and gids must be in range 0-2147483647",
            ),
            (
                r#"{"destination":"/m","uidMappings":[{"containerID":0,"hostID":0,"size":0}]}"#,
                "mounts[1].uidMappings[0].size",
                "must be greater than zero (containerID 0, hostID 0)",
            ),
            (
                r#"{"destination":"/m","gidMappings":[{"containerID":4294967295,"hostID":0,"size":1}]}"#,
                "mounts[1].gidMappings[0].containerID",
                "4294967295 is out of range: uids and gids must be in range 0-2147483647",
            ),
        ];
        for (m, field, msg) in cases {
            assert_eq!(
                refused(mounts(m)),
                (field.to_owned(), msg.to_owned()),
                "{m}"
            );
        }
        assert!(mounts(r#"{"destination":"/m","options":["uid=0","rbind","rro"]}"#).is_ok());
    }

    #[test]
    fn each_refusal_of_a_device_names_its_field() {
        let dev = |d: &str| {
            with_linux(&format!(
                r#"{{"namespaces":[{{"type":"mount"}}],"devices":[{{"path":"/dev/ok","type":"c","major":1,"minor":3}},{d}]}}"#
            ))
        };
        assert_eq!(
            refused(dev(r#"{"path":"dev/null","type":"c","major":1,"minor":3}"#)),
            (
                "linux.devices[1].path".into(),
                r#""dev/null" is not absolute"#.into()
            )
        );
        for name in ["uid", "gid"] {
            assert_eq!(
                refused(dev(&format!(
                    r#"{{"path":"/dev/x","type":"c","major":1,"minor":3,"{name}":4294967295}}"#
                ))),
                (
                    format!("linux.devices[1].{name}"),
                    "4294967295 is out of range: uids and gids must be in range 0-2147483647"
                        .into()
                )
            );
        }
    }

    #[test]
    fn each_refusal_of_a_hook_names_its_field() {
        let hooks =
            |stage: &str, h: &str| base_with("", &format!(r#","hooks":{{"{stage}":[{h}]}}"#));
        for stage in [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ] {
            assert!(hooks(stage, r#"{"path":"/bin/true","timeout":1}"#).is_ok());
            assert_eq!(
                refused(hooks(stage, r#"{"path":"/bin/true"},{"path":"true"}"#)),
                (
                    format!("hooks.{stage}[1].path"),
                    r#""true" is not absolute"#.into()
                )
            );
            assert_eq!(
                refused(hooks(stage, r#"{"path":"/bin/true","timeout":0}"#)),
                (
                    format!("hooks.{stage}[0].timeout"),
                    "must be greater than zero".into()
                )
            );
        }
        let many = vec![r#"{"path":"/bin/true"}"#; MAX_HOOKS_PER_STAGE + 1].join(",");
        assert_eq!(
            refused(hooks("poststop", &many)),
            (
                "hooks.poststop".into(),
                "1001 hooks, more than kiln's limit of 1000 in one stage (each runs as a process, one after the other)".into()
            )
        );
        let limit = vec![r#"{"path":"/bin/true"}"#; MAX_HOOKS_PER_STAGE].join(",");
        assert!(hooks("poststop", &limit).is_ok());
    }

    #[test]
    fn a_label_needs_its_lsm_on_the_host() {
        let selinux = spec(&base_json(
            r#","selinuxLabel":"system_u:system_r:container_t:s0""#,
            "",
        ));
        let apparmor = spec(&base_json(r#","apparmorProfile":"docker-default""#, ""));
        assert_eq!(
            refused(check(&selinux, &ROOT)),
            (
                "process.selinuxLabel".into(),
                "SELinux is not enabled on this host".into()
            )
        );
        assert_eq!(
            refused(check(&apparmor, &ROOT)),
            (
                "process.apparmorProfile".into(),
                "AppArmor is not enabled on this host".into()
            )
        );
        let both = Host {
            selinux: || true,
            apparmor: || true,
            ..ROOT
        };
        assert!(check(&selinux, &both).is_ok());
        assert!(check(&apparmor, &both).is_ok());
        // An empty label asks for nothing.
        assert!(check(&spec(&base_json(r#","apparmorProfile":"""#, "")), &ROOT).is_ok());
    }

    /// A host whose LSM probes must not be asked: a config without labels never reads them.
    const UNASKED: Host = Host {
        euid: 0,
        selinux: || panic!("SELinux probed"),
        apparmor: || panic!("AppArmor probed"),
    };

    #[test]
    fn a_config_without_labels_never_probes_the_lsms() {
        assert!(check(&spec(&base_json("", "")), &UNASKED).is_ok());
        // An empty label is none.
        let empty = base_json(r#","selinuxLabel":"","apparmorProfile":"""#, "");
        assert!(check(&spec(&empty), &UNASKED).is_ok());
    }

    #[test]
    fn process_without_args_is_refused() {
        let json = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0}},"root":{"path":"rootfs"}}"#;
        assert_eq!(
            refused(check(&spec(json), &ROOT)),
            ("process.args".into(), "must name the program to run".into())
        );
    }

    /// The process is checked first: its error is the one named when the namespaces are wrong
    /// too.
    #[test]
    fn process_errors_come_first() {
        let json = r#"{"ociVersion":"1.0.2","process":{"cwd":"rel","args":["sh"],"user":{"uid":0,"gid":0}},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}"#;
        assert_eq!(refused(check(&spec(json), &ROOT)).0, "process.cwd");
    }

    #[test]
    fn rlimit_soft_equal_to_hard_passes() {
        let r = r#","rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024},{"type":"RLIMIT_NPROC","hard":18446744073709551615,"soft":18446744073709551615}]"#;
        assert!(base_with(r, "").is_ok());
    }

    /// The first of the duplicates is fine, the second is named, even after other limits.
    #[test]
    fn rlimit_twice_names_the_second() {
        let r = r#","rlimits":[{"type":"RLIMIT_CPU","hard":1},{"type":"RLIMIT_AS","hard":1},{"type":"RLIMIT_CPU","hard":2}]"#;
        assert_eq!(refused(base_with(r, "")).0, "process.rlimits[2].type");
    }

    #[test]
    fn env_with_empty_value_or_equals_in_value_passes() {
        assert!(base_with(r#","env":["A=","B=c=d","=x"]"#, "").is_ok());
    }

    #[test]
    fn cwd_must_be_absolute_even_when_empty() {
        let json = base_json("", "").replace(r#""cwd":"/""#, r#""cwd":"""#);
        assert_eq!(
            refused(check(&spec(&json), &ROOT)),
            ("process.cwd".into(), r#""" is not an absolute path"#.into())
        );
    }

    #[test]
    fn user_at_the_largest_id_passes() {
        let mut json: serde_json::Value = serde_json::from_str(&base_json("", "")).unwrap();
        json["process"]["user"] = serde_json::json!({"uid": 2147483647u32, "gid": 2147483647u32, "additionalGids": [0, 2147483647u32]});
        assert!(check(&serde_json::from_value(json).unwrap(), &ROOT).is_ok());
    }

    #[test]
    fn check_user_names_the_prefix_given() {
        let u: User =
            serde_json::from_str(r#"{"uid":0,"gid":0,"additionalGids":[0,1,2147483648]}"#).unwrap();
        let e = check_user("user", &u).unwrap_err();
        assert_eq!(e.field, "user.additionalGids[2]");
        let u: User = serde_json::from_str(r#"{"uid":2147483648,"gid":2147483648}"#).unwrap();
        // The uid first.
        assert_eq!(
            check_user("process.user", &u).unwrap_err().field,
            "process.user.uid"
        );
    }

    fn maps(json: serde_json::Value) -> Vec<LinuxIdMapping> {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn mapping_host_end_out_of_range_names_the_host_id() {
        let m =
            maps(serde_json::json!([{"containerID": 0, "hostID": 2147483000u32, "size": 1000}]));
        let e = check_mappings("linux.uidMappings", Some(&m)).unwrap_err();
        assert_eq!(e.field, "linux.uidMappings[0].size");
        assert_eq!(
            e.problem.to_string(),
            "hostID 2147483000 + size 1000 ends at 2147483999, out of range: uids and gids must be in range 0-2147483647"
        );
    }

    #[test]
    fn mapping_container_start_out_of_range_names_it() {
        let m = maps(serde_json::json!([{"containerID": 2147483648u32, "hostID": 0, "size": 1}]));
        let e = check_mappings("m", Some(&m)).unwrap_err();
        assert_eq!(e.field, "m[0].containerID");
    }

    /// The second of several ranges is named by its index.
    #[test]
    fn mapping_errors_name_the_range() {
        let m = maps(serde_json::json!([
            {"containerID": 0, "hostID": 1000, "size": 1},
            {"containerID": 1, "hostID": 100000, "size": 65536},
            {"containerID": 65537, "hostID": 4294967295u32, "size": 1}
        ]));
        assert_eq!(
            check_mappings("m", Some(&m)).unwrap_err().field,
            "m[2].hostID"
        );
        assert!(check_mappings("m", Some(&m[..2].to_vec())).is_ok());
        assert!(check_mappings("m", None).is_ok());
        assert!(check_mappings("m", Some(&vec![])).is_ok());
    }

    #[test]
    fn a_namespace_new_and_joined_is_listed_twice() {
        assert_eq!(
            refused(with_linux(
                r#"{"namespaces":[{"type":"mount"},{"type":"network"},{"type":"network","path":"/run/netns/x"}]}"#
            )),
            (
                "linux.namespaces[2]".into(),
                "Network namespace listed twice".into()
            )
        );
    }

    #[test]
    fn a_relative_user_namespace_path_is_refused() {
        assert_eq!(
            refused(with_linux(
                r#"{"namespaces":[{"type":"mount"},{"type":"user","path":"ns/user"}]}"#
            ))
            .0,
            "linux.namespaces[1].path"
        );
    }

    /// Empty lists and a writable root change nothing of the host's mounts.
    #[test]
    fn no_mount_namespace_with_empty_lists_passes() {
        let root = r#"{"path":"rootfs","readonly":false}"#;
        assert!(without_mount_namespace(root, r#","maskedPaths":[],"readonlyPaths":[]"#).is_ok());
    }

    /// Masked paths are named before readonly ones, and both before the root.
    #[test]
    fn no_mount_namespace_names_the_first_change() {
        let root = r#"{"path":"rootfs","readonly":true}"#;
        assert_eq!(
            without_mount_namespace(root, r#","maskedPaths":["/a"],"readonlyPaths":["/b"]"#)
                .unwrap_err()
                .field,
            "linux.maskedPaths"
        );
        assert_eq!(
            without_mount_namespace(root, r#","readonlyPaths":["/b"]"#)
                .unwrap_err()
                .field,
            "linux.readonlyPaths"
        );
    }

    #[test]
    fn a_new_user_namespace_with_both_mappings_passes() {
        let map = r#"[{"containerID":0,"hostID":100000,"size":65536}]"#;
        assert!(with_linux(&format!(r#"{{"namespaces":[{{"type":"mount"}},{{"type":"user"}}],"uidMappings":{map},"gidMappings":{map}}}"#)).is_ok());
    }

    /// A new user namespace with empty lists is one without mappings.
    #[test]
    fn a_new_user_namespace_with_empty_mappings_is_refused() {
        assert_eq!(
            refused(with_linux(
                r#"{"namespaces":[{"type":"mount"},{"type":"user"}],"uidMappings":[],"gidMappings":[]}"#
            )),
            (
                "linux.uidMappings".into(),
                "a new user namespace needs at least one mapping".into()
            )
        );
    }

    /// Mappings beside a joined user namespace are accepted (the namespace has its own).
    #[test]
    fn mappings_beside_a_joined_user_namespace_pass() {
        let map = r#"[{"containerID":0,"hostID":1000,"size":1}]"#;
        assert!(with_linux(&format!(r#"{{"namespaces":[{{"type":"mount"}},{{"type":"user","path":"/proc/1/ns/user"}}],"uidMappings":{map}}}"#)).is_ok());
    }

    /// A bad range is named before the missing user namespace.
    #[test]
    fn a_bad_range_is_named_before_the_missing_user_namespace() {
        assert_eq!(
            refused(with_linux(r#"{"namespaces":[{"type":"mount"}],"gidMappings":[{"containerID":0,"hostID":0,"size":0}]}"#)).0,
            "linux.gidMappings[0].size"
        );
    }

    #[test]
    fn empty_time_offsets_need_no_time_namespace() {
        assert!(with_linux(r#"{"namespaces":[{"type":"mount"}],"timeOffsets":{}}"#).is_ok());
    }

    /// An unprivileged caller joining a user namespace has one.
    #[test]
    fn an_unprivileged_caller_in_a_joined_user_namespace_passes() {
        let rootless = Host { euid: 1000, ..ROOT };
        let json = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"mount"},{"type":"user","path":"/proc/1/ns/user"}]}}"#;
        assert!(check(&spec(json), &rootless).is_ok());
        // No namespaces at all is still none of its own.
        let bare = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},"root":{"path":"rootfs"}}"#;
        assert_eq!(refused(check(&spec(bare), &rootless)).0, "linux.namespaces");
    }

    #[test]
    fn names_within_the_limit_with_a_uts_namespace_pass() {
        let names = format!(
            r#","hostname":"{}","domainname":"{}""#,
            "h".repeat(64),
            "d".repeat(64)
        );
        assert!(base_with("", &names).is_ok());
    }

    /// The hostname is named before the domainname.
    #[test]
    fn hostname_is_checked_before_domainname() {
        let names = format!(
            r#","hostname":"{}","domainname":"{}""#,
            "h".repeat(65),
            "d".repeat(65)
        );
        assert_eq!(refused(base_with("", &names)).0, "hostname");
    }

    #[test]
    fn every_ipc_sysctl_needs_the_ipc_namespace() {
        for key in [
            "kernel.msgmax",
            "kernel.msgmnb",
            "kernel.msgmni",
            "kernel.sem",
            "kernel.shmall",
            "kernel.shmmax",
            "kernel.shmmni",
            "kernel.shm_rmid_forced",
            "fs.mqueue.queues_max",
        ] {
            let json = |ns: &str| {
                with_linux(&format!(
                    r#"{{"namespaces":[{{"type":"mount"}}{ns}],"sysctl":{{"{key}":"1"}}}}"#
                ))
            };
            assert!(json(r#",{"type":"ipc"}"#).is_ok(), "{key}");
            assert_eq!(
                refused(json(r#",{"type":"network"},{"type":"uts"}"#)).1,
                "needs a private ipc namespace",
                "{key}"
            );
        }
    }

    /// Near misses of the namespaced names are the host's.
    #[test]
    fn host_sysctls_are_refused() {
        for key in [
            "kernel.pid_max",
            "kernel.shm",
            "fs.mqueue",
            "net",
            "netx.a",
            "kernel.hostnamex",
            "fs.file-max",
        ] {
            let r = with_linux(&format!(
                r#"{{"namespaces":[{{"type":"mount"}},{{"type":"ipc"}},{{"type":"network"}},{{"type":"uts"}}],"sysctl":{{"{key}":"1"}}}}"#
            ));
            assert_eq!(
                refused(r),
                (
                    format!("linux.sysctl.{key}"),
                    "not a namespaced sysctl: setting it would change the host".into()
                )
            );
        }
    }

    /// A joined namespace is the container's too.
    #[test]
    fn a_sysctl_of_a_joined_namespace_passes() {
        assert!(with_linux(r#"{"namespaces":[{"type":"mount"},{"type":"network","path":"/run/netns/pod"}],"sysctl":{"net.ipv4.ip_forward":"1"}}"#).is_ok());
    }

    /// A key is shown escaped in the field's name.
    #[test]
    fn a_sysctl_key_is_escaped_in_the_field() {
        let (field, _) = refused(with_linux(
            r#"{"namespaces":[{"type":"mount"}],"sysctl":{"vm.\u001b[2J":"1"}}"#,
        ));
        assert!(!field.contains('\u{1b}'), "{field:?}");
        assert!(field.starts_with("linux.sysctl."), "{field}");
    }

    #[test]
    fn a_mount_without_options_or_mappings_passes() {
        assert!(
            base_with(
                "",
                r#","mounts":[{"destination":"/a"},{"destination":"relative"}]"#
            )
            .is_ok()
        );
    }

    #[test]
    fn the_first_bad_mount_is_named() {
        assert_eq!(
            refused(base_with(
                "",
                r#","mounts":[{"destination":""},{"destination":""}]"#
            ))
            .0,
            "mounts[0].destination"
        );
    }

    #[test]
    fn devices_with_ids_in_range_pass() {
        assert!(with_linux(r#"{"namespaces":[{"type":"mount"}],"devices":[{"path":"/dev/x","type":"c","major":1,"minor":3,"uid":2147483647,"gid":0}]}"#).is_ok());
    }

    #[test]
    fn hooks_without_stages_or_timeouts_pass() {
        assert!(base_with("", r#","hooks":{}"#).is_ok());
        assert!(base_with("", r#","hooks":{"prestart":[]}"#).is_ok());
        assert!(
            base_with(
                "",
                r#","hooks":{"poststop":[{"path":"/bin/true","args":["true"],"env":["A=1"]}]}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn a_negative_hook_timeout_is_refused() {
        assert_eq!(
            refused(base_with(
                "",
                r#","hooks":{"createRuntime":[{"path":"/bin/true","timeout":-5}]}"#
            )),
            (
                "hooks.createRuntime[0].timeout".into(),
                "must be greater than zero".into()
            )
        );
    }

    /// The stages are checked in their order of running.
    #[test]
    fn hooks_are_checked_stage_by_stage() {
        let hooks = r#","hooks":{"poststop":[{"path":"p"}],"prestart":[{"path":"q"}]}"#;
        assert_eq!(refused(base_with("", hooks)).0, "hooks.prestart[0].path");
    }

    /// Only the LSM asked for must be on; SELinux is checked first.
    #[test]
    fn each_label_asks_its_own_lsm() {
        let both = spec(&base_json(
            r#","selinuxLabel":"system_u:system_r:container_t:s0","apparmorProfile":"p""#,
            "",
        ));
        let selinux_only = Host {
            selinux: || true,
            ..ROOT
        };
        let apparmor_only = Host {
            apparmor: || true,
            ..ROOT
        };
        assert_eq!(
            refused(check(&both, &selinux_only)).0,
            "process.apparmorProfile"
        );
        assert_eq!(
            refused(check(&both, &apparmor_only)).0,
            "process.selinuxLabel"
        );
        assert_eq!(refused(check(&both, &ROOT)).0, "process.selinuxLabel");
        let apparmor = spec(&base_json(r#","apparmorProfile":"p""#, ""));
        assert!(
            check(
                &apparmor,
                &Host {
                    apparmor: || true,
                    ..UNASKED
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn host_current_is_the_callers_euid() {
        assert_eq!(Host::current().euid, nix::unistd::geteuid().as_raw());
    }
}
