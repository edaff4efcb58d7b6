//! runc's command line, flag for flag. Each command lives in its own file and only parses,
//! calls into the library and prints; errors reach the user here, once, as one line.

mod checkpoint;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod restore;
mod run;
mod spec;
mod start;
mod state;
mod update;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::log::{self, Format};

#[derive(Parser)]
#[command(
    name = "kiln",
    about = "An OCI container runtime, runc-compatible",
    disable_version_flag = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Directory for the state of containers (default: /run/kiln for root,
    /// $XDG_RUNTIME_DIR/kiln for other users).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", value_enum, default_value = "text")]
    log_format: Format,
    /// Log debug messages too.
    #[arg(long)]
    debug: bool,
    /// Manage cgroups through systemd (cgroupsPath as slice:prefix:name).
    #[arg(long = "systemd-cgroup")]
    systemd_cgroup: bool,
    /// Run without root privileges: true, false or auto.
    #[arg(long, default_value = "auto", value_parser = ["true", "false", "auto"])]
    rootless: String,
    /// Print the version.
    #[arg(short = 'v', long)]
    version: bool,
    /// Path to the criu binary, for checkpoint and restore (accepted before any command, as
    /// runc does: older clients always pass it).
    #[arg(long)]
    criu: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

// Deferred: each command's flags are defined only once it is the one being run (or shown in
// help), not all of them at every start: building every command's flags was a third of
// `state`'s instructions (two thirds at opt-level "z", see Cargo.toml).
#[derive(Subcommand)]
#[command(defer = true)]
enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(create::Args),
    /// Run the process of a created container.
    Start(start::Args),
    /// Create and start a container, and by default wait for it.
    Run(run::Args),
    /// Print a container's state as JSON.
    State(state::Args),
    /// Run another process in a running container.
    Exec(exec::Args),
    /// Send a signal to a container's init (default SIGTERM).
    Kill(kill::Args),
    /// Delete a container and everything it holds.
    Delete(delete::Args),
    /// List the containers under --root.
    List(list::Args),
    /// Write a default config.json into a bundle.
    Spec(spec::Args),
    /// Freeze every process of a container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(pause::Args),
    /// List a container's processes (ps output, or their pids as JSON).
    Ps(ps::Args),
    /// Change a live container's resource limits.
    Update(update::Args),
    /// Print a container's statistics and OOM events as JSON lines.
    Events(events::Args),
    /// Print the OCI features document of this runtime.
    Features,
    /// Save a running container with criu (it stops, unless --leave-running or --pre-dump).
    Checkpoint(checkpoint::Args),
    /// Make a new container from a checkpoint's images.
    Restore(restore::Args),
}

/// Global options every command may need.
pub struct Globals {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// Cgroups only where delegated to the caller, none otherwise (see `cgroups::new`).
    pub rootless: bool,
}

/// kiln's command line as clap describes it. The man pages and shell completions are generated
/// from it by a separate program (examples/gendocs.rs, run by hack/install), so they never drift
/// from what kiln parses and kiln itself carries neither generator.
pub fn command() -> clap::Command {
    Cli::command()
}

/// runc's exit status for every usage error (clap's own is 2).
const USAGE_EXIT: i32 = 1;

/// runc's flag parser (Go's) takes a long flag after one dash as well as two, and containerd's
/// go-runc spells one so: `restore -no-subreaper`. clap does not: for the commands whose only
/// positional argument is the container ID (no command line of the container's own to leave
/// alone), a single-dash long flag of theirs is given its second dash.
fn go_spellings(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let Some(at) = args
        .iter()
        .position(|a| a == "checkpoint" || a == "restore")
    else {
        return args;
    };
    // Built only here: building clap's command costs more than most commands' own work.
    let mut cmd = Cli::command();
    let sub = cmd
        .find_subcommand_mut(args[at].to_str().unwrap_or_default())
        .expect("checkpoint and restore are kiln's commands");
    // Its flags are deferred (see `Command`) until it is built.
    sub.build();
    let longs: Vec<&str> = sub.get_arguments().filter_map(|a| a.get_long()).collect();
    for arg in &mut args[at + 1..] {
        let Some(flag) = arg.to_str().and_then(|a| a.strip_prefix('-')) else {
            continue;
        };
        let name = flag.split_once('=').map_or(flag, |(n, _)| n);
        if name.len() > 1 && longs.contains(&name) {
            *arg = format!("-{}", arg.to_string_lossy()).into();
        }
    }
    args
}

