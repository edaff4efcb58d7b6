//! `linux.seccomp`. libseccomp compiles the profile into a BPF program in `create`'s parent,
//! after the clone, while init does its mounts: neither the compiler's time nor its memory is
//! init's (a fork holds all its parent had), and a bad profile still fails `create`, which then
//! kills init and removes all it made. The program reaches init in a memfd (`to_memfd`), and
//! init loads it with seccomp(2) itself: that gives it every filter flag the kernel knows
//! (libseccomp 2.5 lacks WAIT_KILLABLE_RECV) and the notify fd, and lets it choose the moment
//! (`Moment`). In front of libseccomp's program goes runc's -ENOSYS stub (`enosys.rs`).

pub mod cache;
mod enosys;

use std::collections::HashSet;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxCapabilities, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// The kernel's flags for seccomp(SECCOMP_SET_MODE_FILTER).
const FLAG_TSYNC: u32 = 1 << 0;
const FLAG_LOG: u32 = 1 << 1;
const FLAG_SPEC_ALLOW: u32 = 1 << 2;
const FLAG_NEW_LISTENER: u32 = 1 << 3;
const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// The kernel's limit on the instructions of one seccomp program (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// The errno of SCMP_ACT_ERRNO and SCMP_ACT_TRACE without an errnoRet, as runc.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// What `features` reports, in runc's order.
pub const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];
pub const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];
pub const ARCHS: &[&str] = &[
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];
/// The spec's filter flags kiln passes to the kernel, with their bits.
const KNOWN_FLAGS: &[(&str, u32)] = &[
    ("SECCOMP_FILTER_FLAG_TSYNC", FLAG_TSYNC),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", FLAG_SPEC_ALLOW),
    ("SECCOMP_FILTER_FLAG_LOG", FLAG_LOG),
    (
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        FLAG_WAIT_KILLABLE_RECV,
    ),
];

pub fn known_flags() -> impl Iterator<Item = &'static str> {
    KNOWN_FLAGS.iter().map(|(name, _)| *name)
}

/// The known flags this kernel accepts (WAIT_KILLABLE_RECV only beside a listener).
pub fn supported_flags() -> impl Iterator<Item = &'static str> {
    KNOWN_FLAGS
        .iter()
        .filter(|(_, bit)| {
            crate::sys::seccomp_flag_known(
                *bit | if *bit == FLAG_WAIT_KILLABLE_RECV {
                    FLAG_NEW_LISTENER
                } else {
                    0
                },
            )
        })
        .map(|(name, _)| *name)
}

/// A compiled profile, ready for seccomp(2). `create` keeps it in the state directory, so that
/// every `exec` loads the container's filter without compiling it again (libseccomp takes
/// milliseconds over a profile like Podman's).
#[derive(Serialize, Deserialize)]
pub struct Filter {
    /// `struct sock_filter` instructions, as libseccomp exports them.
    program: Vec<u8>,
    flags: u32,
    /// Where the notify fd goes (listenerPath), when an action is SCMP_ACT_NOTIFY.
    listener: Option<Listener>,
}

#[derive(Serialize, Deserialize)]
pub struct Listener {
    pub path: PathBuf,
    pub metadata: String,
}

/// When a container process loads the filter. Every syscall after the load is filtered, kiln's
/// own too, so the later the better (`process::tail` lists what each moment leaves after it);
/// but without no_new_privs loading needs CAP_SYS_ADMIN, which the identity switch may drop,
/// and a notify fd must reach the listener while the parent is still there to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// Before the user and capabilities change: privileged loading (runc does the same).
    BeforeIdentity,
    /// After the identity, before Ready, so that the parent can pass the notify fd on.
    BeforeReady,
    /// Once the parent has said its last word (in init: once `start` opened the exec fifo),
    /// before the startContainer hooks, which run under the filter as runc's do, and execve.
    Last,
}

impl Filter {
    pub fn moment(&self, no_new_privs: bool, caps: Option<&LinuxCapabilities>) -> Moment {
        let keeps_sys_admin = caps
            .and_then(|c| c.effective().as_ref())
            .is_some_and(|e| e.contains(&oci_spec::runtime::Capability::SysAdmin));
        if !no_new_privs && !keeps_sys_admin {
            Moment::BeforeIdentity
        } else if self.listener.is_some() {
            Moment::BeforeReady
        } else {
            Moment::Last
        }
    }

