//! Stamps the git commit into `kiln --version` (as runc prints its own), and packs the
//! binary's relative relocations where the C library can load them.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
}

fn main() {
    pack_relative_relocs();
    static_unwinder();
    let commit = git(&["describe", "--always", "--dirty", "--abbrev=12"])
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KILN_COMMIT={commit}");
    // Paths asked of git, not `.git/...`: in a worktree `.git` is a file, and a path that does
    // not exist makes cargo run this script on every build. A commit moves the branch's ref,
    // not HEAD; staging changes the index.
    let mut watched = vec!["HEAD".to_owned(), "index".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    let paths: Vec<String> = watched
        .iter()
        .filter_map(|p| git(&["rev-parse", "--git-path", p]))
        .filter(|p| std::path::Path::new(p).exists())
        .collect();
    if paths.is_empty() {
        println!("cargo:rerun-if-changed=build.rs");
    }
    for p in paths {
        println!("cargo:rerun-if-changed={p}");
    }
}

/// The unwinder (`_Unwind_*`, which std's backtraces and landing pads name) from gcc's static
/// libgcc_eh.a, not from libgcc_s.so: one shared library less to map and relocate at each
/// start, and none of libgcc_s's constructor, which asks cpuid for the CPU's model at every
/// start (a VM exit each, in a virtual machine). Named before std's `-lgcc_s`, which
/// `--as-needed` then drops. Only where gcc has the archive.
fn static_unwinder() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_ENV") != "gnu" || var("HOST") != var("TARGET") {
        return;
    }
    let Some(archive) = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|p| std::path::PathBuf::from(p.trim()))
        .filter(|p| p.is_absolute() && p.exists())
    else {
        return;
    };
    if let Some(dir) = archive.parent() {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}

/// DT_RELR (`-z pack-relative-relocs`): the 2,151 relative relocations of a PIE in 8-byte
/// words instead of 24-byte entries, 50 KB less binary to load at each of the two starts per
/// container command (the re-exec, `selfexe`). glibc loads it from 2.36 on, and the binary then
/// needs that glibc: only for a native glibc build whose C library is new enough.
fn pack_relative_relocs() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_ENV") != "gnu" || var("HOST") != var("TARGET") {
        return;
    }
    let new_enough = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            let (major, minor) = v.trim().strip_prefix("glibc ")?.split_once('.')?;
            let minor: u32 = minor.split('.').next()?.parse().ok()?;
            Some((major.parse::<u32>().ok()?, minor) >= (2, 36))
        })
        .unwrap_or(false);
    if new_enough {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
