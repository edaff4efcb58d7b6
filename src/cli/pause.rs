use crate::cli::Globals;
use crate::container::{Container, lifecycle};

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    lifecycle::pause(&Container::load(&g.root, &a.id)?)?;
    Ok(0)
}

pub fn resume(g: &Globals, a: Args) -> anyhow::Result<i32> {
    lifecycle::resume(&Container::load(&g.root, &a.id)?)?;
    Ok(0)
}
