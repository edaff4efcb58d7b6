use serde_json::json;

/// The OCI features document: only what kiln really does on this host (the cgroup layouts it
/// finds mounted, the seccomp flags its kernel accepts, checkpoint/restore where `criu check`
/// passes: runc's annotation, which runc sets whatever its host; the verdict is kept under the
/// state root).
pub fn run(g: &crate::cli::Globals) -> anyhow::Result<i32> {
    let mut options: Vec<&str> = crate::spec::mount_options::known_options().collect();
    options.sort();
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    let (v1, v2) = crate::cgroups::supported();
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        "io.github.kiln.version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    let criu = crate::container::checkpoint::criu_check(&g.root);
    annotations.insert(
        "org.opencontainers.runc.checkpoint.enabled".into(),
        criu.is_ok().to_string().into(),
    );
    if let Err(why) = criu {
        annotations.insert("io.github.kiln.checkpoint.unavailable".into(), why.into());
    }
    // What kiln applies of linux.intelRdt wherever resctrl is mounted (runc claims it anyway).
    let rdt = crate::cgroups::resctrl::mounted().is_some();
    let doc = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::spec::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": v1, "v2": v2, "systemd": crate::cgroups::systemd_running(), "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": crate::seccomp::ACTIONS,
                "operators": crate::seccomp::OPERATORS,
                "archs": crate::seccomp::ARCHS,
                "knownFlags": crate::seccomp::known_flags().collect::<Vec<_>>(),
                "supportedFlags": crate::seccomp::supported_flags().collect::<Vec<_>>()
            },
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": rdt, "schemata": rdt, "monitoring": rdt},
            "memoryPolicy": {
                "modes": crate::spec::mempolicy::MODES,
                "flags": crate::spec::mempolicy::FLAGS
            },
            "netDevices": {"enabled": true},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": annotations
    });
    crate::cli::out(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
    Ok(0)
}
