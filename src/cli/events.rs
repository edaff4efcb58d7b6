use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use serde::Serialize;

use crate::cli::Globals;
use crate::container::{Container, Status};
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// How often to print statistics (a Go duration: 5s, 500ms, 1m).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Print the statistics once and exit.
    #[arg(long)]
    pub stats: bool,
}

/// One line of `runc events` output.
#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

/// One event, one line: through `cli::out`, so a reader that went away (`kiln events ID |
/// head`) ends the stream as it ends runc's.
fn print<T: Serialize>(kind: &str, id: &str, data: Option<T>) -> anyhow::Result<()> {
    let line = serde_json::to_string(&Event { kind, id, data })?;
    crate::cli::out(&format!("{line}\n"))?;
    Ok(())
}

/// Statistics every interval and an `oom` event whenever the kernel OOM-kills in the
/// container, until the container's init exits.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    let interval = crate::timefmt::parse_duration(&a.interval)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::Usage(format!(
                "--interval {:?}: must be a duration greater than 0, like 5s",
                a.interval
            ))
        })?;
    let c = Container::peek(&g.root, &a.id)?;
    let (status, init) = c.status_and_init();
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(c
            .wrong_state(
                status,
                "there are no events of a container that does not run",
            )
            .into());
    }
    let cgroup = c.cgroup()?;
    if a.stats {
        return print("stats", c.id(), Some(cgroup.stats()?)).map(|_| 0);
    }
    let init = init.ok_or_else(|| c.wrong_state(Status::Stopped, "its init exited"))?;
    let mut oom = cgroup.oom_watch()?;
    let mut ooms = 0;
    let mut next = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next {
            print("stats", c.id(), Some(cgroup.stats()?))?;
            next = now + interval;
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(i32::MAX as u64));
        let mut fds = [
            PollFd::new(oom.fd(), oom.events()),
            PollFd::new(init.as_fd(), PollFlags::POLLIN),
        ];
        match nix::poll::poll(
            &mut fds,
            PollTimeout::try_from(wait.as_millis() as i32).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::os("waiting for events", e).into()),
        }
        let init_gone = fds[1].any().unwrap_or(false);
        if fds[0].any().unwrap_or(false) || init_gone {
            // One event per OOM kill, counted from the cgroup: wake-ups may merge several.
            let n = oom.count();
            for _ in ooms..n {
                print::<()>("oom", c.id(), None)?;
            }
            ooms = n;
        }
        if init_gone {
            return Ok(0);
        }
    }
}
