//! One entry of `mounts`: the mount made, with the options `spec::mount_options` parsed, onto a
//! destination resolved inside the rootfs.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use oci_spec::runtime::Mount;

use crate::error::{Context, Error, Result};
use crate::rootfs::resolve::{self, fd_path};
use crate::spec::lexically_clean;
use crate::spec::mount_options::MountOptions;
use crate::sys;

/// The flags a bind remount must keep: inside a user namespace the kernel refuses to clear a
/// flag that is locked on the source, and outside one, clearing it would be a silent change.
pub fn locked_flags(path: &Path) -> Result<MsFlags> {
    let st = nix::sys::statvfs::statvfs(path).ctx(|| format!("statfs {}", path.display()))?;
    use nix::sys::statvfs::FsFlags as V;
    let mut f = MsFlags::empty();
    for (v, m) in [
        (V::ST_NOSUID, MsFlags::MS_NOSUID),
        (V::ST_NODEV, MsFlags::MS_NODEV),
        (V::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (V::ST_RDONLY, MsFlags::MS_RDONLY),
        (V::ST_NOATIME, MsFlags::MS_NOATIME),
        (V::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (V::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.flags().contains(v) {
            f |= m;
        }
    }
    Ok(f)
}

/// The kernel's limit on the mounts of one mount namespace.
const MOUNT_MAX: &str = "/proc/sys/fs/mount-max";

/// mount(2) and move_mount(2) say ENOSPC when the namespace would hold more mounts than the
/// kernel allows; "No space left on device" alone would send the user looking at their disks.
pub fn limit_hint(e: impl Into<std::io::Error>) -> std::io::Error {
    let e = e.into();
    if e.raw_os_error() != Some(libc::ENOSPC) {
        return e;
    }
    let max =
        std::fs::read_to_string(MOUNT_MAX).map_or_else(|_| "?".into(), |s| s.trim().to_owned());
    std::io::Error::new(
        e.kind(),
        format!("more mounts than the kernel allows in one mount namespace ({MOUNT_MAX} = {max})"),
    )
}

/// Refuses at once a `mounts` list that cannot fit beside the mounts the namespace already holds
/// (those of the host, copied into a new namespace, until pivot_root drops them), rather than
/// after making as many of them as fit.
pub fn check_count(entries: usize) -> Result<()> {
    let what = |e| Error::os(format!("mounts: counting them against {MOUNT_MAX}"), e);
    let max: usize = std::fs::read_to_string(MOUNT_MAX)
        .map_err(what)?
        .trim()
        .parse()
        .map_err(|e| Error::refused(format!("mounts: counting them against {MOUNT_MAX}"), e))?;
    let held = std::fs::read("/proc/self/mountinfo")
        .map_err(what)?
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    if entries + held > max {
        return Err(Error::refused(
            "mounts",
            format!(
                "{entries} entries, beside the {held} mounts the container's mount namespace starts with, exceed the kernel's limit of {max} mounts in one namespace ({MOUNT_MAX})"
            ),
        ));
    }
    Ok(())
}

/// What runc lets a mount cover inside /proc: the files lxcfs emulates.
const PROC_ALLOWED: &[&str] = &[
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
fn check_proc_destination(dest: &Path, source: Option<&Path>) -> std::result::Result<(), String> {
    let Ok(inside) = dest.strip_prefix("/proc") else {
        return Ok(());
    };
    if inside.as_os_str().is_empty() {
        let is_proc = source
            .and_then(|s| nix::sys::statfs::statfs(s).ok())
            .is_some_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC);
        return if is_proc {
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

/// Where the resolved `fd` lies as the container will see it (`/proc/sys` for
/// `ROOTFS/proc/sys`).
fn in_root(root: &OwnedFd, fd: &OwnedFd) -> std::io::Result<PathBuf> {
    let root = std::fs::read_link(fd_path(root))?;
    let path = std::fs::read_link(fd_path(fd))?;
    let rel = path
        .strip_prefix(&root)
        .map_err(|_| std::io::Error::other(format!("{} is outside the root", path.display())))?;
    Ok(Path::new("/").join(rel))
}

/// Whether `m` is mounted writable and made read-only only by `finalize`: a read-only tmpfs or
/// /dev, where mount points, device nodes and modes are still to be made (runc does the same).
pub fn readonly_deferred(m: &Mount) -> bool {
    let Ok(opts) = MountOptions::parse(m.options().as_deref().unwrap_or_default()) else {
        return false;
    };
    let typ = m.typ().as_deref().unwrap_or("");
    opts.flags.contains(MsFlags::MS_RDONLY)
        && !opts.is_bind()
        && typ != "bind"
        && (typ == "tmpfs" || lexically_clean(m.destination()) == Path::new("/dev"))
}

/// Mounts one `mounts` entry inside the rootfs open at `root`.
/// `tree`: the detached mount `create` prepared for this entry (see `idmapped::Trees::get`).
pub fn mount_entry(
    root: &OwnedFd,
    m: &Mount,
    index: usize,
    bundle: &Path,
    cgroupns: bool,
    cgroup2: Option<&Path>,
    tree: Option<(BorrowedFd, bool)>,
) -> Result<()> {
    let field = || format!("mounts[{index}] ({})", m.destination().display());
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default())
        .map_err(|e| Error::refused(field(), e))?;
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = opts.is_bind() || typ == "bind";
    let source = m.source().as_ref().map(|s| {
        if bind && s.is_relative() {
            bundle.join(s)
        } else {
            s.clone()
        }
    });
    // A plain bind's tree stands in only for a source that init, as the user namespace's root,
    // cannot reach: a bind made here keeps the flags the kernel locks on the source's mount
    // (runc asks its parent for the source under the same condition).
    let tree = tree
        .filter(|&(_, idmapped)| {
            idmapped
                || source
                    .as_ref()
                    .is_some_and(|s| std::fs::metadata(s).is_err())
        })
        .map(|(t, _)| t);
    let flags = if readonly_deferred(m) {
        opts.flags - MsFlags::MS_RDONLY
    } else {
        opts.flags
    };

    // runc's rule: procfs and sysfs go on a directory, never through a symlink to elsewhere.
    if matches!(typ, "proc" | "sysfs")
        && let Ok(existing) = resolve::open(root, m.destination(), libc::O_PATH | libc::O_NOFOLLOW)
        && !nix::sys::stat::fstat(existing.as_raw_fd())
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    {
        let why = format!(
            "{typ} must be mounted on a directory, and {} is not one",
            m.destination().display()
        );
        return Err(Error::refused(format!("mounts[{index}].destination"), why));
    }

    // runc gives a tmpfs over an existing directory that directory's mode (Podman's --read-only
    // /run stays 0755 instead of tmpfs's 1777). runc 1.1 does so even over an explicit mode=;
    // here mode= wins, as the config asked for it.
    let keep_mode = (typ == "tmpfs" && !opts.data.iter().any(|d| d.starts_with("mode=")))
        .then(|| resolve::open(root, m.destination(), libc::O_PATH | libc::O_DIRECTORY).ok())
        .flatten()
        .and_then(|fd| nix::sys::stat::fstat(fd.as_raw_fd()).ok())
        .map(|st| st.st_mode & 0o7777);

    // A bind source that is a file needs a file to mount onto; everything else a directory.
    let dest_is_file = bind
        && match tree {
            Some(t) => nix::sys::stat::fstat(t.as_raw_fd())
                .is_ok_and(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR),
            None => source
                .as_ref()
                .is_some_and(|s| std::fs::metadata(s).is_ok_and(|md| !md.is_dir())),
        };
    let dest = if dest_is_file {
        resolve::create_file(root, m.destination())
    } else {
        resolve::mkdir_all(root, m.destination())
    }
    .map_err(|e| Error::os(format!("{}: creating the mount point", field()), e))?;
    if !matches!(typ, "proc" | "sysfs") {
        let resolved =
            in_root(root, &dest).map_err(|e| Error::os(format!("{}: resolving", field()), e))?;
        check_proc_destination(&resolved, source.as_deref())
            .map_err(|why| Error::refused(format!("mounts[{index}].destination"), why))?;
    }
    let target = fd_path(&dest);

    if typ == "cgroup" {
        return crate::rootfs::cgroupfs::mount_cgroups(
            &target,
            opts.flags,
            cgroupns,
            cgroup2,
            || resolve::open(root, m.destination(), libc::O_PATH | libc::O_DIRECTORY),
        )
        .map_err(|e| Error::os(format!("{}: mount cgroup", field()), limit_hint(e)));
    }
    if opts.tmpcopyup && typ == "tmpfs" {
        tmpcopyup(source.as_deref(), &opts, flags, &dest).map_err(|e| Error::os(field(), e))?;
    } else if let Some(tree) = tree {
        let src = source.as_deref().unwrap_or(Path::new(""));
        sys::move_mount(tree, dest.as_fd())
            .map_err(limit_hint)
            .ctx(|| {
                format!(
                    "{}: attaching the detached mount of {}",
                    field(),
                    src.display()
                )
            })?;
    } else if bind {
        let src = source
            .as_ref()
            .ok_or_else(|| Error::refused(field(), "a bind mount needs a source"))?;
        let rec = opts.flags & MsFlags::MS_REC;
        mount(
            Some(src),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | rec,
            None::<&str>,
        )
        .map_err(limit_hint)
        .ctx(|| format!("{}: bind {}", field(), src.display()))?;
    } else {
        let data = opts.data.join(",");
        mount(
            source.as_deref().or(Some(Path::new(typ))),
            &target,
            Some(typ),
            flags,
            (!data.is_empty()).then_some(data.as_str()),
        )
        .map_err(limit_hint)
        .ctx(|| format!("{}: mount {typ}{}", field(), privileged_hint(typ)))?;
    }
    // What follows acts on the new mount, which `dest` (opened before it) does not name.
    let flags = if dest_is_file {
        libc::O_PATH
    } else {
        libc::O_PATH | libc::O_DIRECTORY
    };
    let mounted = resolve::open(root, m.destination(), flags)
        .map_err(|e| Error::os(format!("{}: reopening", field()), e))?;
    let target = fd_path(&mounted);
    // mount(2) ignores every flag but MS_REC on a new bind: ro, nosuid, ... need a remount.
    let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if bind && !extra.is_empty() {
        let keep = locked_flags(&target)? - opts.clear;
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra | keep,
            None::<&str>,
        )
        .ctx(|| {
            format!(
                "{}: remount with {:?}",
                field(),
                m.options().as_deref().unwrap_or_default()
            )
        })?;
    }
    if let Some(mode) = keep_mode {
        let perms = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode);
        std::fs::set_permissions(&target, perms)
            .ctx(|| format!("{}: chmod {mode:o} like the directory it covers", field()))?;
    }
    apply_after(&target, &opts).map_err(|e| Error::os(field(), e))
}

/// What to do when the kernel refuses a filesystem to a container in a user namespace: the
/// filesystems below need privileges over a namespace the container does not own.
fn privileged_hint(typ: &str) -> &'static str {
    let in_userns = crate::namespaces::in_user_namespace();
    match typ {
        "sysfs" if in_userns => {
            " (a user namespace may mount sysfs only with a network namespace of its own; or bind /sys, as `spec --rootless` does)"
        }
        "mqueue" if in_userns => {
            " (a user namespace may mount mqueue only with an ipc namespace of its own)"
        }
        "proc" if in_userns => {
            " (a user namespace may mount proc only with a pid namespace of its own)"
        }
        _ => "",
    }
}

/// Propagation and recursive attributes, which mount(2) cannot set in the same call.
fn apply_after(target: &Path, opts: &MountOptions) -> std::io::Result<()> {
    for p in &opts.propagation {
        mount(None::<&str>, target, None::<&str>, *p, None::<&str>)?;
    }
    if opts.attr_set != 0 || opts.attr_clr != 0 {
        let fd = nix::fcntl::open(
            target,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        // SAFETY: `fd` was just returned by open and is owned here alone.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        sys::mount_setattr(fd.as_fd(), true, opts.attr_set, opts.attr_clr)?;
    }
    Ok(())
}

/// A tmpfs that starts with a copy of what the directory it covers held (runc's `tmpcopyup`).
/// The tmpfs is made detached (fsopen, fsmount), filled through its fd and attached over `dest`
/// only then: no host path ever holds it, so concurrent creates cannot meet. The caller applies
/// propagation to the attached mount, which `dest` (the directory under it) does not name.
fn tmpcopyup(
    source: Option<&Path>,
    opts: &MountOptions,
    flags: MsFlags,
    dest: &OwnedFd,
) -> std::io::Result<()> {
    let ctx = |what: &str, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("tmpcopyup: {what}: {e}"))
    };
    let fs = sys::fsopen("tmpfs").map_err(|e| ctx("fsopen tmpfs", e))?;
    // The mount's source as mount(2) would record it: /proc/mounts shows it (Podman's --tmpfs
    // is `tmpfs`), where fsmount alone says "none".
    if let Some(src) = source.and_then(Path::to_str) {
        sys::fsconfig_set(fs.as_fd(), "source", Some(src)).map_err(|e| ctx("source", e))?;
    }
    for d in &opts.data {
        let (key, value) = match d.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (d.as_str(), None),
        };
        sys::fsconfig_set(fs.as_fd(), key, value).map_err(|e| ctx(&format!("option {d:?}"), e))?;
    }
    for &(flag, name) in SUPERBLOCK_FLAGS {
        if flags.contains(flag) {
            sys::fsconfig_set(fs.as_fd(), name, None)
                .map_err(|e| ctx(&format!("option {name:?}"), e))?;
        }
    }
    sys::fsconfig_create(fs.as_fd()).map_err(|e| ctx("creating the tmpfs", e))?;
    let tmpfs = sys::fsmount(fs.as_fd(), mount_attrs(flags)).map_err(|e| ctx("fsmount", e))?;
    copy_tree(&fd_path(dest), &fd_path(&tmpfs), Path::new(""))?;
    sys::move_mount(tmpfs.as_fd(), dest.as_fd())
        .map_err(|e| ctx("attaching the tmpfs", limit_hint(e)))
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

/// Copies what directory `from` holds into the empty directory `to`, keeping types, modes,
/// owners and symlinks (as runc's tmpcopyup does). In-process, not with cp(1): `from` is a
/// /proc/self/fd path, which names nothing in a child process. Sockets are not copied.
fn copy_tree(from: &Path, to: &Path, rel: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let ctx = |rel: &Path, e: std::io::Error| {
        std::io::Error::new(
            e.kind(),
            format!("tmpcopyup: copying /{}: {e}", rel.display()),
        )
    };
    for entry in std::fs::read_dir(from).map_err(|e| ctx(rel, e))? {
        let entry = entry.map_err(|e| ctx(rel, e))?;
        let (src, dst, rel) = (
            entry.path(),
            to.join(entry.file_name()),
            rel.join(entry.file_name()),
        );
        let copy = || -> std::io::Result<()> {
            let md = std::fs::symlink_metadata(&src)?;
            let ft = md.file_type();
            if ft.is_dir() {
                std::fs::create_dir(&dst)?;
            } else if ft.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
            } else if ft.is_file() {
                // O_NOFOLLOW: a file swapped for a symlink meanwhile must not pull a host file in.
                let mut r = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&src)?;
                std::io::copy(&mut r, &mut std::fs::File::create_new(&dst)?)?;
            } else if md.mode() & libc::S_IFMT == libc::S_IFSOCK {
                return Ok(());
            } else {
                let kind = nix::sys::stat::SFlag::from_bits_truncate(md.mode() & libc::S_IFMT);
                nix::sys::stat::mknod(
                    &dst,
                    kind,
                    nix::sys::stat::Mode::from_bits_truncate(md.mode()),
                    md.rdev(),
                )?;
            }
            std::os::unix::fs::lchown(&dst, Some(md.uid()), Some(md.gid()))?;
            if !ft.is_symlink() {
                std::fs::set_permissions(
                    &dst,
                    std::fs::Permissions::from_mode(md.mode() & 0o7777),
                )?;
            }
            Ok(())
        };
        copy().map_err(|e| ctx(&rel, e))?;
        if entry.file_type().map_err(|e| ctx(&rel, e))?.is_dir() {
            copy_tree(&src, &dst, &rel)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_procfs_over_proc_and_lxcfs_files_inside_it() {
        let host_proc = Some(Path::new("/proc"));
        assert!(check_proc_destination(Path::new("/proc"), host_proc).is_ok());
        assert!(check_proc_destination(Path::new("/proc"), Some(Path::new("/tmp"))).is_err());
        assert!(
            check_proc_destination(Path::new("/proc/cpuinfo"), Some(Path::new("/tmp"))).is_ok()
        );
        assert!(check_proc_destination(Path::new("/proc/sys"), host_proc).is_err());
        assert!(
            check_proc_destination(Path::new("/proc/sys/kernel/ns_last_pid/x"), host_proc).is_err()
        );
        assert!(check_proc_destination(Path::new("/procfs/sys"), None).is_ok());
    }

    #[test]
    fn readonly_tmpfs_and_dev_are_made_readonly_last() {
        let m = |dest: &str, typ: &str, opts: &[&str]| {
            oci_spec::runtime::MountBuilder::default()
                .destination(dest)
                .typ(typ)
                .options(opts.iter().map(|o| o.to_string()).collect::<Vec<_>>())
                .build()
                .unwrap()
        };
        assert!(readonly_deferred(&m("/dev", "tmpfs", &["ro", "nosuid"])));
        assert!(readonly_deferred(&m("/run", "tmpfs", &["ro"])));
        assert!(readonly_deferred(&m("//dev/./", "devtmpfs", &["ro"])));
        assert!(!readonly_deferred(&m("/dev", "tmpfs", &["nosuid"])));
        assert!(!readonly_deferred(&m("/sys", "sysfs", &["ro"])));
        assert!(!readonly_deferred(&m("/dev", "bind", &["rbind", "ro"])));
    }

    #[test]
    fn per_mount_flags_become_mount_attributes() {
        let o = MountOptions::parse(&["nosuid", "nodev", "noatime", "sync"]).unwrap();
        assert_eq!(
            mount_attrs(o.flags),
            libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOATIME
        );
    }
}
