//! What building the rootfs means as plain data: which mounts, in what order, with which flags,
//! what is created where and what is refused. Pure planning, as `cgroups::resources`: the
//! functions here read the spec and the host facts the caller passes in (never the filesystem),
//! and `rootfs` executes their plans. Every path inside the rootfs stays a path of the config
//! here: the executor resolves it at act time, through `resolve` (openat2 RESOLVE_IN_ROOT), so
//! that no symlink in the bundle is followed between the plan and the act.
//!
//! The phases, in the order init runs them: `root` (propagation and the rootfs bind), `entry`
//! for each of `mounts` (planned just before it is made, since the facts about a source can
//! change with the mounts before it), `dev`, `enter`, `finalize`.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, LinuxNamespaceType, Mount, Spec};

use crate::cgroups::Hierarchy;
use crate::error::{Error, Result};
use crate::spec::lexically_clean;
use crate::spec::mount_options::MountOptions;

/// Whether the container has a mount namespace of its own (new or joined). Without one (the
/// spec: a namespace not listed is the runtime's), the mounts are made in the host's and the
/// root is entered by chroot, as runc does; nothing of the host's own mounts is changed.
pub fn has_mount_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Mount)
}

/// `linux.rootfsPropagation` as mount flags; None when unset.
pub fn root_propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        None | Some("") => Ok(None),
        Some(p) => match MountOptions::parse(&[p])
            .ok()
            .and_then(|o| o.propagation.first().copied())
        {
            Some(flag) => Ok(Some(flag)),
            None => Err(Error::refused(
                "linux.rootfsPropagation",
                format!("{p:?} is not a propagation mode"),
            )),
        },
    }
}

/// Before the entries, with a mount namespace of the container's (runc's prepareRoot, in its
/// order): the propagation of `/`, then of the mount holding the rootfs, then the rootfs bound
/// onto itself.
#[derive(Debug, PartialEq)]
pub struct Root {
    /// Given to the namespace's `/`, recursively by default: nothing the container mounts may
    /// propagate back to the host, so slave unless the config says otherwise.
    pub root: MsFlags,
    /// Given to the mount holding the rootfs (or the nearest mount above it): it must not be
    /// shared, since pivot_root refuses a shared parent and the rootfs bind would propagate to
    /// the host; and it is set before that bind, which a shared or unbindable parent would
    /// refuse.
    pub parent: MsFlags,
}

/// None without a mount namespace of the container's: nothing of the host's may change.
pub fn root(spec: &Spec) -> Result<Option<Root>> {
    if !has_mount_namespace(spec) {
        return Ok(None);
    }
    let propagation = root_propagation(spec)?;
    let parent = if propagation.is_some_and(|p| p.contains(MsFlags::MS_SLAVE)) {
        MsFlags::MS_SLAVE
    } else {
        MsFlags::MS_PRIVATE
    };
    Ok(Some(Root {
        root: propagation.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        parent,
    }))
}

/// What the executor found about one entry's bind source just before planning it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Source {
    /// The detached tree `create` made for this entry (see `idmapped::Trees`), if any.
    pub tree: Option<Tree>,
    /// The source as init sees it (stat): None where it cannot be reached or does not exist.
    pub kind: Option<Kind>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tree {
    pub idmapped: bool,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// Anything that is not a directory: a mount point for it must be a file.
    File,
}

/// One entry of `mounts`, in the order its parts are made.
#[derive(Debug, PartialEq)]
pub struct Entry {
    /// procfs and sysfs go on a directory, never through a symlink to elsewhere (runc's rule):
    /// a destination that exists as anything else is refused before anything is created.
    pub require_directory: bool,
    /// A tmpfs takes the mode of the directory it covers (Podman's --read-only /run stays 0755
    /// instead of tmpfs's 1777): read before the mount point is made, applied after the mount.
    pub keep_mode: bool,
    /// What the destination is created as: a bind of a file needs a file to mount onto.
    pub mount_point: Kind,
    /// The destination, once created and resolved in the root, is checked against what may go
    /// over /proc (`proc_verdict`), with the source's filesystem; not for procfs and sysfs,
    /// which the kernel itself keeps from covering anything but a directory.
    pub check_proc: Option<Option<PathBuf>>,
    pub action: Action,
    /// What is done to the new mount, reopened by its destination (the fd of the mount point,
    /// taken before, names the directory under it). Empty: the action finishes the entry, and
    /// nothing is reopened.
    pub after: Vec<After>,
}

#[derive(Debug, PartialEq)]
pub enum Action {
    /// The `cgroup` type (`cgroup` below), which restricts its own mounts.
    Cgroup { flags: MsFlags },
    /// A tmpfs holding a copy of what its destination held (runc's `tmpcopyup`).
    Tmpcopyup(Tmpcopyup),
    /// Attaches the detached tree `create` made (move_mount).
    Attach { source: PathBuf },
    /// mount(2) ignores every flag but MS_REC on a new bind: the rest comes in `After::Remount`.
    Bind { source: PathBuf, flags: MsFlags },
    Mount {
        source: PathBuf,
        fstype: String,
        flags: MsFlags,
        data: Option<String>,
    },
    /// Refused after the mount point is made, where runc refuses it.
    Refuse { why: String },
}

/// A tmpfs made detached (fsopen, fsmount), filled and only then attached: no host path ever
/// holds it, so concurrent creates cannot meet.
#[derive(Debug, PartialEq)]
pub struct Tmpcopyup {
    /// The mount's source as mount(2) would record it: /proc/mounts shows it (Podman's --tmpfs
    /// is `tmpfs`), where fsmount alone says "none".
    pub source: Option<String>,
    /// fsconfig's (key, value) pairs, in order: the data, then the superblock flags.
    pub options: Vec<(String, Option<String>)>,
    /// fsmount's `MOUNT_ATTR_*`.
    pub attrs: u64,
}

#[derive(Debug, PartialEq)]
pub enum After {
    /// A bind remount with `flags` plus the flags locked on the mount at act time, less those
    /// the options clear (`clear`).
    Remount { flags: MsFlags, clear: MsFlags },
    /// The mode `keep_mode` read, if the directory existed.
    RestoreMode,
    /// One propagation change: mount(2) cannot set it in the same call as the mount.
    Propagate(MsFlags),
    /// Recursive attributes (mount_setattr over the whole tree).
    SetAttr { set: u64, clr: u64 },
}

/// The plan of entry `m`, a relative bind source being relative to `bundle`. Err: options that
/// do not parse, refused before anything of this entry is made.
pub fn entry(m: &Mount, bundle: &Path, facts: Source) -> std::result::Result<Entry, String> {
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = is_bind(&opts, typ);
    let source = source(m, bind, bundle);
    // A plain bind's tree stands in only for a source that init, as the user namespace's root,
    // cannot reach: a bind made here keeps the flags the kernel locks on the source's mount
    // (runc asks its parent for the source under the same condition).
    let tree = facts
        .tree
        .filter(|t| t.idmapped || (source.is_some() && facts.kind.is_none()));
    let flags = if deferred(&opts, typ, m.destination()) {
        opts.flags - MsFlags::MS_RDONLY
    } else {
        opts.flags
    };
    let pseudo = matches!(typ, "proc" | "sysfs");
    // runc 1.1 keeps the covered mode even over an explicit mode=; here mode= wins, as the
    // config asked for it.
    let keep_mode = typ == "tmpfs" && !opts.data.iter().any(|d| d.starts_with("mode="));
    let file = bind
        && match tree {
            Some(t) => t.kind == Kind::File,
            None => source.is_some() && facts.kind == Some(Kind::File),
        };
    let action = if typ == "cgroup" {
        Action::Cgroup { flags: opts.flags }
    } else if opts.tmpcopyup && typ == "tmpfs" {
        Action::Tmpcopyup(tmpcopyup(source.as_deref(), &opts, flags))
    } else if tree.is_some() {
        Action::Attach {
            source: source.clone().unwrap_or_default(),
        }
    } else if bind {
        match &source {
            Some(s) => Action::Bind {
                source: s.clone(),
                flags: MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC),
            },
            None => Action::Refuse {
                why: "a bind mount needs a source".into(),
            },
        }
    } else {
        let data = opts.data.join(",");
        Action::Mount {
            source: source.clone().unwrap_or_else(|| typ.into()),
            fstype: typ.to_owned(),
            flags,
            data: (!data.is_empty()).then_some(data),
        }
    };
    // A cgroup mount is finished by `cgroupfs::mount_cgroups`, which restricts its own.
    let after = if typ == "cgroup" {
        vec![]
    } else {
        let mut after = vec![];
        let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if bind && !extra.is_empty() {
            after.push(After::Remount {
                flags: extra,
                clear: opts.clear,
            });
        }
        if keep_mode {
            after.push(After::RestoreMode);
        }
        after.extend(opts.propagation.iter().map(|&p| After::Propagate(p)));
        if opts.attr_set != 0 || opts.attr_clr != 0 {
            after.push(After::SetAttr {
                set: opts.attr_set,
                clr: opts.attr_clr,
            });
        }
        after
    };
    Ok(Entry {
        require_directory: pseudo,
        keep_mode,
        mount_point: if file { Kind::File } else { Kind::Dir },
        check_proc: (!pseudo).then_some(source),
        action,
        after,
    })
}

