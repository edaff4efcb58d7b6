//! Intel RDT (`linux.intelRdt`), which the kernel offers through the resctrl filesystem rather
//! than a cgroup. kiln does not write resctrl groups: a config that asks for RDT is refused
//! before anything is made, rather than run without the cache and bandwidth limits it asked
//! for (runc refuses too when resctrl is absent).

use std::path::Path;

use oci_spec::runtime::Spec;

use crate::error::Error;

/// Why a config's `linux.intelRdt` cannot be honoured, given whether resctrl is mounted.
pub fn refusal(resctrl_mounted: bool) -> &'static str {
    if resctrl_mounted {
        "kiln does not apply Intel RDT (closID, schemata, l3CacheSchema, memBwSchema, enableMonitoring)"
    } else {
        "resctrl is not mounted on this host: Intel RDT is unavailable"
    }
}

/// Refuses a config asking for RDT (see the module's comment), naming the field.
pub fn check(spec: &Spec, config: &Path) -> Result<(), Error> {
    let asks = spec
        .linux()
        .as_ref()
        .is_some_and(|l| l.intel_rdt().is_some());
    if !asks {
        return Ok(());
    }
    let mounted = crate::procfs::mountinfo()
        .map(|m| m.iter().any(|m| m.fstype == "resctrl"))
        .unwrap_or(false);
    Err(Error::config(config, "linux.intelRdt", refusal(mounted)))
}

#[cfg(test)]
mod tests {
    use super::{check, refusal};

    fn spec(linux: &str) -> oci_spec::runtime::Spec {
        serde_json::from_str(&format!(r#"{{"ociVersion":"1.3.0","linux":{linux}}}"#)).unwrap()
    }

    #[test]
    fn rdt_is_refused_with_the_reason() {
        assert!(refusal(false).contains("resctrl is not mounted"));
        assert!(refusal(true).contains("does not apply"));
        let config = std::path::Path::new("/b/config.json");
        let rdt = spec(r#"{"intelRdt":{"closID":"g1","l3CacheSchema":"L3:0=f"}}"#);
        let e = check(&rdt, config).unwrap_err().to_string();
        assert!(e.starts_with("/b/config.json: linux.intelRdt: "), "{e}");
        assert!(check(&spec("{}"), config).is_ok());
    }
}
