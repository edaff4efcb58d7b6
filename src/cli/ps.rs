use crate::cli::Globals;
use crate::container::Container;
use crate::error::{Context, Error};

#[derive(clap::Args)]
pub struct Args {
    /// table (the host's ps output, filtered to the container) or json (the pids).
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    pub id: String,
    /// Options for ps(1), as runc passes them (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    let c = Container::peek(&g.root, &a.id)?;
    let pids = c.cgroup()?.pids()?;
    if a.format == "json" {
        // runc encodes a nil slice: `null` for an empty container.
        let json = if pids.is_empty() {
            "null".to_owned()
        } else {
            serde_json::to_string(&pids)?
        };
        crate::cli::out(&format!("{json}\n"))?;
        return Ok(0);
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_owned()]
    } else {
        a.ps_args
    };
    let out = crate::sys::without_inherited_fds(&mut std::process::Command::new("ps"))
        .args(&args)
        .output()
        .ctx(|| "running ps")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Usage(format!(
            "ps {}: {}",
            args.join(" "),
            err.trim().lines().next().unwrap_or("failed")
        ))
        .into());
    }
    // Looked up once per line of ps: a set, not the list, for a container of many processes.
    let pids: std::collections::HashSet<i32> = pids.into_iter().collect();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| {
            Error::Usage(format!(
                "ps {}: its output has no PID column",
                args.join(" ")
            ))
        })?;
    let mut table = format!("{header}\n");
    for line in lines {
        if line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            table.push_str(line);
            table.push('\n');
        }
    }
    crate::cli::out(&table)?;
    Ok(0)
}