    pub fn listener(&self) -> Option<&Listener> {
        self.listener.as_ref()
    }

    /// Installs the filter on this process. Returns the notify fd when the profile has one.
    pub fn load(&self) -> Result<Option<OwnedFd>> {
        crate::sys::seccomp_set_filter(self.flags, &self.program).ctx(|| {
            format!(
                "linux.seccomp: loading the filter (flags {:#x})",
                self.flags
            )
        })
    }
}

/// The profile's spelling of an enum (`SCMP_ACT_ERRNO`), which is also libseccomp's.
fn spec_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn action(
    a: LinuxSeccompAction,
    errno_ret: Option<u32>,
    file: &Path,
    at: &str,
) -> Result<ScmpAction> {
    let errno = errno_ret.unwrap_or(DEFAULT_ERRNO);
    let check = |e: u32| {
        u16::try_from(e).map_err(|_| {
            Error::config(
                file,
                at,
                format!("errnoRet {e} does not fit the 16 bits seccomp returns"),
            )
        })
    };
    Ok(match a {
        // The spec's KILL is the historic one: the thread.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(check(errno)? as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(check(errno)?),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    })
}

fn compare(
    arg: &oci_spec::runtime::LinuxSeccompArg,
    file: &Path,
    at: &str,
) -> Result<ScmpArgCompare> {
    if arg.index() > 5 {
        return Err(Error::config(
            file,
            format!("{at}.index"),
            format!("{} is not a syscall argument (0 to 5)", arg.index()),
        ));
    }
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // value is the mask and valueTwo the datum, as runc reads them.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return Ok(ScmpArgCompare::new(
                arg.index() as u32,
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            ));
        }
    };
    Ok(ScmpArgCompare::new(arg.index() as u32, op, arg.value()))
}

fn flags(s: &LinuxSeccomp, notify: bool) -> u32 {
    let mut bits = if notify { FLAG_NEW_LISTENER } else { 0 };
    for f in s.flags().iter().flatten() {
        bits |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            // Init is single-threaded: there are no other threads to synchronise, and the
            // kernel refuses TSYNC next to NEW_LISTENER.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync if !notify => FLAG_TSYNC,
            // Only meaningful for a listener; the kernel refuses it alone.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if notify => {
                FLAG_WAIT_KILLABLE_RECV
            }
            _ => 0,
        };
    }
    bits
}

