//! Which namespaces a container gets, and how: created by clone3/unshare, or joined by setns from
//! a `path`. `Plan::new` is a pure function of the spec, and every decision init and spawn act on
//! (one clone3 or setns, unshare and a second fork; which flags at each step; in which order
//! namespaces are joined) is read off the plan, so that the unit tests below pin them without
//! root. The functions after it (`open_joins`, `join`, `unshare_flags`) only carry them out.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns, unshare};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::{Context, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Namespaces to create.
    pub new: CloneFlags,
    /// Namespaces to join, the user namespace first (it decides the privileges for the rest).
    pub join: Vec<(CloneFlags, PathBuf)>,
}

/// nix 0.29 has no constant for it.
pub const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

/// The lines of a user namespace's /proc/PID/uid_map (or gid_map) for `maps`: the container's,
/// or that of an idmapped mount.
pub fn id_map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// The clone flag of a namespace type (oci-spec's discriminants are the kernel's flags).
pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(t as i32)
}

impl Plan {
    pub fn new(spec: &Spec) -> Plan {
        let mut plan = Plan {
            new: CloneFlags::empty(),
            join: vec![],
        };
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_deref())
            .unwrap_or_default();
        for ns in namespaces {
            match ns.path() {
                Some(p) => plan.join.push((flag(ns.typ()), p.clone())),
                None => plan.new |= flag(ns.typ()),
            }
        }
        plan.join
            .sort_by_key(|(f, _)| *f != CloneFlags::CLONE_NEWUSER);
        plan
    }

    pub fn has(&self, f: CloneFlags) -> bool {
        self.new.contains(f) || self.join.iter().any(|(j, _)| *j == f)
    }

    /// One clone3 creates every namespace when nothing is joined (setns must come before the new
    /// user namespace owns the rest) and no time namespace is new (its offsets must be written
    /// before any process enters it).
    pub fn single_clone(&self) -> bool {
        self.join.is_empty() && !self.new.contains(CLONE_NEWTIME)
    }

    /// The flags of the clone3 that makes the child: every new namespace on the fast path (but
    /// those made after root), none when the child must first join or set up a time namespace.
    pub fn clone_flags(&self) -> CloneFlags {
        if self.single_clone() {
            self.new - self.after_root()
        } else {
            CloneFlags::empty()
        }
    }

    /// Off the fast path, what the child unshares at once after its joins: the rest of `new`
    /// but the user namespace (unshared before, so that its id maps are written first) and
    /// those made after root.
    pub fn to_unshare(&self) -> CloneFlags {
        self.new - CloneFlags::CLONE_NEWUSER - self.after_root()
    }

    /// What init creates only once it is root in its new user namespace: the ipc namespace, whose
    /// mqueue filesystem belongs to its creator's fsuid, unmapped (nobody) inside before that.
    /// runc too unshares it after setresuid(0).
    pub fn after_root(&self) -> CloneFlags {
        if self.new.contains(CloneFlags::CLONE_NEWUSER) {
            self.new & CloneFlags::CLONE_NEWIPC
        } else {
            CloneFlags::empty()
        }
    }

    /// Joining or creating a pid or time namespace with setns/unshare only affects children: init
    /// must then be forked once more.
    pub fn needs_second_fork(&self) -> bool {
        !self.single_clone() && (self.has(CloneFlags::CLONE_NEWPID) || self.has(CLONE_NEWTIME))
    }

    /// Opens every namespace to join. Done before the first setns: after joining a mount
    /// namespace, the paths would name other files.
    pub fn open_joins(&self) -> Result<Vec<(CloneFlags, OwnedFd)>> {
        self.join
            .iter()
            .map(|(f, p)| {
                let file = std::fs::File::open(p)
                    .ctx(|| format!("linux.namespaces: opening {}", p.display()))?;
                Ok((*f, OwnedFd::from(file)))
            })
            .collect()
    }
}

/// The name of a namespace's link in /proc/PID/ns (criu's name for it too).
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Time => "time",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Cgroup => "cgroup",
    }
}

/// The namespaces of process `pid` that are not the caller's: what `exec` must join.
pub fn of_other(pid: i32) -> Result<CloneFlags> {
    use LinuxNamespaceType::*;
    let mut flags = CloneFlags::empty();
    for t in [User, Mount, Pid, Network, Ipc, Uts, Cgroup, Time] {
        let name = proc_name(t);
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
            .ctx(|| format!("reading /proc/{pid}/ns/{name}"))?;
        // A kernel without this namespace type has no link for us either: nothing to join.
        if std::fs::read_link(format!("/proc/self/ns/{name}")).is_ok_and(|ours| ours != theirs) {
            flags |= flag(t);
        }
    }
    Ok(flags)
}

