//! kiln's command: everything is in the library (src/lib.rs).
//!
//! Started without std's `main` (`lang_start`): before it calls `main`, std finds the main
//! thread's stack through pthread_getattr_np, which reads and sscanf's /proc/self/maps, to
//! print a message on a stack overflow: a sixth of a start's instructions (callgrind), and
//! kiln starts twice for every create, run and exec (the CVE-2019-5736 re-exec). The rest of
//! what std does there, kiln's `main` does itself (`sys::start_as_std_would`); the arguments
//! still reach `std::env::args`, which glibc hands to std before `main`. A stack overflow now
//! ends kiln with SIGSEGV, without std's message.
// The test harness of this file's (empty) unit tests brings its own `main`.
#![cfg_attr(not(test), no_main)]

/// The C entry point, as std's own would be.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    // process::exit flushes stdout, as std does when its `main` returns.
    std::process::exit(kiln::main())
}
