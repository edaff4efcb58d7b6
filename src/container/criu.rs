//! criu's command line for `checkpoint` and `restore`: a pure function of the flags and of what
//! kiln knows of the container, unit-tested without root or criu. `checkpoint.rs` gathers the
//! facts (the container's mounts, namespaces, terminal, stdio) and runs the plan.
//!
//! The options are runc's (libcontainer/criu_linux.go), spelled for criu's command line rather
//! than its RPC: the command line is what `criu --help` documents, needs no protobuf code in
//! kiln, and what RPC adds over it (notifications while criu runs) kiln takes from the images
//! instead: the restored init's pid from `--pidfile`, the pty from an external tty (below).
//!
//! - Bind mounts come from the host: criu may not dump them, so each is external on dump
//!   (`mnt[DEST]:DEST`, the destination as key) and given its source again on restore
//!   (`mnt[DEST]:SOURCE`), as runc's ext_mnt map does. Masked files are binds of /dev/null,
//!   devices may be binds of the host's nodes: external too.
//! - The network namespace is created empty on restore (`--empty-ns net`, runc always does:
//!   network devices are the caller's business); one joined by path is external
//!   (`net[INODE]:extRootNetNS`) and given back as an fd, as is a joined pid namespace.
//! - The restored processes go into the new container's cgroup (`--cgroup-root`, each
//!   hierarchy's directory relative to its root) with criu's cgroup mode (`--manage-cgroups`).
//! - A terminal's master is outside the container: on dump its slave is an external tty
//!   (`tty[RDEV:DEV]`), on restore kiln gives criu a new pty's slave in its place
//!   (`--inherit-fd fd[N]:tty[RDEV:DEV]`) and keeps the master (console socket or relay).
//!   The slave's bind on /dev/console is an external mount too (criu would look for its master
//!   in the tree, and runc's way around that, orphan-pts-master, is RPC only), given the new
//!   slave on restore.
//! - Stdio pipes of the caller (runc's descriptors.json) are inherited by restore's own stdio
//!   (`--inherit-fd fd[0]:pipe:[INODE]`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// criu's logs, in the work directory (or the image directory): kiln reads their errors.
pub const DUMP_LOG: &str = "dump.log";
pub const RESTORE_LOG: &str = "restore.log";

/// runc's `--manage-cgroups-mode` values; criu's default when none is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CgroupMode {
    Soft,
    Full,
    Strict,
    Ignore,
}

impl CgroupMode {
    pub fn parse(s: &str) -> Result<Option<CgroupMode>> {
        Ok(Some(match s {
            "" => return Ok(None),
            "soft" => CgroupMode::Soft,
            "full" => CgroupMode::Full,
            "strict" => CgroupMode::Strict,
            "ignore" => CgroupMode::Ignore,
            _ => {
                return Err(Error::Usage(format!(
                    "--manage-cgroups-mode {}: not soft, full, strict or ignore",
                    crate::error::quote(s)
                )));
            }
        }))
    }

    fn as_str(self) -> &'static str {
        match self {
            CgroupMode::Soft => "soft",
            CgroupMode::Full => "full",
            CgroupMode::Strict => "strict",
            CgroupMode::Ignore => "ignore",
        }
    }
}

/// The flags `checkpoint` and `restore` share.
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub image_dir: PathBuf,
    pub work_dir: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
    pub cgroup_mode: Option<CgroupMode>,
    /// `--empty-ns network`; runc adds the network namespace always.
    pub empty_net: bool,
}

#[derive(Debug, Clone, Default)]
pub struct DumpFlags {
    pub common: Common,
    /// Relative to the image directory, as criu wants `--prev-images-dir`.
    pub parent: Option<PathBuf>,
    pub leave_running: bool,
    pub pre_dump: bool,
    pub page_server: Option<(String, u16)>,
    pub status_fd: Option<i32>,
}