pub fn join(fds: Vec<(CloneFlags, OwnedFd)>) -> Result<()> {
    for (f, fd) in fds {
        setns(&fd, f).ctx(|| format!("linux.namespaces: joining the {} namespace", name(f)))?;
    }
    Ok(())
}

pub fn unshare_flags(f: CloneFlags) -> Result<()> {
    if f.is_empty() {
        return Ok(());
    }
    unshare(f).ctx(|| format!("linux.namespaces: creating namespaces {f:?}"))
}

/// Whether kiln itself runs in a user namespace other than the initial one, whose uid_map is
/// the identity of every id.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

pub fn name(f: CloneFlags) -> &'static str {
    match f {
        CloneFlags::CLONE_NEWUSER => "user",
        CloneFlags::CLONE_NEWPID => "pid",
        CloneFlags::CLONE_NEWNET => "network",
        CloneFlags::CLONE_NEWNS => "mount",
        CloneFlags::CLONE_NEWIPC => "ipc",
        CloneFlags::CLONE_NEWUTS => "uts",
        CloneFlags::CLONE_NEWCGROUP => "cgroup",
        f if f == CLONE_NEWTIME => "time",
        _ => "unknown",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use nix::sched::CloneFlags as F;

    fn plan(namespaces: serde_json::Value) -> Plan {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": namespaces},
        }))
        .unwrap();
        Plan::new(&spec)
    }

    fn runc_spec(json: &str) -> Plan {
        Plan::new(&serde_json::from_str(json).unwrap())
    }

    fn joined(plan: &Plan) -> Vec<(&str, &str)> {
        plan.join
            .iter()
            .map(|(f, p)| (name(*f), p.to_str().unwrap()))
            .collect()
    }

    /// `runc spec`: everything new, no user namespace: one clone3 makes all of it.
    #[test]
    fn no_user_namespace() {
        let p = runc_spec(include_str!("spec/runc-spec.json"));
        let all =
            F::CLONE_NEWPID | F::CLONE_NEWNET | F::CLONE_NEWIPC | F::CLONE_NEWUTS | F::CLONE_NEWNS;
        assert_eq!(p.new, all);
        assert!(p.join.is_empty());
        assert!(p.single_clone());
        assert_eq!(p.clone_flags(), all);
        assert_eq!(p.after_root(), F::empty());
        assert!(!p.needs_second_fork());
        assert!(!p.has(F::CLONE_NEWUSER));
    }

    /// A new user namespace: still one clone3, but the ipc namespace waits until init is root
    /// in it (its mqueue mount belongs to its creator).
    #[test]
    fn new_user_namespace() {
        let p = plan(serde_json::json!([
            {"type": "user"}, {"type": "pid"}, {"type": "ipc"}, {"type": "mount"}, {"type": "network"}
        ]));
        assert!(p.single_clone());
        assert_eq!(
            p.clone_flags(),
            F::CLONE_NEWUSER | F::CLONE_NEWPID | F::CLONE_NEWNS | F::CLONE_NEWNET
        );
        assert_eq!(p.after_root(), F::CLONE_NEWIPC);
        assert!(!p.needs_second_fork());
        assert!(p.has(F::CLONE_NEWUSER));
    }

    /// `runc spec --rootless`: a new user namespace, no network namespace of its own.
    #[test]
    fn rootless() {
        let p = runc_spec(include_str!("spec/runc-spec-rootless.json"));
        assert_eq!(
            p.new,
            F::CLONE_NEWPID | F::CLONE_NEWIPC | F::CLONE_NEWUTS | F::CLONE_NEWNS | F::CLONE_NEWUSER
        );
        assert!(p.single_clone());
        assert_eq!(p.clone_flags(), p.new - F::CLONE_NEWIPC);
        assert_eq!(p.after_root(), F::CLONE_NEWIPC);
        assert!(!p.needs_second_fork());
        assert!(!p.has(F::CLONE_NEWNET));
    }

    /// Joining a user namespace: the child is cloned bare, joins it, unshares the rest in it
    /// (the ipc namespace with them: only a new user namespace holds it back), and forks again
    /// for the new pid namespace.
    #[test]
    fn joined_user_namespace() {
        let p = plan(serde_json::json!([
            {"type": "pid"}, {"type": "ipc"}, {"type": "mount"},
            {"type": "user", "path": "/proc/42/ns/user"}
        ]));
        assert_eq!(joined(&p), [("user", "/proc/42/ns/user")]);
        assert!(!p.single_clone());
        assert_eq!(p.clone_flags(), F::empty());
        assert_eq!(
            p.to_unshare(),
            F::CLONE_NEWPID | F::CLONE_NEWIPC | F::CLONE_NEWNS
        );
        assert_eq!(p.after_root(), F::empty());
        assert!(p.needs_second_fork());
        assert!(p.has(F::CLONE_NEWUSER));
    }

    /// Joining a network namespace (a pod's): joined before the new user namespace would own
    /// the child, which is unshared next; the ipc namespace still waits for root.
    #[test]
    fn joined_network_namespace() {
        let p = plan(serde_json::json!([
            {"type": "network", "path": "/run/netns/pod"}, {"type": "user"}, {"type": "ipc"},
            {"type": "uts"}
        ]));
        assert_eq!(joined(&p), [("network", "/run/netns/pod")]);
        assert_eq!(p.clone_flags(), F::empty());
        assert_eq!(p.to_unshare(), F::CLONE_NEWUTS);
        assert_eq!(p.after_root(), F::CLONE_NEWIPC);
        // No pid or time namespace: the child itself becomes init.
        assert!(!p.needs_second_fork());
        assert!(p.has(F::CLONE_NEWNET));
    }

    /// Several joined: the user namespace first whatever the spec's order (it decides what the
    /// rest may be joined with), the others in the spec's order.
    #[test]
    fn joins_start_with_the_user_namespace() {
        let p = plan(serde_json::json!([
            {"type": "network", "path": "/n"}, {"type": "pid", "path": "/p"},
            {"type": "user", "path": "/u"}, {"type": "ipc", "path": "/i"}
        ]));
        assert_eq!(
            joined(&p),
            [
                ("user", "/u"),
                ("network", "/n"),
                ("pid", "/p"),
                ("ipc", "/i")
            ]
        );
        assert_eq!(p.new, F::empty());
        // A joined pid namespace applies to children only.
        assert!(p.needs_second_fork());
    }

    /// A new time namespace needs its offsets written before any process is in it: never the
    /// fast path, and its unshare applies to children, so a second fork.
    #[test]
    fn time_namespace() {
        let p = plan(serde_json::json!([{"type": "time"}, {"type": "mount"}]));
        assert!(!p.single_clone());
        assert_eq!(p.clone_flags(), F::empty());
        assert_eq!(p.to_unshare(), CLONE_NEWTIME | F::CLONE_NEWNS);
        assert!(p.needs_second_fork());
        assert_eq!(name(CLONE_NEWTIME), "time");
    }

    /// A new cgroup namespace is made by the clone3 on the fast path (spawn drops it where the
    /// child is not born in its cgroup, and init unshares it once moved there), and unshared
    /// with the rest otherwise.
    #[test]
    fn cgroup_namespace() {
        let p = plan(serde_json::json!([{"type": "cgroup"}, {"type": "mount"}]));
        assert!(p.single_clone());
        assert_eq!(p.clone_flags(), F::CLONE_NEWCGROUP | F::CLONE_NEWNS);
        let p = plan(serde_json::json!([
            {"type": "cgroup"}, {"type": "network", "path": "/run/netns/pod"}
        ]));
        assert_eq!(p.to_unshare(), F::CLONE_NEWCGROUP);
        assert!(!p.needs_second_fork());
    }

    #[test]
    fn no_namespaces() {
        let p = plan(serde_json::json!([]));
        assert_eq!(p.new, F::empty());
        assert!(p.single_clone());
        assert_eq!(p.clone_flags(), F::empty());
        assert!(!p.needs_second_fork());
    }

    /// One id mapping, for the tests of every module that takes them.
    pub(crate) fn map(container: u32, host: u32, size: u32) -> LinuxIdMapping {
        oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(container)
            .host_id(host)
            .size(size)
            .build()
            .unwrap()
    }

    #[test]
    fn map_text_is_one_line_per_range() {
        assert_eq!(
            id_map_text(&[map(0, 100000, 1000), map(1000, 200000, 1000)]),
            "0 100000 1000\n1000 200000 1000\n"
        );
    }

    #[test]
    fn no_linux_section_is_no_namespaces() {
        let spec: Spec =
            serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2"})).unwrap();
        let p = Plan::new(&spec);
        assert_eq!((p.new, p.join.len()), (F::empty(), 0));
        let spec: Spec =
            serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2", "linux": {}}))
                .unwrap();
        assert_eq!(Plan::new(&spec), p);
    }

    #[test]
    fn has_sees_new_and_joined_namespaces() {
        let p = plan(serde_json::json!([{"type": "pid"}, {"type": "network", "path": "/n"}]));
        assert!(p.has(F::CLONE_NEWPID));
        assert!(p.has(F::CLONE_NEWNET));
        assert!(!p.has(F::CLONE_NEWNS));
        assert!(!p.has(CLONE_NEWTIME));
    }

    /// A joined pid namespace alone: the child joins it, unshares nothing, and forks init.
    #[test]
    fn joined_pid_namespace_forks_again() {
        let p = plan(serde_json::json!([{"type": "pid", "path": "/proc/9/ns/pid"}]));
        assert_eq!(joined(&p), [("pid", "/proc/9/ns/pid")]);
        assert!(!p.single_clone());
        assert_eq!(p.clone_flags(), F::empty());
        assert_eq!(p.to_unshare(), F::empty());
        assert!(p.needs_second_fork());
    }

    #[test]
    fn joined_time_namespace_forks_again() {
        let p = plan(
            serde_json::json!([{"type": "time", "path": "/proc/9/ns/time"}, {"type": "mount"}]),
        );
        assert_eq!(joined(&p), [("time", "/proc/9/ns/time")]);
        assert_eq!(p.to_unshare(), F::CLONE_NEWNS);
        assert!(p.needs_second_fork());
    }

    /// Joined namespaces without a pid or time namespace: the child itself is init.
    #[test]
    fn joined_mount_namespace_needs_no_second_fork() {
        let p = plan(serde_json::json!([{"type": "mount", "path": "/m"}, {"type": "uts"}]));
        assert!(!p.single_clone());
        assert_eq!(p.to_unshare(), F::CLONE_NEWUTS);
        assert!(!p.needs_second_fork());
    }

    /// A new pid namespace off the fast path is unshared, which applies to children only.
    #[test]
    fn new_pid_namespace_beside_a_join_forks_again() {
        let p = plan(serde_json::json!([
            {"type": "pid"}, {"type": "network"}, {"type": "mount", "path": "/m"}
        ]));
        assert_eq!(p.to_unshare(), F::CLONE_NEWPID | F::CLONE_NEWNET);
        assert!(p.needs_second_fork());
    }

    /// Joining only a user namespace: nothing to unshare, and the child is init.
    #[test]
    fn joined_user_namespace_alone() {
        let p = plan(serde_json::json!([{"type": "user", "path": "/u"}]));
        assert_eq!(p.new, F::empty());
        assert_eq!(p.to_unshare(), F::empty());
        assert_eq!(p.after_root(), F::empty());
        assert!(!p.needs_second_fork());
    }

    /// The user namespace is unshared on its own, first (its maps are written before the rest
    /// is made in it): never among the flags unshared after the joins.
    #[test]
    fn new_user_namespace_beside_a_join_is_not_unshared_with_the_rest() {
        let p = plan(serde_json::json!([
            {"type": "user"}, {"type": "pid"}, {"type": "network", "path": "/n"}
        ]));
        assert!(p.new.contains(F::CLONE_NEWUSER));
        assert_eq!(p.to_unshare(), F::CLONE_NEWPID);
        assert_eq!(p.after_root(), F::empty());
        assert!(p.needs_second_fork());
    }

    /// A new user and time namespace: time is unshared after the joins, ipc after root.
    #[test]
    fn new_user_time_and_ipc_namespaces() {
        let p = plan(serde_json::json!([{"type": "user"}, {"type": "ipc"}, {"type": "time"}]));
        assert!(!p.single_clone());
        assert_eq!(p.clone_flags(), F::empty());
        assert_eq!(p.to_unshare(), CLONE_NEWTIME);
        assert_eq!(p.after_root(), F::CLONE_NEWIPC);
        assert!(p.needs_second_fork());
    }

    /// Without a user namespace the ipc namespace is no different: made with the others.
    #[test]
    fn ipc_without_user_namespace_is_made_at_once() {
        let p = plan(serde_json::json!([{"type": "ipc"}]));
        assert_eq!(p.after_root(), F::empty());
        assert_eq!(p.clone_flags(), F::CLONE_NEWIPC);
        let p = plan(serde_json::json!([{"type": "ipc"}, {"type": "network", "path": "/n"}]));
        assert_eq!(p.to_unshare(), F::CLONE_NEWIPC);
    }

    /// A new user namespace without ipc: nothing waits for root.
    #[test]
    fn user_namespace_without_ipc_waits_for_nothing() {
        let p = plan(serde_json::json!([{"type": "user"}, {"type": "mount"}]));
        assert_eq!(p.after_root(), F::empty());
        assert_eq!(p.clone_flags(), F::CLONE_NEWUSER | F::CLONE_NEWNS);
    }

    /// Every namespace type at once, new: time keeps it off the fast path.
    #[test]
    fn every_namespace_new() {
        let p = plan(serde_json::json!([
            {"type": "user"}, {"type": "pid"}, {"type": "network"}, {"type": "mount"},
            {"type": "ipc"}, {"type": "uts"}, {"type": "cgroup"}, {"type": "time"}
        ]));
        assert!(!p.single_clone());
        assert_eq!(
            p.to_unshare(),
            F::CLONE_NEWPID
                | F::CLONE_NEWNET
                | F::CLONE_NEWNS
                | F::CLONE_NEWUTS
                | F::CLONE_NEWCGROUP
                | CLONE_NEWTIME
        );
        assert_eq!(p.after_root(), F::CLONE_NEWIPC);
        assert!(p.needs_second_fork());
    }

    #[test]
    fn flags_are_the_kernels() {
        use LinuxNamespaceType::*;
        let want = [
            (User, libc::CLONE_NEWUSER),
            (Pid, libc::CLONE_NEWPID),
            (Network, libc::CLONE_NEWNET),
            (Mount, libc::CLONE_NEWNS),
            (Ipc, libc::CLONE_NEWIPC),
            (Uts, libc::CLONE_NEWUTS),
            (Cgroup, libc::CLONE_NEWCGROUP),
            (Time, libc::CLONE_NEWTIME),
        ];
        for (t, bits) in want {
            assert_eq!(flag(t).bits(), bits, "{t:?}");
        }
    }

    #[test]
    fn names_of_each_flag() {
        use LinuxNamespaceType::*;
        let want = [
            (User, "user", "user"),
            (Pid, "pid", "pid"),
            (Network, "network", "net"),
            (Mount, "mount", "mnt"),
            (Ipc, "ipc", "ipc"),
            (Uts, "uts", "uts"),
            (Cgroup, "cgroup", "cgroup"),
            (Time, "time", "time"),
        ];
        for (t, message, proc) in want {
            assert_eq!(name(flag(t)), message);
            assert_eq!(proc_name(t), proc);
        }
        // Not one namespace.
        assert_eq!(name(F::CLONE_NEWPID | F::CLONE_NEWNET), "unknown");
        assert_eq!(name(F::empty()), "unknown");
    }

    #[test]
    fn map_text_of_no_ranges_is_empty() {
        assert_eq!(id_map_text(&[]), "");
        assert_eq!(id_map_text(&[map(0, 0, 4294967295)]), "0 0 4294967295\n");
    }

    /// The namespaces to join are opened before any is joined; a missing one names its path.
    #[test]
    fn open_joins_names_a_missing_path() {
        let p = plan(serde_json::json!([
            {"type": "network", "path": "/proc/self/ns/net"},
            {"type": "uts", "path": "/nonexistent/kiln/uts"}
        ]));
        let e = p.open_joins().unwrap_err().to_string();
        assert!(
            e.starts_with("linux.namespaces: opening /nonexistent/kiln/uts: "),
            "{e}"
        );
        let p = plan(serde_json::json!([{"type": "network", "path": "/proc/self/ns/net"}]));
        let fds = p.open_joins().unwrap();
        assert_eq!(fds.len(), 1);
        assert_eq!(fds[0].0, F::CLONE_NEWNET);
    }

    #[test]
    fn nothing_to_unshare_is_no_call() {
        assert!(unshare_flags(F::empty()).is_ok());
        assert!(join(vec![]).is_ok());
    }
}
