//! The process's identity: supplementary groups, gid, uid, and the HOME its passwd entry gives.

use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
use oci_spec::runtime::User;

use crate::error::{Context, Result};

/// Switches to the configured user, keeping the permitted set through the uid change so that
/// `capabilities::apply` can then set exactly the configured sets.
pub fn switch(user: &User) -> Result<()> {
    {
        prctl::set_keep_capabilities(true).map_err(|e| crate::error::Error::os("PR_SET_KEEPCAPS", std::io::Error::from_raw_os_error(e)))?;
    }
    // A user namespace whose setgroups is denied (rootless) cannot take supplementary groups.
    let setgroups_denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    let gids: Vec<Gid> = user.additional_gids().iter().flatten().map(|g| Gid::from_raw(*g)).collect();
    if !setgroups_denied {
        setgroups(&gids).ctx(|| "process.user.additionalGids: setgroups")?;
    } else if !gids.is_empty() {
        // Dropping them silently would leave the process without access the config grants.
        return Err(crate::error::Error::os(
            "process.user.additionalGids",
            std::io::Error::other("this user namespace denies setgroups (rootless with a single own-id mapping): map the groups through newgidmap (/etc/subgid) or drop them"),
        ));
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).ctx(|| format!("process.user.gid: setgid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).ctx(|| format!("process.user.uid: setuid {}", user.uid()))?;
    let _ = prctl::set_keep_capabilities(false);
    Ok(())
}

/// HOME for `uid` from the container's /etc/passwd, `/` when it has none (as runc).
pub fn home(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_owned())
            })
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_owned())
}