/// What kiln knows of the container on dump.
#[derive(Debug, Clone, Default)]
pub struct DumpFacts {
    pub pid: i32,
    pub rootfs: PathBuf,
    /// Destinations of bind mounts, masked files and devices, inside the container.
    pub external_mounts: Vec<PathBuf>,
    /// Masked files (binds of /dev/null): external under the key /dev/null.
    pub masked_files: Vec<PathBuf>,
    /// (namespace as criu names it: `net`, `pid`; inode) of namespaces joined by path.
    pub external_ns: Vec<(&'static str, u64)>,
    /// The cgroup criu freezes the tree with (v1 freezer or v2 directory).
    pub freeze_cgroup: Option<PathBuf>,
    /// The terminal's key, `tty[RDEV:DEV]`.
    pub tty: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RestoreFacts {
    /// The rootfs bind-mounted where criu wants it (a mount point, parent not overmounted).
    pub root: PathBuf,
    pub pid_file: PathBuf,
    /// (destination in the container, host source) of bind mounts; devices map to themselves.
    pub external_mounts: Vec<(PathBuf, PathBuf)>,
    /// Whether the container masks files (binds of /dev/null).
    pub masks_files: bool,
    /// (criu's key, fd in criu) for each inherited resource: namespaces, pipes, the tty.
    pub inherit: Vec<(String, i32)>,
    /// (namespace as criu names it, path) of the other namespaces joined by path.
    pub join_ns: Vec<(&'static str, PathBuf)>,
    /// (hierarchy's controllers, "" for cgroup2; the cgroup relative to its root).
    pub cgroup_roots: Vec<(String, String)>,
}

/// The container's cgroup mounts that are binds of the host's cgroup directories (kiln's
/// `cgroup` mount without a cgroup namespace: the container's own directory, in each hierarchy),
/// which criu can only take as external: (mount point in the container, the hierarchy's key in
/// the container's cgroup paths). `mounts` is the container's mountinfo, `keys` those paths'
/// keys (`""` for cgroup2, `cpu,cpuacct`, `name=systemd`). With a cgroup namespace the mounts are
/// fresh ones, which criu restores itself (runc's rule).
pub fn cgroup_binds<'a>(
    mounts: &[crate::procfs::Mount],
    keys: impl Iterator<Item = &'a String> + Clone,
    cgroupns: bool,
) -> Vec<(PathBuf, String)> {
    if cgroupns {
        return vec![];
    }
    mounts
        .iter()
        .filter(|m| m.root != Path::new("/"))
        .filter_map(|m| {
            let key = match m.fstype.as_str() {
                "cgroup2" => String::new(),
                "cgroup" => {
                    let opts: Vec<&str> = m.super_options.split(',').collect();
                    keys.clone()
                        .find(|k| !k.is_empty() && k.split(',').all(|c| opts.contains(&c)))?
                        .clone()
                }
                _ => return None,
            };
            Some((m.mount_point.clone(), key))
        })
        .collect()
}

/// criu's key for a namespace kiln joined by path: runc's, so that images move between the two.
pub fn ns_key(ns: &str) -> String {
    let mut c = ns.chars();
    let first: String = c
        .next()
        .map(|f| f.to_uppercase().collect())
        .unwrap_or_default();
    format!("extRoot{first}{}NS", c.as_str())
}

/// The key of a terminal in criu's images: its device and its devpts instance, in hex.
pub fn tty_key(rdev: u64, dev: u64) -> String {
    format!("tty[{rdev:x}:{dev:x}]")
}

struct Args(Vec<OsString>);

impl Args {
    fn flag(&mut self, on: bool, name: &str) {
        if on {
            self.0.push(name.into());
        }
    }
    fn opt(&mut self, name: &str, value: impl AsRef<OsStr>) {
        self.0.push(name.into());
        self.0.push(value.as_ref().to_owned());
    }
    fn external(&mut self, name: &str, key: &Path, value: &Path) {
        let mut v = OsString::from("mnt[");
        v.push(key);
        v.push("]:");
        v.push(value);
        self.opt(name, v);
    }
}

fn common(a: &mut Args, c: &Common, log: &str) {
    a.opt("--images-dir", &c.image_dir);
    if let Some(w) = &c.work_dir {
        a.opt("--work-dir", w);
    }
    a.opt("--log-file", log);
    a.0.push("-v4".into());
    a.flag(c.tcp_established, "--tcp-established");
    a.flag(c.ext_unix_sk, "--ext-unix-sk");
    a.flag(c.shell_job, "--shell-job");
    a.flag(c.file_locks, "--file-locks");
    a.flag(c.auto_dedup, "--auto-dedup");
    a.flag(c.lazy_pages, "--lazy-pages");
    a.flag(c.empty_net, "--empty-ns");
    if c.empty_net {
        a.0.push("net".into());
    }
    // criu takes the mode glued to the flag: `--manage-cgroups` alone means soft.
    a.0.push(match c.cgroup_mode {
        Some(m) => format!("--manage-cgroups={}", m.as_str()).into(),
        None => "--manage-cgroups".into(),
    });
}

/// `criu dump` (or `pre-dump`) of the container.
pub fn dump_args(f: &DumpFlags, facts: &DumpFacts) -> Vec<OsString> {
    let mut a = Args(vec![if f.pre_dump { "pre-dump" } else { "dump" }.into()]);
    a.opt("--tree", facts.pid.to_string());
    a.opt("--root", &facts.rootfs);
    common(&mut a, &f.common, DUMP_LOG);
    a.flag(f.leave_running, "--leave-running");
    if let Some(parent) = &f.parent {
        a.opt("--prev-images-dir", parent);
        a.0.push("--track-mem".into());
    }
    if let Some((address, port)) = &f.page_server {
        a.0.push("--page-server".into());
        a.opt("--address", address);
        a.opt("--port", port.to_string());
    }
    if let Some(fd) = f.status_fd {
        a.opt("--status-fd", fd.to_string());
    }
    if let Some(cg) = &facts.freeze_cgroup {
        a.opt("--freeze-cgroup", cg);
    }
    for (ns, inode) in &facts.external_ns {
        a.opt("--external", format!("{ns}[{inode}]:{}", ns_key(ns)));
    }
    // A pre-dump only copies memory: mounts and files are the final dump's.
    if !f.pre_dump {
        for dest in &facts.external_mounts {
            a.external("--external", dest, dest);
        }
        for masked in &facts.masked_files {
            a.external("--external", masked, Path::new("/dev/null"));
        }
        if let Some(tty) = &facts.tty {
            a.opt("--external", tty);
        }
    }
    a.0
}

/// `criu restore` of an image into the new container: detached, the restored init a sibling
/// of criu (so kiln's child, as `run`'s init is), its pid written to `pid_file`.
pub fn restore_args(c: &Common, facts: &RestoreFacts) -> Vec<OsString> {
    let mut a = Args(vec!["restore".into()]);
    a.0.push("--restore-detached".into());
    a.0.push("--restore-sibling".into());
    a.opt("--pidfile", &facts.pid_file);
    a.opt("--root", &facts.root);
    // The container's device nodes are made anew by kiln's create: any path to the same
    // device will do.
    a.0.push("--evasive-devices".into());
    common(&mut a, c, RESTORE_LOG);
    for (ctrl, path) in &facts.cgroup_roots {
        a.opt(
            "--cgroup-root",
            if ctrl.is_empty() {
                path.clone()
            } else {
                format!("{ctrl}:{path}")
            },
        );
    }
    for (dest, source) in &facts.external_mounts {
        a.external("--external", dest, source);
    }
    if facts.masks_files {
        a.external("--external", Path::new("/dev/null"), Path::new("/dev/null"));
    }
    for (key, fd) in &facts.inherit {
        a.opt("--inherit-fd", format!("fd[{fd}]:{key}"));
    }
    for (ns, path) in &facts.join_ns {
        let mut v = OsString::from(format!("{ns}:"));
        v.push(path);
        a.opt("--join-ns", v);
    }
    a.0
}

/// The first line of `features`' record of `criu check` (its format's version).
const CHECK_HEADER: &str = "kiln criu check 1\n";

/// What `criu check`'s verdict holds for: the boot (the kernel and its state since), the user
/// (criu needs root) and the criu binary (its path and file identity: a reinstalled or updated
/// criu is another).
pub fn check_key(boot_id: &str, euid: u32, criu: &Path, m: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "boot {} euid {euid} criu {:?} {}:{} {} {}.{} {}.{}",
        boot_id.trim(),
        criu,
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

/// The record of `criu check`'s verdict under `key`.
pub fn check_record(key: &str, verdict: &std::result::Result<(), String>) -> String {
    let verdict = match verdict {
        Ok(()) => "ok".to_owned(),
        Err(why) => format!("unavailable {}", why.replace('\n', " ")),
    };
    format!("{CHECK_HEADER}{key}\n{verdict}\n")
}

/// The verdict in `record`, if it is whole and for `key`.
pub fn checked(record: &str, key: &str) -> Option<std::result::Result<(), String>> {
    let rest = record.strip_prefix(CHECK_HEADER)?;
    let (k, rest) = rest.split_once('\n')?;
    let verdict = rest
        .strip_suffix('\n')
        .filter(|v| k == key && !v.contains('\n'))?;
    match verdict.split_once(' ') {
        None if verdict == "ok" => Some(Ok(())),
        Some(("unavailable", why)) => Some(Err(why.to_owned())),
        _ => None,
    }
}

/// The errors criu wrote in its log, one line: each `Error (file:line): msg` as its message,
/// the first few and the last (what failed in the end), so that the user sees why.
pub fn log_errors(log: &str) -> Option<String> {
    let errors: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("Error (").map(|(_, rest)| rest))
        .map(|rest| rest.split_once("): ").map_or(rest, |(_, msg)| msg).trim())
        .collect();
    let (&last, rest) = errors.split_last()?;
    let mut shown: Vec<&str> = rest.iter().take(3).copied().collect();
    if rest.len() > 3 {
        shown.push("…");
    }
    shown.push(last);
    Some(shown.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    fn has_pair(v: &[String], flag: &str, value: &str) -> bool {
        v.windows(2).any(|w| w[0] == flag && w[1] == value)
    }

    fn dump_facts() -> DumpFacts {
        DumpFacts {
            pid: 4242,
            rootfs: "/b/rootfs".into(),
            external_mounts: vec!["/data".into(), "/dev/fuse".into()],
            masked_files: vec!["/proc/kcore".into()],
            external_ns: vec![],
            freeze_cgroup: Some("/sys/fs/cgroup/c1".into()),
            tty: None,
        }
    }

    #[test]
    fn dump_of_a_plain_container_is_runcs() {
        let f = DumpFlags {
            common: Common {
                image_dir: "/img".into(),
                empty_net: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let a = strs(&dump_args(&f, &dump_facts()));
        assert_eq!(a[0], "dump");
        assert!(has_pair(&a, "--tree", "4242"));
        assert!(has_pair(&a, "--root", "/b/rootfs"));
        assert!(has_pair(&a, "--images-dir", "/img"));
        assert!(has_pair(&a, "--log-file", "dump.log"));
        assert!(has_pair(&a, "--empty-ns", "net"));
        assert!(has_pair(&a, "--freeze-cgroup", "/sys/fs/cgroup/c1"));
        assert!(has_pair(&a, "--external", "mnt[/data]:/data"));
        assert!(has_pair(&a, "--external", "mnt[/dev/fuse]:/dev/fuse"));
        assert!(has_pair(&a, "--external", "mnt[/proc/kcore]:/dev/null"));
        assert!(a.contains(&"--manage-cgroups".to_owned()));
        for absent in [
            "--leave-running",
            "--shell-job",
            "--track-mem",
            "--work-dir",
        ] {
            assert!(!a.contains(&absent.to_owned()), "{absent} in {a:?}");
        }
    }

    #[test]
    fn dump_flags_map_to_criu_options() {
        let f = DumpFlags {
            common: Common {
                image_dir: "/img".into(),
                work_dir: Some("/work".into()),
                tcp_established: true,
                ext_unix_sk: true,
                shell_job: true,
                file_locks: true,
                auto_dedup: true,
                lazy_pages: true,
                cgroup_mode: Some(CgroupMode::Strict),
                empty_net: true,
            },
            parent: Some("../pre".into()),
            leave_running: true,
            pre_dump: false,
            page_server: Some(("10.0.0.1".into(), 27)),
            status_fd: Some(5),
        };
        let mut facts = dump_facts();
        facts.tty = Some(tty_key(0x8800, 0x2c));
        facts.external_ns = vec![("net", 4026532000)];
        let a = strs(&dump_args(&f, &facts));
        for flag in [
            "--tcp-established",
            "--ext-unix-sk",
            "--shell-job",
            "--file-locks",
            "--auto-dedup",
            "--lazy-pages",
            "--leave-running",
            "--track-mem",
            "--page-server",
            "--manage-cgroups=strict",
        ] {
            assert!(a.contains(&flag.to_owned()), "{flag} missing in {a:?}");
        }
        assert!(has_pair(&a, "--work-dir", "/work"));
        assert!(has_pair(&a, "--prev-images-dir", "../pre"));
        assert!(has_pair(&a, "--address", "10.0.0.1"));
        assert!(has_pair(&a, "--port", "27"));
        assert!(has_pair(&a, "--status-fd", "5"));
        assert!(has_pair(&a, "--external", "tty[8800:2c]"));
        assert!(has_pair(&a, "--external", "net[4026532000]:extRootNetNS"));
    }

    #[test]
    fn pre_dump_copies_memory_only() {
        let f = DumpFlags {
            common: Common {
                image_dir: "/img/pre".into(),
                ..Default::default()
            },
            pre_dump: true,
            ..Default::default()
        };
        let mut facts = dump_facts();
        facts.tty = Some(tty_key(1, 2));
        let a = strs(&dump_args(&f, &facts));
        assert_eq!(a[0], "pre-dump");
        assert!(
            !a.iter()
                .any(|s| s.starts_with("mnt[") || s.starts_with("tty["))
        );
    }

    #[test]
    fn restore_maps_mounts_namespaces_cgroups_and_fds() {
        let c = Common {
            image_dir: "/img".into(),
            empty_net: true,
            cgroup_mode: Some(CgroupMode::Soft),
            ..Default::default()
        };
        let facts = RestoreFacts {
            root: "/run/kiln/c2/criu-root".into(),
            pid_file: "/run/kiln/c2/criu.pid".into(),
            external_mounts: vec![("/data".into(), "/host/data".into())],
            masks_files: true,
            inherit: vec![
                ("pipe:[123]".into(), 1),
                (tty_key(0x8800, 0x2c), 3),
                (ns_key("net"), 4),
            ],
            join_ns: vec![("ipc", "/proc/7/ns/ipc".into())],
            cgroup_roots: vec![
                (String::new(), "/c2".into()),
                ("cpu,cpuacct".into(), "/kiln/c2".into()),
            ],
        };
        let a = strs(&restore_args(&c, &facts));
        assert_eq!(a[0], "restore");
        for flag in [
            "--restore-detached",
            "--restore-sibling",
            "--evasive-devices",
            "--manage-cgroups=soft",
        ] {
            assert!(a.contains(&flag.to_owned()), "{flag} missing in {a:?}");
        }
        assert!(has_pair(&a, "--pidfile", "/run/kiln/c2/criu.pid"));
        assert!(has_pair(&a, "--root", "/run/kiln/c2/criu-root"));
        assert!(has_pair(&a, "--log-file", "restore.log"));
        assert!(has_pair(&a, "--empty-ns", "net"));
        assert!(has_pair(&a, "--external", "mnt[/data]:/host/data"));
        assert!(has_pair(&a, "--external", "mnt[/dev/null]:/dev/null"));
        assert!(has_pair(&a, "--inherit-fd", "fd[1]:pipe:[123]"));
        assert!(has_pair(&a, "--inherit-fd", "fd[3]:tty[8800:2c]"));
        assert!(has_pair(&a, "--inherit-fd", "fd[4]:extRootNetNS"));
        assert!(has_pair(&a, "--join-ns", "ipc:/proc/7/ns/ipc"));
        assert!(has_pair(&a, "--cgroup-root", "/c2"));
        assert!(has_pair(&a, "--cgroup-root", "cpu,cpuacct:/kiln/c2"));
    }

    #[test]
    fn cgroup_binds_without_a_cgroup_namespace() {
        // /proc/PID/mountinfo of a kiln container: pure v2 (guest), then hybrid (host).
        let v2 = crate::procfs::parse_mountinfo(
            "60 55 0:26 /kilntest-t1 /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw,nsdelegate\n\
             61 55 0:5 / /dev rw - tmpfs tmpfs rw\n",
        );
        let keys = [String::new()];
        assert_eq!(
            cgroup_binds(&v2, keys.iter(), false),
            [(PathBuf::from("/sys/fs/cgroup"), String::new())]
        );
        assert!(cgroup_binds(&v2, keys.iter(), true).is_empty());
        let hybrid = crate::procfs::parse_mountinfo(
            "70 69 0:40 / /sys/fs/cgroup ro - tmpfs tmpfs rw,mode=755\n\
             71 70 0:31 /process_api/c1 /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n\
             72 70 0:32 /c1 /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n\
             73 70 0:33 /c1 /sys/fs/cgroup/unified ro - cgroup2 cgroup2 rw\n",
        );
        let keys = ["".to_owned(), "cpu,cpuacct".to_owned(), "memory".to_owned()];
        assert_eq!(
            cgroup_binds(&hybrid, keys.iter(), false),
            [
                (PathBuf::from("/sys/fs/cgroup/memory"), "memory".to_owned()),
                (
                    PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
                    "cpu,cpuacct".to_owned()
                ),
                (PathBuf::from("/sys/fs/cgroup/unified"), String::new()),
            ]
        );
    }

    #[test]
    fn keys_are_runcs_and_crius() {
        assert_eq!(ns_key("net"), "extRootNetNS");
        assert_eq!(ns_key("pid"), "extRootPidNS");
        assert_eq!(tty_key(0x8803, 0x19), "tty[8803:19]");
    }

    #[test]
    fn cgroup_modes() {
        assert_eq!(CgroupMode::parse("").unwrap(), None);
        assert_eq!(CgroupMode::parse("full").unwrap(), Some(CgroupMode::Full));
        let e = CgroupMode::parse("hard").unwrap_err().to_string();
        assert!(e.starts_with("--manage-cgroups-mode \"hard\""), "{e}");
    }

    #[test]
    fn check_records_hold_for_their_key_only() {
        let m = std::fs::metadata("/").unwrap();
        let key = check_key("b0\n", 0, Path::new("/usr/sbin/criu"), &m);
        assert!(
            key.starts_with("boot b0 euid 0 criu \"/usr/sbin/criu\" "),
            "{key}"
        );
        assert_ne!(key, check_key("b1", 0, Path::new("/usr/sbin/criu"), &m));
        assert_ne!(key, check_key("b0", 1000, Path::new("/usr/sbin/criu"), &m));
        assert_ne!(key, check_key("b0", 0, Path::new("/usr/bin/criu"), &m));
        let ok = check_record(&key, &Ok(()));
        assert_eq!(checked(&ok, &key), Some(Ok(())));
        let no = check_record(&key, &Err("vdso: Failed\nagain".into()));
        assert_eq!(checked(&no, &key), Some(Err("vdso: Failed again".into())));
        // Another key, a damaged or cut record: none.
        assert_eq!(checked(&ok, "boot b1"), None);
        assert_eq!(checked(&ok[..ok.len() - 1], &key), None);
        assert_eq!(checked(&ok.replace("ok", "maybe"), &key), None);
        assert_eq!(checked(&format!("{ok}more\n"), &key), None);
        assert_eq!(checked("", &key), None);
    }

    #[test]
    fn log_errors_on_this_hosts_kernel() {
        // dump.log of criu 3.17.1 on the host's 6.18 kernel (abridged).
        let log = "(00.030000) Parsing ...\n\
            (00.030635) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n\
            (00.030638) Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\n\
            (00.030639) Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.\n\
            (00.030650) Warn  (criu/kerndat.c:1100): something\n\
            (00.030687) Error (criu/crtools.c:260): Could not initialize kernel features detection.\n";
        assert_eq!(
            log_errors(log).unwrap(),
            "vdso: Unexpected rt vDSO area bounds; vdso: Failed to fill self vdso symtable; \
             kerndat_vdso_fill_symtable failed when initializing kerndat.; \
             Could not initialize kernel features detection."
        );
        assert_eq!(log_errors("(0.1) Info all fine\n"), None);
    }
}
