//! kiln: a runc-compatible OCI container runtime. See docs/architecture.md for the map.

mod capabilities;
mod cgroups;
mod cli;
mod container;
mod error;
mod hooks;
mod log;
mod lsm;
mod namespaces;
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

fn main() {
    sys::note_inherited_fds();
    std::process::exit(cli::main());
}
