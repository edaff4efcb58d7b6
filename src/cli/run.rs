use std::os::fd::AsFd;

use crate::cli::Globals;
use crate::cli::create::CreateFlags;
use crate::container::Container;
use crate::container::lifecycle::{self, CreateOptions};

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Return once the container runs, instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits (it is deleted by default).
    #[arg(long)]
    pub keep: bool,
    /// runc's flag to not become the subreaper. Accepted for its clients; kiln stays the
    /// subreaper of a foreground container all the same, since init may be forked behind an
    /// intermediate process that only a subreaper can wait for.
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    crate::selfexe::ensure_unwritable()?;
    if !a.detach {
        become_subreaper()?;
    }
    let pidfd_socket = crate::cli::create::PidfdSocket::connect(a.flags.pidfd_socket.clone())?;
    let caller = crate::notify::caller();
    let options = CreateOptions {
        starts_at_once: true,
        ..a.flags.options(g, !a.detach)
    };
    let (container, init) = lifecycle::create(&g.root, &a.id, &options)?;
    let started = pidfd_socket
        .send(&init.pidfd)
        .map_err(anyhow::Error::from)
        .and_then(|()| lifecycle::start(&container, caller.is_some()).map_err(Into::into));
    let listener = match started {
        Ok(listener) => listener,
        Err(e) => {
            crate::signals::restore(&init.saved_mask);
            let _ = lifecycle::delete(container, true);
            return Err(e);
        }
    };
    finish(g, container, init, a.detach, a.keep, listener.zip(caller))
}

/// For a foreground container: init may be forked behind an intermediate process, and as
/// subreaper kiln inherits it and can wait for it.
pub(super) fn become_subreaper() -> anyhow::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| anyhow::anyhow!("PR_SET_CHILD_SUBREAPER: {}", std::io::Error::from(e)))
}

/// The end of `run` and `restore`: return at once (`detach`), or wait for the container's
/// init, relaying signals and its pty, then delete the container unless `keep`. With `notify`
/// (kiln's socket and the caller's NOTIFY_SOCKET), a detached `run` returns once the program
/// is ready, and a foreground one relays while it waits. A relay that fails is a warning, as
/// runc ignores it: the container runs on.
pub(super) fn finish(
    g: &Globals,
    container: Container,
    init: crate::process::spawn::Init,
    detach: bool,
    keep: bool,
    notify: Option<(crate::notify::Listener, std::ffi::OsString)>,
) -> anyhow::Result<i32> {
    let id = container.id().to_owned();
    // The lock is for commands that change the container; `kill` and `state` must get through
    // while we wait.
    drop(container);
    let main_pid = if detach {
        init.pid
    } else {
        std::process::id() as i32
    };
    let relay = notify.and_then(|(listener, caller)| {
        listener
            .relay(&caller, main_pid)
            .map_err(|e| crate::log::warn(&e.to_string()))
            .ok()
    });
    if detach {
        crate::signals::restore(&init.saved_mask);
        if let Some(Err(e)) = relay.map(|r| r.until_ready(init.pidfd.as_fd(), init.pid)) {
            crate::log::warn(&e.to_string());
        }
        return Ok(0);
    }
    let exit =
        crate::process::foreground::wait(init.pid, &init.pidfd, init.pty.as_ref(), relay.as_ref());
    crate::signals::restore(&init.saved_mask);
    let exit = exit?;
    if !keep {
        lifecycle::delete(Container::load(&g.root, &id)?, false)?;
    }
    Ok(exit.status())
}
