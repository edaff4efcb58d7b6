//! Where the host's cgroup hierarchies are, and where a container's cgroup goes in each: pure
//! functions of what /proc/self/mountinfo and /proc/self/cgroup say (parsed by `procfs`),
//! unit-tested on captures from real hosts (`testdata/`). `cgroups::hierarchies` reads the two
//! files; `cgroups::new` turns the paths into a manager, which makes the directories.

use std::path::{Component, Path, PathBuf};

use super::Paths;
use crate::procfs::{Cgroup, Mount};

/// One cgroup hierarchy mounted on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchy {
    /// Where the host has it (`/sys/fs/cgroup/memory`).
    pub mount_point: PathBuf,
    /// `""` for cgroup2, or the v1 controllers as /proc/self/cgroup names them (`cpu,cpuacct`).
    pub controllers: String,
    /// This process's cgroup in it, relative to the hierarchy's root.
    pub own: String,
}

impl Hierarchy {
    pub fn is_v2(&self) -> bool {
        self.controllers.is_empty()
    }
}

/// The hierarchies in `mounts` that this process can reach, each with its own cgroup in it
/// from `own` (/proc/self/cgroup).
pub fn hierarchies(mounts: &[Mount], own: &[Cgroup]) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = vec![];
    for (i, m) in mounts.iter().enumerate() {
        // Hidden by a later mount on it or above it (a cgroup2 mounted over /sys/fs/cgroup in a
        // private namespace): not reachable, so not a hierarchy to use.
        if mounts[i + 1..]
            .iter()
            .any(|later| m.mount_point.starts_with(&later.mount_point))
        {
            continue;
        }
        let controllers = match m.fstype.as_str() {
            "cgroup2" => String::new(),
            // v1: the super options name the controllers (and name=systemd); the
            // /proc/self/cgroup line with the same set gives the canonical name.
            "cgroup" => {
                let opts: Vec<&str> = m.super_options.split(',').collect();
                match own.iter().find(|c| {
                    !c.controllers.is_empty() && c.controllers.split(',').all(|c| opts.contains(&c))
                }) {
                    Some(c) => c.controllers.clone(),
                    None => continue,
                }
            }
            _ => continue,
        };
        // The same hierarchy mounted twice: the first mount is as good as any.
        if out.iter().any(|h| h.controllers == controllers) {
            continue;
        }
        let own = own
            .iter()
            .find(|c| c.controllers == controllers)
            .map_or("/", |c| &c.path)
            .to_owned();
        out.push(Hierarchy {
            mount_point: m.mount_point.clone(),
            controllers,
            own,
        });
    }
    out
}

/// The container's directory in each hierarchy. An absolute cgroupsPath is below each
/// hierarchy's root; a relative one (and the default, the container's id) below this process's
/// own cgroup, on v2 below its parent.
pub fn paths(all: &[Hierarchy], cgroups_path: Option<&Path>, id: &str) -> Paths {
    let inner = inner_path(cgroups_path, id);
    let mut paths = Paths::new();
    for h in all {
        let base = if inner.is_absolute() {
            PathBuf::new()
        } else if h.is_v2() {
            // As runc: our own v2 cgroup most likely holds processes, and then no controller
            // could be enabled below it; its parent is the place for siblings.
            PathBuf::from(h.own.trim_start_matches('/'))
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        } else {
            PathBuf::from(h.own.trim_start_matches('/'))
        };
        paths.insert(
            h.controllers.clone(),
            h.mount_point
                .join(base)
                .join(inner.strip_prefix("/").unwrap_or(&inner)),
        );
    }
    paths
}

/// Each of `paths` relative to its hierarchy's root, as /proc/PID/cgroup and criu's
/// `--cgroup-root` write it: (controllers, `/dir`). Paths outside every hierarchy of `all` are
/// left out.
pub fn roots(all: &[Hierarchy], paths: &Paths) -> Vec<(String, String)> {
    paths
        .iter()
        .filter_map(|(ctrl, dir)| {
            let h = all.iter().find(|h| &h.controllers == ctrl)?;
            let rel = dir.strip_prefix(&h.mount_point).ok()?;
            Some((ctrl.clone(), format!("/{}", rel.display())))
        })
        .collect()
}

