//! `linux.netDevices` as a plan: which host interface goes into the container under which name,
//! in a fixed order (the config's map has none), each entry checked as runc checks it and as
//! the kernel would check the names (`dev_valid_name`), before anything exists.

use std::collections::HashMap;

use oci_spec::runtime::Spec;

use super::invalid::{Invalid, Problem};
use crate::error::bare;

/// The kernel's IFNAMSIZ, its terminating NUL included.
const IFNAMSIZ: usize = 16;

/// One device to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevice {
    /// The config's field (`linux.netDevices.eth1`), which errors name.
    pub field: String,
    /// Its name on the host (the entry's key), which it gets back if `create` fails.
    pub host: String,
    /// Its name in the container: `name`, else the host's; a `%d` template lets the kernel
    /// choose the number.
    pub container: String,
}

impl NetDevice {
    pub fn is_template(&self) -> bool {
        self.container.contains('%')
    }
}

/// The devices of `linux.netDevices`, by host name.
pub fn plan(spec: &Spec) -> Vec<NetDevice> {
    let mut out: Vec<NetDevice> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .into_iter()
        .flatten()
        .map(|(host, d)| NetDevice {
            field: format!("linux.netDevices.{}", bare(host)),
            host: host.clone(),
            container: d
                .name()
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| host.clone()),
        })
        .collect();
    out.sort_by(|a, b| a.host.cmp(&b.host));
    out
}

/// Why the kernel would refuse `name` as an interface's name; `template` allows one `%d`.
fn bad_name(name: &str, template: bool) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.len() >= IFNAMSIZ {
        return Some("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return Some("\".\" and \"..\" are no interface names");
    }
    if name.contains('/') || name.contains(':') {
        return Some("contains '/' or ':'");
    }
    if name.bytes().any(|b| b.is_ascii_whitespace() || b == 0x0b) {
        return Some("contains whitespace");
    }
    if let Some(at) = name.find('%') {
        // __dev_alloc_name: one %d and no other '%'.
        if !template || !name[at..].starts_with("%d") || name[at + 1..].contains('%') {
            return Some("a '%' other than one %d template");
        }
    }
    None
}

/// Each name valid, no two devices under one name in the container.
pub fn check(devices: &[NetDevice]) -> Result<(), Invalid> {
    let mut seen: HashMap<&str, &NetDevice> = HashMap::new();
    for d in devices {
        if let Some(why) = bad_name(&d.host, false) {
            let problem = Problem::BadInterfaceName {
                name: d.host.clone(),
                why,
            };
            return Err(Invalid::new(&d.field, problem));
        }
        let renamed = format!("{}.name", d.field);
        if let Some(why) = bad_name(&d.container, true) {
            let problem = Problem::BadInterfaceName {
                name: d.container.clone(),
                why,
            };
            return Err(Invalid::new(renamed, problem));
        }
        if d.is_template() {
            continue;
        }
        if let Some(other) = seen.insert(&d.container, d) {
            let problem = Problem::InterfaceNameTwice {
                name: d.container.clone(),
                other: other.host.clone(),
            };
            return Err(Invalid::new(renamed, problem));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(json: &str) -> Vec<NetDevice> {
        let spec: Spec = serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.3.0","linux":{{"netDevices":{json}}}}}"#
        ))
        .unwrap();
        plan(&spec)
    }

    fn refused(json: &str) -> (String, String) {
        let e = check(&devices(json)).expect_err("should be refused");
        (e.field, e.problem.to_string())
    }

    #[test]
    fn each_device_keeps_its_name_unless_renamed_in_host_order() {
        let d = devices(r#"{"kt-b":{"name":"eth1"},"kt-a":{},"kt-c":{"name":""}}"#);
        let pairs: Vec<(&str, &str, &str)> = d
            .iter()
            .map(|d| (d.field.as_str(), d.host.as_str(), d.container.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("linux.netDevices.kt-a", "kt-a", "kt-a"),
                ("linux.netDevices.kt-b", "kt-b", "eth1"),
                ("linux.netDevices.kt-c", "kt-c", "kt-c"),
            ]
        );
        assert!(check(&d).is_ok());
        assert!(devices("{}").is_empty());
    }

    #[test]
    fn names_the_kernel_would_refuse_are_named() {
        assert_eq!(
            refused(r#"{"kt-a":{"name":"a-name-of-16-byt"}}"#),
            (
                "linux.netDevices.kt-a.name".into(),
                r#""a-name-of-16-byt" is not a valid interface name: longer than 15 bytes"#.into()
            )
        );
        assert!(check(&devices(r#"{"kt-a":{"name":"a-name-of-15-by"}}"#)).is_ok());
        for bad in ["a/b", "a:b", "a b", "a\\tb", ".", ".."] {
            let (field, msg) = refused(&format!(r#"{{"kt-a":{{"name":"{bad}"}}}}"#));
            assert_eq!(field, "linux.netDevices.kt-a.name", "{bad}");
            assert!(msg.contains("is not a valid interface name"), "{msg}");
        }
        let (field, msg) = refused(r#"{"":{}}"#);
        assert_eq!(field, "linux.netDevices.");
        assert!(msg.ends_with("not a valid interface name: empty"), "{msg}");
        assert_eq!(refused(r#"{"a/b":{}}"#).0, "linux.netDevices.a/b");
    }

    #[test]
    fn a_template_is_allowed_in_the_container_only() {
        assert!(
            check(&devices(
                r#"{"kt-a":{"name":"eth%d"},"kt-b":{"name":"eth%d"}}"#
            ))
            .is_ok()
        );
        for bad in ["eth%s", "e%d%d", "%"] {
            let (_, msg) = refused(&format!(r#"{{"kt-a":{{"name":"{bad}"}}}}"#));
            assert!(
                msg.ends_with("a '%' other than one %d template"),
                "{bad}: {msg}"
            );
        }
        assert_eq!(refused(r#"{"kt%d":{}}"#).0, "linux.netDevices.kt%d");
    }

    #[test]
    fn two_devices_under_one_name_are_refused() {
        assert_eq!(
            refused(r#"{"kt-a":{"name":"eth1"},"kt-b":{"name":"eth1"}}"#),
            (
                "linux.netDevices.kt-b.name".into(),
                r#""eth1" is also the name of linux.netDevices.kt-a in the container"#.into()
            )
        );
        // A device renamed to another's host name, which that one keeps.
        assert_eq!(
            refused(r#"{"kt-a":{},"kt-b":{"name":"kt-a"}}"#).0,
            "linux.netDevices.kt-b.name"
        );
        // Swapping two names is fine: each is moved under its new name in one step.
        assert!(
            check(&devices(
                r#"{"kt-a":{"name":"kt-b"},"kt-b":{"name":"kt-a"}}"#
            ))
            .is_ok()
        );
    }
}
