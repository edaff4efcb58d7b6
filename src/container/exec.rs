//! `exec`: another process in a container that runs. The process is the one `--process`
//! describes, or the container's own (config.json's) changed by exec's flags, as runc builds
//! it; then `process::exec` joins the container with it.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use crate::container::{Container, Status};
use crate::error::{Context, Error, Result};
use crate::namespaces;
use crate::process::Peer;
use crate::process::exec::ExecOptions;
use crate::process::spawn::{self, Init};
use crate::spec::Bundle;

/// exec's flags that change the container's process (runc's meanings).
#[derive(Default)]
pub struct Changes {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// `uid[:gid]`.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub tty: bool,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
}

pub enum ProcessSource {
    /// `--process FILE`: the whole process, as in config.json.
    File(PathBuf),
    Flags(Changes),
}

pub struct Options {
    pub process: ProcessSource,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// `--cgroup`: sub-cgroups of the container's for the process.
    pub sub_cgroups: Vec<String>,
    /// kiln relays the terminal itself: no console socket needed.
    pub foreground: bool,
}

pub fn exec(c: &Container, o: &Options) -> Result<Init> {
    let (status, init) = c.status_and_init();
    runnable(status, o.ignore_paused).map_err(|why| c.wrong_state(status, why))?;
    let init = init.ok_or_else(|| c.wrong_state(Status::Stopped, "its init exited"))?;
    let bundle = Bundle::load(&c.state.bundle)?;
    let (process, file, at) =
        process_of(&o.process, bundle.spec.process().as_ref(), &bundle.config)?;
    crate::process::check(
        &process,
        o.foreground,
        o.console_socket.as_deref(),
        "--tty",
        file,
        at,
    )?;
    let seccomp = c.read_json::<crate::seccomp::Filter>(crate::seccomp::SAVED)?;
    let linux = bundle.spec.linux().as_ref();
    let cgroup = crate::cgroups::from_paths(crate::cgroups::sub_paths(
        c.state.cgroup_paths.clone(),
        &o.sub_cgroups,
    )?);
    let opts = ExecOptions {
        peer: Peer {
            cgroup: cgroup.as_ref(),
            console_socket: o.console_socket.as_deref(),
            seccomp: seccomp.as_ref(),
            state: c.state.hook_state(),
            status,
            pid: c.state.pid,
            lock: c.lock_fd(),
        },
        process: &process,
        init: init.as_fd(),
        personality: linux.and_then(|l| l.personality().as_ref()),
        memory_policy: linux.and_then(|l| l.memory_policy().as_ref()),
        affinity: crate::spec::cpulist::affinity(at, &process).map_err(|e| e.in_file(file))?,
        namespaces: namespaces::of_other(c.state.pid)?,
        extra_fds: o.preserve_fds,
        join_cgroup_last: status == Status::Paused,
    };
    let spawned = spawn::spawn_exec(&opts)?;
    // Into the container's resctrl group too (runc: after the cgroup, as here).
    let placed = c
        .state
        .intel_rdt
        .as_ref()
        .map_or(Ok(()), |g| crate::cgroups::resctrl::join(g, spawned.pid))
        .and_then(|()| {
            o.pid_file.as_ref().map_or(Ok(()), |path| {
                crate::container::lifecycle::write_pid_file(path, spawned.pid)
            })
        });
    if let Err(e) = placed {
        let _ = crate::sys::pidfd_send_signal(spawned.pidfd.as_fd(), libc::SIGKILL);
        crate::signals::restore(&spawned.saved_mask);
        return Err(e);
    }
    Ok(spawned)
}

/// Whether a container in `status` takes another process; if not, why.
fn runnable(status: Status, ignore_paused: bool) -> std::result::Result<(), &'static str> {
    match status {
        Status::Running | Status::Created => Ok(()),
        Status::Paused if ignore_paused => Ok(()),
        Status::Paused => {
            Err("its processes are frozen: resume it first, or use exec --ignore-paused")
        }
        _ => Err("only a running container can run another process"),
    }
}

