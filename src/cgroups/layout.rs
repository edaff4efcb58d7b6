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
        if !matches!(m.fstype.as_str(), "cgroup" | "cgroup2") {
            continue;
        }
        // Hidden by a later mount on it or above it (a cgroup2 mounted over /sys/fs/cgroup in a
        // private namespace): not reachable, so not a hierarchy to use. Asked of cgroup mounts
        // alone, so that a host of thousands of mounts (a Kubernetes node) costs a scan per
        // hierarchy, not one per pair of mounts.
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

    const ROOTLESS_OWN: &str =
        "/user.slice/user-1000.slice/user@1000.service/app.slice/kiln-shell.scope";

    fn rootless() -> Vec<Hierarchy> {
        host!("v2.mountinfo", "v2-rootless.cgroup")
    }

    #[test]
    fn each_host_has_its_count_of_hierarchies() {
        assert_eq!(layout("hybrid").len(), 10);
        assert_eq!(layout("v1").len(), 9);
        assert_eq!(layout("v2").len(), 1);
        assert_eq!(rootless().len(), 1);
        assert_eq!(host!("hybrid-shadowed.mountinfo", "hybrid.cgroup").len(), 9);
        assert_eq!(host!("hybrid-escaped.mountinfo", "hybrid.cgroup").len(), 10);
        assert_eq!(host!("hybrid-twice.mountinfo", "hybrid.cgroup").len(), 10);
    }

    #[test]
    fn only_the_unified_hierarchy_is_v2() {
        for h in layout("hybrid") {
            assert_eq!(
                h.is_v2(),
                h.mount_point == Path::new("/sys/fs/cgroup/unified")
            );
        }
        assert!(layout("v1").iter().all(|h| !h.is_v2()));
    }

    #[test]
    fn v1_default_path_is_below_our_own_cgroup() {
        let p = paths(&layout("v1"), None, "ctr");
        assert_eq!(p.len(), 9);
        assert!(!p.contains_key(""));
        assert_eq!(p["devices"], Path::new("/sys/fs/cgroup/devices/ctr"));
        assert_eq!(
            p["memory"],
            Path::new("/sys/fs/cgroup/memory")
                .join(&OWN_MEMORY[1..])
                .join("ctr")
        );
    }

    #[test]
    fn v1_nested_relative_path() {
        let p = paths(&layout("v1"), Some(Path::new("a/b/c")), "ctr");
        assert_eq!(p["freezer"], Path::new("/sys/fs/cgroup/freezer/a/b/c"));
        assert_eq!(
            p["memory"],
            Path::new("/sys/fs/cgroup/memory")
                .join(&OWN_MEMORY[1..])
                .join("a/b/c")
        );
    }

    #[test]
    fn v2_relative_path_at_the_root() {
        let p = paths(&layout("v2"), Some(Path::new("pod/ctr")), "ctr");
        assert_eq!(p[""], Path::new("/sys/fs/cgroup/pod/ctr"));
    }

    #[test]
    fn v2_absolute_nested_path() {
        let p = paths(
            &layout("v2"),
            Some(Path::new("/kubepods/burstable/pod1/ctr")),
            "ctr",
        );
        assert_eq!(
            p[""],
            Path::new("/sys/fs/cgroup/kubepods/burstable/pod1/ctr")
        );
    }

    #[test]
    fn v2_empty_path_is_the_id() {
        assert_eq!(
            paths(&layout("v2"), Some(Path::new("")), "my-ctr")[""],
            Path::new("/sys/fs/cgroup/my-ctr")
        );
    }

    /// Rootless, a relative path stays in the delegated subtree, beside kiln's own scope.
    #[test]
    fn rootless_relative_path_stays_delegated() {
        let p = paths(&rootless(), Some(Path::new("kiln/ctr")), "ctr");
        assert_eq!(
            p[""],
            Path::new(
                "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/kiln/ctr"
            )
        );
    }

    /// `..` cannot climb out of the delegated subtree either: it is dropped at the start.
    #[test]
    fn rootless_relative_path_cannot_climb() {
        let p = paths(&rootless(), Some(Path::new("../../ctr")), "ctr");
        assert_eq!(
            p[""],
            Path::new("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/ctr")
        );
        let p = paths(&rootless(), Some(Path::new("a/../../b")), "ctr");
        assert!(p[""].ends_with("app.slice/b"), "{}", p[""].display());
    }

    /// An absolute path is the hierarchy's root's, delegated or not (create then says whether
    /// the user may make it).
    #[test]
    fn rootless_absolute_path_is_below_the_root() {
        let p = paths(
            &rootless(),
            Some(Path::new(
                "/user.slice/user-1000.slice/user@1000.service/ctr",
            )),
            "ctr",
        );
        assert_eq!(
            p[""],
            Path::new("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/ctr")
        );
    }

    #[test]
    fn rootless_own_cgroup_is_the_scope() {
        assert_eq!(rootless()[0].own, ROOTLESS_OWN);
    }

    /// A shadowed hierarchy has no path; the others are as on the plain host.
    #[test]
    fn shadowed_host_paths_leave_memory_out() {
        let p = paths(
            &host!("hybrid-shadowed.mountinfo", "hybrid.cgroup"),
            None,
            "ctr",
        );
        assert_eq!(p.len(), 9);
        assert!(!p.contains_key("memory"));
        let plain = paths(&layout("hybrid"), None, "ctr");
        for (k, v) in &p {
            assert_eq!(&plain[k], v, "{k}");
        }
    }

    /// The memory hierarchy's path is below its other mount point, escapes and all.
    #[test]
    fn escaped_host_paths_use_the_mount_found() {
        let p = paths(
            &host!("hybrid-escaped.mountinfo", "hybrid.cgroup"),
            Some(Path::new("/k")),
            "ctr",
        );
        assert_eq!(p["memory"], Path::new("/tmp/kiln cg\tmem\nory\\x/k"));
        assert_eq!(p["cpu"], Path::new("/sys/fs/cgroup/cpu/k"));
    }

    #[test]
    fn twice_mounted_host_has_one_path_per_hierarchy() {
        let p = paths(
            &host!("hybrid-twice.mountinfo", "hybrid.cgroup"),
            None,
            "ctr",
        );
        assert_eq!(p.len(), 10);
        assert_eq!(p["pids"], Path::new("/sys/fs/cgroup/pids/ctr"));
    }

    #[test]
    fn no_hierarchies_no_paths() {
        assert!(paths(&[], None, "ctr").is_empty());
        assert!(hierarchies(&[], &parse_cgroup("0::/\n")).is_empty());
    }

    /// A later mount below a hierarchy's mount point hides nothing of it (only one on it or
    /// above it does), and a sibling whose name merely begins the same is no parent.
    #[test]
    fn only_mounts_on_or_above_hide_a_hierarchy() {
        let mounts = parse_mountinfo(
            "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
             33 31 0:30 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n\
             34 32 0:31 / /sys/fs/cgroup/cpu/sub rw - tmpfs tmpfs rw\n",
        );
        let own = parse_cgroup("2:cpu:/\n3:cpuset:/\n");
        let got: Vec<String> = hierarchies(&mounts, &own)
            .into_iter()
            .map(|h| h.controllers)
            .collect();
        assert_eq!(got, ["cpu", "cpuset"]);
    }

    /// A tmpfs over the whole /sys/fs/cgroup (a private namespace's) hides every hierarchy
    /// below it; a cgroup2 mounted on it after that is the one.
    #[test]
    fn a_mount_over_the_cgroup_root_hides_everything_before_it() {
        let mounts = parse_mountinfo(
            "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
             50 22 0:50 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n",
        );
        let own = parse_cgroup("2:cpu:/\n0::/\n");
        assert!(hierarchies(&mounts, &own).is_empty());
        let mut more = mounts.clone();
        more.extend(parse_mountinfo(
            "51 50 0:51 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        ));
        assert_eq!(
            summary(&hierarchies(&more, &own)),
            [("", Path::new("/sys/fs/cgroup"), "/")]
        );
    }

    /// name=systemd is a hierarchy like the others, its own cgroup from its line.
    #[test]
    fn a_named_hierarchy_takes_its_line() {
        let mounts = parse_mountinfo(
            "35 31 0:33 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n",
        );
        let all = hierarchies(
            &mounts,
            &parse_cgroup("1:name=systemd:/user.slice/x.scope\n"),
        );
        assert_eq!(
            summary(&all),
            [(
                "name=systemd",
                Path::new("/sys/fs/cgroup/systemd"),
                "/user.slice/x.scope"
            )]
        );
        assert_eq!(
            paths(&all, None, "c")["name=systemd"],
            Path::new("/sys/fs/cgroup/systemd/user.slice/x.scope/c")
        );
    }

    /// A bind of part of a hierarchy (a container's view) is used at its mount point.
    #[test]
    fn a_v2_hierarchy_in_a_cgroup_namespace() {
        let mounts = parse_mountinfo(
            "1200 1100 0:26 /kiln/ctr /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        let all = hierarchies(&mounts, &parse_cgroup("0::/\n"));
        assert_eq!(summary(&all), [("", Path::new("/sys/fs/cgroup"), "/")]);
    }

    #[test]
    fn v2_own_cgroup_parents() {
        let v2 = |own: &str| Hierarchy {
            mount_point: "/sys/fs/cgroup".into(),
            controllers: String::new(),
            own: own.into(),
        };
        let at = |own| paths(&[v2(own)], None, "c")[""].clone();
        assert_eq!(at("/"), Path::new("/sys/fs/cgroup/c"));
        assert_eq!(at(""), Path::new("/sys/fs/cgroup/c"));
        assert_eq!(at("/a/b"), Path::new("/sys/fs/cgroup/a/c"));
    }

    #[test]
    fn inner_path_keeps_dots_in_names() {
        assert_eq!(
            inner_path(Some(Path::new("a.b/..c")), "x"),
            Path::new("a.b/..c")
        );
        assert_eq!(inner_path(None, "my.ctr"), Path::new("my.ctr"));
        assert_eq!(inner_path(Some(Path::new("/")), "x"), Path::new("/"));
        assert_eq!(
            inner_path(Some(Path::new("//a//b/")), "x"),
            Path::new("/a/b")
        );
    }

    #[test]
    fn below_drops_roots_and_dots() {
        assert_eq!(below(Path::new("/")), Some(PathBuf::new()));
        assert_eq!(below(Path::new("a/b/..")), Some(PathBuf::from("a")));
        assert_eq!(below(Path::new("./a/./b/")), Some(PathBuf::from("a/b")));
    }

    // ---------------------------------------------------------------- exec --cgroup

    /// A container's cgroup directories in two v1 hierarchies and v2, each with a sub-cgroup
    /// `sub` (and `sub/deeper` in memory).
    fn container_paths(test: &str) -> (PathBuf, Paths) {
        let root = std::env::temp_dir().join(format!("kiln-layout-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut paths = Paths::new();
        for key in ["memory", "pids", ""] {
            let dir = root
                .join(if key.is_empty() { "unified" } else { key })
                .join("ctr");
            std::fs::create_dir_all(dir.join("sub")).unwrap();
            paths.insert(key.to_owned(), dir);
        }
        std::fs::create_dir_all(paths["memory"].join("sub/deeper")).unwrap();
        (root, paths)
    }

    fn sub(paths: &Paths, specs: &[&str]) -> crate::error::Result<Paths> {
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        super::super::sub_paths(paths.clone(), &specs)
    }

    #[test]
    fn exec_cgroup_for_every_hierarchy() {
        let (root, paths) = container_paths("sub-all");
        let p = sub(&paths, &["sub"]).unwrap();
        for (k, v) in &p {
            assert_eq!(v, &paths[k].join("sub"), "{k}");
        }
        assert_eq!(sub(&paths, &["/sub/"]).unwrap(), p);
        assert_eq!(sub(&paths, &[]).unwrap(), paths);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn exec_cgroup_for_named_controllers() {
        let (root, paths) = container_paths("sub-named");
        let p = sub(&paths, &["memory,unified:sub"]).unwrap();
        assert_eq!(p["memory"], paths["memory"].join("sub"));
        assert_eq!(p[""], paths[""].join("sub"));
        assert_eq!(p["pids"], paths["pids"]);
        // Repeated: each names its own.
        let p = sub(&paths, &["memory:sub/deeper", "pids:sub"]).unwrap();
        assert_eq!(p["memory"], paths["memory"].join("sub/deeper"));
        assert_eq!(p["pids"], paths["pids"].join("sub"));
        std::fs::remove_dir_all(root).unwrap();
    }

    fn sub_error(paths: &Paths, spec: &str) -> String {
        sub(paths, &[spec]).unwrap_err().to_string()
    }

    #[test]
    fn exec_cgroup_that_climbs_is_refused() {
        let (root, paths) = container_paths("sub-climb");
        assert_eq!(
            sub_error(&paths, "../other"),
            r#"--cgroup "../other": "../other" is not a sub cgroup path: it leaves the container's cgroup"#
        );
        assert!(sub_error(&paths, "memory:sub/../..").contains("leaves the container's cgroup"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn exec_cgroup_of_a_hierarchy_the_container_lacks_is_refused() {
        let (root, paths) = container_paths("sub-lacks");
        assert_eq!(
            sub_error(&paths, "cpu:sub"),
            r#"--cgroup "cpu:sub": the container has no "cpu" cgroup"#
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn exec_cgroup_that_does_not_exist_is_refused() {
        let (root, paths) = container_paths("sub-missing");
        let e = sub_error(&paths, "pids:nope");
        assert_eq!(
            e,
            format!(
                r#"--cgroup "pids:nope": {} does not exist (exec runs in an existing sub-cgroup)"#,
                paths["pids"].join("nope").display()
            )
        );
        // For every hierarchy: the first without it is named.
        assert!(sub_error(&paths, "sub/deeper").contains("does not exist"));
        std::fs::remove_dir_all(root).unwrap();
    }
}