/// cgroupsPath made safe, as runc's CleanPath does: `..` cannot climb above the hierarchy's
/// root. Empty means a path named after the container, under kiln's own cgroup.
fn inner_path(path: Option<&Path>, id: &str) -> PathBuf {
    let path = path
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new(id));
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    if path.is_absolute() {
        Path::new("/").join(out)
    } else {
        out
    }
}

/// `sub` as a relative path that stays below where it is joined (`/a` is `a`, `a/../b` is
/// `b`), or None if a `..` climbs above it.
pub fn below(sub: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in sub.components() {
        match c {
            Component::ParentDir => out.pop().then_some(())?,
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::{parse_cgroup, parse_mountinfo};

    /// A fixture's lines, less its `#` comment (the kernel starts no line with `#`).
    fn uncommented(text: &str) -> String {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    macro_rules! host {
        ($mountinfo:literal, $cgroup:literal) => {
            hierarchies(
                &parse_mountinfo(&uncommented(include_str!(concat!("testdata/", $mountinfo)))),
                &parse_cgroup(&uncommented(include_str!(concat!("testdata/", $cgroup)))),
            )
        };
    }

    /// (controllers, mount point, own cgroup) of each hierarchy, in order.
    fn summary(all: &[Hierarchy]) -> Vec<(&str, &Path, &str)> {
        all.iter()
            .map(|h| {
                (
                    h.controllers.as_str(),
                    h.mount_point.as_path(),
                    h.own.as_str(),
                )
            })
            .collect()
    }

    const OWN_MEMORY: &str = "/process_api/977c086f3e2462cdcf55c8ce9ff68e40";

    /// hybrid.mountinfo's hierarchies, with memory where `memory` says (mount point, own).
    fn hybrid_host(
        memory: Option<(&'static str, &'static str)>,
    ) -> Vec<(&'static str, &'static Path, &'static str)> {
        let p = Path::new;
        let mut want = vec![
            ("cpu", p("/sys/fs/cgroup/cpu"), "/"),
            ("cpuacct", p("/sys/fs/cgroup/cpuacct"), "/"),
            ("cpuset", p("/sys/fs/cgroup/cpuset"), "/"),
            ("devices", p("/sys/fs/cgroup/devices"), "/"),
            ("freezer", p("/sys/fs/cgroup/freezer"), "/"),
            ("blkio", p("/sys/fs/cgroup/blkio"), "/"),
            ("pids", p("/sys/fs/cgroup/pids"), "/"),
            ("name=systemd", p("/sys/fs/cgroup/systemd"), "/"),
            ("", p("/sys/fs/cgroup/unified"), "/"),
        ];
        if let Some((at, own)) = memory {
            want.insert(3, ("memory", p(at), own));
        }
        want
    }

    #[test]
    fn hybrid_host_has_every_v1_hierarchy_and_the_unified_one() {
        let all = host!("hybrid.mountinfo", "hybrid.cgroup");
        assert_eq!(
            summary(&all),
            hybrid_host(Some(("/sys/fs/cgroup/memory", OWN_MEMORY)))
        );
        assert_eq!(all.iter().filter(|h| h.is_v2()).count(), 1);
    }

    #[test]
    fn v1_host_has_no_unified_hierarchy() {
        let all = host!("v1.mountinfo", "v1.cgroup");
        let mut want = hybrid_host(Some(("/sys/fs/cgroup/memory", OWN_MEMORY)));
        want.retain(|(c, _, _)| !c.is_empty());
        assert_eq!(summary(&all), want);
    }

    #[test]
    fn v2_host_has_one_hierarchy() {
        let all = host!("v2.mountinfo", "v2.cgroup");
        assert_eq!(summary(&all), [("", Path::new("/sys/fs/cgroup"), "/")]);
        assert!(all[0].is_v2());
    }

    #[test]
    fn a_hierarchy_under_a_later_mount_is_not_used() {
        let all = host!("hybrid-shadowed.mountinfo", "hybrid.cgroup");
        assert_eq!(summary(&all), hybrid_host(None));
    }

    /// The memory hierarchy hidden at /sys/fs/cgroup/memory is still reachable where it was
    /// bind-mounted before, at a path that needs every escape (and later in mountinfo).
    #[test]
    fn a_hidden_hierarchy_is_found_at_its_other_mount() {
        let all = host!("hybrid-escaped.mountinfo", "hybrid.cgroup");
        let mut want = hybrid_host(None);
        want.push(("memory", Path::new("/tmp/kiln cg\tmem\nory\\x"), OWN_MEMORY));
        assert_eq!(summary(&all), want);
    }

    #[test]
    fn a_hierarchy_mounted_twice_is_used_at_its_first_mount() {
        let all = host!("hybrid-twice.mountinfo", "hybrid.cgroup");
        assert_eq!(
            summary(&all),
            hybrid_host(Some(("/sys/fs/cgroup/memory", OWN_MEMORY)))
        );
    }

    #[test]
    fn rootless_in_a_delegated_v2_subtree() {
        let all = host!("v2.mountinfo", "v2-rootless.cgroup");
        let own = "/user.slice/user-1000.slice/user@1000.service/app.slice/kiln-shell.scope";
        assert_eq!(summary(&all), [("", Path::new("/sys/fs/cgroup"), own)]);
        // Beside its own (populated) cgroup, in the delegated subtree.
        assert_eq!(
            paths(&all, None, "ctr")[""],
            Path::new("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/ctr")
        );
    }

    /// A v1 mount whose controllers no line of /proc/self/cgroup has (and so of no hierarchy of
    /// this process's cgroup namespace), and mounts of other filesystems, are no hierarchies.
    #[test]
    fn only_known_cgroup_mounts_are_hierarchies() {
        let mounts = parse_mountinfo(
            "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
             33 31 0:30 / /sys/fs/cgroup/x rw - cgroup cgroup rw,name=x\n\
             34 31 0:31 / /sys/fs/cgroup/t rw - tmpfs tmpfs rw\n",
        );
        let own = parse_cgroup("1:cpu:/a\n");
        let all = hierarchies(&mounts, &own);
        assert_eq!(
            summary(&all),
            [("cpu", Path::new("/sys/fs/cgroup/cpu"), "/a")]
        );
        // A co-mounted hierarchy: /proc/self/cgroup's name, whatever the options' order.
        let mounts = parse_mountinfo(
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu\n",
        );
        let all = hierarchies(&mounts, &parse_cgroup("2:cpu,cpuacct:/\n"));
        assert_eq!(all[0].controllers, "cpu,cpuacct");
        // No line for the hierarchy at all (a cgroup2 not yet in /proc/self/cgroup): own is /.
        let mounts =
            parse_mountinfo("41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
        assert_eq!(hierarchies(&mounts, &[])[0].own, "/");
    }

    fn layout(fixture: &str) -> Vec<Hierarchy> {
        match fixture {
            "hybrid" => host!("hybrid.mountinfo", "hybrid.cgroup"),
            "v1" => host!("v1.mountinfo", "v1.cgroup"),
            "v2" => host!("v2.mountinfo", "v2.cgroup"),
            _ => unreachable!(),
        }
    }

    #[test]
    fn default_path_is_the_id_below_our_own_cgroup() {
        let p = paths(&layout("hybrid"), None, "ctr");
        assert_eq!(p.len(), 10);
        assert_eq!(p["cpu"], Path::new("/sys/fs/cgroup/cpu/ctr"));
        assert_eq!(
            p["memory"],
            Path::new("/sys/fs/cgroup/memory")
                .join(&OWN_MEMORY[1..])
                .join("ctr")
        );
        assert_eq!(p["name=systemd"], Path::new("/sys/fs/cgroup/systemd/ctr"));
        // Our own v2 cgroup is the root: its parent is the root too.
        assert_eq!(p[""], Path::new("/sys/fs/cgroup/unified/ctr"));
        assert_eq!(paths(&layout("hybrid"), Some(Path::new("")), "ctr"), p);
        assert_eq!(
            paths(&layout("v2"), None, "ctr"),
            Paths::from([(String::new(), PathBuf::from("/sys/fs/cgroup/ctr"))])
        );
    }

    #[test]
    fn absolute_path_is_below_each_hierarchys_root() {
        let p = paths(&layout("v1"), Some(Path::new("/kiln/pod/ctr")), "ctr");
        assert_eq!(p.len(), 9);
        assert_eq!(p["cpu"], Path::new("/sys/fs/cgroup/cpu/kiln/pod/ctr"));
        // Not below our own memory cgroup.
        assert_eq!(p["memory"], Path::new("/sys/fs/cgroup/memory/kiln/pod/ctr"));
        let v2 = host!("v2.mountinfo", "v2-rootless.cgroup");
        assert_eq!(
            paths(&v2, Some(Path::new("/kiln/ctr")), "ctr")[""],
            Path::new("/sys/fs/cgroup/kiln/ctr")
        );
    }

    #[test]
    fn roots_are_relative_to_each_hierarchy() {
        let all = layout("hybrid");
        let r = roots(&all, &paths(&all, Some(Path::new("/kiln/ctr")), "ctr"));
        assert_eq!(r.len(), 10);
        assert!(
            r.contains(&("cpu".to_owned(), "/kiln/ctr".to_owned())),
            "{r:?}"
        );
        assert!(
            r.contains(&(String::new(), "/kiln/ctr".to_owned())),
            "{r:?}"
        );
        let p = Paths::from([
            (
                "memory".to_owned(),
                PathBuf::from("/sys/fs/cgroup/memory/a"),
            ),
            (
                "nosuch".to_owned(),
                PathBuf::from("/sys/fs/cgroup/nosuch/a"),
            ),
        ]);
        assert_eq!(roots(&all, &p), [("memory".to_owned(), "/a".to_owned())]);
    }

    #[test]
    fn relative_path_is_below_our_own_cgroup() {
        let p = paths(&layout("hybrid"), Some(Path::new("pod/ctr")), "ctr");
        assert_eq!(p["pids"], Path::new("/sys/fs/cgroup/pids/pod/ctr"));
        assert_eq!(
            p["memory"],
            Path::new("/sys/fs/cgroup/memory")
                .join(&OWN_MEMORY[1..])
                .join("pod/ctr")
        );
        // v2: below our own cgroup's parent, one level up or more.
        let v2 = |own: &str| Hierarchy {
            mount_point: "/sys/fs/cgroup".into(),
            controllers: String::new(),
            own: own.into(),
        };
        let at = |own| paths(&[v2(own)], Some(Path::new("pod/ctr")), "ctr")[""].clone();
        assert_eq!(at("/a"), Path::new("/sys/fs/cgroup/pod/ctr"));
        assert_eq!(at("/a/b/c"), Path::new("/sys/fs/cgroup/a/b/pod/ctr"));
    }

    #[test]
    fn cgroups_path_cannot_climb() {
        assert_eq!(
            inner_path(Some(Path::new("/../../a/./b")), "x"),
            Path::new("/a/b")
        );
        assert_eq!(inner_path(Some(Path::new("../a")), "x"), Path::new("a"));
        assert_eq!(inner_path(None, "ctr"), Path::new("ctr"));
        assert_eq!(inner_path(Some(Path::new("")), "ctr"), Path::new("ctr"));
        let p = paths(&layout("v2"), Some(Path::new("/../../a")), "x");
        assert_eq!(p[""], Path::new("/sys/fs/cgroup/a"));
    }

    #[test]
    fn sub_cgroup_paths_stay_below() {
        assert_eq!(below(Path::new("/a/b")), Some(PathBuf::from("a/b")));
        assert_eq!(below(Path::new("a/./../b")), Some(PathBuf::from("b")));
        assert_eq!(below(Path::new("")), Some(PathBuf::new()));
        assert_eq!(below(Path::new("..")), None);
        assert_eq!(below(Path::new("a/../../b")), None);
    }
}
