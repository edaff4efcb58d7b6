//! SELinux and AppArmor: whether the host enables them (config validation asks, before anything
//! exists), and the exec labels. The kernel applies those at execve, so they are written last,
//! through procfs::write: a label written to anything but procfs would silently not apply.

use std::path::Path;

use crate::error::{Context, Result};

pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

pub fn set_exec_labels(selinux: Option<&str>, apparmor: Option<&str>) -> Result<()> {
    if let Some(label) = selinux.filter(|l| !l.is_empty()) {
        crate::procfs::write("/proc/thread-self/attr/exec", label)
            .ctx(|| format!("process.selinuxLabel: {label}"))?;
    }
    if let Some(profile) = apparmor.filter(|p| !p.is_empty()) {
        let value = format!("exec {profile}");
        crate::procfs::write("/proc/thread-self/attr/apparmor/exec", &value)
            .or_else(|_| crate::procfs::write("/proc/thread-self/attr/exec", &value))
            .ctx(|| format!("process.apparmorProfile: {profile}"))?;
    }
    Ok(())
}
