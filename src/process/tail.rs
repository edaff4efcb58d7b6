//! The steps every container process ends with, init's (its steps 11-13) and an exec'd one's,
//! in one order: limits and scheduling, fds, cwd, program, no_new_privs, labels, then the
//! seccomp filter and the identity in the order the filter's moment (`Moment`) gives.
//!
//! Everything kiln does for itself comes before the filter: an allow-list profile that lists
//! only what the container's program needs must not stop kiln itself. After the filter comes
//! only what its position forces:
//!
//! - `Moment::BeforeIdentity` (no no_new_privs and CAP_SYS_ADMIN not kept, so the load must
//!   happen while init still holds it): the identity switch (prctl for the bounding set,
//!   PR_SET_KEEPCAPS and ambient, setgroups, setresgid, setresuid, capget, capset; chdir and
//!   getcwd when only the user can enter the cwd, and then the program's lookup (access, stat)
//!   if it starts from the cwd), then all that `Moment::BeforeReady` forces.
//! - `Moment::BeforeReady` (a listener, which the parent must still be there to receive): the
//!   notify fd's sendmsg and close, Ready (sendmsg), then all that `Moment::Last` forces, plus
//!   in init the exec fifo (openat, write, close).
//! - `Moment::Last`: in init the startContainer hooks (they run under the filter, as runc's) and
//!   the fifo's last byte (write); then execve.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxMemoryPolicy, LinuxPersonality, Process};

use crate::capabilities;
use crate::error::{Context, Error, Result};
use crate::lsm;
use crate::process::sync::{Channel, Msg};
use crate::process::{rlimits, sched, user};
use crate::seccomp::{Filter, Moment};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the steps need beyond the process itself.
pub(super) struct Steps<'a> {
    pub process: &'a Process,
    /// linux.personality: the container's, for init and every exec'd process alike.
    pub personality: Option<&'a LinuxPersonality>,
    /// linux.memoryPolicy: the container's too.
    pub memory_policy: Option<&'a LinuxMemoryPolicy>,
    pub seccomp: Option<&'a Filter>,
    /// fds 3.. that pass into the process.
    pub extra_fds: u32,
    /// Socket-activation fds among `extra_fds` (LISTEN_FDS).
    pub listen_fds: u32,
}

/// A process set up but for the filter's last moment and the execve.
pub(super) struct Prepared<'a> {
    /// The filter, when it goes on last (`Moment::Last`).
    last_filter: Option<&'a Filter>,
    program: Program,
}

/// args[0] resolved, and argv and envp ready for execve: nothing is left to allocate after
/// the filter.
struct Program {
    path: PathBuf,
    c_path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// Runs the steps up to the filter's last moment. Errors name the spec field.
pub(super) fn set_up<'a>(s: &Steps<'a>, chan: &Channel) -> Result<Prepared<'a>> {
    // Limits first, while the process still has the privileges to raise them.
    let limits = s.process.rlimits().as_deref().unwrap_or_default();
    rlimits::apply(limits)?;
    set_up_limited(s, chan).map_err(|e| rlimits::blame(limits, e))
}

/// The process's terminal, made in the container's devpts, its master sent to the parent
/// (which relays it, or passes it to the console socket). `console`: it is also the container's
/// /dev/console (init), not only the process's stdio (exec).
pub fn send_pty_master(process: &Process, chan: &Channel, console: bool) -> Result<()> {
    let master = crate::tty::setup_in_container(
        process.console_size().as_ref(),
        process.user().uid(),
        console,
    )?;
    chan.send_with_fd(&Msg::PtyMaster, Some(master.as_raw_fd()))
        .ctx(|| "sending the pty master")
}

