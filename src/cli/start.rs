use std::os::fd::AsFd;

use crate::cli::Globals;
use crate::container::{Container, lifecycle};

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    let caller = crate::notify::caller();
    // Opened while init is sure to be alive: it may exit at once once started. Only to relay:
    // `start` itself opens its own.
    let init = caller.as_ref().and_then(|_| c.init_pidfd());
    let listener = lifecycle::start(&c, caller.is_some())?;
    let (Some(listener), Some(caller), Some(init)) = (listener, caller, init) else {
        return Ok(0);
    };
    let pid = c.state.pid;
    // `kill` and `state` must get through while the program gets ready.
    drop(c);
    listener
        .relay(&caller, pid)?
        .until_ready(init.as_fd(), pid)?;
    Ok(0)
}
