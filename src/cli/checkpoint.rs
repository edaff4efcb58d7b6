use std::path::PathBuf;

use crate::cli::Globals;
use crate::container::Container;
use crate::container::checkpoint;
use crate::container::criu::{CgroupMode, Common, DumpFlags};

// The flags `checkpoint` and `restore` share, runc's names (a plain comment: a doc comment
// would become the about text of both commands, which clap applies after their own when
// their flags are deferred).
#[derive(clap::Args)]
pub struct CriuFlags {
    /// Directory of criu's images (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for criu's work files and log (default: the image directory).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// Cgroups mode: soft, full, strict or ignore (default: criu's, soft).
    #[arg(long = "manage-cgroups-mode", default_value = "")]
    pub manage_cgroups_mode: String,
    /// Create a namespace, but do not restore its properties (only `network`).
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images automatically.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Restore memory pages lazily, with userfaultfd.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

impl CriuFlags {
    pub fn common(self) -> anyhow::Result<Common> {
        for ns in &self.empty_ns {
            if ns != "network" {
                anyhow::bail!("--empty-ns {ns:?}: only network is supported");
            }
        }
        let image_dir = match self.image_path {
            Some(p) => std::path::absolute(p)?,
            None => std::env::current_dir()?.join("checkpoint"),
        };
        Ok(Common {
            image_dir,
            work_dir: self.work_path.map(std::path::absolute).transpose()?,
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            auto_dedup: self.auto_dedup,
            lazy_pages: self.lazy_pages,
            cgroup_mode: CgroupMode::parse(&self.manage_cgroups_mode)?,
            // runc's rule: network devices are the caller's, so the network namespace is
            // always restored empty.
            empty_net: true,
        })
    }
}

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuFlags,
    /// Images of a previous pre-dump, relative to --image-path.
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Dump the memory only, leaving the container running.
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// ADDRESS:PORT of a criu page server to send the pages to.
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// With --lazy-pages: criu writes \0 to this fd once the lazy pages are served.
    #[arg(long = "status-fd", default_value_t = -1)]
    pub status_fd: i32,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    let page_server = match &a.page_server {
        None => None,
        Some(s) => {
            let (addr, port) = s
                .rsplit_once(':')
                .filter(|(addr, port)| !addr.is_empty() && !port.is_empty())
                .ok_or_else(|| anyhow::anyhow!("--page-server {s:?}: not ADDRESS:PORT"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| anyhow::anyhow!("--page-server {s:?}: invalid port number"))?;
            Some((addr.trim_matches(['[', ']']).to_owned(), port))
        }
    };
    let flags = DumpFlags {
        common: a.criu.common()?,
        parent: a.parent_path,
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        page_server,
        status_fd: (a.status_fd >= 0).then_some(a.status_fd),
    };
    checkpoint::checkpoint(Container::load(&g.root, &a.id)?, &flags)?;
    Ok(0)
}
