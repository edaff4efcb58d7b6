//! Which unit a container gets, and where systemd puts its cgroup: pure functions of
//! cgroupsPath (`slice:prefix:name`) and of the hierarchies, as runc's systemd driver names them.

use std::path::Path;

use super::super::{Hierarchy, Paths};

/// The container's unit: a scope `prefix-name.scope` in `slice` or, where the name is itself a
/// slice (`name.slice`), that slice under `slice`.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub slice: String,
    pub name: String,
}

impl Unit {
    pub fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }
}

/// cgroupsPath for `--systemd-cgroup`: `slice:prefix:name`, each part checked as systemd
/// would check the unit names made of it; none (or "") is `system.slice:kiln:ID`. An empty
/// slice is `system.slice`, or `user.slice` for a rootless container (in the user's own
/// manager, as runc defaults). Errors say what is wrong with which part.
pub fn parse(cgroups_path: Option<&Path>, id: &str, rootless: bool) -> Result<Unit, String> {
    let given = cgroups_path
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (slice, prefix, name) = if given.is_empty() {
        ("", "kiln", id)
    } else {
        match given.split(':').collect::<Vec<_>>()[..] {
            [slice, prefix, name] => (slice, prefix, name),
            _ => {
                return Err(format!(
                    "{given:?}: with --systemd-cgroup it must be \"slice:prefix:name\""
                ));
            }
        }
    };
    let slice = match slice {
        "" if rootless => "user.slice",
        "" => "system.slice",
        slice => slice,
    };
    expand_slice(slice)?;
    if name.is_empty() {
        return Err(format!(
            "{given:?}: the name (after the second ':') is empty"
        ));
    }
    let unit = if name.ends_with(".slice") {
        expand_slice(name)?;
        name.to_owned()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    check_unit_name(&unit)?;
    Ok(Unit {
        slice: slice.to_owned(),
        name: unit,
    })
}

/// systemd's rule for unit names: at most 255 bytes of `[A-Za-z0-9:_.\-@]` (unit_name_is_valid;
/// `\` escapes are what `systemd-escape` writes, and runc passes them on likewise).
fn check_unit_name(unit: &str) -> Result<(), String> {
    let bad = unit
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":_.\\-@".contains(*c)));
    if let Some(c) = bad {
        return Err(format!(
            "unit name {unit:?}: systemd allows only letters, digits and \":_.\\-@\", not {c:?}"
        ));
    }
    if unit.len() > 255 {
        return Err(format!(
            "unit name {unit:?}: longer than systemd's 255 bytes"
        ));
    }
    Ok(())
}

/// A slice's cgroup path below the hierarchy's root: `a-b.slice` is `/a.slice/a-b.slice`,
/// `-.slice` the root itself. runc's ExpandSlice, with its refusals.
pub fn expand_slice(slice: &str) -> Result<String, String> {
    let invalid = || Err(format!("invalid slice name {slice:?}"));
    let Some(base) = slice.strip_suffix(".slice") else {
        return invalid();
    };
    if base.is_empty() || slice.contains('/') {
        return invalid();
    }
    if base == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        // `a--b.slice` and `-a.slice`: an empty component.
        if part.is_empty() {
            return invalid();
        }
        path.push_str(&format!("/{prefix}{part}.slice"));
        prefix.push_str(&format!("{part}-"));
    }
    Ok(path)
}

/// The cgroup of uid's `systemd --user`: user@UID.service, which systemd's own unit file puts
/// in user-UID.slice below user.slice. (runc asks the manager for its ControlGroup; the
/// answer is this path wherever logind started the manager.)
pub fn user_manager(uid: u32) -> String {
    format!("/user.slice/user-{uid}.slice/user@{uid}.service")
}