/// The process to run, and where it was read with its field there (for errors about it):
/// `--process`'s file, or the container's process (`base`, from `config`) changed by the flags.
fn process_of<'a>(
    source: &'a ProcessSource,
    base: Option<&Process>,
    config: &'a Path,
) -> Result<(Process, &'a Path, &'static str)> {
    let got = match source {
        ProcessSource::File(path) => {
            let bytes = std::fs::read(path).ctx(|| format!("--process {}", path.display()))?;
            let p = parse_process(path, &bytes)?;
            crate::spec::check_user("user", p.user()).map_err(|e| e.in_file(path))?;
            (p, path.as_path(), "")
        }
        ProcessSource::Flags(changes) => {
            let base = base
                .cloned()
                .ok_or_else(|| Error::config(config, "process", "missing"))?;
            (apply(base, changes)?, config, "process.")
        }
    };
    if got.0.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Usage(
            "exec needs a command to run, or --process".into(),
        ));
    }
    Ok(got)
}

/// `--process FILE`. The schema does not require `user`: a process without one runs as 0:0,
/// as runc's (Go's zero value).
fn parse_process(path: &Path, bytes: &[u8]) -> Result<Process> {
    match serde_json::from_slice(bytes) {
        Ok(serde_json::Value::Object(o)) if !o.contains_key("user") => {
            crate::spec::parse_completed_as(path, bytes, r#""user":{"uid":0,"gid":0}"#)
        }
        _ => crate::spec::parse_as(path, bytes),
    }
}

/// No capability at all, as an absent `process.capabilities` means (oci-spec's default would
/// be runc's three in every set).
fn none() -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    c.set_bounding(None)
        .set_effective(None)
        .set_permitted(None)
        .set_inheritable(None)
        .set_ambient(None);
    c
}