fn is_bind(opts: &MountOptions, typ: &str) -> bool {
    opts.is_bind() || typ == "bind"
}

/// A bind's source is relative to the bundle; any other source is given to mount(2) as it is.
fn source(m: &Mount, bind: bool, bundle: &Path) -> Option<PathBuf> {
    m.source().as_ref().map(|s| {
        if bind && s.is_relative() {
            bundle.join(s)
        } else {
            s.clone()
        }
    })
}

/// The source of `m` where it is a bind mount: what `Source` tells about.
pub fn bind_source(m: &Mount, bundle: &Path) -> Option<PathBuf> {
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default()).ok()?;
    let bind = is_bind(&opts, m.typ().as_deref().unwrap_or(""));
    source(m, bind, bundle).filter(|_| bind)
}

/// Whether `m` is mounted writable and made read-only only by `finalize`: a read-only tmpfs or
/// /dev, where mount points, device nodes and modes are still to be made (runc does the same).
pub fn readonly_deferred(m: &Mount) -> bool {
    MountOptions::parse(m.options().as_deref().unwrap_or_default())
        .is_ok_and(|o| deferred(&o, m.typ().as_deref().unwrap_or(""), m.destination()))
}

fn deferred(opts: &MountOptions, typ: &str, destination: &Path) -> bool {
    opts.flags.contains(MsFlags::MS_RDONLY)
        && !is_bind(opts, typ)
        && (typ == "tmpfs" || lexically_clean(destination) == Path::new("/dev"))
}

fn tmpcopyup(source: Option<&Path>, opts: &MountOptions, flags: MsFlags) -> Tmpcopyup {
    let mut options: Vec<(String, Option<String>)> = vec![];
    for d in &opts.data {
        options.push(match d.split_once('=') {
            Some((k, v)) => (k.into(), Some(v.into())),
            None => (d.clone(), None),
        });
    }
    for &(flag, name) in SUPERBLOCK_FLAGS {
        if flags.contains(flag) {
            options.push((name.into(), None));
        }
    }
    Tmpcopyup {
        source: source.and_then(Path::to_str).map(str::to_owned),
        options,
        attrs: mount_attrs(flags),
    }
}

/// The flags of mount(8) that belong to the superblock, by their fsconfig names.
const SUPERBLOCK_FLAGS: &[(MsFlags, &str)] = &[
    (MsFlags::MS_SYNCHRONOUS, "sync"),
    (MsFlags::MS_DIRSYNC, "dirsync"),
    (MsFlags::MS_LAZYTIME, "lazytime"),
    (MsFlags::MS_MANDLOCK, "mand"),
];

/// The per-mount flags of `flags` as fsmount's `MOUNT_ATTR_*`.
fn mount_attrs(flags: MsFlags) -> u64 {
    let table = [
        (MsFlags::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, libc::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NOATIME, libc::MOUNT_ATTR_NOATIME),
        (MsFlags::MS_STRICTATIME, libc::MOUNT_ATTR_STRICTATIME),
        (MsFlags::MS_NODIRATIME, libc::MOUNT_ATTR_NODIRATIME),
        (
            MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
            libc::MOUNT_ATTR_NOSYMFOLLOW,
        ),
    ];
    table
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .fold(0, |acc, (_, a)| acc | a)
}

/// What runc lets a mount cover inside /proc: the files lxcfs emulates.
pub const PROC_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// runc's checkProcMount, on the destination as resolved in the root: only procfs over /proc,
/// and inside it only the files of PROC_ALLOWED. Anything else could hide /proc/sys from
/// readonlyPaths or catch the writes init makes there (CVE-2019-16884, CVE-2019-19921).
/// `source_is_procfs` is asked only for /proc itself (a statfs of the source, at act time).
pub fn proc_verdict(
    dest: &Path,
    source: Option<&Path>,
    source_is_procfs: impl FnOnce() -> bool,
) -> std::result::Result<(), String> {
    let Ok(inside) = dest.strip_prefix("/proc") else {
        return Ok(());
    };
    if inside.as_os_str().is_empty() {
        return if source.is_some() && source_is_procfs() {
            Ok(())
        } else {
            Err(format!(
                "only procfs may be mounted over /proc, and {} is not procfs",
                source.unwrap_or(Path::new("")).display()
            ))
        };
    }
    if PROC_ALLOWED.iter().any(|a| Path::new(a) == dest) {
        return Ok(());
    }
    Err(format!(
        "{} is inside /proc, where only {} may be mounted over",
        dest.display(),
        PROC_ALLOWED.join(", ")
    ))
}

/// A `cgroup` mount: the hierarchies as the host lays them out (pure v2, or v1 controllers plus
/// a `unified` v2 on a hybrid host), each showing only the container's own subtree.
#[derive(Debug, PartialEq)]
pub enum Cgroup {
    /// Pure v2: the one hierarchy, on the destination itself.
    Unified(CgroupMount),
    /// v1 or hybrid: a tmpfs (mode 755, writable until its directories are made) holding one
    /// directory per hierarchy, as /sys/fs/cgroup on the host.
    Tmpfs {
        flags: MsFlags,
        hierarchies: Vec<Sub>,
        /// The remount's flags, where the tmpfs is read-only: made so once its directories and
        /// aliases are made.
        remount: Option<MsFlags>,
    },
}

/// One hierarchy's directory under the tmpfs.
#[derive(Debug, PartialEq)]
pub struct Sub {
    pub name: String,
    pub mount: CgroupMount,
    /// `cpu,cpuacct` is also reachable as `cpu` and `cpuacct` (symlinks), as on the host.
    pub aliases: Vec<String>,
}

/// One hierarchy mounted for the container.
#[derive(Debug, PartialEq)]
pub struct CgroupMount {
    /// With a cgroup namespace, a fresh mount (fstype, data), which the kernel shows rooted at
    /// the container's cgroup; then nothing else is done, unless it is refused and there is
    /// a `fallback`.
    pub fresh: Option<(&'static str, Option<String>)>,
    /// The fresh mount's flags, all of the entry's.
    pub flags: MsFlags,
    /// A user namespace can be refused a fresh cgroup2 even with a cgroup namespace of its own
    /// (EBUSY, EPERM): the container's cgroup directory, bound, shows the same subtree (runc's
    /// mountCgroupV2).
    pub fallback: Option<PathBuf>,
    /// Without a cgroup namespace: the process's own cgroup, bound from the host's hierarchy.
    pub bind: PathBuf,
    /// The flags a bind takes from its remount (read-only, nosuid, nodev, noexec).
    pub restrict: MsFlags,
}

/// `all`: the host's hierarchies as this process reaches them; `cgroup2`: the container's cgroup
/// v2 directory on the host.
pub fn cgroup(all: &[Hierarchy], flags: MsFlags, cgroupns: bool, cgroup2: Option<&Path>) -> Cgroup {
    let one = |h: &Hierarchy| CgroupMount {
        fresh: cgroupns.then(|| {
            if h.is_v2() {
                ("cgroup2", None)
            } else {
                ("cgroup", Some(h.controllers.clone()))
            }
        }),
        flags,
        fallback: cgroup2
            .filter(|_| cgroupns && h.is_v2())
            .map(Path::to_path_buf),
        bind: h.mount_point.join(h.own.trim_start_matches('/')),
        restrict: flags
            & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY),
    };
    if let [h] = all
        && h.is_v2()
    {
        return Cgroup::Unified(one(h));
    }
    let hierarchies = all
        .iter()
        .filter(|h| h.mount_point.parent() == Some(Path::new("/sys/fs/cgroup")))
        .filter_map(|h| {
            let name = h.mount_point.file_name()?.to_string_lossy().into_owned();
            let aliases = if name.contains(',') {
                name.split(',').map(str::to_owned).collect()
            } else {
                vec![]
            };
            Some(Sub {
                name,
                mount: one(h),
                aliases,
            })
        })
        .collect();
    Cgroup::Tmpfs {
        flags: flags - MsFlags::MS_RDONLY,
        hierarchies,
        remount: flags
            .contains(MsFlags::MS_RDONLY)
            .then_some(MsFlags::MS_REMOUNT | flags),
    }
}

/// The nodes runc gives every container: (path, major, minor).
pub const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The container's /dev: nodes first, then the symlinks into /proc, then (always, replacing
/// any node there) /dev/ptmx into the container's own devpts.
#[derive(Debug, PartialEq)]
pub struct Dev {
    pub nodes: Vec<Node>,
    /// (target, name in /dev): a name the rootfs already has is left as it is.
    pub links: Vec<(&'static str, &'static str)>,
}

#[derive(Debug, PartialEq)]
pub struct Node {
    pub path: PathBuf,
    pub kind: NodeKind,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Inside a user namespace mknod is not allowed: a bind of the host's node onto a file
    /// instead (a FIFO needs no privilege and is made). Otherwise a node the rootfs has (or a
    /// default the config redefines) is replaced.
    pub bind_host: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Char,
    Block,
    Fifo,
}