fn set_up_limited<'a>(s: &Steps<'a>, chan: &Channel) -> Result<Prepared<'a>> {
    let p = s.process;
    sched::apply(p, s.personality)?;
    if let Some(policy) = s.memory_policy {
        memory_policy(policy)?;
    }

    // No host directory may be open when the cwd is entered (a cwd of /proc/self/fd/N would
    // escape: CVE-2024-21626), and only stdio and the preserved fds reach the program; every
    // fd opened after this is close-on-exec by itself.
    crate::procfs::close_directories_from(3 + s.extra_fds as i32)
        .ctx(|| "closing the host's directory fds")?;
    crate::sys::cloexec_from(3 + s.extra_fds).ctx(|| "marking inherited fds close-on-exec")?;

    let late_cwd = enter_cwd_early(p.cwd())?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        p.user().umask().unwrap_or(0o022),
    ));
    // Resolved now so that a missing binary fails `create` rather than a later `start`, unless
    // the lookup starts from a cwd that only the user can enter.
    let env = environment(
        p.env().as_deref().unwrap_or_default(),
        p.user().uid(),
        s.listen_fds,
    );
    let early = match late_cwd {
        Some(_) if starts_from_cwd(p.args().as_deref().unwrap_or_default(), &env) => None,
        _ => Some(Program::resolve(p, &env)?),
    };
    let identity = user::Switch::new(p.user())?;
    let caps = capabilities::Plan::new(p.capabilities().as_ref());
    let nnp = p.no_new_privileges().unwrap_or(false);
    if nnp {
        nix::sys::prctl::set_no_new_privs().ctx(|| "process.noNewPrivileges")?;
    }
    // They apply at the next execve: the program's, and the startContainer hooks' before it,
    // as in runc.
    lsm::set_exec_labels(
        p.selinux_label().as_deref(),
        p.apparmor_profile().as_deref(),
    )?;

    let moment = s.seccomp.map(|f| f.moment(nnp, p.capabilities().as_ref()));
    load_seccomp(s.seccomp, moment, Moment::BeforeIdentity, chan)?;
    // The bounding set needs CAP_SETPCAP, so it goes before the user; the other sets after,
    // the permitted one kept through the switch.
    caps.apply_bounding()?;
    identity.switch()?;
    caps.apply()?;
    if let Some(cwd) = late_cwd {
        enter_cwd(cwd)?;
    }
    let program = match early {
        Some(program) => program,
        None => Program::resolve(p, &env)?,
    };
    load_seccomp(s.seccomp, moment, Moment::BeforeReady, chan)?;
    Ok(Prepared {
        last_filter: s.seccomp.filter(|_| moment == Some(Moment::Last)),
        program,
    })
}

impl Prepared<'_> {
    /// The filter's last moment: once the parent has said its last word, before the
    /// startContainer hooks and execve.
    pub fn load_last_filter(&mut self) -> Result<()> {
        if let Some(filter) = self.last_filter.take() {
            // `Filter::moment` gives a listener an earlier moment: there is no fd here.
            drop(filter.load()?);
        }
        Ok(())
    }

    pub fn exec(self) -> Result<Infallible> {
        let Program {
            path,
            c_path,
            argv,
            envp,
        } = self.program;
        let e = nix::unistd::execve(&c_path, &argv, &envp).unwrap_err();
        Err(Error::os(
            format!("exec {}", path.display()),
            std::io::Error::from(e),
        ))
    }
}

/// Loads the seccomp filter if `now` is its moment. A notify fd goes to the parent and is closed
/// here: the container's process must not hold its own listener.
fn load_seccomp(
    filter: Option<&Filter>,
    moment: Option<Moment>,
    now: Moment,
    chan: &Channel,
) -> Result<()> {
    let Some(filter) = filter.filter(|_| moment == Some(now)) else {
        return Ok(());
    };
    if let Some(fd) = filter.load()? {
        chan.send_with_fd(&Msg::SeccompListener, Some(fd.as_raw_fd()))
            .ctx(|| "sync: sending the seccomp notify fd")?;
    }
    Ok(())
}

/// process.cwd, entered before the user switch (a directory only root can enter) and checked
/// at once. A directory that root may not enter (a user namespace's root on a directory of an
/// unmapped owner) is left for after the switch, as runc and crun do: the one case where the
/// chdir and its check follow the filter.
fn enter_cwd_early(cwd: &Path) -> Result<Option<&Path>> {
    match nix::unistd::chdir(cwd) {
        Ok(()) => check_cwd(cwd).map(|()| None),
        Err(Errno::EACCES | Errno::EPERM) => Ok(Some(cwd)),
        Err(e) => Err(Error::os(
            format!("process.cwd: chdir {}", cwd.display()),
            std::io::Error::from(e),
        )),
    }
}

fn enter_cwd(cwd: &Path) -> Result<()> {
    nix::unistd::chdir(cwd).ctx(|| format!("process.cwd: chdir {}", cwd.display()))?;
    check_cwd(cwd)
}

/// The cwd must be inside the root: the kernel prefixes a path it cannot reach from the root
/// with "(unreachable)".
fn check_cwd(cwd: &Path) -> Result<()> {
    if nix::unistd::getcwd().is_ok_and(|c| c.is_absolute()) {
        return Ok(());
    }
    Err(Error::refused(
        "process.cwd",
        format!("{} is outside the container's root", cwd.display()),
    ))
}

