//! `process.rlimits`, set by init while it still has the privilege to raise them.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use crate::error::{Error, Result};
use crate::spec::rlimit_name;

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType as T;
    match t {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn apply(limits: &[PosixRlimit]) -> Result<()> {
    for (i, r) in limits.iter().enumerate() {
        let res = resource(r.typ());
        let new = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads one valid rlimit struct.
        if unsafe { libc::setrlimit(res, &new) } == 0 {
            continue;
        }
        let err = std::io::Error::last_os_error();
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit struct into a valid pointer.
        unsafe { libc::getrlimit(res, &mut cur) };
        let why = if err.raw_os_error() == Some(libc::EPERM) && r.hard() > cur.rlim_max {
            format!(
                "cannot raise the hard limit above kiln's own ({}) without CAP_SYS_RESOURCE",
                cur.rlim_max
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