/// None where /dev is bind-mounted from the host, which already has its nodes. `kcore`: whether
/// the host has /proc/kcore, which /dev/core points to.
pub fn dev(spec: &Spec, in_userns: bool, kcore: bool) -> Option<Dev> {
    let dev_is_bind = spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("bind"));
    if dev_is_bind {
        return None;
    }
    let devices: &[LinuxDevice] = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    let defaults = DEFAULT_DEVICES
        .iter()
        .filter(|(p, ..)| !devices.iter().any(|d| d.path() == Path::new(p)))
        .map(|&(path, major, minor)| Node {
            path: path.into(),
            kind: NodeKind::Char,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
            bind_host: in_userns,
        });
    let configured = devices.iter().map(|d| {
        let kind = match d.typ() {
            LinuxDeviceType::B => NodeKind::Block,
            LinuxDeviceType::P => NodeKind::Fifo,
            _ => NodeKind::Char,
        };
        Node {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
            bind_host: in_userns && kind != NodeKind::Fifo,
        }
    });
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if kcore {
        links.push(("/proc/kcore", "core"));
    }
    Some(Dev {
        nodes: defaults.chain(configured).collect(),
        links,
    })
}

/// How the rootfs becomes `/`.
#[derive(Debug, PartialEq)]
pub struct Enter {
    pub how: How,
    /// A `rootfsPropagation` other than private or slave, given to the new `/` only now:
    /// before, it would have reached the host's root mount.
    pub propagation: Option<MsFlags>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum How {
    /// Without a mount namespace of the container's: a chroot only.
    Chroot,
    /// `--no-pivot`, for roots pivot_root cannot leave (a ramfs): the host's whole procfs and
    /// sysfs mounts detached first, then the rootfs moved onto `/` and chrooted into.
    MoveAndChroot,
    /// pivot_root(".", "."), the old root made a slave and detached.
    Pivot,
}

pub fn enter(spec: &Spec, no_pivot: bool) -> Result<Enter> {
    if !has_mount_namespace(spec) {
        return Ok(Enter {
            how: How::Chroot,
            propagation: None,
        });
    }
    Ok(Enter {
        how: if no_pivot {
            How::MoveAndChroot
        } else {
            How::Pivot
        },
        propagation: root_propagation(spec)?
            .filter(|p| !p.intersects(MsFlags::MS_PRIVATE | MsFlags::MS_SLAVE)),
    })
}

/// After pivot_root, in this order: each part waits for what the one before may still write.
#[derive(Debug, PartialEq)]
pub struct Finalize {
    /// (index, destination) of the entries `readonly_deferred`, in the config's order: their
    /// mount points, nodes and modes are made by now.
    pub remount_readonly: Vec<(usize, PathBuf)>,
    /// `linux.readonlyPaths`, each bound read-only (`readonly`).
    pub readonly: Vec<String>,
    /// `linux.maskedPaths`: a directory covered by a read-only tmpfs, anything else by
    /// /dev/null; after the read-only paths, so that a path in both ends up masked.
    pub masked: Vec<String>,
    /// `root.readonly`: last, since everything before writes under `/`.
    pub readonly_root: bool,
}

pub fn finalize(spec: &Spec) -> Finalize {
    let linux = spec.linux().as_ref();
    Finalize {
        remount_readonly: spec
            .mounts()
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, m)| readonly_deferred(m))
            .map(|(i, m)| (i, m.destination().clone()))
            .collect(),
        readonly: linux
            .and_then(|l| l.readonly_paths().clone())
            .unwrap_or_default(),
        masked: linux
            .and_then(|l| l.masked_paths().clone())
            .unwrap_or_default(),
        readonly_root: spec
            .root()
            .as_ref()
            .is_some_and(|r| r.readonly().unwrap_or(false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str = "/b";
    const NONE: Source = Source {
        tree: None,
        kind: None,
    };
    const DIR: Source = Source {
        tree: None,
        kind: Some(Kind::Dir),
    };
    const FILE: Source = Source {
        tree: None,
        kind: Some(Kind::File),
    };

    fn mnt(dest: &str, typ: &str, source: Option<&str>, opts: &[&str]) -> Mount {
        let mut m = serde_json::json!({"destination": dest, "type": typ, "options": opts});
        if let Some(s) = source {
            m["source"] = s.into();
        }
        serde_json::from_value(m).unwrap()
    }

    fn plan(dest: &str, typ: &str, source: Option<&str>, opts: &[&str], facts: Source) -> Entry {
        entry(&mnt(dest, typ, source, opts), Path::new(BUNDLE), facts).unwrap()
    }

    fn bind(source: &str, opts: &[&str], facts: Source) -> Entry {
        plan("/mnt", "bind", Some(source), opts, facts)
    }

    fn spec(extra: serde_json::Value) -> Spec {
        let mut s = serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        serde_json::from_value(s).unwrap()
    }

    fn with_mntns(linux: serde_json::Value) -> Spec {
        let mut l = serde_json::json!({"namespaces": [{"type": "mount"}]});
        for (k, v) in linux.as_object().unwrap() {
            l[k] = v.clone();
        }
        spec(serde_json::json!({ "linux": l }))
    }

    fn after(e: &Entry) -> &[After] {
        &e.after
    }

    const F: MsFlags = MsFlags::empty();

    // root

    #[test]
    fn no_mount_namespace_changes_nothing_of_the_hosts() {
        assert_eq!(root(&spec(serde_json::json!({}))).unwrap(), None);
    }

    #[test]
    fn no_mount_namespace_ignores_even_a_bad_propagation() {
        let s = spec(serde_json::json!({"linux": {"rootfsPropagation": "sideways"}}));
        assert_eq!(root(&s).unwrap(), None);
    }

    #[test]
    fn root_is_rslave_and_its_parent_private_by_default() {
        let r = root(&with_mntns(serde_json::json!({}))).unwrap().unwrap();
        assert_eq!(r.root, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(r.parent, MsFlags::MS_PRIVATE);
    }

    #[test]
    fn empty_propagation_is_the_default() {
        let r = root(&with_mntns(serde_json::json!({"rootfsPropagation": ""})))
            .unwrap()
            .unwrap();
        assert_eq!(r.root, MsFlags::MS_SLAVE | MsFlags::MS_REC);
    }

    fn root_with(p: &str) -> Root {
        root(&with_mntns(serde_json::json!({ "rootfsPropagation": p })))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_slave_root_keeps_its_parent_slave() {
        let r = root_with("slave");
        assert_eq!((r.root, r.parent), (MsFlags::MS_SLAVE, MsFlags::MS_SLAVE));
        let r = root_with("rslave");
        assert_eq!(r.parent, MsFlags::MS_SLAVE);
    }

    #[test]
    fn a_private_root_has_a_private_parent() {
        let r = root_with("rprivate");
        assert_eq!(r.root, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(r.parent, MsFlags::MS_PRIVATE);
    }

    #[test]
    fn a_shared_root_still_has_a_private_parent() {
        let r = root_with("rshared");
        assert_eq!(r.root, MsFlags::MS_SHARED | MsFlags::MS_REC);
        assert_eq!(r.parent, MsFlags::MS_PRIVATE);
    }

    #[test]
    fn an_unbindable_root_has_a_private_parent() {
        let r = root_with("unbindable");
        assert_eq!(r.root, MsFlags::MS_UNBINDABLE);
        assert_eq!(r.parent, MsFlags::MS_PRIVATE);
    }

    #[test]
    fn a_propagation_that_is_no_mode_is_refused_by_field() {
        for p in ["sideways", "ro", "bind", "rro"] {
            let e = root(&with_mntns(serde_json::json!({ "rootfsPropagation": p })))
                .unwrap_err()
                .to_string();
            assert!(e.contains("linux.rootfsPropagation"), "{e}");
            assert!(e.contains("is not a propagation mode"), "{e}");
        }
    }

    // enter

    #[test]
    fn without_a_mount_namespace_the_root_is_only_chrooted_into() {
        let e = enter(&spec(serde_json::json!({})), false).unwrap();
        assert_eq!(
            e,
            Enter {
                how: How::Chroot,
                propagation: None
            }
        );
        let e = enter(&spec(serde_json::json!({})), true).unwrap();
        assert_eq!(e.how, How::Chroot);
    }

    #[test]
    fn a_mount_namespace_pivots() {
        let e = enter(&with_mntns(serde_json::json!({})), false).unwrap();
        assert_eq!(
            e,
            Enter {
                how: How::Pivot,
                propagation: None
            }
        );
    }

    #[test]
    fn no_pivot_moves_and_chroots() {
        let e = enter(&with_mntns(serde_json::json!({})), true).unwrap();
        assert_eq!(e.how, How::MoveAndChroot);
    }

    fn enter_with(p: &str) -> Option<MsFlags> {
        enter(
            &with_mntns(serde_json::json!({ "rootfsPropagation": p })),
            false,
        )
        .unwrap()
        .propagation
    }

    #[test]
    fn shared_propagation_is_given_to_the_new_root_after_entering() {
        assert_eq!(enter_with("shared"), Some(MsFlags::MS_SHARED));
        assert_eq!(
            enter_with("rshared"),
            Some(MsFlags::MS_SHARED | MsFlags::MS_REC)
        );
        assert_eq!(enter_with("unbindable"), Some(MsFlags::MS_UNBINDABLE));
    }

    #[test]
    fn private_and_slave_propagation_were_set_before_entering() {
        for p in ["private", "rprivate", "slave", "rslave", ""] {
            assert_eq!(enter_with(p), None, "{p}");
        }
    }

    // entries: parsing

    #[test]
    fn options_that_do_not_parse_are_refused_before_anything() {
        let e = entry(&mnt("/x", "tmpfs", None, &[""]), Path::new(BUNDLE), NONE);
        assert!(e.is_err());
        let e = entry(
            &mnt("/x", "tmpfs", None, &["uid=x"]),
            Path::new(BUNDLE),
            NONE,
        );
        assert!(e.unwrap_err().contains("uid=x"));
    }

    // entries: each filesystem

    #[test]
    fn proc_goes_on_a_directory_and_is_mounted_as_given() {
        let e = plan(
            "/proc",
            "proc",
            Some("proc"),
            &["nosuid", "noexec", "nodev"],
            NONE,
        );
        assert!(e.require_directory);
        assert!(!e.keep_mode);
        assert_eq!(e.mount_point, Kind::Dir);
        assert_eq!(e.check_proc, None);
        assert_eq!(
            e.action,
            Action::Mount {
                source: "proc".into(),
                fstype: "proc".into(),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
                data: None,
            }
        );
        assert_eq!(after(&e), &[]);
    }

    #[test]
    fn sysfs_goes_on_a_directory_and_keeps_ro_in_the_mount() {
        let e = plan("/sys", "sysfs", Some("sysfs"), &["ro", "nosuid"], NONE);
        assert!(e.require_directory);
        assert_eq!(e.check_proc, None);
        assert_eq!(
            e.action,
            Action::Mount {
                source: "sysfs".into(),
                fstype: "sysfs".into(),
                flags: MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
                data: None,
            }
        );
    }

    #[test]
    fn a_mount_without_a_source_names_its_type() {
        let e = plan("/sys", "sysfs", None, &[], NONE);
        assert!(matches!(e.action, Action::Mount { source, .. } if source == Path::new("sysfs")));
    }

    #[test]
    fn a_mount_without_options_has_no_flags_and_no_data() {
        let m: Mount =
            serde_json::from_value(serde_json::json!({"destination": "/q", "type": "mqueue"}))
                .unwrap();
        let e = entry(&m, Path::new(BUNDLE), NONE).unwrap();
        assert_eq!(
            e.action,
            Action::Mount {
                source: "mqueue".into(),
                fstype: "mqueue".into(),
                flags: F,
                data: None
            }
        );
    }

    #[test]
    fn a_mount_without_a_type_is_given_an_empty_one() {
        let m: Mount =
            serde_json::from_value(serde_json::json!({"destination": "/q", "source": "none"}))
                .unwrap();
        let e = entry(&m, Path::new(BUNDLE), NONE).unwrap();
        assert!(matches!(e.action, Action::Mount { fstype, .. } if fstype.is_empty()));
    }

    #[test]
    fn tmpfs_data_is_passed_in_order() {
        let e = plan(
            "/dev",
            "tmpfs",
            Some("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
            NONE,
        );
        assert_eq!(
            e.action,
            Action::Mount {
                source: "tmpfs".into(),
                fstype: "tmpfs".into(),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
                data: Some("mode=755,size=65536k".into()),
            }
        );
    }

    #[test]
    fn tmpfs_with_mode_does_not_keep_the_covered_mode() {
        let e = plan("/run", "tmpfs", Some("tmpfs"), &["mode=1777"], NONE);
        assert!(!e.keep_mode);
        assert_eq!(after(&e), &[]);
    }

    #[test]
    fn tmpfs_without_mode_keeps_the_covered_mode() {
        let e = plan("/run", "tmpfs", Some("tmpfs"), &["nosuid", "size=1m"], NONE);
        assert!(e.keep_mode);
        assert_eq!(after(&e), &[After::RestoreMode]);
    }

    #[test]
    fn a_mode_prefix_elsewhere_in_data_is_not_mode() {
        let e = plan("/run", "tmpfs", None, &["xmode=1"], NONE);
        assert!(e.keep_mode);
    }

    #[test]
    fn only_tmpfs_keeps_the_covered_mode() {
        for typ in [
            "proc", "sysfs", "mqueue", "devpts", "bind", "cgroup", "devtmpfs",
        ] {
            assert!(!plan("/x", typ, Some("s"), &[], DIR).keep_mode, "{typ}");
        }
    }

    #[test]
    fn devpts_takes_its_data() {
        let e = plan(
            "/dev/pts",
            "devpts",
            Some("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
            NONE,
        );
        assert!(!e.require_directory);
        assert_eq!(e.check_proc, Some(Some("devpts".into())));
        assert_eq!(
            e.action,
            Action::Mount {
                source: "devpts".into(),
                fstype: "devpts".into(),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                data: Some("newinstance,ptmxmode=0666,mode=0620,gid=5".into()),
            }
        );
    }

    #[test]
    fn mqueue_is_a_plain_mount() {
        let e = plan(
            "/dev/mqueue",
            "mqueue",
            Some("mqueue"),
            &["nosuid", "noexec", "nodev"],
            NONE,
        );
        assert!(!e.require_directory && !e.keep_mode);
        assert_eq!(e.mount_point, Kind::Dir);
        assert!(matches!(e.action, Action::Mount { ref fstype, .. } if fstype == "mqueue"));
        assert_eq!(after(&e), &[]);
    }

    #[test]
    fn a_plain_mount_is_checked_against_proc_with_its_source() {
        let e = plan("/proc/cpuinfo", "fuse.lxcfs", Some("lxcfs"), &[], NONE);
        assert_eq!(e.check_proc, Some(Some("lxcfs".into())));
    }

    #[test]
    fn a_mount_source_is_not_relative_to_the_bundle() {
        let e = plan("/x", "ext4", Some("dev/sda"), &[], NONE);
        assert!(matches!(e.action, Action::Mount { source, .. } if source == Path::new("dev/sda")));
    }

    #[test]
    fn a_plain_mount_has_no_remount() {
        let e = plan(
            "/x",
            "tmpfs",
            None,
            &["ro", "nosuid", "nodev", "noexec", "mode=1"],
            NONE,
        );
        assert_eq!(after(&e), &[]);
    }

    #[test]
    fn remount_is_passed_to_a_plain_mount() {
        let e = plan("/x", "tmpfs", None, &["remount", "mode=1"], NONE);
        assert!(matches!(e.action, Action::Mount { flags, .. } if flags == MsFlags::MS_REMOUNT));
    }

    // entries: flags

    fn flags_of(opts: &[&str]) -> MsFlags {
        match plan("/x", "ext4", Some("/dev/vdb"), opts, NONE).action {
            Action::Mount { flags, .. } => flags,
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn ro_is_rdonly() {
        assert_eq!(flags_of(&["ro"]), MsFlags::MS_RDONLY);
    }

    #[test]
    fn rw_after_ro_clears_it() {
        assert_eq!(flags_of(&["ro", "rw"]), F);
    }

    #[test]
    fn nosuid_nodev_noexec() {
        assert_eq!(
            flags_of(&["nosuid", "nodev", "noexec"]),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
        );
    }

    #[test]
    fn suid_dev_exec_clear_them() {
        assert_eq!(
            flags_of(&["nosuid", "nodev", "noexec", "suid", "dev", "exec"]),
            F
        );
    }

    #[test]
    fn relatime() {
        assert_eq!(flags_of(&["relatime"]), MsFlags::MS_RELATIME);
        assert_eq!(flags_of(&["relatime", "norelatime"]), F);
    }

    #[test]
    fn noatime_and_nodiratime() {
        assert_eq!(
            flags_of(&["noatime", "nodiratime"]),
            MsFlags::MS_NOATIME | MsFlags::MS_NODIRATIME
        );
        assert_eq!(flags_of(&["noatime", "atime"]), F);
    }

    #[test]
    fn strictatime() {
        assert_eq!(flags_of(&["strictatime"]), MsFlags::MS_STRICTATIME);
    }

    #[test]
    fn sync_dirsync_lazytime_mand() {
        assert_eq!(
            flags_of(&["sync", "dirsync", "lazytime", "mand"]),
            MsFlags::MS_SYNCHRONOUS
                | MsFlags::MS_DIRSYNC
                | MsFlags::MS_LAZYTIME
                | MsFlags::MS_MANDLOCK
        );
    }

    #[test]
    fn nosymfollow() {
        assert_eq!(
            flags_of(&["nosymfollow"]),
            MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)
        );
    }

    #[test]
    fn defaults_sets_nothing() {
        assert_eq!(flags_of(&["defaults"]), F);
    }

    // entries: propagation and recursive attributes

    #[test]
    fn propagation_follows_the_mount_in_the_order_given() {
        let e = plan(
            "/x",
            "tmpfs",
            None,
            &["mode=1", "rprivate", "shared", "rslave"],
            NONE,
        );
        assert_eq!(
            after(&e),
            &[
                After::Propagate(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
                After::Propagate(MsFlags::MS_SHARED),
                After::Propagate(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            ]
        );
        assert!(matches!(e.action, Action::Mount { flags, .. } if flags == F));
    }

    #[test]
    fn every_propagation_mode() {
        for (o, f) in [
            ("private", MsFlags::MS_PRIVATE),
            ("rprivate", MsFlags::MS_PRIVATE | MsFlags::MS_REC),
            ("shared", MsFlags::MS_SHARED),
            ("rshared", MsFlags::MS_SHARED | MsFlags::MS_REC),
            ("slave", MsFlags::MS_SLAVE),
            ("rslave", MsFlags::MS_SLAVE | MsFlags::MS_REC),
            ("unbindable", MsFlags::MS_UNBINDABLE),
            ("runbindable", MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
        ] {
            let e = plan("/x", "tmpfs", None, &["mode=1", o], NONE);
            assert_eq!(after(&e), &[After::Propagate(f)], "{o}");
        }
    }

    #[test]
    fn recursive_attributes_come_last() {
        let e = bind("/src", &["rbind", "rro", "rnosuid", "rslave", "ro"], DIR);
        assert_eq!(
            after(&e),
            &[
                After::Remount {
                    flags: MsFlags::MS_RDONLY,
                    clear: F
                },
                After::Propagate(MsFlags::MS_SLAVE | MsFlags::MS_REC),
                After::SetAttr {
                    set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID,
                    clr: 0
                },
            ]
        );
    }

    #[test]
    fn recursive_clears() {
        let e = bind("/src", &["rbind", "rrw", "rsuid"], DIR);
        assert_eq!(
            after(&e),
            &[After::SetAttr {
                set: 0,
                clr: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID
            }]
        );
    }

    #[test]
    fn a_recursive_atime_mode_clears_the_atime_field_first() {
        let e = bind("/src", &["rbind", "rnoatime"], DIR);
        assert_eq!(
            after(&e),
            &[After::SetAttr {
                set: libc::MOUNT_ATTR_NOATIME,
                clr: libc::MOUNT_ATTR__ATIME
            }]
        );
        let e = bind("/src", &["rbind", "rrelatime"], DIR);
        assert_eq!(
            after(&e),
            &[After::SetAttr {
                set: libc::MOUNT_ATTR_RELATIME,
                clr: libc::MOUNT_ATTR__ATIME
            }]
        );
    }

    #[test]
    fn recursive_attributes_apply_to_plain_mounts_too() {
        let e = plan("/x", "tmpfs", None, &["mode=1", "rnoexec"], NONE);
        assert_eq!(
            after(&e),
            &[After::SetAttr {
                set: libc::MOUNT_ATTR_NOEXEC,
                clr: 0
            }]
        );
    }

    #[test]
    fn keep_mode_comes_before_propagation_and_attributes() {
        let e = plan("/x", "tmpfs", None, &["rshared", "rnodev"], NONE);
        assert_eq!(
            after(&e),
            &[
                After::RestoreMode,
                After::Propagate(MsFlags::MS_SHARED | MsFlags::MS_REC),
                After::SetAttr {
                    set: libc::MOUNT_ATTR_NODEV,
                    clr: 0
                },
            ]
        );
    }

    // entries: bind mounts

    #[test]
    fn a_bind_of_a_directory_is_made_on_a_directory() {
        let e = bind("/src", &["bind"], DIR);
        assert_eq!(e.mount_point, Kind::Dir);
        assert_eq!(
            e.action,
            Action::Bind {
                source: "/src".into(),
                flags: MsFlags::MS_BIND
            }
        );
        assert_eq!(after(&e), &[]);
    }

    #[test]
    fn a_bind_of_a_file_is_made_on_a_file() {
        let e = bind("/etc/hosts", &["bind"], FILE);
        assert_eq!(e.mount_point, Kind::File);
    }

    #[test]
    fn a_bind_of_a_missing_source_is_made_on_a_directory() {
        let e = bind("/gone", &["bind"], NONE);
        assert_eq!(e.mount_point, Kind::Dir);
        assert!(matches!(e.action, Action::Bind { .. }));
    }

    #[test]
    fn rbind_is_recursive() {
        let e = bind("/src", &["rbind"], DIR);
        assert_eq!(
            e.action,
            Action::Bind {
                source: "/src".into(),
                flags: MsFlags::MS_BIND | MsFlags::MS_REC
            }
        );
        assert_eq!(after(&e), &[]);
    }

    #[test]
    fn the_bind_type_alone_binds_without_recursion() {
        let e = bind("/src", &[], DIR);
        assert_eq!(
            e.action,
            Action::Bind {
                source: "/src".into(),
                flags: MsFlags::MS_BIND
            }
        );
    }

    #[test]
    fn a_bind_option_on_another_type_binds() {
        let e = plan("/x", "none", Some("/src"), &["rbind"], DIR);
        assert!(matches!(e.action, Action::Bind { .. }));
    }

    #[test]
    fn a_relative_bind_source_is_relative_to_the_bundle() {
        let e = bind("data", &["bind"], DIR);
        assert!(matches!(e.action, Action::Bind { source, .. } if source == Path::new("/b/data")));
        assert_eq!(e.check_proc, Some(Some("/b/data".into())));
    }

    #[test]
    fn an_absolute_bind_source_stays() {
        let e = bind("/abs", &["bind"], DIR);
        assert_eq!(e.check_proc, Some(Some("/abs".into())));
    }

    #[test]
    fn a_bind_without_a_source_is_refused_after_its_mount_point() {
        let e = plan("/mnt", "bind", None, &["rbind"], NONE);
        assert_eq!(e.mount_point, Kind::Dir);
        assert_eq!(
            e.action,
            Action::Refuse {
                why: "a bind mount needs a source".into()
            }
        );
    }

    #[test]
    fn flags_on_a_bind_come_in_a_remount() {
        let e = bind("/src", &["rbind", "ro", "nosuid", "nodev", "noexec"], DIR);
        assert_eq!(
            after(&e),
            &[After::Remount {
                flags: MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC,
                clear: F
            }]
        );
    }

    #[test]
    fn a_remount_clears_what_the_options_clear() {
        let e = bind("/src", &["bind", "ro", "suid", "dev", "exec"], DIR);
        assert_eq!(
            after(&e),
            &[After::Remount {
                flags: MsFlags::MS_RDONLY,
                clear: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
            }]
        );
    }

    #[test]
    fn rw_alone_needs_no_remount() {
        let e = bind("/src", &["rbind", "rw"], DIR);
        assert_eq!(after(&e), &[]);
    }

    #[test]
    fn a_bind_with_remount_alone_needs_no_second_remount() {
        let e = bind("/src", &["bind", "remount"], DIR);
        assert_eq!(after(&e), &[]);
    }

    #[test]
    fn a_bind_remount_carries_relatime_and_noatime() {
        let e = bind("/src", &["bind", "relatime"], DIR);
        assert_eq!(
            after(&e),
            &[After::Remount {
                flags: MsFlags::MS_RELATIME,
                clear: F
            }]
        );
        let e = bind("/src", &["bind", "noatime", "norelatime"], DIR);
        assert_eq!(
            after(&e),
            &[After::Remount {
                flags: MsFlags::MS_NOATIME,
                clear: MsFlags::MS_RELATIME
            }]
        );
    }

    #[test]
    fn a_read_only_bind_is_not_deferred() {
        let e = bind("/src", &["rbind", "ro"], DIR);
        assert!(
            matches!(e.action, Action::Bind { flags, .. } if !flags.contains(MsFlags::MS_RDONLY))
        );
        assert_eq!(
            after(&e),
            &[After::Remount {
                flags: MsFlags::MS_RDONLY,
                clear: F
            }]
        );
    }

    #[test]
    fn a_bind_is_not_required_to_be_a_directory() {
        assert!(!bind("/src", &["bind"], FILE).require_directory);
    }

    #[test]
    fn a_bind_over_proc_is_checked() {
        let e = plan("/proc", "bind", Some("/proc"), &["rbind"], DIR);
        assert_eq!(e.check_proc, Some(Some("/proc".into())));
    }

    // entries: detached trees

    const IDMAPPED_DIR: Source = Source {
        tree: Some(Tree {
            idmapped: true,
            kind: Kind::Dir,
        }),
        kind: Some(Kind::Dir),
    };

    #[test]
    fn an_idmapped_tree_is_always_attached() {
        let e = bind("/src", &["rbind", "idmap"], IDMAPPED_DIR);
        assert_eq!(
            e.action,
            Action::Attach {
                source: "/src".into()
            }
        );
        assert_eq!(after(&e), &[]);
    }

    #[test]
    fn an_idmapped_tree_decides_the_mount_point() {
        let facts = Source {
            tree: Some(Tree {
                idmapped: true,
                kind: Kind::File,
            }),
            kind: Some(Kind::Dir),
        };
        assert_eq!(
            bind("/src", &["bind", "idmap"], facts).mount_point,
            Kind::File
        );
    }

    #[test]
    fn an_idmapped_tree_is_remounted_with_its_flags() {
        let e = bind("/src", &["rbind", "ridmap", "ro", "nosuid"], IDMAPPED_DIR);
        assert!(matches!(e.action, Action::Attach { .. }));
        assert_eq!(
            after(&e),
            &[After::Remount {
                flags: MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
                clear: F
            }]
        );
    }

    #[test]
    fn an_idmapped_tree_takes_propagation_and_attributes() {
        let e = bind("/src", &["rbind", "idmap", "rprivate", "rro"], IDMAPPED_DIR);
        assert_eq!(
            after(&e),
            &[
                After::Propagate(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
                After::SetAttr {
                    set: libc::MOUNT_ATTR_RDONLY,
                    clr: 0
                }
            ]
        );
    }

    fn plain_tree(kind: Kind, source: Option<Kind>) -> Source {
        Source {
            tree: Some(Tree {
                idmapped: false,
                kind,
            }),
            kind: source,
        }
    }

    #[test]
    fn a_plain_tree_is_unused_where_init_reaches_the_source() {
        let e = bind("/src", &["rbind"], plain_tree(Kind::Dir, Some(Kind::Dir)));
        assert!(matches!(e.action, Action::Bind { .. }));
    }

    #[test]
    fn a_plain_tree_stands_in_for_a_source_init_cannot_reach() {
        let e = bind("/hidden/src", &["rbind"], plain_tree(Kind::Dir, None));
        assert_eq!(
            e.action,
            Action::Attach {
                source: "/hidden/src".into()
            }
        );
    }

    #[test]
    fn an_unreachable_file_source_is_mounted_on_a_file_by_its_tree() {
        let e = bind("/hidden/f", &["bind"], plain_tree(Kind::File, None));
        assert_eq!(e.mount_point, Kind::File);
        assert!(matches!(e.action, Action::Attach { .. }));
    }

    #[test]
    fn an_unused_tree_does_not_decide_the_mount_point() {
        let e = bind("/src", &["bind"], plain_tree(Kind::Dir, Some(Kind::File)));
        assert_eq!(e.mount_point, Kind::File);
    }

    #[test]
    fn a_plain_tree_without_a_source_is_not_used() {
        let e = plan("/mnt", "bind", None, &["bind"], plain_tree(Kind::Dir, None));
        assert!(matches!(e.action, Action::Refuse { .. }));
    }

    #[test]
    fn an_idmapped_tree_without_a_source_attaches_with_an_empty_name() {
        let e = plan("/mnt", "bind", None, &["bind", "idmap"], IDMAPPED_DIR);
        assert_eq!(
            e.action,
            Action::Attach {
                source: PathBuf::new()
            }
        );
    }

    // entries: tmpcopyup

    #[test]
    fn tmpcopyup_makes_a_detached_tmpfs() {
        let e = plan(
            "/etc",
            "tmpfs",
            Some("tmpfs"),
            &["tmpcopyup", "nosuid", "size=1m", "mode=755"],
            NONE,
        );
        assert_eq!(
            e.action,
            Action::Tmpcopyup(Tmpcopyup {
                source: Some("tmpfs".into()),
                options: vec![
                    ("size".into(), Some("1m".into())),
                    ("mode".into(), Some("755".into()))
                ],
                attrs: libc::MOUNT_ATTR_NOSUID,
            })
        );
        assert!(!e.keep_mode);
        assert_eq!(after(&e), &[]);
    }

    #[test]
    fn tmpcopyup_without_a_source_gives_none() {
        let e = plan("/etc", "tmpfs", None, &["tmpcopyup"], NONE);
        assert!(matches!(
            e.action,
            Action::Tmpcopyup(Tmpcopyup { source: None, .. })
        ));
    }

    #[test]
    fn tmpcopyup_keeps_the_covered_mode_without_mode() {
        let e = plan("/etc", "tmpfs", None, &["tmpcopyup"], NONE);
        assert!(e.keep_mode);
        assert_eq!(after(&e), &[After::RestoreMode]);
    }

    #[test]
    fn tmpcopyup_data_without_value() {
        let e = plan(
            "/etc",
            "tmpfs",
            None,
            &["tmpcopyup", "noswap", "mode=1"],
            NONE,
        );
        let Action::Tmpcopyup(t) = e.action else {
            panic!()
        };
        assert_eq!(
            t.options,
            vec![("noswap".into(), None), ("mode".into(), Some("1".into()))]
        );
    }

    #[test]
    fn tmpcopyup_gives_superblock_flags_to_fsconfig_after_the_data() {
        let e = plan(
            "/etc",
            "tmpfs",
            None,
            &["tmpcopyup", "mand", "sync", "size=1", "dirsync", "lazytime"],
            NONE,
        );
        let Action::Tmpcopyup(t) = e.action else {
            panic!()
        };
        let keys: Vec<&str> = t.options.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["size", "sync", "dirsync", "lazytime", "mand"]);
        assert_eq!(t.attrs, 0);
    }

    #[test]
    fn tmpcopyup_gives_per_mount_flags_to_fsmount() {
        let e = plan(
            "/etc",
            "tmpfs",
            None,
            &[
                "tmpcopyup",
                "nosuid",
                "nodev",
                "noexec",
                "noatime",
                "nodiratime",
                "nosymfollow",
            ],
            NONE,
        );
        let Action::Tmpcopyup(t) = e.action else {
            panic!()
        };
        assert_eq!(
            t.attrs,
            libc::MOUNT_ATTR_NOSUID
                | libc::MOUNT_ATTR_NODEV
                | libc::MOUNT_ATTR_NOEXEC
                | libc::MOUNT_ATTR_NOATIME
                | libc::MOUNT_ATTR_NODIRATIME
                | libc::MOUNT_ATTR_NOSYMFOLLOW
        );
        assert!(t.options.is_empty());
    }

    #[test]
    fn tmpcopyup_strictatime() {
        let e = plan("/etc", "tmpfs", None, &["tmpcopyup", "strictatime"], NONE);
        let Action::Tmpcopyup(t) = e.action else {
            panic!()
        };
        assert_eq!(t.attrs, libc::MOUNT_ATTR_STRICTATIME);
    }

    #[test]
    fn a_read_only_tmpcopyup_is_writable_until_finalize() {
        let e = plan("/etc", "tmpfs", None, &["tmpcopyup", "ro", "nosuid"], NONE);
        let Action::Tmpcopyup(t) = e.action else {
            panic!()
        };
        assert_eq!(t.attrs, libc::MOUNT_ATTR_NOSUID);
    }

    #[test]
    fn tmpcopyup_applies_to_tmpfs_only() {
        let e = plan("/etc", "ext4", Some("/dev/vdb"), &["tmpcopyup"], NONE);
        assert!(matches!(e.action, Action::Mount { .. }));
    }

    #[test]
    fn tmpcopyup_takes_propagation_afterwards() {
        let e = plan(
            "/etc",
            "tmpfs",
            None,
            &["tmpcopyup", "mode=1", "rslave"],
            NONE,
        );
        assert_eq!(
            after(&e),
            &[After::Propagate(MsFlags::MS_SLAVE | MsFlags::MS_REC)]
        );
    }

    // entries: read-only tmpfs and /dev

    #[test]
    fn a_read_only_tmpfs_is_mounted_writable() {
        let e = plan("/run", "tmpfs", None, &["ro", "nosuid", "mode=755"], NONE);
        assert!(matches!(e.action, Action::Mount { flags, .. } if flags == MsFlags::MS_NOSUID));
    }

    #[test]
    fn a_read_only_dev_of_any_type_is_mounted_writable() {
        let e = plan("/dev", "devtmpfs", Some("devtmpfs"), &["ro"], NONE);
        assert!(matches!(e.action, Action::Mount { flags, .. } if flags == F));
        let e = plan("/dev/../dev/", "devtmpfs", None, &["ro"], NONE);
        assert!(matches!(e.action, Action::Mount { flags, .. } if flags == F));
    }

    #[test]
    fn other_read_only_mounts_are_read_only_at_once() {
        let e = plan("/dev/pts", "devpts", None, &["ro"], NONE);
        assert!(matches!(e.action, Action::Mount { flags, .. } if flags == MsFlags::MS_RDONLY));
    }

    fn deferred(dest: &str, typ: &str, opts: &[&str]) -> bool {
        readonly_deferred(&mnt(dest, typ, None, opts))
    }

    #[test]
    fn read_only_tmpfs_is_deferred() {
        assert!(deferred("/run", "tmpfs", &["ro"]));
        assert!(deferred("/dev", "tmpfs", &["ro", "nosuid"]));
    }

    #[test]
    fn read_only_dev_is_deferred_however_spelled() {
        assert!(deferred("//dev/./", "devtmpfs", &["ro"]));
        assert!(deferred("/x/../dev", "devtmpfs", &["ro"]));
        assert!(deferred("dev", "devtmpfs", &["ro"]));
    }

    #[test]
    fn writable_is_not_deferred() {
        assert!(!deferred("/dev", "tmpfs", &["nosuid"]));
        assert!(!deferred("/run", "tmpfs", &["ro", "rw"]));
    }

    #[test]
    fn other_filesystems_are_not_deferred() {
        assert!(!deferred("/sys", "sysfs", &["ro"]));
        assert!(!deferred("/dev/pts", "devpts", &["ro"]));
        assert!(!deferred("/devx", "devtmpfs", &["ro"]));
    }

    #[test]
    fn binds_are_not_deferred() {
        assert!(!deferred("/dev", "bind", &["rbind", "ro"]));
        assert!(!deferred("/run", "tmpfs", &["bind", "ro"]));
    }

    #[test]
    fn bad_options_are_not_deferred() {
        assert!(!deferred("/run", "tmpfs", &["ro", ""]));
    }

    // entries: cgroup

    #[test]
    fn a_cgroup_entry_is_planned_by_cgroup_and_finishes_there() {
        let e = plan(
            "/sys/fs/cgroup",
            "cgroup",
            Some("cgroup"),
            &["ro", "nosuid", "rslave"],
            NONE,
        );
        assert_eq!(
            e.action,
            Action::Cgroup {
                flags: MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
            }
        );
        assert_eq!(e.after, []);
        assert!(!e.require_directory);
        assert_eq!(e.check_proc, Some(Some("cgroup".into())));
    }

    fn h(mount_point: &str, controllers: &str, own: &str) -> Hierarchy {
        Hierarchy {
            mount_point: mount_point.into(),
            controllers: controllers.into(),
            own: own.into(),
        }
    }

    fn v2() -> Vec<Hierarchy> {
        vec![h("/sys/fs/cgroup", "", "/k/c1")]
    }

    fn hybrid() -> Vec<Hierarchy> {
        vec![
            h("/sys/fs/cgroup/memory", "memory", "/k/c1"),
            h("/sys/fs/cgroup/cpu,cpuacct", "cpu,cpuacct", "/k/c1"),
            h("/sys/fs/cgroup/unified", "", "/k/c1"),
            h("/elsewhere/pids", "pids", "/"),
        ]
    }

    const RO_NOSUID: MsFlags = MsFlags::MS_RDONLY.union(MsFlags::MS_NOSUID);

    #[test]
    fn pure_v2_with_a_cgroupns_mounts_cgroup2_fresh() {
        let Cgroup::Unified(one) = cgroup(&v2(), RO_NOSUID, true, None) else {
            panic!()
        };
        assert_eq!(one.fresh, Some(("cgroup2", None)));
        assert_eq!(one.flags, RO_NOSUID);
        assert_eq!(one.fallback, None);
        assert_eq!(one.restrict, RO_NOSUID);
    }

    #[test]
    fn pure_v2_with_a_cgroupns_falls_back_on_the_containers_directory() {
        let dir = Path::new("/sys/fs/cgroup/k/c1");
        let Cgroup::Unified(one) = cgroup(&v2(), F, true, Some(dir)) else {
            panic!()
        };
        assert_eq!(one.fallback.as_deref(), Some(dir));
    }

    #[test]
    fn pure_v2_without_a_cgroupns_binds_its_own_cgroup() {
        let Cgroup::Unified(one) = cgroup(&v2(), F, false, Some(Path::new("/x"))) else {
            panic!()
        };
        assert_eq!(one.fresh, None);
        assert_eq!(one.fallback, None);
        assert_eq!(one.bind, Path::new("/sys/fs/cgroup/k/c1"));
    }

    #[test]
    fn a_bind_is_restricted_only_by_ro_nosuid_nodev_noexec() {
        let all = MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_RELATIME
            | MsFlags::MS_NOATIME;
        let Cgroup::Unified(one) = cgroup(&v2(), all, false, None) else {
            panic!()
        };
        assert_eq!(
            one.restrict,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
        );
    }

    #[test]
    fn hybrid_is_a_tmpfs_of_the_hierarchies_under_sys_fs_cgroup() {
        let Cgroup::Tmpfs {
            flags,
            hierarchies,
            remount,
        } = cgroup(&hybrid(), RO_NOSUID, false, None)
        else {
            panic!()
        };
        assert_eq!(flags, MsFlags::MS_NOSUID);
        assert_eq!(remount, Some(MsFlags::MS_REMOUNT | RO_NOSUID));
        let names: Vec<&str> = hierarchies.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["memory", "cpu,cpuacct", "unified"]);
        assert_eq!(
            hierarchies[0].mount.bind,
            Path::new("/sys/fs/cgroup/memory/k/c1")
        );
        assert_eq!(hierarchies[0].mount.fresh, None);
        assert_eq!(hierarchies[0].mount.restrict, RO_NOSUID);
    }

    #[test]
    fn a_writable_cgroup_tmpfs_is_not_remounted() {
        let Cgroup::Tmpfs { remount, flags, .. } =
            cgroup(&hybrid(), MsFlags::MS_NODEV, false, None)
        else {
            panic!()
        };
        assert_eq!(remount, None);
        assert_eq!(flags, MsFlags::MS_NODEV);
    }

    #[test]
    fn joined_controllers_get_aliases() {
        let Cgroup::Tmpfs { hierarchies, .. } = cgroup(&hybrid(), F, false, None) else {
            panic!()
        };
        assert_eq!(hierarchies[0].aliases, Vec::<String>::new());
        assert_eq!(hierarchies[1].aliases, ["cpu", "cpuacct"]);
        assert_eq!(hierarchies[2].aliases, Vec::<String>::new());
    }

    #[test]
    fn v1_with_a_cgroupns_mounts_each_hierarchy_fresh_with_its_controllers() {
        let Cgroup::Tmpfs { hierarchies, .. } = cgroup(&hybrid(), F, true, Some(Path::new("/c2")))
        else {
            panic!()
        };
        assert_eq!(
            hierarchies[0].mount.fresh,
            Some(("cgroup", Some("memory".into())))
        );
        assert_eq!(hierarchies[0].mount.fallback, None);
        assert_eq!(
            hierarchies[1].mount.fresh,
            Some(("cgroup", Some("cpu,cpuacct".into())))
        );
        assert_eq!(hierarchies[2].mount.fresh, Some(("cgroup2", None)));
        assert_eq!(
            hierarchies[2].mount.fallback.as_deref(),
            Some(Path::new("/c2"))
        );
    }

    #[test]
    fn a_hierarchy_at_its_root_binds_the_mount_point() {
        let Cgroup::Tmpfs { hierarchies, .. } =
            cgroup(&[h("/sys/fs/cgroup/pids", "pids", "/")], F, false, None)
        else {
            panic!()
        };
        assert_eq!(hierarchies[0].mount.bind, Path::new("/sys/fs/cgroup/pids"));
    }

    #[test]
    fn a_lone_v1_hierarchy_is_still_a_tmpfs() {
        assert!(matches!(
            cgroup(&[h("/sys/fs/cgroup/memory", "memory", "/")], F, false, None),
            Cgroup::Tmpfs { .. }
        ));
    }

    #[test]
    fn no_hierarchies_is_an_empty_tmpfs() {
        assert_eq!(
            cgroup(&[], F, false, None),
            Cgroup::Tmpfs {
                flags: F,
                hierarchies: vec![],
                remount: None
            }
        );
    }

    // /proc

    fn verdict(dest: &str, source: Option<&str>, procfs: bool) -> Result<(), String> {
        proc_verdict(Path::new(dest), source.map(Path::new), || procfs)
    }

    #[test]
    fn procfs_may_go_over_proc() {
        assert!(verdict("/proc", Some("/proc"), true).is_ok());
    }

    #[test]
    fn anything_else_over_proc_is_refused() {
        let e = verdict("/proc", Some("/tmp"), false).unwrap_err();
        assert_eq!(
            e,
            "only procfs may be mounted over /proc, and /tmp is not procfs"
        );
    }

    #[test]
    fn no_source_over_proc_is_refused_without_asking() {
        let e = proc_verdict(Path::new("/proc"), None, || panic!("asked")).unwrap_err();
        assert!(e.contains("only procfs"), "{e}");
    }

    #[test]
    fn every_lxcfs_file_may_be_covered() {
        for p in PROC_ALLOWED {
            assert!(verdict(p, Some("/var/lib/lxcfs/x"), false).is_ok(), "{p}");
        }
    }

    #[test]
    fn proc_sys_may_not_be_covered() {
        let e = verdict("/proc/sys", Some("/proc"), true).unwrap_err();
        assert!(
            e.starts_with("/proc/sys is inside /proc, where only /proc/cpuinfo"),
            "{e}"
        );
    }

    #[test]
    fn below_an_allowed_file_is_refused() {
        assert!(verdict("/proc/sys/kernel/ns_last_pid/x", Some("/x"), false).is_err());
        assert!(verdict("/proc/net", Some("/x"), false).is_err());
    }

    #[test]
    fn a_neighbour_of_proc_is_not_proc() {
        assert!(verdict("/procfs/sys", None, false).is_ok());
        assert!(verdict("/proc2", None, false).is_ok());
    }

    #[test]
    fn the_verdict_asks_about_the_source_only_for_proc_itself() {
        assert!(
            proc_verdict(
                Path::new("/proc/cpuinfo"),
                Some(Path::new("/x")),
                || panic!()
            )
            .is_ok()
        );
        assert!(proc_verdict(Path::new("/etc"), Some(Path::new("/x")), || panic!()).is_ok());
    }

    // /dev

    fn dev_of(extra: serde_json::Value, in_userns: bool, kcore: bool) -> Option<Dev> {
        dev(&spec(extra), in_userns, kcore)
    }

    #[test]
    fn the_default_nodes_in_runcs_order() {
        let d = dev_of(serde_json::json!({}), false, false).unwrap();
        let paths: Vec<&Path> = d.nodes.iter().map(|n| n.path.as_path()).collect();
        assert_eq!(
            paths,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ]
            .map(Path::new)
        );
        assert!(d.nodes.iter().all(|n| n.kind == NodeKind::Char
            && n.mode == 0o666
            && n.uid == 0
            && n.gid == 0
            && !n.bind_host));
        assert_eq!((d.nodes[0].major, d.nodes[0].minor), (1, 3));
        assert_eq!((d.nodes[5].major, d.nodes[5].minor), (5, 0));
    }

    #[test]
    fn in_a_user_namespace_the_defaults_are_binds_of_the_hosts() {
        let d = dev_of(serde_json::json!({}), true, false).unwrap();
        assert!(d.nodes.iter().all(|n| n.bind_host));
    }

    #[test]
    fn default_paths_are_the_default_nodes() {
        let d = dev_of(serde_json::json!({}), false, false).unwrap();
        assert_eq!(d.nodes.len(), DEFAULT_DEVICES.len());
    }

    fn devices(list: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"linux": {"devices": list}})
    }

    #[test]
    fn configured_devices_follow_the_defaults() {
        let d = dev_of(
            devices(serde_json::json!([
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o100640, "uid": 1, "gid": 2},
                {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
                {"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0},
                {"path": "/dev/any", "type": "u", "major": 1, "minor": 1},
            ])),
            false,
            false,
        )
        .unwrap();
        assert_eq!(d.nodes.len(), 10);
        assert_eq!(
            d.nodes[6],
            Node {
                path: "/dev/fuse".into(),
                kind: NodeKind::Char,
                major: 10,
                minor: 229,
                mode: 0o640,
                uid: 1,
                gid: 2,
                bind_host: false
            }
        );
        assert_eq!(d.nodes[7].kind, NodeKind::Block);
        assert_eq!((d.nodes[7].mode, d.nodes[7].uid), (0o666, 0));
        assert_eq!(d.nodes[8].kind, NodeKind::Fifo);
        assert_eq!(d.nodes[9].kind, NodeKind::Char);
    }

    #[test]
    fn a_configured_default_replaces_it_in_the_configs_place() {
        let d = dev_of(
            devices(serde_json::json!([
                {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600},
            ])),
            false,
            false,
        )
        .unwrap();
        assert_eq!(d.nodes.len(), 6);
        assert_eq!(d.nodes[0].path, Path::new("/dev/zero"));
        assert_eq!(d.nodes[5].path, Path::new("/dev/null"));
        assert_eq!(d.nodes[5].mode, 0o600);
    }

    #[test]
    fn in_a_user_namespace_fifos_are_still_made() {
        let d = dev_of(
            devices(serde_json::json!([
                {"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0},
                {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
            ])),
            true,
            false,
        )
        .unwrap();
        assert!(!d.nodes[6].bind_host);
        assert!(d.nodes[7].bind_host);
    }

    #[test]
    fn the_standard_links() {
        let d = dev_of(serde_json::json!({}), false, false).unwrap();
        assert_eq!(
            d.links,
            [
                ("/proc/self/fd", "fd"),
                ("/proc/self/fd/0", "stdin"),
                ("/proc/self/fd/1", "stdout"),
                ("/proc/self/fd/2", "stderr"),
            ]
        );
    }

    #[test]
    fn core_links_to_kcore_where_the_host_has_it() {
        let d = dev_of(serde_json::json!({}), false, true).unwrap();
        assert_eq!(d.links.last(), Some(&("/proc/kcore", "core")));
    }

    #[test]
    fn a_bind_mounted_dev_is_left_as_the_host_has_it() {
        let s = serde_json::json!({"mounts": [{"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}]});
        assert_eq!(dev_of(s, false, true), None);
    }

    #[test]
    fn a_dev_bound_by_option_only_still_gets_nodes() {
        let s = serde_json::json!({"mounts": [{"destination": "/dev", "type": "none", "source": "/dev", "options": ["rbind"]}]});
        assert!(dev_of(s, false, false).is_some());
    }

    #[test]
    fn a_tmpfs_dev_gets_nodes() {
        let s = serde_json::json!({"mounts": [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}]});
        assert!(dev_of(s, false, false).is_some());
    }

    // finalize

    #[test]
    fn nothing_to_finalize() {
        assert_eq!(
            finalize(&spec(serde_json::json!({}))),
            Finalize {
                remount_readonly: vec![],
                readonly: vec![],
                masked: vec![],
                readonly_root: false
            }
        );
    }

    #[test]
    fn deferred_remounts_in_the_configs_order_with_their_index() {
        let s = spec(serde_json::json!({"mounts": [
            {"destination": "/proc", "type": "proc"},
            {"destination": "/run", "type": "tmpfs", "options": ["ro"]},
            {"destination": "/sys", "type": "sysfs", "options": ["ro"]},
            {"destination": "/dev", "type": "tmpfs", "options": ["ro", "nosuid"]},
            {"destination": "/data", "type": "bind", "source": "/d", "options": ["ro"]},
            {"destination": "/tmp", "type": "tmpfs", "options": ["ro"]},
        ]}));
        assert_eq!(
            finalize(&s).remount_readonly,
            [(1, "/run".into()), (3, "/dev".into()), (5, "/tmp".into())]
        );
    }

    #[test]
    fn readonly_and_masked_paths_in_order() {
        let s = spec(serde_json::json!({"linux": {
            "readonlyPaths": ["/proc/bus", "/proc/sys"],
            "maskedPaths": ["/proc/kcore", "/sys/firmware"]
        }}));
        let f = finalize(&s);
        assert_eq!(f.readonly, ["/proc/bus", "/proc/sys"]);
        assert_eq!(f.masked, ["/proc/kcore", "/sys/firmware"]);
    }

    #[test]
    fn a_readonly_root() {
        let s = spec(serde_json::json!({"root": {"path": "rootfs", "readonly": true}}));
        assert!(finalize(&s).readonly_root);
        let s = spec(serde_json::json!({"root": {"path": "rootfs", "readonly": false}}));
        assert!(!finalize(&s).readonly_root);
    }

    // mount namespaces

    #[test]
    fn a_joined_mount_namespace_counts() {
        let s = spec(
            serde_json::json!({"linux": {"namespaces": [{"type": "mount", "path": "/proc/1/ns/mnt"}]}}),
        );
        assert!(has_mount_namespace(&s));
    }

    #[test]
    fn other_namespaces_are_no_mount_namespace() {
        let s =
            spec(serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "user"}]}}));
        assert!(!has_mount_namespace(&s));
        assert!(!has_mount_namespace(&spec(serde_json::json!({}))));
    }

    // whole configs: what `kiln spec` writes

    fn entries(json: &str) -> Vec<Entry> {
        let s: Spec = serde_json::from_str(json).unwrap();
        s.mounts()
            .iter()
            .flatten()
            .map(|m| entry(m, Path::new(BUNDLE), DIR).unwrap())
            .collect()
    }

    #[test]
    fn runcs_default_config_mounts_as_runc() {
        let e = entries(include_str!("../spec/runc-spec.json"));
        let fstypes: Vec<&str> = e
            .iter()
            .map(|e| match &e.action {
                Action::Mount { fstype, .. } => fstype.as_str(),
                Action::Cgroup { .. } => "cgroup",
                a => panic!("{a:?}"),
            })
            .collect();
        assert_eq!(
            fstypes,
            [
                "proc", "tmpfs", "devpts", "tmpfs", "mqueue", "sysfs", "cgroup"
            ]
        );
        let dirs: Vec<bool> = e.iter().map(|e| e.require_directory).collect();
        assert_eq!(dirs, [true, false, false, false, false, true, false]);
        // /dev and /dev/shm say mode=, so neither takes the covered directory's.
        assert!(e.iter().all(|e| !e.keep_mode && e.mount_point == Kind::Dir));
        assert!(e.iter().take(6).all(|e| e.after.is_empty()));
        assert_eq!(
            e[6].action,
            Action::Cgroup {
                flags: MsFlags::MS_NOSUID
                    | MsFlags::MS_NOEXEC
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_RELATIME
                    | MsFlags::MS_RDONLY
            }
        );
    }

    #[test]
    fn runcs_default_config_finalizes_as_runc() {
        let s: Spec = serde_json::from_str(include_str!("../spec/runc-spec.json")).unwrap();
        let f = finalize(&s);
        assert_eq!(f.remount_readonly, []);
        assert_eq!(f.readonly.len(), 5);
        assert_eq!(f.masked.len(), 10);
        assert!(f.readonly_root);
        assert_eq!(
            root(&s).unwrap().unwrap().root,
            MsFlags::MS_SLAVE | MsFlags::MS_REC
        );
        assert_eq!(enter(&s, false).unwrap().how, How::Pivot);
        assert_eq!(dev(&s, false, true).unwrap().nodes.len(), 6);
    }

    #[test]
    fn runcs_rootless_config_binds_sys_and_has_host_nodes() {
        let json = include_str!("../spec/runc-spec-rootless.json");
        let e = entries(json);
        let sys = e
            .iter()
            .find(
                |e| matches!(&e.action, Action::Bind { source, .. } if source == Path::new("/sys")),
            )
            .expect("/sys bound");
        assert_eq!(
            sys.action,
            Action::Bind {
                source: "/sys".into(),
                flags: MsFlags::MS_BIND | MsFlags::MS_REC
            }
        );
        assert_eq!(
            sys.after,
            [After::Remount {
                flags: MsFlags::MS_NOSUID
                    | MsFlags::MS_NOEXEC
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_RDONLY,
                clear: F
            }]
        );
        let s: Spec = serde_json::from_str(json).unwrap();
        assert!(
            dev(&s, true, false)
                .unwrap()
                .nodes
                .iter()
                .all(|n| n.bind_host)
        );
    }
}
