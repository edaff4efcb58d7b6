use crate::cli::Globals;
use crate::container::{Container, State, Status, UserNames, entry_owner, list_ids};
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    /// table or json.
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print only the IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// One line of the list: a container, or one whose state cannot be read, shown `unknown` (with
/// what is wrong on stderr) rather than hidden: `delete --force` removes it. runc hides it,
/// saying why on stderr.
struct Row {
    state: State,
    status: Status,
    owner: String,
}

pub fn run(g: &Globals, a: Args) -> anyhow::Result<i32> {
    let mut names = UserNames::default();
    let rows: Vec<Row> = list_ids(&g.root)?
        .into_iter()
        .filter_map(|id| match Container::peek(&g.root, &id) {
            Ok(c) => Some(Row {
                status: c.status(),
                owner: names.of(c.owner()),
                state: c.state,
            }),
            // Deleted since the root was read.
            Err(Error::NotFound { .. }) => None,
            Err(e) => {
                crate::log::warn(&format!("list: {e}"));
                Some(Row {
                    status: Status::Unknown,
                    owner: names.of(entry_owner(&g.root, &id)),
                    state: State::recovered(&id, Default::default()),
                })
            }
        })
        .collect();
    if a.quiet {
        let ids: String = rows.iter().map(|r| format!("{}\n", r.state.id)).collect();
        crate::cli::out(&ids)?;
        return Ok(0);
    }
    if a.format == "json" {
        let states: Vec<_> = rows
            .iter()
            .map(|r| r.state.runc_json(r.status, &r.owner))
            .collect();
        // runc encodes a nil slice: `null` when there are no containers.
        if states.is_empty() {
            crate::cli::out("null\n")?;
        } else {
            crate::cli::out(&format!("{}\n", serde_json::to_string(&states)?))?;
        }
        return Ok(0);
    }
    let mut table = vec![
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
            .map(String::from)
            .to_vec(),
    ];
    for r in &rows {
        let s = r.state.runc_json(r.status, &r.owner);
        table.push(vec![
            s.id.to_owned(),
            s.pid.to_string(),
            s.status.to_owned(),
            s.bundle.display().to_string(),
            s.created.to_owned(),
            s.owner.to_owned(),
        ]);
    }
    crate::cli::out(&tabulate(&table))?;
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