/// Compiles `linux.seccomp` as runc does: unknown syscall names are skipped (with a debug
/// line), a rule whose action is the default is dropped, and conditions on distinct arguments
/// form one rule (all must hold) while repeated conditions on one argument form one rule each.
/// Errors name `file`, the config the profile came from.
///
/// A rule given again is added once: libseccomp takes time quadratic in the rules it is given,
/// duplicates included (100,000 names took minutes). Distinct rules are bounded by the kernel's
/// limit on a program, since each needs an instruction of its own.
pub fn compile(s: &LinuxSeccomp, file: &Path) -> Result<Filter> {
    let lib = |what: String| {
        move |e: libseccomp::error::SeccompError| Error::config(file, what.clone(), e.to_string())
    };
    let default_errno = s.default_errno_ret();
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::config(
            file,
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default: kiln's own syscalls before execve would wait for the listener",
        ));
    }
    let default = action(
        s.default_action(),
        default_errno,
        file,
        "linux.seccomp.defaultErrnoRet",
    )?;
    let mut ctx =
        ScmpFilterContext::new(default).map_err(lib("linux.seccomp.defaultAction".into()))?;
    let mut archs = Vec::new();
    for (i, arch) in s.architectures().iter().flatten().enumerate() {
        let at = format!("linux.seccomp.architectures[{i}]");
        let name = spec_name(arch);
        let arch: ScmpArch = name.parse().map_err(|_| {
            Error::config(
                file,
                &at,
                format!("{name} is not an architecture libseccomp knows"),
            )
        })?;
        ctx.add_arch(arch).map_err(lib(at))?;
        archs.push(arch);
    }
    let mut notify = false;
    // Distinct rules in their first order, each with where it was first named.
    let mut seen = HashSet::new();
    let mut rules = Vec::new();
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let at = format!("linux.seccomp.syscalls[{i}]");
        if rule.action() == s.default_action() && rule.errno_ret() == default_errno {
            crate::log::debug(|| format!("{at}: same action as the default, skipped"));
            continue;
        }
        let act = action(
            rule.action(),
            rule.errno_ret(),
            file,
            &format!("{at}.errnoRet"),
        )?;
        let conditions = rule
            .args()
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, a)| compare(a, file, &format!("{at}.args[{j}]")))
            .collect::<Result<Vec<_>>>()?;
        let mut per_index = [0u8; 6];
        rule.args()
            .iter()
            .flatten()
            .for_each(|a| per_index[a.index()] += 1);
        let groups: Vec<&[ScmpArgCompare]> = if per_index.iter().any(|&n| n > 1) {
            conditions.chunks(1).collect()
        } else {
            vec![&conditions[..]]
        };
        for (j, name) in rule.names().iter().enumerate() {
            if act == ScmpAction::Notify {
                notify = true;
                // The notify fd travels to `create` by sendmsg after the load: a notified
                // sendmsg would wait for a listener that has no fd yet.
                if name == "sendmsg" {
                    return Err(Error::config(
                        file,
                        format!("{at}.names[{j}]"),
                        "SCMP_ACT_NOTIFY cannot apply to sendmsg, which kiln needs to hand the notify fd over",
                    ));
                }
            }
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                crate::log::debug(|| {
                    format!("{at}.names[{j}]: {name:?} is unknown to this libseccomp, skipped")
                });
                continue;
            };
            for group in &groups {
                let rule = (act, nr, group.to_vec());
                if seen.insert(rule.clone()) {
                    rules.push((rule, i, j));
                }
            }
        }
    }
    if rules.len() > MAX_INSNS {
        return Err(Error::config(
            file,
            "linux.seccomp.syscalls",
            format!(
                "{} distinct rules (a syscall with its action and conditions), more than the {MAX_INSNS} instructions a seccomp program may hold (the kernel's BPF_MAXINSNS)",
                rules.len()
            ),
        ));
    }
    for ((act, nr, group), i, j) in &rules {
        ctx.add_rule_conditional(*act, *nr, group)
            .map_err(lib(format!(
                "linux.seccomp.syscalls[{i}].names[{j}] ({})",
                s.syscalls().as_deref().unwrap_or_default()[*i].names()[*j]
            )))?;
    }
    let listener = match (notify, s.listener_path()) {
        (false, _) => None,
        (true, None) => {
            return Err(Error::config(
                file,
                "linux.seccomp.listenerPath",
                "SCMP_ACT_NOTIFY is used but no listenerPath says where the notify fd goes",
            ));
        }
        (true, Some(p)) if !p.is_absolute() => {
            return Err(Error::config(
                file,
                "linux.seccomp.listenerPath",
                format!("{} is not absolute", p.display()),
            ));
        }
        (true, Some(p)) => Some(Listener {
            path: p.clone(),
            metadata: s.listener_metadata().clone().unwrap_or_default(),
        }),
    };
    let mut program = export(&ctx, file)?;
    if enosys::needed(s.default_action(), default_errno.unwrap_or(DEFAULT_ERRNO)) {
        let names: HashSet<&str> = s
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names().iter().map(String::as_str))
            .collect();
        let largest = enosys::largest(&archs, names.iter().copied());
        crate::log::debug(|| {
            format!(
                "linux.seccomp: ENOSYS above the largest syscall named, per audit arch: {largest:x?}"
            )
        });
        program = [enosys::encode(&enosys::stub(&largest)), program].concat();
    }
    // Refused here, before anything exists, rather than with a bare EINVAL by seccomp(2) in init.
    let insns = program.len() / size_of::<libc::sock_filter>();
    if insns > MAX_INSNS {
        return Err(Error::config(
            file,
            "linux.seccomp.syscalls",
            format!(
                "the compiled filter has {insns} instructions, more than the kernel's limit of {MAX_INSNS} for a seccomp program (BPF_MAXINSNS)"
            ),
        ));
    }
    Ok(Filter {
        program,
        flags: flags(s, notify),
        listener,
    })
}

/// Where `create` keeps the compiled filter, in the container's state directory.
/// The file in the state directory that keeps the filter `create` compiled, for `exec`.
pub const SAVED: &str = "seccomp.json";

