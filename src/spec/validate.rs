//! Cross-field checks on a parsed config: the contradictions runc rejects, caught before any
//! state directory, namespace or process exists. Each failure names the field.

use std::collections::HashSet;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec, User};

use super::check_id;
use crate::error::{bare, quote};

type Check = std::result::Result<(), (String, String)>;

fn fail(field: impl Into<String>, msg: impl Into<String>) -> Check {
    Err((field.into(), msg.into()))
}

/// The most hooks one stage may list: each is a process, run one after the other while the
/// caller waits (about 2 ms each at best: 100,000 would hold `create` for minutes).
const MAX_HOOKS_PER_STAGE: usize = 1000;

pub fn check(spec: &Spec) -> Check {
    check_process(spec)?;
    let namespaces = check_namespaces(spec)?;
    check_uts(spec, &namespaces)?;
    check_sysctl(spec, &namespaces)?;
    check_mounts(spec)?;
    check_devices(spec)?;
    check_hooks(spec)?;
    check_lsm(spec)?;
    Ok(())
}

fn check_process(spec: &Spec) -> Check {
    let Some(p) = spec.process() else {
        return fail("process", "missing: nothing to run in the container");
    };
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return fail("process.args", "must name the program to run");
    }
    check_user("process.user", p.user())?;
    if !p.cwd().is_absolute() {
        return fail(
            "process.cwd",
            format!("{} is not an absolute path", quote(p.cwd())),
        );
    }
    let mut seen = Vec::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        if seen.contains(&r.typ()) {
            return fail(
                format!("process.rlimits[{i}].type"),
                format!("{} appears twice", super::rlimit_name(r.typ())),
            );
        }
        if r.soft() > r.hard() {
            return fail(
                format!("process.rlimits[{i}].soft"),
                format!(
                    "{}: soft limit {} is above hard limit {}",
                    super::rlimit_name(r.typ()),
                    r.soft(),
                    r.hard()
                ),
            );
        }
        seen.push(r.typ());
    }
    for (i, e) in p.env().iter().flatten().enumerate() {
        if !e.contains('=') {
            return fail(
                format!("process.env[{i}]"),
                format!("{} is not of the form KEY=value", quote(e)),
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
                format!(
                    "must be greater than zero (containerID {}, hostID {})",
                    m.container_id(),
                    m.host_id()
                ),
            );
        }
        for (name, start) in [("containerID", m.container_id()), ("hostID", m.host_id())] {
            check_id(start).or_else(|e| fail(format!("{field}[{i}].{name}"), e))?;
            let last = u64::from(start) + u64::from(m.size()).saturating_sub(1);
            if check_id(last).is_err() {
                return fail(
                    format!("{field}[{i}].size"),
                    format!(
                        "{name} {start} + size {} ends at {last}, out of range: uids and gids must be in range 0-{}",
                        m.size(),
                        super::MAX_ID
                    ),
                );
            }
        }
    }
    Ok(())
}

/// The namespaces the container gets (new or joined), after checking for duplicates.
fn check_namespaces(
    spec: &Spec,
) -> std::result::Result<HashSet<LinuxNamespaceType>, (String, String)> {
    let mut set = HashSet::new();
    let linux = spec.linux().as_ref();
    for (i, ns) in linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !set.insert(ns.typ()) {
            return Err((
                format!("linux.namespaces[{i}]"),
                format!("{:?} namespace listed twice", ns.typ()),
            ));
        }
        if let Some(path) = ns.path()
            && !path.is_absolute()
        {
            return Err((
                format!("linux.namespaces[{i}].path"),
                format!("{} is not absolute", quote(path)),
            ));
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
                return Err((field.into(), "unable to restrict sys entries without a private MNT namespace (add {\"type\": \"mount\"} to linux.namespaces)".into()));
            }
        }
        if spec
            .root()
            .as_ref()
            .is_some_and(|r| r.readonly().unwrap_or(false))
        {
            return Err(("root.readonly".into(), "a read-only root needs a private MNT namespace (add {\"type\": \"mount\"} to linux.namespaces)".into()));
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
        return Err((
            "linux.uidMappings".into(),
            "mappings need a user namespace in linux.namespaces".into(),
        ));
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
                return Err((
                    field.into(),
                    "a new user namespace needs at least one mapping".into(),
                ));
            }
        }
    }
    if linux.is_some_and(|l| l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()))
        && !set.contains(&LinuxNamespaceType::Time)
    {
        return Err((
            "linux.timeOffsets".into(),
            "offsets need a time namespace in linux.namespaces".into(),
        ));
    }
    // runc's check for an unprivileged caller: the kernel grants it the other namespaces only
    // inside a user namespace, and clone3 would fail with a bare EPERM.
    let euid = nix::unistd::geteuid();
    if !euid.is_root() && !has_user {
        return Err((
            "linux.namespaces".into(),
            format!(
                "rootless container requires user namespaces: uid {euid} may create the others only inside one (add {{\"type\": \"user\"}} with uidMappings and gidMappings)"
            ),
        ));
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
                    format!(
                        "{} is longer than the kernel's limit of {MAX} bytes",
                        quote(name)
                    ),
                );
            }
        }
        return Ok(());
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) {
        return fail(
            "hostname",
            "setting a hostname needs a private UTS namespace (add {\"type\": \"uts\"} to linux.namespaces)",
        );
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) {
        return fail(
            "domainname",
            "setting a domainname needs a private UTS namespace (add {\"type\": \"uts\"} to linux.namespaces)",
        );
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
            return fail(
                field,
                "not a namespaced sysctl: setting it would change the host",
            );
        };
        if !ns.contains(&needs.0) {
            return fail(field, format!("needs a private {} namespace", needs.1));
        }
    }
    Ok(())
}

