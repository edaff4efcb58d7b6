use crate::cli::Globals;
use crate::container::{Container, lifecycle};

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    lifecycle::start(&c)?;
    Ok(0)
}
