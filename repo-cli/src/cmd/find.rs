//! `repo find`: in which snapshots a file or directory exists (by name, path or time), or which
//! files use a blob, a tree or a pack.

use std::collections::HashSet;

use anyhow::{Result, bail};
use clap::Args;
use engine::format::snapshot::Snapshot;
use engine::id::{BlobKind, SnapshotId};
use engine::inspect::find::{
    FindQuery, Finder, Hit, Patterns, SnapshotHits, pack_blobs, parse_time, resolve_blob,
};

use crate::args::Global;
use crate::cmd::select::FilterArgs;
use crate::exit::UsageError;
use crate::output;

#[derive(Debug, Args)]
pub struct FindArgs {
    /// Globs on the name (`*.log`), on the path's last components (`log/*.log`), or on the
    /// whole path when they start with `/` (`/home/*/.ssh`). `*` stays within a name, `**`
    /// crosses directories.
    patterns: Vec<String>,
    /// Look only in this snapshot (repeatable; an id, a prefix or `latest`).
    #[arg(short = 's', long = "snapshot", value_name = "ID")]
    snapshots: Vec<String>,
    /// Only entries modified at or after this time: 2026-11-30, "2026-11-30 14:00:00" (local
    /// time) or RFC 3339.
    #[arg(short = 'O', long, value_name = "TIME")]
    oldest: Option<String>,
    /// Only entries modified at or before this time (a bare date takes in the whole day).
    #[arg(short = 'N', long, value_name = "TIME")]
    newest: Option<String>,
    /// Match the patterns without regard to case.
    #[arg(short = 'i', long)]
    ignore_case: bool,
    /// Files whose content uses this blob, or the directory that is this tree blob (an id or
    /// unique prefix; repeatable).
    #[arg(long = "blob", value_name = "ID")]
    blobs: Vec<String>,
    /// The directories whose tree is this tree blob (repeatable).
    #[arg(long = "tree", value_name = "ID")]
    trees: Vec<String>,
    /// Files and directories that use a blob of this pack (repeatable).
    #[arg(long = "pack", value_name = "ID")]
    packs: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(g: &Global, a: FindArgs) -> Result<()> {
    let by_id = !(a.blobs.is_empty() && a.trees.is_empty() && a.packs.is_empty());
    if a.patterns.is_empty() && !by_id {
        bail!(UsageError(
            "find what? give a pattern (like '*.conf' or '/etc/**'), or --blob, --tree or --pack"
                .into()
        ));
    }
    let patterns = Patterns::new(&a.patterns, a.ignore_case).map_err(usage)?;
    let oldest = a
        .oldest
        .as_deref()
        .map(|t| parse_time(t, &chrono::Local, false))
        .transpose()
        .map_err(usage)?;
    let newest = a
        .newest
        .as_deref()
        .map(|t| parse_time(t, &chrono::Local, true))
        .transpose()
        .map_err(usage)?;
    if let (Some(o), Some(n)) = (oldest, newest)
        && o > n
    {
        bail!(UsageError(
            "--oldest is after --newest: nothing can match".into()
        ));
    }
    let (repo, index) = g.open_indexed()?;
    let mut blobs = HashSet::new();
    for b in &a.blobs {
        blobs.insert(resolve_blob(&index, b, None).map_err(invalid_is_usage)?);
    }
    for t in &a.trees {
        blobs.insert(resolve_blob(&index, t, Some(BlobKind::Tree)).map_err(invalid_is_usage)?);
    }
    for p in &a.packs {
        blobs.extend(pack_blobs(&index, p).map_err(invalid_is_usage)?);
    }
    let snapshots = chosen(&repo, &a.snapshots, &a.filter)?;
    let query = FindQuery {
        patterns,
        oldest,
        newest,
        blobs,
    };
    let mut finder = Finder::new(&repo, &index, query);
    let mut found = Vec::new();
    for (id, snap) in &snapshots {
        let hits = finder.snapshot(*id, snap)?;
        if hits.hits.is_empty() {
            continue;
        }
        if g.json {
            found.push(hits);
        } else if !g.quiet {
            print(&hits)?;
        }
    }
    if g.json {
        return output::json(&found);
    }
    Ok(())
}

pub(crate) fn usage(e: engine::Error) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

/// An id that is no id (or an ambiguous prefix) is the command line's mistake; one that names
/// nothing stored is not.
fn invalid_is_usage(e: engine::Error) -> anyhow::Error {
    if e.kind() == engine::ErrorKind::InvalidInput {
        usage(e)
    } else {
        e.into()
    }
}

/// The snapshots named (ids, prefixes or `latest`, each passing the filters), or every
/// readable snapshot passing the filters when none is; oldest first, each once. Shared by
/// `find`, `tag` and `rewrite`.
pub(crate) fn chosen(
    repo: &engine::repo::Repository,
    names: &[String],
    filter: &FilterArgs,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    if names.is_empty() {
        let found = engine::snapshots::list_readable(repo, &filter.filter())?;
        output::warn_skipped_snapshots(&found.damaged);
        return Ok(found.snapshots);
    }
    let mut out: Vec<(SnapshotId, Snapshot)> = Vec::new();
    for name in names {
        let (id, snap) = filter.find(repo, name)?;
        if !out.iter().any(|(o, _)| *o == id) {
            out.push((id, snap));
        }
    }
    out.sort_by(|x, y| x.1.time.cmp(&y.1.time).then(x.0.cmp(&y.0)));
    Ok(out)
}

fn print(found: &SnapshotHits) -> Result<()> {
    output::line(format!(
        "Found matching entries in snapshot {} from {}",
        found.snapshot.short(),
        output::local_time_of(&found.time)
    ))?;
    for hit in &found.hits {
        output::line(hit_line(hit))?;
    }
    output::line("")?;
    Ok(())
}

fn hit_line(hit: &Hit) -> String {
    let path = if hit.kind == "dir" && hit.path != "/" {
        format!("{}/", hit.path)
    } else {
        hit.path.clone()
    };
    let mtime = hit
        .mtime
        .as_deref()
        .map(output::local_time_of)
        .unwrap_or_else(|| "-".into());
    let blobs = match hit.blobs.as_slice() {
        [] => String::new(),
        [one] => format!("  blob {}", &one[..one.len().min(8)]),
        many => format!("  {} blobs", many.len()),
    };
    format!("{path}  {}  {mtime}{blobs}", hit.size)
}
