//! Stamps the git commit into `kiln --version` (as runc prints its own).
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
