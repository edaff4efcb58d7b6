//! kiln's typed errors. Every error names what it is about: the container, the path, the spec
//! field. The CLI prints `Display` as one line, so no variant may contain a newline.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json could not be read, parsed or validated; `field` is the JSON path
    /// (`process.user.uid`), or empty for a syntax error.
    #[error("{}: {}{msg}", .file.display(), field_prefix(.field))]
    Config {
        file: PathBuf,
        field: String,
        msg: String,
    },

    #[error("container {id:?} does not exist")]
    NotFound { id: String },

    /// A file or directory of a container's state that kiln cannot use: missing, not what
    /// kiln wrote there (a symlink, a FIFO, a directory), too large, or not valid state.
    #[error(
        "{}: {why} (the state of container {id:?} is damaged: `delete --force {id}` removes the container)",
        .path.display()
    )]
    BadState {
        id: String,
        path: PathBuf,
        why: String,
    },

    #[error("container {id:?} already exists")]
    Exists { id: String },

    #[error("invalid container id {id:?}: {why}")]
    InvalidId { id: String, why: &'static str },

    /// An operation that the container's current status forbids.
    #[error("container {id:?} is {status}: {why}")]
    WrongState {
        id: String,
        status: String,
        why: String,
    },

    /// A bad command-line argument (a signal name, a flag value).
    #[error("{0}")]
    Usage(String),

    /// A system call or file operation failed; `what` says what kiln was doing and on what.
    #[error("{what}: {err}")]
    Os { what: String, err: std::io::Error },

    /// The container's init reported a failure during setup.
    #[error("container {id:?}: {msg}")]
    Init { id: String, msg: String },

    /// A cgroup could not be made, joined or written; `field` is the spec field or cgroup file
    /// it is about (`linux.resources.memory.limit`).
    #[error("{field}: {msg}")]
    Cgroup { field: String, msg: String },

    #[error("{stage} hook {path}: {msg}")]
    Hook {
        stage: &'static str,
        path: PathBuf,
        msg: String,
    },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn os(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Os {
            what: what.into(),
            err: source.into(),
        }
    }

    pub fn config(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        Error::Config {
            file: file.into(),
            field: field.into(),
            msg: msg.into(),
        }
    }
}

/// Attaches "what was being done" to io and nix errors, so that no error reaches the user as a
/// bare "No such file or directory".
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::os(what(), e))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::os(what(), std::io::Error::from(e)))
    }
}
