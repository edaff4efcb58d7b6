use std::path::PathBuf;

use crate::cli::Globals;
use crate::cli::checkpoint::CriuFlags;
use crate::container::checkpoint::{self, RestoreOptions};
use crate::container::lifecycle::CreateOptions;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuFlags,
    /// Path to the bundle (the directory holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Return once the container runs, instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the restored init's host pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master of a terminal container.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Do not become a subreaper while waiting (runc's flag; kiln's restored init is its
    /// child either way).
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Accepted for runc's sake: criu, not kiln, sets up the restored root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    if !a.detach && !a.no_subreaper {
        crate::cli::run::become_subreaper()?;
    }
    let o = RestoreOptions {
        create: CreateOptions {
            bundle: a.bundle,
            console_socket: a.console_socket,
            pid_file: a.pid_file,
            no_pivot: a.no_pivot,
            no_new_keyring: false,
            preserve_fds: 0,
            foreground: !a.detach,
            starts_at_once: false,
            systemd_cgroup: g.systemd_cgroup,
            rootless: g.rootless,
            // criu restores the mounts as they were dumped, and runc never relays for a
            // restored container either.
            notify: false,
        },
        criu: a.criu.common()?,
    };
    let (container, init) = checkpoint::restore(&g.root, &a.id, &o)?;
    crate::cli::run::finish(g, container, init, a.detach, false, None)
}
