use crate::cli::Globals;
use crate::container::{Container, lifecycle};

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// Kill a running container before deleting it.
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    if a.force {
        lifecycle::delete_force(&g.root, &a.id)?;
    } else {
        lifecycle::delete(Container::load(&g.root, &a.id)?, false)?;
    }
    Ok(0)
}