impl Program {
    fn resolve(process: &Process, env: &[String]) -> Result<Program> {
        let args = process.args().as_deref().unwrap_or_default();
        let arg0 = args
            .first()
            .ok_or_else(|| Error::refused("process.args", "empty: there is no program to run"))?;
        let path = find_program(arg0, env)?;
        let cstr = |what: &str, s: &[u8]| {
            CString::new(s).map_err(|_| Error::refused(what.to_owned(), "contains a NUL byte"))
        };
        Ok(Program {
            c_path: cstr("process.args[0]", path.as_os_str().as_bytes())?,
            argv: args
                .iter()
                .enumerate()
                .map(|(i, a)| cstr(&format!("process.args[{i}]"), a.as_bytes()))
                .collect::<Result<_>>()?,
            envp: env
                .iter()
                .enumerate()
                .map(|(i, e)| cstr(&format!("process.env[{i}]"), e.as_bytes()))
                .collect::<Result<_>>()?,
            path,
        })
    }
}

/// process.env, plus HOME from the user's passwd entry when unset, plus the socket-activation
/// variables for the fds passed in.
fn environment(env: &[String], uid: u32, listen_fds: u32) -> Vec<String> {
    let mut env = env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user::home(uid)));
    }
    if listen_fds > 0 {
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={listen_fds}"));
        env.push("LISTEN_PID=1".to_owned());
    }
    env
}

/// Whether finding args[0] starts from the cwd: a relative path, or a relative PATH entry.
fn starts_from_cwd(args: &[String], env: &[String]) -> bool {
    match args.first() {
        Some(arg0) if arg0.contains('/') => !arg0.starts_with('/'),
        Some(_) => search_path(env).split(':').any(|dir| !dir.starts_with('/')),
        None => false,
    }
}

/// The container's PATH, or execvp's default without one.
fn search_path(env: &[String]) -> &str {
    env.iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// args[0] as execvp would find it, using the container's PATH. Looked up before the user
/// switch: a program that root finds but the user may not run fails at execve, with EACCES.
fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let executable =
        |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && !p.is_dir();
    if arg0.contains('/') {
        return match nix::unistd::access(Path::new(arg0), nix::unistd::AccessFlags::X_OK) {
            Ok(()) => Ok(PathBuf::from(arg0)),
            // runc's (Go's) words, lower case: Docker maps "no such file or directory" to
            // exit 127 and "permission denied" to 126, matching case.
            Err(e) => {
                let mut text = e.desc().to_owned();
                text[..1].make_ascii_lowercase();
                Err(Error::os(
                    format!("process.args[0]: exec: {arg0:?}"),
                    std::io::Error::new(std::io::Error::from(e).kind(), text),
                ))
            }
        };
    }
    let path = search_path(env);
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(arg0))
        .find(|p| executable(p))
        // runc's words: Podman and containerd turn "executable file not found" into exit 127.
        .ok_or_else(|| {
            Error::os(
                format!(
                    "process.args[0]: exec: {arg0:?}: executable file not found in $PATH ({path})"
                ),
                std::io::Error::from_raw_os_error(libc::ENOENT),
            )
        })
}

/// set_mempolicy(2), inherited across fork and execve, as runc's init sets it. Whether the
/// nodes exist only the kernel says (EINVAL): the error names the field and the nodes.
fn memory_policy(policy: &LinuxMemoryPolicy) -> Result<()> {
    let plan = crate::spec::mempolicy::plan(policy).map_err(|e| Error::Refused {
        what: e.field,
        why: e.problem.to_string(),
    })?;
    crate::sys::set_mempolicy(plan.mode, &plan.nodes.0).map_err(|e| {
        Error::os(
            format!(
                "linux.memoryPolicy: set_mempolicy {} nodes {:?}",
                plan.name,
                policy.nodes().as_deref().unwrap_or("")
            ),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_named_in_runcs_words() {
        let e = find_program("/no/such/program", &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "process.args[0]: exec: \"/no/such/program\": no such file or directory"
        );
    }

    #[test]
    fn lookups_that_start_from_the_cwd() {
        let args = |a: &str| vec![a.to_owned()];
        let path = |p: &str| vec![format!("PATH={p}")];
        assert!(!starts_from_cwd(&args("true"), &[]));
        assert!(!starts_from_cwd(&args("/bin/true"), &path("bin")));
        assert!(starts_from_cwd(&args("./run"), &[]));
        assert!(starts_from_cwd(&args("true"), &path("/bin:bin")));
        assert!(starts_from_cwd(&args("true"), &path("/bin::/sbin")));
        assert!(!starts_from_cwd(&args("true"), &path("/bin:/sbin")));
    }
}
