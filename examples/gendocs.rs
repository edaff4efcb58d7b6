//! Writes kiln's man pages (kiln(8) and kiln-COMMAND(8)) and its bash, zsh and fish completions
//! from the clap definitions kiln parses with (`kiln::command`), for hack/install.
//! A program of its own so that the runtime binary, started for every container operation,
//! carries neither generator.
//!
//! Usage: gendocs MANDIR COMPLETIONDIR  (writes MANDIR/kiln*.8, COMPLETIONDIR/{kiln.bash,_kiln,kiln.fish})

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap_complete::Shell;

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [man, completions] = args.as_slice() else {
        eprintln!("usage: gendocs MANDIR COMPLETIONDIR");
        std::process::exit(1);
    };
    if let Err(e) = generate(man, completions) {
        eprintln!("gendocs: {e}");
        std::process::exit(1);
    }
}

fn generate(man: &Path, completions: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(man)?;
    std::fs::create_dir_all(completions)?;
    let mut cmd = kiln::command().version(env!("CARGO_PKG_VERSION"));
    // Names each subcommand "kiln-create" and its synopsis "kiln create", as git's pages are.
    cmd.build();
    write_page(man, cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_page(man, sub.clone())?;
    }
    for (shell, file) in [
        (Shell::Bash, "kiln.bash"),
        (Shell::Zsh, "_kiln"),
        (Shell::Fish, "kiln.fish"),
    ] {
        let mut out = BufWriter::new(File::create(completions.join(file))?);
        clap_complete::generate(shell, &mut cmd, "kiln", &mut out);
        out.flush()?;
    }
    Ok(())
}

fn write_page(dir: &Path, cmd: clap::Command) -> std::io::Result<()> {
    let page = clap_mangen::Man::new(cmd)
        .section("8")
        .manual("System Manager's Manual")
        .source(format!("kiln {}", env!("CARGO_PKG_VERSION")));
    let mut out = BufWriter::new(File::create(dir.join(page.get_filename()))?);
    page.render(&mut out)?;
    out.flush()
}
