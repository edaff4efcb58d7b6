//! kiln's command: everything is in the library (src/lib.rs).

fn main() {
    std::process::exit(kiln::main());
}
