use crate::cli::Globals;
use crate::container::Container;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    let c = Container::peek(&g.root, &a.id)?;
    // runc prints this with Go's MarshalIndent: two spaces, no trailing newline after `}`... but
    // followed by one, as fmt.Println adds it.
    crate::cli::out(&format!(
        "{}\n",
        serde_json::to_string_pretty(&c.state.runc_json(c.status(), ""))?
    ))?;
    Ok(0)
}
