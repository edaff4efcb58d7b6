use crate::cli::Globals;
use crate::container::{Container, lifecycle};

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// Signal name (TERM, SIGTERM) or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Send the signal to every process of the container.
    #[arg(short = 'a', long)]
    pub all: bool,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    let signal = crate::signals::parse(&a.signal)?;
    let c = Container::load(&g.root, &a.id)?;
    lifecycle::kill(&c, signal, a.all)?;
    Ok(0)
}