/// Where the unit's cgroup is in each hierarchy: the slice's path, then the unit, below each
/// hierarchy's root, or below `manager`, the cgroup of the systemd instance that runs the unit
/// (`user_manager`'s for a user's; "" for the system's). systemd makes the directories of the hierarchies it manages; kiln makes
/// the others (as runc joins the controllers systemd does not know).
pub fn paths(all: &[Hierarchy], unit: &Unit, manager: &str) -> Result<Paths, String> {
    let slice = expand_slice(&unit.slice)?;
    let below = Path::new(manager.trim_start_matches('/'))
        .join(slice.trim_start_matches('/'))
        .join(&unit.name);
    Ok(all
        .iter()
        .map(|h| (h.controllers.clone(), h.mount_point.join(&below)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn unit(path: &str) -> Result<Unit, String> {
        parse(Some(Path::new(path)), "c1", false)
    }

    #[test]
    fn slices_expand_as_runc_expands_them() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in [
            "",
            ".slice",
            "a",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "a.scope",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_path_names_slice_prefix_and_name() {
        assert_eq!(
            unit("machine.slice:kiln:c1").unwrap(),
            Unit {
                slice: "machine.slice".into(),
                name: "kiln-c1.scope".into()
            }
        );
        assert_eq!(unit(":docker:abc").unwrap().slice, "system.slice");
        assert_eq!(unit(":docker:abc").unwrap().name, "docker-abc.scope");
        assert_eq!(unit("system.slice::abc").unwrap().name, "abc.scope");
    }

    #[test]
    fn no_path_is_system_slice_kiln_id() {
        for none in [None, Some(Path::new(""))] {
            let u = parse(none, "c1", false).unwrap();
            assert_eq!(
                (u.slice.as_str(), u.name.as_str()),
                ("system.slice", "kiln-c1.scope")
            );
        }
    }

    #[test]
    fn rootless_defaults_to_the_users_own_user_slice() {
        let u = parse(None, "c1", true).unwrap();
        assert_eq!(
            (u.slice.as_str(), u.name.as_str()),
            ("user.slice", "kiln-c1.scope")
        );
        let given = parse(Some(Path::new("app.slice:kiln:c1")), "c1", true).unwrap();
        assert_eq!(given.slice, "app.slice");
        let v2 = [Hierarchy {
            mount_point: PathBuf::from("/sys/fs/cgroup"),
            controllers: String::new(),
            own: "/".into(),
        }];
        let p = paths(&v2, &u, &user_manager(1500)).unwrap();
        assert_eq!(
            p[""],
            Path::new(
                "/sys/fs/cgroup/user.slice/user-1500.slice/user@1500.service/user.slice/kiln-c1.scope"
            )
        );
    }

    #[test]
    fn a_name_that_is_a_slice_is_the_unit() {
        let u = unit("system.slice:kiln:sub-c1.slice").unwrap();
        assert_eq!(u.name, "sub-c1.slice");
        assert!(u.is_slice());
        assert!(unit("system.slice:kiln:a--b.slice").is_err());
    }

    #[test]
    fn malformed_paths_are_refused_naming_what_is_wrong() {
        assert!(unit("/kiln/c1").unwrap_err().contains("slice:prefix:name"));
        assert!(unit("a:b:c:d").unwrap_err().contains("slice:prefix:name"));
        assert!(
            unit("user:kiln:c1")
                .unwrap_err()
                .contains("invalid slice name \"user\"")
        );
        assert!(unit("system.slice:kiln:").unwrap_err().contains("name"));
        assert!(unit("system.slice:kiln:c/1").unwrap_err().contains("'/'"));
        assert!(unit("system.slice:ki ln:c1").unwrap_err().contains("' '"));
        let long = format!("system.slice:kiln:{}", "x".repeat(250));
        assert!(unit(&long).unwrap_err().contains("255"));
    }

    #[test]
    fn paths_put_the_unit_below_its_slice_in_every_hierarchy() {
        let h = |controllers: &str, at: &str| Hierarchy {
            mount_point: PathBuf::from(at),
            controllers: controllers.into(),
            own: "/".into(),
        };
        let all = [
            h("memory", "/sys/fs/cgroup/memory"),
            h("name=systemd", "/sys/fs/cgroup/systemd"),
            h("", "/sys/fs/cgroup/unified"),
        ];
        let p = paths(&all, &unit("a-b.slice:kiln:c1").unwrap(), "").unwrap();
        assert_eq!(
            p["memory"],
            Path::new("/sys/fs/cgroup/memory/a.slice/a-b.slice/kiln-c1.scope")
        );
        assert_eq!(
            p[""],
            Path::new("/sys/fs/cgroup/unified/a.slice/a-b.slice/kiln-c1.scope")
        );
        let root = paths(&all, &unit("-.slice:kiln:c1").unwrap(), "").unwrap();
        assert_eq!(
            root["name=systemd"],
            Path::new("/sys/fs/cgroup/systemd/kiln-c1.scope")
        );
    }
}