/// The container's process with exec's flags applied.
fn apply(mut p: Process, c: &Changes) -> Result<Process> {
    p.set_args(Some(c.args.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    for e in &c.env {
        // A variable given again replaces the container's.
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        env.retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != key);
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &c.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut user = p.user().clone();
    if let Some(spec) = &c.user {
        let bad = || Error::Usage(format!("--user {spec:?}: expected uid[:gid], numbers"));
        let (uid, gid) = match spec.split_once(':') {
            Some((u, g)) => (
                u.parse().map_err(|_| bad())?,
                Some(g.parse().map_err(|_| bad())?),
            ),
            None => (spec.parse().map_err(|_| bad())?, None),
        };
        for id in std::iter::once(uid).chain(gid) {
            crate::spec::check_id(id).map_err(|e| Error::Usage(format!("--user {spec:?}: {e}")))?;
        }
        user.set_uid(uid);
        if let Some(gid) = gid {
            user.set_gid(gid);
        }
    }
    for g in &c.additional_gids {
        crate::spec::check_id(*g).map_err(|e| Error::Usage(format!("--additional-gids: {e}")))?;
    }
    if !c.additional_gids.is_empty() {
        user.set_additional_gids(Some(c.additional_gids.clone()));
    }
    p.set_user(user);
    if !c.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_else(none);
        for name in &c.caps {
            // As JSON text, which config.json's capabilities are read from already (a Value
            // deserialiser would be instantiated for this one name).
            let quoted = serde_json::to_vec(name).expect("a string serialises");
            let cap: Capability = serde_json::from_slice(&quoted)
                .map_err(|_| Error::Usage(format!("--cap {name:?}: not a capability")))?;
            let add = |set: &Option<std::collections::HashSet<Capability>>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            // Never inheritable: a process with inheritable capabilities gains them from a
            // file's inheritable ones at execve (CVE-2022-29162). Ambient, which the kernel
            // raises only where inheritable has it, only when the config lists inheritable, as
            // runc.
            if caps.inheritable().is_some() {
                caps.set_ambient(add(caps.ambient()));
            }
        }
        p.set_capabilities(Some(caps));
    }
    p.set_terminal(Some(c.tty));
    if c.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &c.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &c.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[Capability]) -> Option<std::collections::HashSet<Capability>> {
        Some(names.iter().copied().collect())
    }

    fn with_cap(caps: Option<LinuxCapabilities>) -> LinuxCapabilities {
        let mut p = Process::default();
        p.set_capabilities(caps);
        let changes = Changes {
            args: vec!["true".into()],
            caps: vec!["CAP_NET_RAW".into()],
            ..Default::default()
        };
        apply(p, &changes).unwrap().capabilities().clone().unwrap()
    }

    #[test]
    fn cap_grows_bounding_effective_permitted_only() {
        let kill = set(&[Capability::Kill]);
        let mut c = none();
        c.set_bounding(kill.clone())
            .set_effective(kill.clone())
            .set_permitted(kill.clone())
            .set_ambient(kill.clone());
        let c = with_cap(Some(c));
        for s in [c.bounding(), c.effective(), c.permitted()] {
            assert_eq!(s, &set(&[Capability::Kill, Capability::NetRaw]));
        }
        assert_eq!((c.inheritable(), c.ambient()), (&None, &kill));
    }

    #[test]
    fn cap_goes_to_ambient_only_beside_a_configured_inheritable_set() {
        let mut c = none();
        c.set_inheritable(set(&[Capability::Chown]));
        let c = with_cap(Some(c));
        assert_eq!(c.inheritable(), &set(&[Capability::Chown]));
        assert_eq!(c.ambient(), &set(&[Capability::NetRaw]));
    }

    #[test]
    fn cap_without_configured_capabilities_is_the_only_one() {
        let c = with_cap(None);
        assert_eq!(c.effective(), &set(&[Capability::NetRaw]));
        assert_eq!((c.inheritable(), c.ambient()), (&None, &None));
    }

    #[test]
    fn process_file_without_user_is_root() {
        let p = parse_process(Path::new("p.json"), br#"{"args":["id"],"cwd":"/"}"#).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
        let e = parse_process(
            Path::new("p.json"),
            br#"{"args":["id"],"cwd":"/","terminal":"yes"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("terminal"), "{e}");
        let p = parse_process(
            Path::new("p.json"),
            br#"{"args":["id"],"cwd":"/","user":{"uid":5,"gid":6}}"#,
        )
        .unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (5, 6));
    }

    /// config.json's process of `runc spec`, as exec's flags find it.
    fn base() -> Process {
        let spec: oci_spec::runtime::Spec =
            serde_json::from_str(include_str!("../spec/runc-spec.json")).unwrap();
        spec.process().clone().unwrap()
    }

    fn changes() -> Changes {
        Changes {
            args: vec!["ps".into(), "aux".into()],
            ..Default::default()
        }
    }

    fn applied(c: Changes) -> Process {
        apply(base(), &c).unwrap()
    }

    fn usage(c: Changes) -> String {
        match apply(base(), &c).unwrap_err() {
            Error::Usage(msg) => msg,
            e => panic!("not a usage error: {e}"),
        }
    }

    /// Without flags, the container's process with the command replaced and the terminal off.
    #[test]
    fn no_flags_keep_the_containers_process() {
        let b = base();
        let p = applied(changes());
        assert_eq!(p.args(), &Some(vec!["ps".to_owned(), "aux".to_owned()]));
        assert_eq!(p.env(), b.env());
        assert_eq!(p.cwd(), b.cwd());
        assert_eq!(p.user(), b.user());
        assert_eq!(p.capabilities(), b.capabilities());
        assert_eq!(p.no_new_privileges(), b.no_new_privileges());
        assert_eq!(p.rlimits(), b.rlimits());
        assert_eq!(p.apparmor_profile(), b.apparmor_profile());
        assert_eq!(p.selinux_label(), b.selinux_label());
        // runc spec's process has a terminal; exec's has one only with -t.
        assert_eq!(b.terminal(), Some(true));
        assert_eq!(p.terminal(), Some(false));
    }

    #[test]
    fn tty_sets_the_terminal() {
        let p = applied(Changes {
            tty: true,
            ..changes()
        });
        assert_eq!(p.terminal(), Some(true));
        let mut quiet = base();
        quiet.set_terminal(None);
        let p = apply(
            quiet,
            &Changes {
                tty: true,
                ..changes()
            },
        )
        .unwrap();
        assert_eq!(p.terminal(), Some(true));
    }

    #[test]
    fn env_adds_a_variable() {
        let p = applied(Changes {
            env: vec!["A=1".into()],
            ..changes()
        });
        let env = p.env().clone().unwrap();
        assert_eq!(env.last().unwrap(), "A=1");
        assert_eq!(env.len(), base().env().as_ref().unwrap().len() + 1);
    }

    /// runc spec's environment has PATH and TERM: a new PATH replaces the old one, once.
    #[test]
    fn env_replaces_a_variable_of_the_container() {
        let p = applied(Changes {
            env: vec!["PATH=/x".into()],
            ..changes()
        });
        let env = p.env().clone().unwrap();
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
        assert_eq!(env, ["TERM=xterm", "PATH=/x"]);
    }

    /// Given twice, the last one counts.
    #[test]
    fn env_given_twice_keeps_the_last() {
        let p = applied(Changes {
            env: vec!["A=1".into(), "B=2".into(), "A=3".into()],
            ..changes()
        });
        let env = p.env().clone().unwrap();
        assert_eq!(&env[env.len() - 2..], ["B=2", "A=3"]);
    }

    /// Only the whole name matches: `PATHX` and `PAT` are other variables.
    #[test]
    fn env_matches_whole_names() {
        let p = applied(Changes {
            env: vec!["PATHX=1".into(), "PAT=2".into()],
            ..changes()
        });
        let env = p.env().clone().unwrap();
        assert_eq!(env.len(), 4);
        assert!(env.iter().any(|e| e.starts_with("PATH=/usr")));
    }

    /// A value may hold `=`; the name is what comes before the first.
    #[test]
    fn env_value_may_hold_equals() {
        let p = applied(Changes {
            env: vec!["TERM=a=b".into()],
            ..changes()
        });
        assert_eq!(p.env().clone().unwrap()[1], "TERM=a=b");
        assert!(!p.env().clone().unwrap().contains(&"TERM=xterm".to_owned()));
    }

    /// A name without a value replaces the variable of that name.
    #[test]
    fn env_name_without_value() {
        let p = applied(Changes {
            env: vec!["TERM".into()],
            ..changes()
        });
        assert_eq!(p.env().clone().unwrap()[1], "TERM");
        assert_eq!(p.env().clone().unwrap().len(), 2);
    }

    #[test]
    fn env_without_a_configured_environment() {
        let mut b = base();
        b.set_env(None);
        let p = apply(
            b.clone(),
            &Changes {
                env: vec!["A=1".into()],
                ..changes()
            },
        )
        .unwrap();
        assert_eq!(p.env(), &Some(vec!["A=1".to_owned()]));
        // No flag: an empty environment rather than none.
        assert_eq!(apply(b, &changes()).unwrap().env(), &Some(vec![]));
    }

    #[test]
    fn cwd_replaces_the_containers() {
        let p = applied(Changes {
            cwd: Some("/tmp".into()),
            ..changes()
        });
        assert_eq!(p.cwd(), Path::new("/tmp"));
    }

    fn ids(p: &Process) -> (u32, u32, Option<Vec<u32>>) {
        (
            p.user().uid(),
            p.user().gid(),
            p.user().additional_gids().clone(),
        )
    }

    fn with_user(user: &str) -> Changes {
        Changes {
            user: Some(user.into()),
            ..changes()
        }
    }

    #[test]
    fn user_uid_alone_keeps_the_gid() {
        let mut b = base();
        b.user_mut().set_gid(7);
        let p = apply(b, &with_user("1000")).unwrap();
        assert_eq!(ids(&p), (1000, 7, None));
    }

    #[test]
    fn user_uid_and_gid() {
        assert_eq!(ids(&applied(with_user("1000:100"))), (1000, 100, None));
        assert_eq!(ids(&applied(with_user("0:0"))), (0, 0, None));
    }

    #[test]
    fn user_at_the_largest_id() {
        assert_eq!(
            ids(&applied(with_user("2147483647:2147483647"))),
            (2147483647, 2147483647, None)
        );
    }

    #[test]
    fn user_not_numbers_is_refused_naming_the_flag() {
        for bad in [
            "root",
            "1000:users",
            ":100",
            "1000:",
            "",
            "1:2:3",
            "-1",
            "1 ",
            "0x10",
        ] {
            assert_eq!(
                usage(with_user(bad)),
                format!("--user {bad:?}: expected uid[:gid], numbers"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn user_above_u32_is_not_a_number() {
        assert_eq!(
            usage(with_user("4294967296")),
            r#"--user "4294967296": expected uid[:gid], numbers"#
        );
    }

    #[test]
    fn user_out_of_range_is_refused_naming_the_flag() {
        assert_eq!(
            usage(with_user("2147483648")),
            r#"--user "2147483648": 2147483648 is out of range: uids and gids must be in range 0-2147483647"#
        );
        assert_eq!(
            usage(with_user("0:4294967295")),
            r#"--user "0:4294967295": 4294967295 is out of range: uids and gids must be in range 0-2147483647"#
        );
    }

    #[test]
    fn additional_gids_replace_the_containers() {
        let mut b = base();
        b.user_mut().set_additional_gids(Some(vec![1, 2]));
        let p = apply(
            b.clone(),
            &Changes {
                additional_gids: vec![10, 20],
                ..changes()
            },
        )
        .unwrap();
        assert_eq!(p.user().additional_gids(), &Some(vec![10, 20]));
        // None given: the container's stay.
        let p = apply(b, &changes()).unwrap();
        assert_eq!(p.user().additional_gids(), &Some(vec![1, 2]));
    }

    #[test]
    fn additional_gids_with_user() {
        let p = applied(Changes {
            additional_gids: vec![5],
            ..with_user("1:2")
        });
        assert_eq!(ids(&p), (1, 2, Some(vec![5])));
    }

    #[test]
    fn additional_gids_out_of_range_are_refused_naming_the_flag() {
        assert_eq!(
            usage(Changes {
                additional_gids: vec![1, 2147483648],
                ..changes()
            }),
            "--additional-gids: 2147483648 is out of range: uids and gids must be in range 0-2147483647"
        );
    }

    #[test]
    fn cap_unknown_is_refused_naming_the_flag() {
        for bad in ["CAP_NOPE", "CAP_", "", "CAP_NET_RAW "] {
            assert_eq!(
                usage(Changes {
                    caps: vec!["CAP_KILL".into(), bad.into()],
                    ..changes()
                }),
                format!("--cap {bad:?}: not a capability"),
                "{bad:?}"
            );
        }
    }

    /// The names config.json takes (oci-spec's reading): any case, `CAP_` optional.
    #[test]
    fn cap_names_as_config_json_reads_them() {
        for name in ["CAP_NET_RAW", "NET_RAW", "cap_net_raw", "net_raw"] {
            let p = applied(Changes {
                caps: vec![name.into()],
                ..changes()
            });
            let c = p.capabilities().clone().unwrap();
            assert!(
                c.effective()
                    .as_ref()
                    .unwrap()
                    .contains(&Capability::NetRaw),
                "{name}"
            );
        }
    }

    #[test]
    fn cap_several_and_repeated() {
        let p = applied(Changes {
            caps: vec![
                "CAP_SYS_ADMIN".into(),
                "CAP_CHOWN".into(),
                "CAP_SYS_ADMIN".into(),
            ],
            ..changes()
        });
        let c = p.capabilities().clone().unwrap();
        for cap in [Capability::SysAdmin, Capability::Chown] {
            assert!(c.bounding().as_ref().unwrap().contains(&cap));
            assert!(c.effective().as_ref().unwrap().contains(&cap));
            assert!(c.permitted().as_ref().unwrap().contains(&cap));
        }
        // runc spec's three (AUDIT_WRITE, KILL, NET_BIND_SERVICE), plus two.
        assert_eq!(c.bounding().as_ref().unwrap().len(), 5);
        // runc spec lists no inheritable set: nothing ambient.
        assert_eq!(
            c.ambient(),
            base().capabilities().as_ref().unwrap().ambient()
        );
    }

    #[test]
    fn cap_already_there_changes_nothing() {
        let p = applied(Changes {
            caps: vec!["CAP_KILL".into()],
            ..changes()
        });
        assert_eq!(p.capabilities(), base().capabilities());
    }

    #[test]
    fn no_new_privs_sets_it() {
        let mut b = base();
        b.set_no_new_privileges(None);
        let p = apply(
            b.clone(),
            &Changes {
                no_new_privs: true,
                ..changes()
            },
        )
        .unwrap();
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(apply(b, &changes()).unwrap().no_new_privileges(), None);
    }

    /// Without the flag, the container's setting stays: exec cannot turn it off.
    #[test]
    fn no_new_privs_cannot_be_cleared() {
        let mut b = base();
        b.set_no_new_privileges(Some(true));
        assert_eq!(
            apply(b, &changes()).unwrap().no_new_privileges(),
            Some(true)
        );
    }

    #[test]
    fn apparmor_replaces_the_profile() {
        let mut b = base();
        b.set_apparmor_profile(Some("old".into()));
        let p = apply(
            b.clone(),
            &Changes {
                apparmor: Some("kiln-test".into()),
                ..changes()
            },
        )
        .unwrap();
        assert_eq!(p.apparmor_profile(), &Some("kiln-test".to_owned()));
        assert_eq!(
            apply(b, &changes()).unwrap().apparmor_profile(),
            &Some("old".to_owned())
        );
    }

    #[test]
    fn process_label_replaces_the_label() {
        let mut b = base();
        b.set_selinux_label(Some("system_u:system_r:old_t:s0".into()));
        let label = "system_u:system_r:container_t:s0:c1,c2";
        let p = apply(
            b.clone(),
            &Changes {
                process_label: Some(label.into()),
                ..changes()
            },
        )
        .unwrap();
        assert_eq!(p.selinux_label(), &Some(label.to_owned()));
        assert_eq!(
            apply(b, &changes()).unwrap().selinux_label(),
            &Some("system_u:system_r:old_t:s0".to_owned())
        );
    }

    /// Every flag at once: each lands in its own field, none disturbs another.
    #[test]
    fn every_flag_at_once() {
        let p = applied(Changes {
            args: vec!["sh".into()],
            env: vec!["X=1".into()],
            cwd: Some("/work".into()),
            user: Some("10:20".into()),
            additional_gids: vec![30],
            caps: vec!["CAP_NET_RAW".into()],
            tty: true,
            no_new_privs: true,
            apparmor: Some("a".into()),
            process_label: Some("l".into()),
        });
        assert_eq!(p.args(), &Some(vec!["sh".to_owned()]));
        assert!(p.env().as_ref().unwrap().contains(&"X=1".to_owned()));
        assert_eq!(p.cwd(), Path::new("/work"));
        assert_eq!(ids(&p), (10, 20, Some(vec![30])));
        assert!(
            p.capabilities()
                .as_ref()
                .unwrap()
                .effective()
                .as_ref()
                .unwrap()
                .contains(&Capability::NetRaw)
        );
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(p.apparmor_profile(), &Some("a".to_owned()));
        assert_eq!(p.selinux_label(), &Some("l".to_owned()));
    }

    // ---------------------------------------------------------------- where the process comes from

    /// A scratch file holding `text`, for `--process`.
    fn process_file(test: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("kiln-exec-{test}-{}.json", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_change_the_configs_process() {
        let source = ProcessSource::Flags(changes());
        let b = base();
        let config = Path::new("/b/config.json");
        let (p, file, at) = process_of(&source, Some(&b), config).unwrap();
        assert_eq!(p.args(), &Some(vec!["ps".to_owned(), "aux".to_owned()]));
        assert_eq!((file, at), (config, "process."));
    }

    #[test]
    fn flags_without_a_process_in_the_config_name_it() {
        let source = ProcessSource::Flags(changes());
        let e = process_of(&source, None, Path::new("/b/config.json")).unwrap_err();
        assert_eq!(e.to_string(), "/b/config.json: process: missing");
    }

    #[test]
    fn flags_without_a_command_are_refused() {
        let source = ProcessSource::Flags(Changes::default());
        let e = process_of(&source, Some(&base()), Path::new("/c")).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        assert_eq!(e.to_string(), "exec needs a command to run, or --process");
    }

    #[test]
    fn flag_errors_come_before_the_missing_command() {
        let source = ProcessSource::Flags(Changes {
            user: Some("x".into()),
            ..Default::default()
        });
        let e = process_of(&source, Some(&base()), Path::new("/c")).unwrap_err();
        assert_eq!(e.to_string(), r#"--user "x": expected uid[:gid], numbers"#);
    }

    /// `--process` replaces the container's process whole: nothing of config.json's is kept.
    #[test]
    fn process_file_is_the_whole_process() {
        let path = process_file(
            "whole",
            r#"{"args":["id","-u"],"cwd":"/tmp","env":["A=1"],"user":{"uid":3,"gid":4}}"#,
        );
        let source = ProcessSource::File(path.clone());
        let (p, file, at) = process_of(&source, Some(&base()), Path::new("/c")).unwrap();
        assert_eq!(p.args(), &Some(vec!["id".to_owned(), "-u".to_owned()]));
        assert_eq!(p.env(), &Some(vec!["A=1".to_owned()]));
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (3, 4));
        assert_eq!(p.capabilities(), &None);
        assert_eq!(p.terminal(), None);
        assert_eq!((file, at), (path.as_path(), ""));
        std::fs::remove_file(path).unwrap();
    }

    /// The config's process is not needed with `--process`.
    #[test]
    fn process_file_without_a_config_process() {
        let path = process_file("no-config", r#"{"args":["true"],"cwd":"/"}"#);
        let source = ProcessSource::File(path.clone());
        assert!(process_of(&source, None, Path::new("/c")).is_ok());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn process_file_missing_names_the_flag_and_file() {
        let source = ProcessSource::File("/nonexistent/kiln/p.json".into());
        let e = process_of(&source, Some(&base()), Path::new("/c")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--process /nonexistent/kiln/p.json: No such file"),
            "{e}"
        );
    }

    #[test]
    fn process_file_user_out_of_range_names_file_and_field() {
        let path = process_file(
            "uid",
            r#"{"args":["id"],"cwd":"/","user":{"uid":0,"gid":0,"additionalGids":[4294967295]}}"#,
        );
        let source = ProcessSource::File(path.clone());
        let e = process_of(&source, Some(&base()), Path::new("/c")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: user.additionalGids[0]: 4294967295 is out of range: uids and gids must be in range 0-2147483647",
                path.display()
            )
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn process_file_without_args_is_refused() {
        for text in [r#"{"cwd":"/"}"#, r#"{"cwd":"/","args":[]}"#] {
            let path = process_file("no-args", text);
            let source = ProcessSource::File(path.clone());
            let e = process_of(&source, Some(&base()), Path::new("/c")).unwrap_err();
            assert_eq!(
                e.to_string(),
                "exec needs a command to run, or --process",
                "{text}"
            );
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn process_file_not_json_names_the_file() {
        for text in ["", "not json", "[1]", "{\"args\":", "null"] {
            let e = parse_process(Path::new("/p.json"), text.as_bytes()).unwrap_err();
            assert!(e.to_string().starts_with("/p.json"), "{text:?}: {e}");
        }
    }

    /// A field's error names it, and its line and column in the caller's text (the `user`
    /// kiln adds does not shift them).
    #[test]
    fn process_file_field_errors_name_the_field() {
        let e =
            parse_process(Path::new("/p.json"), b"{\"args\":[\"id\"],\n\"cwd\":5}").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/p.json: cwd"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        let e = parse_process(
            Path::new("/p.json"),
            br#"{"args":["id"],"cwd":"/","user":{"uid":"x","gid":0}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("/p.json: user.uid"), "{e}");
    }

    #[test]
    fn process_file_empty_object_gets_root() {
        let e = parse_process(Path::new("/p.json"), b"{}").unwrap_err();
        // The user is added; what is still missing is named.
        assert!(!e.to_string().contains("user"), "{e}");
    }

    // ---------------------------------------------------------------- status

    #[test]
    fn running_and_created_containers_take_a_process() {
        for s in [Status::Running, Status::Created] {
            assert_eq!(runnable(s, false), Ok(()));
            assert_eq!(runnable(s, true), Ok(()));
        }
    }

    #[test]
    fn a_paused_container_needs_ignore_paused() {
        assert_eq!(
            runnable(Status::Paused, false),
            Err("its processes are frozen: resume it first, or use exec --ignore-paused")
        );
        assert_eq!(runnable(Status::Paused, true), Ok(()));
    }

    #[test]
    fn other_states_take_no_process() {
        for s in [Status::Stopped, Status::Creating, Status::Unknown] {
            for ignore in [false, true] {
                assert_eq!(
                    runnable(s, ignore),
                    Err("only a running container can run another process"),
                    "{s}"
                );
            }
        }
    }
}
