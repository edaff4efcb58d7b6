//! One entry of `mounts`: the mount `plan::entry` plans, made onto a destination resolved inside
//! the rootfs.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use oci_spec::runtime::Mount;

use crate::error::{Context, Error, Result};
use crate::rootfs::plan::{self, Action, After, Kind};
use crate::rootfs::resolve::{self, fd_path};
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
    let max: usize = crate::procfs::read_single(MOUNT_MAX)
        .map_err(what)?
        .trim()
        .parse()
        .map_err(|e| Error::refused(format!("mounts: counting them against {MOUNT_MAX}"), e))?;
    let held = crate::procfs::read_records("/proc/self/mountinfo")
        .map_err(what)?
        .lines()
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

/// Mounts one `mounts` entry inside the rootfs open at `root`, as `plan::entry` says.
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
    let facts = source_facts(m, bundle, tree);
    let p = plan::entry(m, bundle, facts).map_err(|why| Error::refused(field(), why))?;
    let typ = m.typ().as_deref().unwrap_or("");

    if p.require_directory
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
    let kept_mode = p
        .keep_mode
        .then(|| resolve::open(root, m.destination(), libc::O_PATH | libc::O_DIRECTORY).ok())
        .flatten()
        .and_then(|fd| nix::sys::stat::fstat(fd.as_raw_fd()).ok())
        .map(|st| st.st_mode & 0o7777);
    let dest = match p.mount_point {
        Kind::File => resolve::create_file(root, m.destination()),
        Kind::Dir => resolve::mkdir_all(root, m.destination()),
    }
    .map_err(|e| Error::os(format!("{}: creating the mount point", field()), e))?;
    if let Some(source) = &p.check_proc {
        let resolved =
            in_root(root, &dest).map_err(|e| Error::os(format!("{}: resolving", field()), e))?;
        plan::proc_verdict(&resolved, source.as_deref(), || {
            source
                .as_ref()
                .and_then(|s| nix::sys::statfs::statfs(s).ok())
                .is_some_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
        })
        .map_err(|why| Error::refused(format!("mounts[{index}].destination"), why))?;
    }
    let target = fd_path(&dest);

    match p.action {
        Action::Cgroup { flags } => crate::cgroups::hierarchies()
            .and_then(|all| {
                crate::rootfs::cgroupfs::mount_cgroups(
                    &target,
                    &plan::cgroup(&all, flags, cgroupns, cgroup2),
                    || resolve::open(root, m.destination(), libc::O_PATH | libc::O_DIRECTORY),
                )
            })
            .map_err(|e| Error::os(format!("{}: mount cgroup", field()), limit_hint(e)))?,
        Action::Tmpcopyup(t) => tmpcopyup(&t, &dest).map_err(|e| Error::os(field(), e))?,
        Action::Attach { source } => {
            // The plan attaches only the tree `source_facts` found: never None here.
            let tree = tree.map(|(t, _)| t).ok_or_else(|| {
                Error::refused(field(), "the detached mount of the source is gone")
            })?;
            sys::move_mount(tree, dest.as_fd())
                .map_err(limit_hint)
                .ctx(|| {
                    format!(
                        "{}: attaching the detached mount of {}",
                        field(),
                        source.display()
                    )
                })?
        }
        Action::Bind { source, flags } => {
            mount(Some(&source), &target, None::<&str>, flags, None::<&str>)
                .map_err(limit_hint)
                .ctx(|| format!("{}: bind {}", field(), source.display()))?
        }
        Action::Mount {
            source,
            fstype,
            flags,
            data,
        } => mount(
            Some(&source),
            &target,
            Some(fstype.as_str()),
            flags,
            data.as_deref(),
        )
        .map_err(limit_hint)
        .ctx(|| format!("{}: mount {fstype}{}", field(), privileged_hint(&fstype)))?,
        Action::Refuse { why } => return Err(Error::refused(field(), why)),
    }
    if p.after.is_empty() {
        return Ok(());
    }
    let flags = match p.mount_point {
        Kind::File => libc::O_PATH,
        Kind::Dir => libc::O_PATH | libc::O_DIRECTORY,
    };
    let mounted = resolve::open(root, m.destination(), flags)
        .map_err(|e| Error::os(format!("{}: reopening", field()), e))?;
    let target = fd_path(&mounted);
    for step in p.after {
        match step {
            After::Remount { flags, clear } => {
                let keep = locked_flags(&target)? - clear;
                mount(
                    None::<&str>,
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | keep,
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
            After::RestoreMode => {
                if let Some(mode) = kept_mode {
                    let perms =
                        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(
                            mode,
                        );
                    std::fs::set_permissions(&target, perms).ctx(|| {
                        format!("{}: chmod {mode:o} like the directory it covers", field())
                    })?;
                }
            }
            After::Propagate(p) => mount(None::<&str>, &target, None::<&str>, p, None::<&str>)
                .map_err(|e| Error::os(field(), e))?,
            After::SetAttr { set, clr } => {
                set_attrs(&target, set, clr).map_err(|e| Error::os(field(), e))?
            }
        }
    }
    Ok(())
}

/// What `plan::entry` needs to know of a bind source, as init sees it now.
fn source_facts(m: &Mount, bundle: &Path, tree: Option<(BorrowedFd, bool)>) -> plan::Source {
    let kind = |dir: bool| if dir { Kind::Dir } else { Kind::File };
    plan::Source {
        tree: tree.map(|(t, idmapped)| plan::Tree {
            idmapped,
            kind: kind(
                nix::sys::stat::fstat(t.as_raw_fd())
                    .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR),
            ),
        }),
        kind: plan::bind_source(m, bundle)
            .and_then(|s| std::fs::metadata(s).ok())
            .map(|md| kind(md.is_dir())),
    }
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

/// Recursive attributes, over the whole tree at `target`.
fn set_attrs(target: &Path, set: u64, clr: u64) -> std::io::Result<()> {
    let fd = nix::fcntl::open(
        target,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: `fd` was just returned by open and is owned here alone.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    sys::mount_setattr(fd.as_fd(), true, set, clr)
}

/// A tmpfs that starts with a copy of what the directory it covers held (runc's `tmpcopyup`),
/// made as `t` says and attached over `dest`.
fn tmpcopyup(t: &plan::Tmpcopyup, dest: &OwnedFd) -> std::io::Result<()> {
    let ctx = |what: &str, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("tmpcopyup: {what}: {e}"))
    };
    let fs = sys::fsopen("tmpfs").map_err(|e| ctx("fsopen tmpfs", e))?;
    if let Some(src) = &t.source {
        sys::fsconfig_set(fs.as_fd(), "source", Some(src)).map_err(|e| ctx("source", e))?;
    }
    for (key, value) in &t.options {
        sys::fsconfig_set(fs.as_fd(), key, value.as_deref()).map_err(|e| {
            let option = match value {
                Some(v) => format!("{key}={v}"),
                None => key.clone(),
            };
            ctx(&format!("option {option:?}"), e)
        })?;
    }
    sys::fsconfig_create(fs.as_fd()).map_err(|e| ctx("creating the tmpfs", e))?;
    let tmpfs = sys::fsmount(fs.as_fd(), t.attrs).map_err(|e| ctx("fsmount", e))?;
    copy_tree(&fd_path(dest), &fd_path(&tmpfs), Path::new(""))?;
    sys::move_mount(tmpfs.as_fd(), dest.as_fd())
        .map_err(|e| ctx("attaching the tmpfs", limit_hint(e)))
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
