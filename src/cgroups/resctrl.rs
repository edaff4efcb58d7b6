//! Intel RDT (`linux.intelRdt`), which the kernel offers through the resctrl filesystem rather
//! than a cgroup: a group is a directory of it, holding a `schemata` file (cache and memory
//! bandwidth allocations) and a `tasks` file (its processes). The rules are runc's:
//!
//! - the group is `closID`'s, or the container's own (named by its id) without one; `"/"` is
//!   resctrl's root group;
//! - a `closID` with no schemata names a group someone else made: it must exist;
//! - the schemata (`l3CacheSchema`, `memBwSchema`, then each `schemata` line) are written
//!   into the group, an existing `closID` group's included (runc does not compare them with
//!   the group's: the kernel rewrites what it reads back);
//! - `enableMonitoring` adds a monitoring group, `mon_groups/<id>`, under it;
//! - `delete` removes the monitoring group, and the group itself only when it was the
//!   container's own and kiln made it.
//!
//! A host without resctrl mounted cannot honour the field: the config is refused before
//! anything is made, rather than run without the limits it asked for.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIntelRdt, Spec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What `create` does in resctrl, decided from the config alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub group: Group,
    /// A `closID` without schemata: the group must already exist.
    pub must_exist: bool,
    /// The `schemata` file's new text, one line each; None leaves the group's.
    pub schemata: Option<String>,
}

/// Where a container's processes go in resctrl, kept in its state for `exec`, `update` and
/// `delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub path: PathBuf,
    /// `mon_groups/<id>` under the group, with `enableMonitoring`.
    #[serde(default)]
    pub mon: Option<PathBuf>,
    /// The container's own group (no `closID`), made by kiln: `delete` removes it.
    #[serde(default)]
    pub remove: bool,
}

/// The plan for `rdt` of container `id`, resctrl being mounted at `root`. Errors name the
/// field.
pub fn plan(rdt: &LinuxIntelRdt, id: &str, root: &Path) -> std::result::Result<Plan, String> {
    let clos = rdt.clos_id().as_deref().filter(|c| !c.is_empty());
    let path = match clos {
        Some("/") => root.to_path_buf(),
        Some(c) if c == "." || c == ".." || c.contains('/') || c.contains('\n') => {
            return Err(format!(
                "linux.intelRdt.closID: {c:?} is not a resctrl group name"
            ));
        }
        Some(c) => root.join(c),
        None => root.join(id),
    };
    let lines: Vec<&str> = [rdt.l3_cache_schema(), rdt.mem_bw_schema()]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .chain(rdt.schemata().iter().flatten().map(String::as_str))
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(bad) = lines.iter().find(|l| l.contains('\n')) {
        return Err(format!(
            "linux.intelRdt: schema {bad:?} spans lines: each is one line of the schemata file"
        ));
    }
    let schemata = (!lines.is_empty()).then(|| lines.iter().map(|l| format!("{l}\n")).collect());
    let monitoring = rdt.enable_monitoring().unwrap_or(false);
    Ok(Plan {
        must_exist: clos.is_some() && schemata.is_none(),
        schemata,
        group: Group {
            mon: monitoring.then(|| path.join("mon_groups").join(id)),
            remove: clos.is_none(),
            path,
        },
    })
}

/// The mount point of resctrl, if mounted.
pub fn mounted() -> Option<PathBuf> {
    crate::procfs::mountinfo()
        .ok()?
        .into_iter()
        .find(|m| m.fstype == "resctrl")
        .map(|m| m.mount_point)
}

/// The plan for a config's `linux.intelRdt`, if it sets one; refused where resctrl is absent.
pub fn of(spec: &Spec, config: &Path, id: &str) -> Result<Option<Plan>> {
    let Some(rdt) = spec.linux().as_ref().and_then(|l| l.intel_rdt().as_ref()) else {
        return Ok(None);
    };
    let root = mounted().ok_or_else(|| {
        Error::config(
            config,
            "linux.intelRdt",
            "resctrl is not mounted on this host: Intel RDT is unavailable",
        )
    })?;
    plan(rdt, id, &root)
        .map(Some)
        .map_err(|e| Error::config(config, "", e))
}

/// Executes `plan` for init `pid`: the group (made if missing, unless it must exist), its
/// schemata, the monitoring group, and the pid in both. Returns the group to keep.
pub fn apply(plan: &Plan, pid: i32) -> Result<Group> {
    let mut group = plan.group.clone();
    if plan.must_exist && !group.path.is_dir() {
        return Err(Error::Cgroup {
            field: "linux.intelRdt.closID".into(),
            msg: format!(
                "{}: no such resctrl group (with no schemata, it must be made beforehand)",
                group.path.display()
            ),
        });
    }
    match std::fs::create_dir(&group.path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => group.remove = false,
        Err(e) => return Err(last_cmd(&group.path, e, "creating")),
    }
    let done = (|| {
        if let Some(text) = &plan.schemata {
            write(&group.path.join("schemata"), text)?;
        }
        join(&group, pid)
    })();
    if let Err(e) = done {
        let _ = destroy(&group);
        return Err(e);
    }
    Ok(group)
}

/// Puts `pid` (init, or an exec'd process) in the group and its monitoring group.
pub fn join(group: &Group, pid: i32) -> Result<()> {
    write(&group.path.join("tasks"), &pid.to_string())?;
    if let Some(mon) = &group.mon {
        match std::fs::create_dir(mon) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(last_cmd(mon, e, "creating")),
        }
        write(&mon.join("tasks"), &pid.to_string())?;
    }
    Ok(())
}

/// `update --l3-cache-schema/--mem-bw-schema`: the lines into the group's schemata.
pub fn update(group: &Group, lines: &[&str]) -> Result<()> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    write(&group.path.join("schemata"), &text)
}

