use anyhow::Result;
use clap::Args;
use engine::inspect::diff::{ChangeKind, diff};

use crate::args::Global;
use crate::cmd::select::FilterArgs;
use crate::output;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot.
    first: String,
    /// The newer snapshot.
    second: String,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(g: &Global, a: DiffArgs) -> Result<()> {
    let (repo, index) = g.open_indexed()?;
    let (ida, sa) = a.filter.find(&repo, &a.first)?;
    let (idb, sb) = a.filter.find(&repo, &a.second)?;
    let changes = diff(&repo, &index, sa.tree, sb.tree)?;
    if g.json {
        return output::json(&serde_json::json!({
            "first": ida.to_hex(), "second": idb.to_hex(), "changes": changes,
        }));
    }
    if !g.quiet {
        output::line(format!(
            "comparing snapshot {} to {}:",
            ida.short(),
            idb.short()
        ))?;
    }
    for c in &changes {
        output::line(format!("{}    {}", c.kind.symbol(), c.path))?;
    }
    let count = |k: ChangeKind| changes.iter().filter(|c| c.kind == k).count();
    if !g.quiet {
        output::line(format!(
            "{} added, {} removed, {} modified, {} metadata only, {} type changed",
            count(ChangeKind::Added),
            count(ChangeKind::Removed),
            count(ChangeKind::Modified),
            count(ChangeKind::Metadata),
            count(ChangeKind::TypeChanged)
        ))?;
    }
    Ok(())
}
