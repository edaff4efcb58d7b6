//! The device rules a container's cgroup gets, and how v1's devices controller is written.
//! (v2 has no devices files: `ebpf` compiles the same rules into a BPF program.)

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

use crate::error::{Error, Result};

/// runc's defaults, appended after the config's rules so that every container can mknod (not
/// open) any device and use the few that every program expects.
const DEFAULTS: &[(LinuxDeviceType, Option<i64>, Option<i64>, &str)] = &[
    (LinuxDeviceType::C, None, None, "m"),
    (LinuxDeviceType::B, None, None, "m"),
    (LinuxDeviceType::C, Some(1), Some(3), "rwm"), // null
    (LinuxDeviceType::C, Some(1), Some(8), "rwm"), // random
    (LinuxDeviceType::C, Some(1), Some(7), "rwm"), // full
    (LinuxDeviceType::C, Some(5), Some(0), "rwm"), // tty
    (LinuxDeviceType::C, Some(1), Some(5), "rwm"), // zero
    (LinuxDeviceType::C, Some(1), Some(9), "rwm"), // urandom
    (LinuxDeviceType::C, Some(136), None, "rwm"),  // pts/*
    (LinuxDeviceType::C, Some(5), Some(2), "rwm"), // ptmx
    (LinuxDeviceType::C, Some(10), Some(200), "rwm"), // net/tun
];

fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().expect("every field is set")
}

/// The most rules a config may give. v1's devices controller compares each rule written with
/// every one before it (20,000 took seconds, 40,000 half a minute), and v2's verifier refuses a
/// program of a few thousand anyway (see `ebpf`).
const MAX_RULES: usize = 10_000;

/// The complete list, in evaluation order (the last matching rule wins): deny everything, the
/// config's rules, then the defaults. A `linux.devices` node gets no rule of its own: as with
/// runc, the config must allow it in `linux.resources.devices` (Podman and Docker write both).
/// Checked here, so both v1 and v2 get only well-formed rules.
pub fn rules(config: &[LinuxDeviceCgroup]) -> Result<Vec<LinuxDeviceCgroup>> {
    if config.len() > MAX_RULES {
        return Err(Error::Cgroup {
            field: "linux.resources.devices".into(),
            msg: format!(
                "{} rules, more than kiln's limit of {MAX_RULES} (the kernel checks each rule against all the ones before it)",
                config.len()
            ),
        });
    }
    let mut out = vec![rule(false, LinuxDeviceType::A, None, None, "rwm")];
    for (i, r) in config.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::U => LinuxDeviceType::C,
            LinuxDeviceType::P => {
                return Err(Error::Cgroup {
                    field: format!("{field}.type"),
                    msg: "\"p\" (a fifo) is not a device the cgroup controls".into(),
                });
            }
            t => t,
        };
        for (name, v) in [("major", r.major()), ("minor", r.minor())] {
            if v.is_some_and(|v| v < -1 || v > u32::MAX as i64) {
                return Err(Error::Cgroup {
                    field: format!("{field}.{name}"),
                    msg: format!("{} is not a device number", v.unwrap_or_default()),
                });
            }
        }
        let Some(access) = access(typ, r.access().as_deref()) else {
            continue;
        };
        let wild = |v: Option<i64>| v.filter(|&v| v >= 0);
        out.push(rule(
            r.allow(),
            typ,
            wild(r.major()),
            wild(r.minor()),
            &access,
        ));
    }
    out.extend(
        DEFAULTS
            .iter()
            .map(|&(t, maj, min, acc)| rule(true, t, maj, min, acc)),
    );
    Ok(out)
}

/// The access a rule grants or denies, as runc reads it: the letters r, w and m, any other
/// ignored (runc's device emulator keeps only those three), in that order. A rule left with
/// none does nothing and is dropped (None), except `a`, which stands for every device with
/// every access whatever its letters say.
fn access(typ: LinuxDeviceType, given: Option<&str>) -> Option<String> {
    let given = given.unwrap_or("rwm");
    let known: String = "rwm".chars().filter(|&c| given.contains(c)).collect();
    match (known.is_empty(), typ) {
        (true, LinuxDeviceType::A) => Some("rwm".into()),
        (true, _) => None,
        (false, _) => Some(known),
    }
}

/// A rule as v1's devices.allow / devices.deny take it: `c 1:3 rwm`, or `a` for all.
fn v1_line(r: &LinuxDeviceCgroup) -> String {
    let typ = r.typ().unwrap_or(LinuxDeviceType::A);
    let access = r.access().as_deref().unwrap_or("rwm");
    if typ == LinuxDeviceType::A && r.major().is_none() && r.minor().is_none() && access.len() == 3
    {
        return "a".into();
    }
    let num = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
    format!(
        "{} {}:{} {access}",
        typ.as_str(),
        num(r.major()),
        num(r.minor())
    )
}

/// The v1 writes for `rules`, in order: (file, line). Writing `a` to a file resets the list to
/// that default; each later rule then adds or removes an exception, so the kernel ends up where
/// "last match wins" says.
pub fn v1_writes(rules: &[LinuxDeviceCgroup]) -> Vec<(&'static str, String)> {
    rules
        .iter()
        .map(|r| {
            (
                if r.allow() {
                    "devices.allow"
                } else {
                    "devices.deny"
                },
                v1_line(r),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_config_and_deny_comes_first() {
        let config: Vec<LinuxDeviceCgroup> = serde_json::from_str(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":229,"access":"rw"}]"#).unwrap();
        let w = v1_writes(&rules(&config).unwrap());
        assert_eq!(w[0], ("devices.deny", "a".to_string()));
        assert_eq!(w[1], ("devices.deny", "a".to_string()));
        assert_eq!(w[2], ("devices.allow", "c 10:229 rw".to_string()));
        assert_eq!(w[3], ("devices.allow", "c *:* m".to_string()));
        assert!(w.contains(&("devices.allow", "c 136:* rwm".to_string())));
    }

    #[test]
    fn unknown_access_letters_are_ignored() {
        let config: Vec<LinuxDeviceCgroup> = serde_json::from_str(r#"[{"allow":true,"type":"c","major":10,"minor":229,"access":"wxrz"},{"allow":true,"type":"c","major":1,"minor":1,"access":"q"},{"allow":false,"access":"x"}]"#).unwrap();
        let w = v1_writes(&rules(&config).unwrap());
        assert_eq!(w[1], ("devices.allow", "c 10:229 rw".to_string()));
        // The rule with no known letter is gone; `a` stays every access.
        assert_eq!(w[2], ("devices.deny", "a".to_string()));
        assert!(!w.iter().any(|(_, l)| l.starts_with("c 1:1 ")));
    }

    #[test]
    fn too_many_rules_are_refused_naming_the_limit() {
        let allow: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"r"}"#)
                .unwrap();
        assert!(rules(&vec![allow.clone(); MAX_RULES]).is_ok());
        let e = rules(&vec![allow; MAX_RULES + 1]).unwrap_err().to_string();
        assert!(e.starts_with("linux.resources.devices: 10001 rules"), "{e}");
        assert!(e.contains("limit of 10000"), "{e}");
    }

    #[test]
    fn bad_rules_name_their_field() {
        let config: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":true,"type":"c","major":-5,"access":"r"}]"#).unwrap();
        assert!(
            rules(&config)
                .unwrap_err()
                .to_string()
                .contains("devices[0].major")
        );
    }
}
