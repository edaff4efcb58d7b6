use std::path::PathBuf;

use crate::cli::Globals;
use crate::container::Container;
use crate::container::exec::{self, Changes, Options, ProcessSource};

#[derive(clap::Args)]
pub struct Args {
    /// Path to a process.json (config.json's `process` object) instead of a command.
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Return once the process runs, instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process's host pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (with --tty).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the process (SCM_RIGHTS), as runc 1.2+.
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE); may be repeated.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// The user, as uid[:gid].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Supplementary group ids; may be repeated.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_...); may be repeated.
    #[arg(short = 'c', long = "cap")]
    pub caps: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// AppArmor profile for the process.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux label for the process.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Pass this many extra fds (3, 4, ...) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Run the process in an existing sub-cgroup: PATH, or CONTROLLER[,...]:PATH; may repeat.
    #[arg(long = "cgroup")]
    pub cgroup: Vec<String>,
    /// Run the process even if the container is paused (it starts frozen).
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// runc's status for an exec that could not run its process, distinct from any the process
/// itself can return (clients such as containerd's shim tell them apart by it).
const EXEC_FAILED: i32 = 255;

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    match exec(g, a) {
        Ok(status) => Ok(status),
        Err(e) => {
            crate::log::error(&format!("exec failed: {e:#}"));
            Ok(EXEC_FAILED)
        }
    }
}

fn exec(g: &Globals, a: Args) -> anyhow::Result<i32> {
    let process = match a.process {
        Some(path) => {
            if !a.command.is_empty() {
                anyhow::bail!(
                    "--process and a command exclude each other: the command is in the process file"
                );
            }
            ProcessSource::File(path)
        }
        None => ProcessSource::Flags(Changes {
            args: a.command,
            env: a.env,
            cwd: a.cwd,
            user: a.user,
            additional_gids: a.additional_gids,
            caps: a.caps,
            tty: a.tty,
            no_new_privs: a.no_new_privs,
            apparmor: a.apparmor,
            process_label: a.process_label,
        }),
    };
    let opts = Options {
        process,
        console_socket: a.console_socket,
        pid_file: a.pid_file,
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        sub_cgroups: a.cgroup,
        foreground: !a.detach,
    };
    if !a.detach {
        // The process is forked behind an intermediate when it joins a pid namespace: as
        // subreaper, kiln inherits it and can wait for it.
        super::run::become_subreaper()?;
    }
    crate::selfexe::ensure_unwritable()?;
    let pidfd_socket = crate::cli::create::PidfdSocket::connect(a.pidfd_socket.clone())?;
    let container = Container::load(&g.root, &a.id)?;
    let spawned = exec::exec(&container, &opts)?;
    if let Err(e) = pidfd_socket.send(&spawned.pidfd) {
        // The client cannot know of the process: it is not left running.
        let _ =
            crate::sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&spawned.pidfd), libc::SIGKILL);
        crate::signals::restore(&spawned.saved_mask);
        return Err(e.into());
    }
    // Other commands (kill, delete) must get through while the process runs.
    drop(container);
    if a.detach {
        crate::signals::restore(&spawned.saved_mask);
        return Ok(0);
    }
    let exit =
        crate::process::foreground::wait(spawned.pid, &spawned.pidfd, spawned.pty.as_ref(), None);
    crate::signals::restore(&spawned.saved_mask);
    Ok(exit?.status())
}
