//! Loading a bundle's config.json: parsed once, with errors that name the field (and for JSON
//! syntax, the line and column), then checked across fields so that a contradictory config fails
//! before anything is created.

pub mod cpulist;
mod invalid;
pub mod mempolicy;
pub mod mount_options;
pub mod net_devices;
mod position;
mod validate;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{PosixRlimitType, Spec};

use crate::error::{Context, Error, Result, quote};

/// The runtime-spec version kiln implements (reported by `--version` and `features`).
pub const OCI_VERSION: &str = "1.3.0";

/// The highest uid or gid kiln accepts anywhere, runc's (moby/sys/user's) limit. Above it lies
/// 4294967295, which is -1 to setresuid and chown ("leave unchanged"): the process would stay
/// root.
pub const MAX_ID: u32 = 2147483647;

/// Checks one uid or gid read from the config or the command line.
pub fn check_id(id: impl Into<u64>) -> std::result::Result<(), Problem> {
    let id = id.into();
    if id > u64::from(MAX_ID) {
        return Err(Problem::IdOutOfRange(id));
    }
    Ok(())
}

pub use invalid::Problem;
pub use validate::{Host, check_user};

/// `path` as an absolute path without `.`, `..` or repeated separators, read as text only: a
/// mount destination or device path as it is in the container (`..` stops at its root).
pub fn lexically_clean(path: &Path) -> PathBuf {
    let mut clean = PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => clean.push(n),
            std::path::Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    clean
}

/// The config's name for a limit (`RLIMIT_NOFILE`), for messages.
pub fn rlimit_name(t: PosixRlimitType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{t:?}"))
}

pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    /// `root.path` resolved against the bundle, absolute and canonical.
    pub rootfs: PathBuf,
    /// The bundle's config.json, which errors about the spec's fields name.
    pub config: PathBuf,
    pub spec: Spec,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::fs::canonicalize(dir).ctx(|| format!("bundle {}", dir.display()))?;
        let file = dir.join("config.json");
        let bytes = std::fs::read(&file)
            .ctx(|| format!("bundle {}: reading config.json", dir.display()))?;
        let (spec, root) = load(&file, &bytes)?;
        let rootfs = dir.join(root);
        let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| {
            Error::config(
                &file,
                "root.path",
                format!("rootfs {}: {e}", rootfs.display()),
            )
        })?;
        if !rootfs.is_dir() {
            return Err(Error::config(
                &file,
                "root.path",
                format!("rootfs {} is not a directory", rootfs.display()),
            ));
        }
        Ok(Bundle {
            dir,
            rootfs,
            config: file,
            spec,
        })
    }
}

/// A config.json's bytes to a spec that passed every check that needs no file system, and its
/// `root.path`: all that `create` asks of a config but for the rootfs to exist. The fuzz target
/// (fuzz/) runs it too.
pub fn load(file: &Path, bytes: &[u8]) -> Result<(Spec, PathBuf)> {
    let spec = parse(file, bytes)?;
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| Error::config(file, "root", "missing: a bundle needs a root filesystem"))?;
    validate::check(&spec, &Host::current()).map_err(|e| e.in_file(file))?;
    Ok((spec, root))
}

/// Deserialises config.json; an error names the field that failed (`process.user.uid`) and,
/// as serde_json does, the line and column.
pub fn parse(file: &Path, bytes: &[u8]) -> Result<Spec> {
    parse_as(file, bytes)
}

/// Any part of the spec (`update --resources` reads a LinuxResources), with the same errors.
pub fn parse_as<T: serde::de::DeserializeOwned>(file: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| field_error(file, bytes, bytes, (0, 0), &e))
}

/// The same for a JSON object the caller completes with `members` (an exec's process.json
/// without `user`), placed first in it; the errors' positions are the caller's text's.
pub fn parse_completed_as<T: serde::de::DeserializeOwned>(
    file: &Path,
    bytes: &[u8],
    members: &str,
) -> Result<T> {
    let Some(brace) = bytes.iter().position(|b| *b == b'{') else {
        return parse_as(file, bytes);
    };
    let empty = bytes[brace + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'}');
    let added = if empty {
        members.to_owned()
    } else {
        format!("{members},")
    };
    let text = [&bytes[..=brace], added.as_bytes(), &bytes[brace + 1..]].concat();
    serde_json::from_slice(&text)
        .map_err(|e| field_error(file, &text, bytes, (brace + 1, added.len()), &e))
}

/// serde_json's message without the " at line L column C" it appends.
pub fn without_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match msg.strip_suffix(&suffix) {
        Some(code) if e.line() > 0 => code.to_owned(),
        _ => msg,
    }
}

/// `text` is what serde_json read, `shown` the caller's bytes, which lack the `inserted` span
/// (offset, length) of `text`.
fn field_error(
    file: &Path,
    text: &[u8],
    shown: &[u8],
    (at, len): (usize, usize),
    e: &serde_json::Error,
) -> Error {
    let mut msg = without_position(e);
    let offset = position::offset(text, e.line(), e.column());
    let field = if e.line() > 0 {
        position::field_at(text, offset)
    } else {
        String::new()
    };
    // oci-spec says "no variant for CAP_X (converted to X)": say what an operator can act on.
    if let Some(rest) = msg.strip_prefix("no variant for ")
        && let Some((name, tail)) = rest.split_once(" (converted to ")
    {
        let at = tail.split_once(')').map_or("", |(_, at)| at);
        msg = format!("unknown capability {}{at}", quote(name));
    }
    if e.line() > 0 {
        let offset = if offset >= at + len {
            offset - len
        } else {
            offset.min(at)
        };
        let (line, column) = position::line_column(shown, offset);
        msg = format!("{msg} at line {line} column {column}");
    }
    Error::config(file, field, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        parse(Path::new("config.json"), json.as_bytes())
            .expect_err("should fail")
            .to_string()
    }

    #[test]
    fn lexically_clean_paths() {
        for (path, clean) in [
            ("/data", "/data"),
            ("data//x/./y/", "/data/x/y"),
            ("/a/../b", "/b"),
            ("/../../etc", "/etc"),
            ("", "/"),
        ] {
            assert_eq!(lexically_clean(Path::new(path)), Path::new(clean), "{path}");
        }
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = err("{\n  \"ociVersion\": \"1.2.0\",\n  \"process\": {,\n}");
        assert!(e.contains("line 3 column"), "{e}");
    }

    #[test]
    fn type_error_names_the_field() {
        let e =
            err(r#"{"ociVersion":"1.2.0","process":{"cwd":"/","user":{"uid":"zero","gid":0}}}"#);
        assert!(
            e.starts_with("config.json: process.user.uid: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn a_key_in_the_field_is_escaped_and_short() {
        let key = format!("k\\n{}", "y".repeat(5000));
        let e = err(&format!(
            r#"{{"ociVersion":"1.2.0","linux":{{"sysctl":{{"{key}":1}}}}}}"#
        ));
        assert!(e.starts_with(r"config.json: linux.sysctl.k\nyyy"), "{e}");
        assert!(
            e.contains("…(5002 bytes): invalid type: integer `1`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_capability_is_named() {
        let e = err(
            r#"{"ociVersion":"1.2.0","process":{"cwd":"/","user":{"uid":0,"gid":0},"capabilities":{"bounding":["CAP_BOGUS"]}}}"#,
        );
        assert!(
            e.contains("process.capabilities.bounding") && e.contains("CAP_BOGUS"),
            "{e}"
        );
    }
}
