//! Spec 1.2.1-1.3 fields kiln does not apply yet. A config that sets one is refused, naming
//! it, rather than run without the CPU placement or memory policy it asked for (runc 1.1
//! ignored them silently; runc 1.2+ applies them).

use oci_spec::runtime::Spec;

/// The first such field the config sets.
pub fn first(spec: &Spec) -> Option<&'static str> {
    let process = spec.process().as_ref();
    if process.is_some_and(|p| p.exec_cpu_affinity().is_some()) {
        return Some("process.execCPUAffinity");
    }
    let linux = spec.linux().as_ref()?;
    if linux.memory_policy().is_some() {
        return Some("linux.memoryPolicy");
    }
    None
}

#[cfg(test)]
mod tests {
    fn first(extra: &str) -> Option<&'static str> {
        let spec = serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.3.0","process":{{"cwd":"/","user":{{"uid":0,"gid":0}}{extra}}}}}"#
        ))
        .unwrap();
        super::first(&spec)
    }

    #[test]
    fn each_field_is_named() {
        assert_eq!(first(""), None);
        assert_eq!(
            first(r#","execCPUAffinity":{"initial":"0"}"#),
            Some("process.execCPUAffinity")
        );
        let linux = |l: &str| {
            let spec =
                serde_json::from_str(&format!(r#"{{"ociVersion":"1.3.0","linux":{l}}}"#)).unwrap();
            super::first(&spec)
        };
        assert_eq!(
            linux(r#"{"memoryPolicy":{"mode":"MPOL_BIND","nodes":"0"}}"#),
            Some("linux.memoryPolicy")
        );
    }
}
