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
    let c = match Container::load(&g.root, &a.id) {
        // runc: deleting what does not exist with --force is not an error.
        Err(crate::error::Error::NotFound { .. }) if a.force => return Ok(0),
        other => other?,
    };
    lifecycle::delete(c, a.force)?;
    Ok(0)
}
