//! The process's identity: supplementary groups, gid, uid, and the HOME its passwd entry gives.

use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
use oci_spec::runtime::User;

use crate::error::{Context, Result};

/// The configured user, checked before the seccomp filter: `switch` then makes only the calls
/// that change the identity.
pub struct Switch {
    uid: Uid,
    gid: Gid,
    /// None: this user namespace denies setgroups (rootless), and no group was asked for.
    groups: Option<Vec<Gid>>,
}

impl Switch {
    pub fn new(user: &User) -> Result<Switch> {
        // A user namespace whose setgroups is denied (rootless) cannot take supplementary groups.
        let setgroups_denied =
            std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
        let gids: Vec<Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        if setgroups_denied && !gids.is_empty() {
            // Dropping them silently would leave the process without access the config grants.
            return Err(crate::error::Error::refused(
                "process.user.additionalGids",
                "this user namespace denies setgroups (rootless with a single own-id mapping): map the groups through newgidmap (/etc/subgid) or drop them",
            ));
        }
        Ok(Switch {
            uid: Uid::from_raw(user.uid()),
            gid: Gid::from_raw(user.gid()),
            groups: (!setgroups_denied).then_some(gids),
        })
    }

    /// Switches to the user, keeping the permitted set through the uid change so that
    /// `capabilities::Plan::apply` can then set exactly the configured sets.
    pub fn switch(&self) -> Result<()> {
        nix::sys::prctl::set_keepcaps(true).ctx(|| "PR_SET_KEEPCAPS")?;
        if let Some(groups) = &self.groups {
            setgroups(groups).ctx(|| "process.user.additionalGids: setgroups")?;
        }
        setresgid(self.gid, self.gid, self.gid)
            .ctx(|| format!("process.user.gid: setgid {}", self.gid))?;
        setresuid(self.uid, self.uid, self.uid)
            .ctx(|| format!("process.user.uid: setuid {}", self.uid))?;
        let _ = nix::sys::prctl::set_keepcaps(false);
        Ok(())
    }
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