impl Filter {
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let path = state_dir.join(SAVED);
        // Private like state.json: the profile is part of the container's config.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .ctx(|| format!("writing {}", path.display()))?;
        f.write_all(&serde_json::to_vec(self).expect("filter serialises"))
            .ctx(|| format!("writing {}", path.display()))
    }
}

impl Filter {
    /// The filter in a memfd, for `create` to hand to init: a program may be larger than one
    /// message of the sync channel.
    pub fn to_memfd(&self) -> Result<OwnedFd> {
        let fd = nix::sys::memfd::memfd_create(
            c"kiln-seccomp",
            nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
        )
        .ctx(|| "memfd_create for the seccomp filter")?;
        let mut file = std::fs::File::from(fd);
        // Init reads from the start: the offset is the one both processes share.
        file.write_all(&serde_json::to_vec(self).expect("filter serialises"))
            .and_then(|()| file.rewind())
            .ctx(|| "writing the seccomp filter into a memfd")?;
        Ok(file.into())
    }

    /// The filter `to_memfd` wrote, in init.
    pub fn from_fd(fd: OwnedFd) -> Result<Filter> {
        let mut data = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut data)
            .ctx(|| "reading the seccomp filter from create")?;
        serde_json::from_slice(&data)
            .map_err(|e| Error::refused("reading the seccomp filter from create", e))
    }
}

/// The version of the libseccomp linked at run time, which decides the filters.
pub fn libseccomp_version() -> Option<String> {
    libseccomp::ScmpVersion::current()
        .ok()
        .map(|v| v.to_string())
}

/// The config's filter, if it has one: a sound entry of `cache` for the same profile on the same
/// host, or compiled and kept there; errors name `file`, the config.
pub fn of(
    spec: &oci_spec::runtime::Spec,
    file: &Path,
    cache: &cache::Cache,
) -> Result<Option<Filter>> {
    let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let key = cache::Key::of(s);
    if let Some(filter) = cache.load(&key) {
        return Ok(Some(filter));
    }
    let filter = compile(s, file)?;
    cache.store(&key, &filter);
    Ok(Some(filter))
}

/// The BPF program of `ctx`, through a memfd (a pipe could fill up with a large profile).
fn export(ctx: &ScmpFilterContext, config: &Path) -> Result<Vec<u8>> {
    let fd = nix::sys::memfd::memfd_create(
        c"kiln-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .ctx(|| "memfd_create")?;
    ctx.export_bpf(&fd).map_err(|e| {
        Error::config(
            config,
            "linux.seccomp",
            format!("exporting the filter: {e}"),
        )
    })?;
    let mut file = std::fs::File::from(fd);
    let mut program = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut program))
        .ctx(|| "reading the exported seccomp filter")?;
    Ok(program)
}

/// The spec's "container process state": what the listener receives with the notify fd.
#[derive(Serialize)]
struct ProcessState<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    fds: [&'a str; 1],
    pid: i32,
    metadata: &'a str,
    state: serde_json::Value,
}

