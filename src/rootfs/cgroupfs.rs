//! A `cgroup` mount: the container sees the cgroup hierarchies as the host lays them out (pure
//! v2, or v1 controllers plus a `unified` v2 on a hybrid host), but only its own subtree. With a
//! cgroup namespace the kernel shows that subtree when the filesystem is mounted afresh; without
//! one, kiln bind-mounts the container's own cgroup directory from the host's mount.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

/// One cgroup hierarchy mounted on the host.
struct Hierarchy {
    /// Where the host has it (`/sys/fs/cgroup/memory`).
    mount_point: PathBuf,
    /// `cgroup2`, or the v1 controllers as /proc/self/cgroup names them (`cpu,cpuacct`).
    controllers: String,
    /// This process's cgroup in it, relative to the hierarchy's root.
    path: String,
}

fn hierarchies() -> std::io::Result<Vec<Hierarchy>> {
    let own = std::fs::read_to_string("/proc/self/cgroup")?;
    let own: Vec<(&str, &str)> = own.lines().filter_map(|l| l.splitn(3, ':').nth(1).zip(l.splitn(3, ':').nth(2))).collect();
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = vec![];
    for line in info.lines() {
        let (pre, post) = line.split_once(" - ").unwrap_or((line, ""));
        let mut post = post.split(' ');
        let (Some(fstype), _, Some(super_opts)) = (post.next(), post.next(), post.next()) else { continue };
        let Some(mount_point) = pre.split(' ').nth(4) else { continue };
        let controllers = match fstype {
            "cgroup2" => "cgroup2".to_owned(),
            // v1: the super options name the controllers (and name=systemd); find the
            // /proc/self/cgroup line with the same set.
            "cgroup" => {
                let opts: Vec<&str> = super_opts.split(',').collect();
                match own.iter().find(|(c, _)| !c.is_empty() && c.split(',').all(|c| opts.contains(&c))) {
                    Some((c, _)) => (*c).to_owned(),
                    None => continue,
                }
            }
            _ => continue,
        };
        let key = if controllers == "cgroup2" { "" } else { controllers.as_str() };
        let path = own.iter().find(|(c, _)| *c == key).map_or("/", |(_, p)| p).to_owned();
        out.push(Hierarchy { mount_point: PathBuf::from(mount_point), controllers, path });
    }
    Ok(out)
}

/// `reopen` resolves the destination again: the fd behind `target` names the directory under the
/// new tmpfs, not the tmpfs itself.
pub fn mount_cgroups(target: &Path, flags: MsFlags, cgroupns: bool, reopen: impl Fn() -> std::io::Result<std::os::fd::OwnedFd>) -> std::io::Result<()> {
    let all = hierarchies()?;
    let pure_v2 = all.len() == 1 && all[0].controllers == "cgroup2";
    if pure_v2 {
        return mount_one(&all[0], target, flags, cgroupns);
    }
    // v1 or hybrid: a tmpfs holding one directory per hierarchy, as /sys/fs/cgroup on the host.
    mount(Some("tmpfs"), target, Some("tmpfs"), flags - MsFlags::MS_RDONLY, Some("mode=755"))?;
    let tmpfs = reopen()?;
    let target = &crate::rootfs::mount::fd_path(&tmpfs);
    for h in all.iter().filter(|h| h.mount_point.parent() == Some(Path::new("/sys/fs/cgroup"))) {
        let name = h.mount_point.file_name().expect("has a parent, so a name");
        let sub = target.join(name);
        std::fs::create_dir_all(&sub)?;
        mount_one(h, &sub, flags, cgroupns)?;
        // `cpu,cpuacct` is also reachable as `cpu` and `cpuacct`, as on the host.
        let name = name.to_string_lossy();
        if name.contains(',') {
            for alias in name.split(',') {
                let _ = std::os::unix::fs::symlink(name.as_ref(), target.join(alias));
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        mount(None::<&str>, target, None::<&str>, MsFlags::MS_REMOUNT | flags, Some("mode=755"))?;
    }
    Ok(())
}

fn mount_one(h: &Hierarchy, target: &Path, flags: MsFlags, cgroupns: bool) -> std::io::Result<()> {
    if cgroupns {
        let (fstype, data) = if h.controllers == "cgroup2" { ("cgroup2", None) } else { ("cgroup", Some(h.controllers.as_str())) };
        return Ok(mount(Some(fstype), target, Some(fstype), flags, data)?);
    }
    let source = h.mount_point.join(h.path.trim_start_matches('/'));
    mount(Some(&source), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
    let keep = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(None::<&str>, target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | (flags & (keep | MsFlags::MS_RDONLY)), None::<&str>)?;
    Ok(())
}
