use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Directory to write config.json into.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write a config for a rootless container.
    #[arg(long)]
    pub rootless: bool,
}

/// runc's own default configs, byte for byte but for the ociVersion kiln implements.
const DEFAULT: &str = include_str!("../spec/runc-spec.json");
const ROOTLESS: &str = include_str!("../spec/runc-spec-rootless.json");

pub fn run(a: Args) -> anyhow::Result<i32> {
    let path = a.bundle.join("config.json");
    let text = if a.rootless { ROOTLESS } else { DEFAULT };
    let mut text = text.replacen(
        "\"ociVersion\": \"1.0.2-dev\"",
        &format!("\"ociVersion\": \"{}\"", crate::spec::OCI_VERSION),
        1,
    );
    if a.rootless {
        // As runc's: container root is the caller, whoever runs `spec`.
        for (field, id) in [
            ("uidMappings", nix::unistd::geteuid().as_raw()),
            ("gidMappings", nix::unistd::getegid().as_raw()),
        ] {
            let at = |host: u32| {
                format!(
                    "\"{field}\": [\n\t\t\t{{\n\t\t\t\t\"containerID\": 0,\n\t\t\t\t\"hostID\": {host},"
                )
            };
            text = text.replacen(&at(0), &at(id), 1);
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| {
            format!(
                "{}: cannot write (remove it first if it exists)",
                path.display()
            )
        })?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(0)
}