fn check_mounts(spec: &Spec) -> Check {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest = m.destination();
        if dest.as_os_str().is_empty() {
            return fail(format!("mounts[{i}].destination"), "must not be empty");
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
                format!("{} is not absolute", quote(d.path())),
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
                format!(
                    "{count} hooks, more than kiln's limit of {} in one stage (each runs as a process, one after the other)",
                    MAX_HOOKS_PER_STAGE
                ),
            );
        }
        for (i, h) in list.iter().flatten().enumerate() {
            if !h.path().is_absolute() {
                return fail(
                    format!("hooks.{stage}[{i}].path"),
                    format!("{} is not absolute", quote(h.path())),
                );
            }
            if h.timeout().is_some_and(|t| t <= 0) {
                return fail(
                    format!("hooks.{stage}[{i}].timeout"),
                    "must be greater than zero",
                );
            }
        }
    }
    Ok(())
}

/// A label for an LSM the kernel does not have cannot be honoured: say so instead of running the
/// container less confined than its author asked.
fn check_lsm(spec: &Spec) -> Check {
    let Some(p) = spec.process() else {
        return Ok(());
    };
    if p.selinux_label().as_ref().is_some_and(|l| !l.is_empty()) && !crate::lsm::selinux_enabled() {
        return fail(
            "process.selinuxLabel",
            "SELinux is not enabled on this host",
        );
    }
    if p.apparmor_profile().as_ref().is_some_and(|l| !l.is_empty())
        && !crate::lsm::apparmor_enabled()
    {
        return fail(
            "process.apparmorProfile",
            "AppArmor is not enabled on this host",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn without_mount_namespace(root: &str, linux_extra: &str) -> Check {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}}},"root":{root},"linux":{{"namespaces":[{{"type":"pid"}}]{linux_extra}}}}}"#
        );
        check(&serde_json::from_str(&json).unwrap())
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
        assert_eq!(
            check_mappings("m", Some(&map(1, 0, super::super::MAX_ID + 1)))
                .unwrap_err()
                .0,
            "m[0].size"
        );
        assert_eq!(
            check_mappings("m", Some(&map(0, u32::MAX, 1)))
                .unwrap_err()
                .0,
            "m[0].hostID"
        );
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
        assert_eq!(
            without_mount_namespace(root, r#","maskedPaths":["/proc/kcore"]"#)
                .unwrap_err()
                .0,
            "linux.maskedPaths"
        );
        assert_eq!(
            without_mount_namespace(root, r#","readonlyPaths":["/proc/sys"]"#)
                .unwrap_err()
                .0,
            "linux.readonlyPaths"
        );
        assert_eq!(
            without_mount_namespace(r#"{"path":"rootfs","readonly":true}"#, "")
                .unwrap_err()
                .0,
            "root.readonly"
        );
    }

    fn base_with(process_extra: &str, extra: &str) -> Check {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}{process_extra}}},"root":{{"path":"rootfs"}},"linux":{{"namespaces":[{{"type":"pid"}},{{"type":"mount"}},{{"type":"uts"}}]}}{extra}}}"#
        );
        check(&serde_json::from_str(&json).unwrap())
    }

    #[test]
    fn a_hostname_longer_than_the_kernels_limit_is_named() {
        assert!(base_with("", &format!(r#","hostname":"{}""#, "h".repeat(64))).is_ok());
        let (field, msg) =
            base_with("", &format!(r#","hostname":"{}""#, "h".repeat(1 << 20))).unwrap_err();
        assert_eq!(field, "hostname");
        assert!(msg.len() < 200 && msg.contains("(1048576 bytes)"), "{msg}");
        let (field, _) =
            base_with("", &format!(r#","domainname":"{}""#, "d".repeat(65))).unwrap_err();
        assert_eq!(field, "domainname");
    }

    #[test]
    fn rlimits_name_the_limit_and_the_field() {
        // soft 0, given or left out, is a limit like any other.
        for soft in [r#","soft":0"#, ""] {
            let rlimits = format!(r#","rlimits":[{{"type":"RLIMIT_CORE","hard":0{soft}}}]"#);
            assert!(base_with(&rlimits, "").is_ok(), "{rlimits}");
        }
        let (field, msg) = base_with(
            r#","rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":2}]"#,
            "",
        )
        .unwrap_err();
        assert_eq!(field, "process.rlimits[0].soft");
        assert!(msg.starts_with("RLIMIT_NOFILE: soft limit 2"), "{msg}");
        let twice = r#","rlimits":[{"type":"RLIMIT_CPU","hard":1},{"type":"RLIMIT_CPU","hard":1}]"#;
        let (field, msg) = base_with(twice, "").unwrap_err();
        assert_eq!(
            (field.as_str(), msg.as_str()),
            ("process.rlimits[1].type", "RLIMIT_CPU appears twice")
        );
    }

    #[test]
    fn values_in_messages_are_escaped() {
        let (field, msg) = base_with(r#","env":["\u001b[2J\nX"]"#, "").unwrap_err();
        assert_eq!(field, "process.env[0]");
        assert_eq!(msg, r#""\x1b[2J\nX" is not of the form KEY=value"#);
    }

    #[test]
    fn an_id_map_of_size_zero_is_named() {
        let maps: Vec<LinuxIdMapping> = serde_json::from_str(r#"[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":5000,"size":0}]"#).unwrap();
        let (field, msg) = check_mappings("linux.gidMappings", Some(&maps)).unwrap_err();
        assert_eq!(field, "linux.gidMappings[1].size");
        assert!(msg.contains("greater than zero"), "{msg}");
    }
}