/// At `delete`: the monitoring group, and the group if it is the container's own.
pub fn destroy(group: &Group) -> Result<()> {
    let dirs = group.mon.iter().chain(group.remove.then_some(&group.path));
    for dir in dirs {
        match std::fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(last_cmd(dir, e, "removing")),
        }
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| last_cmd(path, e, &format!("writing {text:?} to")))
}

/// resctrl explains a refused write in `info/last_cmd_status` (runc adds it too).
fn last_cmd(path: &Path, e: std::io::Error, what: &str) -> Error {
    let status = path
        .ancestors()
        .map(|a| a.join("info/last_cmd_status"))
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| format!(", last_cmd_status: {}", s.trim()))
        .unwrap_or_default();
    Error::Cgroup {
        field: "linux.intelRdt".into(),
        msg: format!("{what} {}: {e}{status}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Group, Plan, apply, destroy, join, plan, update};

    fn rdt(json: &str) -> oci_spec::runtime::LinuxIntelRdt {
        serde_json::from_str(json).unwrap()
    }

    fn planned(json: &str) -> Result<Plan, String> {
        plan(&rdt(json), "c1", Path::new("/sys/fs/resctrl"))
    }

    #[test]
    fn the_group_is_the_closids_or_the_containers_own() {
        let p = planned(r#"{"l3CacheSchema":"L3:0=f"}"#).unwrap();
        assert_eq!(
            p,
            Plan {
                group: Group {
                    path: "/sys/fs/resctrl/c1".into(),
                    mon: None,
                    remove: true
                },
                must_exist: false,
                schemata: Some("L3:0=f\n".into()),
            }
        );
        let p = planned(r#"{"closID":"gold"}"#).unwrap();
        assert_eq!(p.group.path, Path::new("/sys/fs/resctrl/gold"));
        assert!(p.must_exist && !p.group.remove && p.schemata.is_none());
        let p = planned(r#"{"closID":"/","enableMonitoring":true}"#).unwrap();
        assert_eq!(p.group.path, Path::new("/sys/fs/resctrl"));
        assert_eq!(
            p.group.mon.as_deref(),
            Some(Path::new("/sys/fs/resctrl/mon_groups/c1"))
        );
        assert!(!p.group.remove);
    }

    #[test]
    fn schemata_lines_come_in_runcs_order() {
        let p = planned(
            r#"{"closID":"g","memBwSchema":"MB:0=50","l3CacheSchema":"L3:0=f","schemata":["L2:0=3",""]}"#,
        )
        .unwrap();
        assert_eq!(p.schemata.as_deref(), Some("L3:0=f\nMB:0=50\nL2:0=3\n"));
        assert!(!p.must_exist, "a closID with schemata is made if missing");
    }

    #[test]
    fn bad_names_and_lines_are_refused_naming_the_field() {
        for clos in [".", "..", "a/b", "x\ny"] {
            let e = planned(&serde_json::json!({ "closID": clos }).to_string()).unwrap_err();
            assert!(e.starts_with("linux.intelRdt.closID: "), "{e}");
        }
        let e = planned(r#"{"schemata":["L3:0=f\nMB:0=1"]}"#).unwrap_err();
        assert!(
            e.starts_with("linux.intelRdt: ") && e.contains("spans lines"),
            "{e}"
        );
    }

    /// The thin layer against a directory standing in for resctrl (whose files a plain
    /// directory lets anyone create).
    #[test]
    fn apply_join_update_and_destroy_touch_only_the_planned_files() {
        let root = std::env::temp_dir().join(format!("kiln-resctrl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // resctrl gives every group its mon_groups directory.
        std::fs::create_dir_all(root.join("gold/mon_groups")).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();

        let own = plan(&rdt(r#"{"l3CacheSchema":"L3:0=f"}"#), "c1", &root).unwrap();
        let g = apply(&own, 42).unwrap();
        assert!(g.remove);
        assert_eq!(read("c1/schemata"), "L3:0=f\n");
        assert_eq!(read("c1/tasks"), "42");
        join(&g, 43).unwrap();
        assert_eq!(read("c1/tasks"), "43");
        update(&g, &["MB:0=20"]).unwrap();
        assert_eq!(read("c1/schemata"), "MB:0=20\n");
        // resctrl's files go with their group; a plain directory's must be cleared first.
        let clear = |files: &[&str]| {
            for f in files {
                std::fs::remove_file(root.join(f)).unwrap();
            }
        };
        clear(&["c1/tasks", "c1/schemata"]);
        destroy(&g).unwrap();
        assert!(!root.join("c1").exists());

        // A closID group made by someone else is joined, never removed; the monitoring
        // group under it is the container's.
        let gold = plan(
            &rdt(r#"{"closID":"gold","enableMonitoring":true}"#),
            "c2",
            &root,
        )
        .unwrap();
        let g = apply(&gold, 7).unwrap();
        assert!(!g.remove);
        assert_eq!(read("gold/tasks"), "7");
        assert_eq!(read("gold/mon_groups/c2/tasks"), "7");
        clear(&["gold/mon_groups/c2/tasks"]);
        destroy(&g).unwrap();
        assert!(root.join("gold").is_dir() && !root.join("gold/mon_groups/c2").exists());
        // ... and must exist when the config gives it no schemata.
        let missing = plan(&rdt(r#"{"closID":"silver"}"#), "c3", &root).unwrap();
        let e = apply(&missing, 7).unwrap_err().to_string();
        assert!(
            e.starts_with("linux.intelRdt.closID: ") && e.contains("silver"),
            "{e}"
        );
        assert!(!root.join("silver").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
