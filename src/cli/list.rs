use crate::cli::Globals;
use crate::container::{Container, list_ids};

#[derive(clap::Args)]
pub struct Args {
    /// table or json.
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print only the IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    let containers: Vec<Container> = list_ids(&g.root)?
        .iter()
        .filter_map(|id| Container::peek(&g.root, id).ok())
        .collect();
    if a.quiet {
        for c in &containers {
            println!("{}", c.id());
        }
        return Ok(0);
    }
    let rows: Vec<(crate::container::Status, String)> =
        containers.iter().map(|c| (c.status(), c.owner())).collect();
    if a.format == "json" {
        let states: Vec<_> = containers
            .iter()
            .zip(&rows)
            .map(|(c, (status, owner))| c.state.runc_json(*status, owner))
            .collect();
        // runc encodes a nil slice: `null` when there are no containers.
        if states.is_empty() {
            println!("null");
        } else {
            println!("{}", serde_json::to_string(&states)?);
        }
        return Ok(0);
    }
    let mut table = vec![
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
            .map(String::from)
            .to_vec(),
    ];
    for (c, (status, owner)) in containers.iter().zip(&rows) {
        let s = c.state.runc_json(*status, owner);
        table.push(vec![
            s.id.to_owned(),
            s.pid.to_string(),
            s.status.to_owned(),
            s.bundle.display().to_string(),
            s.created.to_owned(),
            s.owner.to_owned(),
        ]);
    }
    print!("{}", tabulate(&table));
    Ok(0)
}

/// Go's tabwriter as runc configures it (minwidth 12, padding 3, spaces): every column but the
/// last padded to its widest cell plus 3, at least 12.
fn tabulate(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, |r| r.len());
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .saturating_add(3)
                .max(12)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == cols {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_matches_tabwriter() {
        let rows = vec![
            vec!["ID".into(), "PID".into(), "OWNER".into()],
            vec!["a-long-container-id".into(), "123".into(), "root".into()],
        ];
        let t = super::tabulate(&rows);
        assert_eq!(
            t,
            "ID                    PID         OWNER\na-long-container-id   123         root\n"
        );
    }
}
