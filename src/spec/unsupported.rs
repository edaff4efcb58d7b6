//! Spec 1.2.1-1.3 fields kiln does not apply yet. A config that sets one is refused, naming
//! it, rather than run without the network device it asked for (runc 1.1 ignored it silently;
//! runc 1.2+ applies it).

use oci_spec::runtime::Spec;

/// The first such field the config sets.
pub fn first(spec: &Spec) -> Option<&'static str> {
    let linux = spec.linux().as_ref()?;
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Some("linux.netDevices");
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_field_is_named() {
        let linux = |l: &str| {
            let spec =
                serde_json::from_str(&format!(r#"{{"ociVersion":"1.3.0","linux":{l}}}"#)).unwrap();
            super::first(&spec)
        };
        assert_eq!(linux("{}"), None);
        assert_eq!(
            linux(r#"{"memoryPolicy":{"mode":"MPOL_BIND","nodes":"0"}}"#),
            None
        );
        assert_eq!(
            linux(r#"{"netDevices":{"eth9":{}}}"#),
            Some("linux.netDevices")
        );
        assert_eq!(linux(r#"{"netDevices":{}}"#), None);
    }
}
