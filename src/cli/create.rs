use std::path::PathBuf;

use crate::cli::Globals;
use crate::container::lifecycle::{self, CreateOptions};

// The flags `create` and `run` share (a plain comment: a doc comment would become the about
// text of both commands, which clap applies after their own when their flags are deferred).
#[derive(clap::Args)]
pub struct CreateFlags {
    /// Path to the bundle (the directory holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master of a terminal container.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the container's init (SCM_RIGHTS), as runc 1.2+.
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// File to write the container init's host pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for a rootfs on ramfs).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not give the container a session keyring of its own.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass this many extra fds (3, 4, ...) into the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

impl CreateFlags {
    pub fn options(self, g: &Globals, foreground: bool) -> CreateOptions {
        CreateOptions {
            systemd_cgroup: g.systemd_cgroup,
            rootless: g.rootless,
            bundle: self.bundle,
            console_socket: self.console_socket,
            pid_file: self.pid_file,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            foreground,
            starts_at_once: false,
            notify: crate::notify::caller().is_some(),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    #[command(flatten)]
    pub flags: CreateFlags,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    crate::selfexe::ensure_unwritable()?;
    let pidfd_socket = PidfdSocket::connect(a.flags.pidfd_socket.clone())?;
    let (container, init) = lifecycle::create(&g.root, &a.id, &a.flags.options(g, false))?;
    crate::signals::restore(&init.saved_mask);
    if let Err(e) = pidfd_socket.send(&init.pidfd) {
        let _ = lifecycle::delete(container, true);
        return Err(e.into());
    }
    Ok(0)
}

/// `--pidfd-socket`, connected before anything is made, so that a bad path leaves nothing.
pub struct PidfdSocket(Option<(PathBuf, std::os::unix::net::UnixStream)>);

impl PidfdSocket {
    pub fn connect(path: Option<PathBuf>) -> crate::error::Result<Self> {
        let Some(path) = path else {
            return Ok(Self(None));
        };
        let sock = crate::tty::connect("--pidfd-socket", &path)?;
        Ok(Self(Some((path, sock))))
    }

    pub fn send(&self, pidfd: &std::os::fd::OwnedFd) -> crate::error::Result<()> {
        match &self.0 {
            Some((path, sock)) => crate::tty::send_fd(
                sock,
                "--pidfd-socket",
                path,
                b"pidfd",
                std::os::fd::AsFd::as_fd(pidfd),
            ),
            None => Ok(()),
        }
    }
}
