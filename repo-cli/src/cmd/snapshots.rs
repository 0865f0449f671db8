use anyhow::Result;
use clap::Args;
use engine::snapshots::{SnapshotFilter, list};

use crate::args::Global;
use crate::output;

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    filter: FilterArgs,
}

/// Which snapshots a command looks at: shared by `snapshots` and `copy`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable).
    #[arg(long = "host")]
    hosts: Vec<String>,
    /// Only snapshots that include this path (repeatable).
    #[arg(long = "path")]
    paths: Vec<String>,
    /// Only snapshots with this tag (repeatable; all must match).
    #[arg(long = "tag")]
    tags: Vec<String>,
}

impl FilterArgs {
    pub fn filter(self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts,
            paths: self.paths,
            tags: self.tags,
            ..Default::default()
        }
    }
}

pub fn run(g: &Global, a: SnapshotsArgs) -> Result<()> {
    let repo = g.open()?;
    let filter = a.filter.filter();
    let snaps = list(&repo, &filter)?;
    if g.json {
        let items: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["id"] = serde_json::Value::String(id.to_hex());
                v["short_id"] = serde_json::Value::String(id.short());
                v
            })
            .collect();
        return output::json(&items);
    }
    output::line(format!(
        "{:<8}  {:<19}  {:<16}  {:<12}  {:>10}  {}",
        "ID", "Time", "Host", "Tags", "Size", "Paths"
    ))?;
    output::line("-".repeat(90))?;
    for (id, s) in &snaps {
        let time = s.datetime().map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        });
        let flag = if s.incomplete { " (incomplete)" } else { "" };
        output::line(format!(
            "{:<8}  {:<19}  {:<16}  {:<12}  {:>10}  {}{flag}",
            id.short(),
            time.unwrap_or_else(|_| s.time.clone()),
            s.host,
            s.tags.join(","),
            output::bytes(s.summary.total_bytes),
            s.paths.join(", ")
        ))?;
    }
    output::line(format!("{} snapshot(s)", snaps.len()))?;
    Ok(())
}
