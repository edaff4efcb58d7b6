//! Signal names as runc's `kill` takes them, and the signal mask discipline of the fork: every
//! signal is blocked before cloning, so a fast-exiting container's SIGCHLD can never be lost.

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction};

use crate::error::{Error, Result};

/// `KILL`, `SIGKILL`, `kill`, `9`, and `RTMIN+3` / `SIGRTMAX-1`, as runc accepts them; `0`
/// (no signal: only whether the container is alive), as kill(1) and runc take it.
pub fn parse(raw: &str) -> Result<i32> {
    let bad = || {
        Error::Usage(format!(
            "unknown signal {raw:?}: give a name like TERM or SIGKILL, or a number"
        ))
    };
    if let Ok(n) = raw.parse::<i32>() {
        return if (0..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = raw.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(n) = realtime(name) {
        return n.ok_or_else(bad);
    }
    format!("SIG{name}")
        .parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| bad())
}

fn realtime(name: &str) -> Option<Option<i32>> {
    let (base, rest) = if let Some(r) = name.strip_prefix("RTMIN") {
        (libc::SIGRTMIN(), r)
    } else if let Some(r) = name.strip_prefix("RTMAX") {
        (libc::SIGRTMAX(), r)
    } else {
        return None;
    };
    let n = match rest {
        "" => Some(base),
        r if r.starts_with('+') => r[1..].parse::<i32>().ok().map(|o| base + o),
        r if r.starts_with('-') => r[1..].parse::<i32>().ok().map(|o| base - o),
        _ => None,
    };
    Some(n.filter(|n| (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(n)))
}

/// Blocks every signal in this (single-threaded) process; returns the mask to restore.
pub fn block_all() -> Result<SigSet> {
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )
    .map_err(|e| Error::os("blocking signals", e))?;
    Ok(old)
}

pub fn restore(mask: &SigSet) {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
}

/// In the child, before anything of the container's: default dispositions and an empty mask,
/// so the container's process starts as any freshly exec'd one.
pub fn reset_for_child() {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: installing SIG_DFL runs no code of ours in signal context.
            let _ = unsafe { sigaction(sig, &dfl) };
        }
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_numbers_and_realtime() {
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("sigterm").unwrap(), 15);
        assert_eq!(parse("SIGHUP").unwrap(), 1);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("0").unwrap(), 0);
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert_eq!(parse("SIGRTMAX").unwrap(), libc::SIGRTMAX());
        for bad in ["SIGBOGUS", "SIG0", "-1", "RTMIN+99", "", "65"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(
            parse("SIGBOGUS")
                .unwrap_err()
                .to_string()
                .contains("\"SIGBOGUS\"")
        );
    }
}
