use anyhow::Result;
use clap::Args;
use engine::format::tree::Node;
use engine::locate::locate;

use crate::args::Global;
use crate::cmd::select::FilterArgs;
use crate::output;

#[derive(Debug, Args)]
pub struct LsArgs {
    /// SNAPSHOT[:PATH]; `latest` is the newest snapshot.
    snapshot: String,
    /// Long listing: type, mode, owner, size, time.
    #[arg(short, long)]
    long: bool,
    /// Only the entries directly inside PATH.
    #[arg(long)]
    no_recursive: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

fn long_line(path: &str, n: &Node) -> String {
    let time = chrono::DateTime::from_timestamp(n.mtime.secs, n.mtime.nanos)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default();
    let owner = if n.user.is_empty() {
        n.uid.to_string()
    } else {
        n.user.clone()
    };
    let group = if n.group.is_empty() {
        n.gid.to_string()
    } else {
        n.group.clone()
    };
    let target = match &n.kind {
        engine::format::tree::NodeKind::Symlink { target } => {
            format!(" -> {}", String::from_utf8_lossy(target))
        }
        _ => String::new(),
    };
    format!(
        "{}{:04o} {owner:>8} {group:>8} {:>12} {time} {path}{target}",
        n.type_char(),
        n.mode,
        n.size()
    )
}

pub fn run(g: &Global, a: LsArgs) -> Result<()> {
    let (repo, index) = g.open_indexed()?;
    let (id, snap, path) = a.filter.resolve(&repo, &a.snapshot)?;
    let start = locate(&repo, &index, snap.tree, &path)?;
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("/{}", path.trim_matches('/'))
    };
    if !g.json && !g.quiet {
        eprintln!(
            "snapshot {} of {} at {}",
            id.short(),
            snap.paths.join(", "),
            output::local_time_of(&snap.time)
        );
    }
    let mut print = |p: &str, n: &Node| -> engine::Result<()> {
        let line = if g.json {
            let mut v = engine::inspect::cat::node_json(n);
            v["path"] = serde_json::Value::String(p.to_string());
            serde_json::to_string(&output::stamped(v)).unwrap_or_default()
        } else if a.long {
            long_line(p, n)
        } else {
            p.to_string()
        };
        output::line(line).map_err(|e| engine::Error::io("cannot write output", e))
    };
    engine::inspect::ls::walk(&repo, &index, &start, &prefix, !a.no_recursive, &mut print)?;
    Ok(())
}