pub fn main() -> i32 {
    // What `Cli::try_parse_from` does, but clap's command is never dropped: freeing it (every
    // flag and help line of every command, one allocation each) would cost a short command such
    // as `state` more than its own work, just before the process exits anyway.
    let mut cmd = std::mem::ManuallyDrop::new(Cli::command());
    let parsed = cmd
        .try_get_matches_from_mut(go_spellings(std::env::args_os().collect()))
        .and_then(|mut m| {
            <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut m)
                .map_err(|e| e.format(&mut cmd))
        });
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            // Help asked for, or `kiln` alone: on stdout, as runc prints it.
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    | ErrorKind::DisplayVersion
            ) {
                return print_only(&e.to_string());
            }
            log::error(&usage_error(&e.to_string()));
            return USAGE_EXIT;
        }
    };
    if let Err(e) = log::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        log::error(&e);
        return 1;
    }
    if cli.version {
        return print_only(&format!("{}{TARGETS}", version()));
    }
    let Some(command) = cli.command else {
        log::error("no command given: try `kiln --help`");
        return USAGE_EXIT;
    };
    // `spec` and `features` keep no state: they work without a state root (`features` keeps
    // criu's verdict in one that exists).
    let root = match (cli.root, &command) {
        (Some(root), _) => root,
        (None, Command::Spec(_)) => PathBuf::new(),
        (None, Command::Features) => default_root().unwrap_or_default(),
        (None, _) => match default_root() {
            Ok(root) => root,
            Err(e) => {
                log::error(&e);
                return 1;
            }
        },
    };
    if let Err(e) = crate::container::check_root_owner(&root) {
        log::error(&e.to_string());
        return 1;
    }
    let rootless = match cli.rootless.as_str() {
        "true" => true,
        "false" => false,
        _ => rootless_auto(),
    };
    let g = Globals {
        root,
        systemd_cgroup: cli.systemd_cgroup,
        rootless,
    };
    let result = match command {
        Command::Create(a) => create::run(&g, a),
        Command::Start(a) => start::run(&g, a),
        Command::Run(a) => run::run(&g, a),
        Command::State(a) => state::run(&g, a),
        Command::Exec(a) => exec::run(&g, a),
        Command::Kill(a) => kill::run(&g, a),
        Command::Delete(a) => delete::run(&g, a),
        Command::List(a) => list::run(&g, a),
        Command::Spec(a) => spec::run(a),
        Command::Pause(a) => pause::run(&g, a),
        Command::Resume(a) => pause::resume(&g, a),
        Command::Ps(a) => ps::run(&g, a),
        Command::Update(a) => update::run(&g, a),
        Command::Events(a) => events::run(&g, a),
        Command::Features => features::run(&g),
        Command::Checkpoint(a) => checkpoint::run(&g, a),
        Command::Restore(a) => restore::run(&g, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            log::error(&format!("{e:#}"));
            1
        }
    }
}

/// The commands that put a process into a container.
const PUT_A_PROCESS_IN: [&str; 3] = ["create", "run", "exec"];

/// They re-execute kiln from an unwritable image (`selfexe`): done here, before clap, the first of the two starts
/// builds and parses no command line (a third of its instructions) and checks nothing twice.
/// Any argument spelled as one of them counts, so every such command is caught, and a value
/// that only looks like one (an id `run`) merely re-executes too. An error here is not
/// reported: the command's own `ensure_unwritable`, once `--log` is set up, meets it again.
pub fn reexec_early() {
    if std::env::args_os()
        .skip(1)
        .any(|a| PUT_A_PROCESS_IN.iter().any(|c| a == *c))
    {
        let _ = crate::selfexe::ensure_unwritable();
    }
}

/// runc's choice: /run for the real root; $XDG_RUNTIME_DIR for any other user and for a root
/// that is only root in a user namespace (unless $USER says root, as after `sudo -E`).
fn default_root() -> Result<PathBuf, String> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    let euid = nix::unistd::geteuid();
    let honor_xdg = !euid.is_root()
        || (crate::namespaces::in_user_namespace()
            && std::env::var("USER").map_or(true, |u| u != "root"));
    match xdg {
        Some(dir) if honor_xdg => Ok(PathBuf::from(dir).join("kiln")),
        None if !euid.is_root() => Err(format!(
            "--root: not given, and XDG_RUNTIME_DIR is unset: uid {euid} cannot use /run/kiln; set one of them"
        )),
        _ => Ok(PathBuf::from("/run/kiln")),
    }
}

/// `--rootless auto`, as runc decides it for its cgroupfs driver: rootless unless kiln is root
/// in the initial user namespace (a root in a user namespace cannot be sure of its cgroups).
fn rootless_auto() -> bool {
    !nix::unistd::geteuid().is_root() || crate::namespaces::in_user_namespace()
}

