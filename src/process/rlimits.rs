//! `process.rlimits`, set by init while it still has the privilege to raise them.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use crate::error::{Error, Result};
use crate::spec::rlimit_name;

fn resource(t: PosixRlimitType) -> Resource {
    use PosixRlimitType as T;
    match t {
        T::RlimitCpu => Resource::RLIMIT_CPU,
        T::RlimitFsize => Resource::RLIMIT_FSIZE,
        T::RlimitData => Resource::RLIMIT_DATA,
        T::RlimitStack => Resource::RLIMIT_STACK,
        T::RlimitCore => Resource::RLIMIT_CORE,
        T::RlimitRss => Resource::RLIMIT_RSS,
        T::RlimitNproc => Resource::RLIMIT_NPROC,
        T::RlimitNofile => Resource::RLIMIT_NOFILE,
        T::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        T::RlimitAs => Resource::RLIMIT_AS,
        T::RlimitLocks => Resource::RLIMIT_LOCKS,
        T::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        T::RlimitNice => Resource::RLIMIT_NICE,
        T::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        T::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

pub fn apply(limits: &[PosixRlimit]) -> Result<()> {
    for (i, r) in limits.iter().enumerate() {
        let res = resource(r.typ());
        let Err(err) = setrlimit(res, r.soft(), r.hard()) else {
            continue;
        };
        let err = std::io::Error::from(err);
        let hard_now = getrlimit(res).map_or(0, |(_, hard)| hard);
        let why = if err.raw_os_error() == Some(libc::EPERM) && r.hard() > hard_now {
            format!(
                "cannot raise the hard limit above kiln's own ({hard_now}) without CAP_SYS_RESOURCE"
            )
        } else {
            err.to_string()
        };
        return Err(Error::refused(
            format!(
                "process.rlimits[{i}]: {} soft {} hard {}",
                rlimit_name(r.typ()),
                r.soft(),
                r.hard()
            ),
            why,
        ));
    }
    Ok(())
}

/// A low RLIMIT_NOFILE stops the steps after it with EMFILE, in the runtime's own work (a file
/// in /proc, the fd list) before the program runs: the limit is what is wrong, not that step.
pub fn blame(limits: &[PosixRlimit], e: Error) -> Error {
    let Error::Os { err, .. } = &e else {
        return e;
    };
    let nofile = limits
        .iter()
        .enumerate()
        .find(|(_, r)| r.typ() == PosixRlimitType::RlimitNofile);
    match nofile {
        Some((i, r)) if err.raw_os_error() == Some(libc::EMFILE) => Error::refused(
            format!("process.rlimits[{i}].soft"),
            format!(
                "RLIMIT_NOFILE soft limit {} is too low to set up the container: {e}",
                r.soft()
            ),
        ),
        _ => e,
    }
}
