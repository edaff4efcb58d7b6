//! kiln: a runc-compatible OCI container runtime. See docs/architecture.md for the map.
//!
//! A library only so that the fuzz target (fuzz/) reaches the code `create` runs and the man
//! page and completion generator (examples/gendocs.rs) reads the command line's definition; its
//! one command is src/main.rs.

mod capabilities;
mod cgroups;
mod cli;
mod container;
mod error;
mod hooks;
mod log;
mod lsm;
mod namespaces;
mod netdev;
mod netlink;
mod notify;
mod process;
mod procfs;
mod rootfs;
mod seccomp;
mod selfexe;
mod signals;
mod spec;
mod sys;
mod timefmt;
mod tty;

/// kiln's command: what src/main.rs runs.
pub fn main() -> i32 {
    sys::start_as_std_would();
    cli::reexec_early();
    // Before anything opens a file: every fd above stdio now is the caller's, and none of them
    // may reach the container (see `sys::note_inherited_fds`). The re-exec above left none of
    // its own: they are close-on-exec, and closed where it did not re-exec.
    sys::note_inherited_fds();
    cli::main()
}

pub use cli::command;

/// What `create` makes of a config.json's bytes before it touches the system (parsing and
/// every check of `spec::load`): `Err` is the line it would print, as `log` writes it.
pub fn check_config(bytes: &[u8]) -> Result<(), String> {
    match spec::load(std::path::Path::new("config.json"), bytes) {
        Ok(_) => Ok(()),
        Err(e) => Err(error::one_line(&e.to_string()).to_string()),
    }
}