/// clap's multi-line usage error, as one line: the message and the argument it is about, then
/// where to read more (clap's own "For more information, try '--help'." names no command).
fn usage_error(text: &str) -> String {
    let mut parts = text.split("\n\n");
    let body = parts.next().unwrap_or(text);
    let body = body.strip_prefix("error: ").unwrap_or(body);
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let command = parts
        .find_map(|p| p.strip_prefix("Usage: "))
        .and_then(|usage| {
            let words: Vec<&str> = usage.split_whitespace().collect();
            let end = words
                .iter()
                .position(|w| w.starts_with(['[', '<', '-']))
                .unwrap_or(words.len());
            (end > 0).then(|| words[..end].join(" "))
        })
        .unwrap_or_else(|| "kiln".to_owned());
    format!("{body} (see {command} --help)")
}

/// What kiln is compatible with, besides the runtime-spec version: the command line and the
/// behaviour of this runc release, which its integration suite runs side by side.
const TARGETS: &str = "runc: 1.1.5 (command line)\n";

/// Writes `text` to stdout, whole. A reader that went away (`kiln list | head -1`) ends kiln
/// as it ends runc, whose Go runtime dies of SIGPIPE writing to a closed stdout: quietly, not
/// with `println!`'s panic on the EPIPE (SIGPIPE is ignored, as std has it, so that a client's
/// pipe closing half-way through a `create` is an error to handle, not kiln's end). Any other
/// failure is an error that names stdout.
pub fn out(text: &str) -> Result<(), crate::error::Error> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => crate::sys::die_of_sigpipe(),
        other => other.map_err(|e| crate::error::Error::os("writing to stdout", e)),
    }
}

/// The exit status of a run that only prints `text` (help, version): 0, or 1 with the error
/// logged when stdout could not take it.
fn print_only(text: &str) -> i32 {
    match out(text) {
        Ok(()) => 0,
        Err(e) => {
            log::error(&e.to_string());
            1
        }
    }
}

fn version() -> String {
    // runc's last line: the libseccomp linked at run time, which decides the filters.
    let seccomp = crate::seccomp::libseccomp_version()
        .map(|v| format!("libseccomp: {v}\n"))
        .unwrap_or_default();
    format!(
        "kiln version {}\ncommit: {}\nspec: {}\n{seccomp}",
        env!("CARGO_PKG_VERSION"),
        env!("KILN_COMMIT"),
        crate::spec::OCI_VERSION
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn reexec_early_names_commands_clap_knows_by_no_other_name() {
        // A renamed command, or an alias or an inferred prefix, would reach the container
        // from the writable binary's first start... only to be re-executed by the command's
        // own check: the early re-exec would just have stopped paying.
        use clap::CommandFactory;
        let cmd = super::Cli::command();
        for name in super::PUT_A_PROCESS_IN {
            let sub = cmd.find_subcommand(name).expect(name);
            assert_eq!(sub.get_name(), name);
            assert_eq!(sub.get_all_aliases().count(), 0, "{name}");
            let prefix = &name[..name.len() - 1];
            let parsed = cmd.clone().try_get_matches_from(["kiln", prefix, "--help"]);
            assert!(parsed.is_err_and(|e| e.kind() == clap::error::ErrorKind::InvalidSubcommand));
        }
    }

    #[test]
    fn usage_errors_are_one_line() {
        let e = super::usage_error(
            "error: the following required arguments were not provided:\n  <ID>\n\nUsage: kiln start <ID>\n\nFor more information, try '--help'.\n",
        );
        assert_eq!(
            e,
            "the following required arguments were not provided: <ID> (see kiln start --help)"
        );
    }

    #[test]
    fn go_spellings_of_restore_flags() {
        let v = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        let args = v(&[
            "kiln",
            "--root",
            "/r",
            "restore",
            "--detach",
            "-no-subreaper",
            "-image-path=/i",
            "-d",
            "id",
        ]);
        assert_eq!(
            super::go_spellings(args),
            v(&[
                "kiln",
                "--root",
                "/r",
                "restore",
                "--detach",
                "--no-subreaper",
                "--image-path=/i",
                "-d",
                "id"
            ])
        );
        // Other commands, and what is no flag of restore's, are left as they are.
        let exec = v(&["kiln", "exec", "id", "ls", "-no-subreaper"]);
        assert_eq!(super::go_spellings(exec.clone()), exec);
        let odd = v(&["kiln", "restore", "-nosuch", "id"]);
        assert_eq!(super::go_spellings(odd.clone()), odd);
    }
    #[test]
    fn usage_errors_give_one_hint() {
        let e = super::usage_error(
            "error: invalid value 'xml' for '--log-format <LOG_FORMAT>'\n  [possible values: text, json]\n\nFor more information, try '--help'.\n",
        );
        assert_eq!(
            e,
            "invalid value 'xml' for '--log-format <LOG_FORMAT>' [possible values: text, json] (see kiln --help)"
        );
        let e = super::usage_error(
            "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: kiln list [OPTIONS]\n\nFor more information, try '--help'.\n",
        );
        assert_eq!(
            e,
            "unexpected argument '--bogus' found (see kiln list --help)"
        );
    }
}