/// Hands the notify fd and the container's state to the listener at `listenerPath`, as one
/// message with the fd attached (SCM_RIGHTS).
pub fn send_to_listener(l: &Listener, fd: &OwnedFd, pid: i32, state_json: &str) -> Result<()> {
    let at = |p: &Path| format!("linux.seccomp.listenerPath: {}", p.display());
    let state: serde_json::Value = serde_json::from_str(state_json).expect("kiln's own state JSON");
    let msg = ProcessState {
        oci_version: crate::spec::OCI_VERSION,
        fds: ["seccompFd"],
        pid,
        metadata: &l.metadata,
        state,
    };
    let bytes = serde_json::to_vec(&msg).expect("state serialises");
    let sock = UnixStream::connect(&l.path).ctx(|| at(&l.path))?;
    let fds = [fd.as_raw_fd()];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &[std::io::IoSlice::new(&bytes)],
        &cmsg,
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ctx(|| at(&l.path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    fn compile(s: &LinuxSeccomp) -> Result<Filter> {
        super::compile(s, Path::new("/bundle/config.json"))
    }

    #[test]
    fn compiles_rules_and_skips_unknown_names() {
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["mkdir","no_such_syscall"],"action":"SCMP_ACT_ERRNO","errnoRet":18},
                {"names":["fchmodat"],"action":"SCMP_ACT_ERRNO","args":[{"index":2,"value":511,"op":"SCMP_CMP_EQ"}]},
                {"names":["getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
        ))
        .unwrap();
        assert!(!f.program.is_empty() && f.program.len().is_multiple_of(8));
        assert!(f.listener.is_none());
        assert_eq!(f.flags, 0);
    }

    #[test]
    fn notify_needs_a_listener_and_sets_the_flag() {
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#;
        let e = compile(&profile(json)).err().unwrap().to_string();
        assert!(e.contains("linux.seccomp.listenerPath"), "{e}");
        let mut p = profile(json);
        p.set_listener_path(Some("/run/agent.sock".into()));
        p.set_flags(Some(vec![
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
        ]));
        let f = compile(&p).unwrap();
        assert_eq!(f.flags, FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV);
        assert_eq!(f.moment(true, None), Moment::BeforeReady);
        assert_eq!(f.moment(false, None), Moment::BeforeIdentity);
    }

    #[test]
    fn a_filter_reaches_init_whole_through_its_memfd() {
        let mut p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"},{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        p.set_listener_path(Some("/run/agent.sock".into()));
        p.set_listener_metadata(Some("m".into()));
        let f = compile(&p).unwrap();
        let g = Filter::from_fd(f.to_memfd().unwrap()).unwrap();
        assert!(g.program == f.program && g.flags == f.flags);
        let l = g.listener().unwrap();
        assert_eq!(
            (l.path.as_path(), l.metadata.as_str()),
            (Path::new("/run/agent.sock"), "m")
        );
    }

    #[test]
    fn unknown_syscalls_get_enosys_from_a_refusing_profile() {
        use enosys::tests::{SECCOMP_RET_ALLOW, decode, eval};
        let x86_64 = 62 | 0xc000_0000;
        let eperm = 0x0005_0000 | libc::EPERM as u32;
        let exdev = 0x0005_0000 | libc::EXDEV as u32;
        let enosys = 0x0005_0000 | libc::ENOSYS as u32;
        let old = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[
            {"names":["read","write","rseq"],"action":"SCMP_ACT_ALLOW"},
            {"names":["chroot"],"action":"SCMP_ACT_ERRNO","errnoRet":18}]}"#;
        let p = decode(&compile(&profile(old)).unwrap().program);
        let ret = |nr| eval(&p, x86_64, nr);
        assert_eq!(ret(libc::SYS_read as u32), SECCOMP_RET_ALLOW);
        assert_eq!(ret(libc::SYS_chroot as u32), exdev);
        assert_eq!(
            ret(libc::SYS_getpriority as u32),
            eperm,
            "unlisted below the largest: the default"
        );
        assert_eq!(ret(libc::SYS_clone3 as u32), enosys);
        assert_eq!(ret(1000), enosys);
        // Listing a newer call moves the line: clone3 is then below it.
        let newer = old.replace(r#"["chroot"]"#, r#"["chroot","openat2"]"#);
        let p = decode(&compile(&profile(&newer)).unwrap().program);
        assert_eq!(eval(&p, x86_64, libc::SYS_openat2 as u32), exdev);
        assert_eq!(eval(&p, x86_64, libc::SYS_clone3 as u32), eperm);
        assert_eq!(eval(&p, x86_64, 1000), enosys);
        // An allowing default has no stub: the kernel answers ENOSYS itself.
        let allow = compile(&profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chroot"],"action":"SCMP_ACT_ERRNO"}]}"#)).unwrap();
        assert_eq!(
            eval(&decode(&allow.program), x86_64, 1000),
            SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let e = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        ));
        assert!(
            e.err()
                .unwrap()
                .to_string()
                .contains("linux.seccomp.syscalls[0].args[0].index")
        );
        let e = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#,
        ));
        assert!(
            e.err()
                .unwrap()
                .to_string()
                .contains("linux.seccomp.defaultErrnoRet")
        );
        let e = compile(&profile(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#));
        assert!(
            e.err()
                .unwrap()
                .to_string()
                .starts_with("/bundle/config.json: linux.seccomp.defaultAction: ")
        );
    }
}
