use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use engine::format::record::{RecordKind, RestoreRecord};
use engine::locate::locate;
use engine::restore::{RestoreOptions, restore};

use crate::args::Global;
use crate::cmd::select::FilterArgs;
use crate::exit::Partial;
use crate::progress::CliProgress;
use crate::{exit, output, record};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// SNAPSHOT[:SUBPATH]; `latest` is the newest snapshot.
    snapshot: String,
    /// Directory to restore into (created if missing).
    #[arg(short, long)]
    target: PathBuf,
    /// Restore only paths matching this pattern (repeatable).
    #[arg(short, long = "include", value_name = "PATTERN")]
    include: Vec<String>,
    /// Skip paths matching this pattern (repeatable).
    #[arg(short, long = "exclude", value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Re-read every restored file and check it against the snapshot.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(g: &Global, a: RestoreArgs) -> Result<()> {
    let (repo, index) = g.open_indexed()?;
    let (id, snap, path) = a.filter.resolve(&repo, &a.snapshot)?;
    let start = locate(&repo, &index, snap.tree, &path)?;
    let opts = RestoreOptions {
        include: a.include,
        exclude: a.exclude,
        verify: a.verify,
        owner: None,
    };
    let progress = CliProgress::new(g.quiet || g.json, false);
    let started = chrono::Utc::now();
    let restored = restore(&repo, &index, &start, &a.target, &opts, &progress);
    if a.verify {
        let scope = Scope {
            id,
            snap: &snap,
            path: &path,
            filtered: !opts.include.is_empty() || !opts.exclude.is_empty(),
        };
        record_verified(&repo, started, &scope, &restored);
    }
    let report = restored?;
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": id.to_hex(),
            "files": report.files, "unchanged": report.unchanged, "dirs": report.dirs, "others": report.others, "bytes": report.bytes,
            "verified": report.verified, "out_of_space": report.out_of_space,
            "errors": report.errors.iter().map(|e| serde_json::json!({"path": e.path.to_string_lossy(), "message": e.message})).collect::<Vec<_>>(),
            "warnings": report.warnings.iter().map(|e| serde_json::json!({"path": e.path.to_string_lossy(), "message": e.message})).collect::<Vec<_>>(),
        }))?;
    } else {
        for w in &report.warnings {
            eprintln!("warning: {}: {}", shown(&w.path), w.message);
        }
        for e in &report.errors {
            eprintln!("error: {}: {}", shown(&e.path), e.message);
        }
        if !g.quiet {
            output::line(format!(
                "restored snapshot {} to {}: {} files, {} dirs, {} others, {}",
                id.short(),
                a.target.display(),
                report.files,
                report.dirs,
                report.others,
                output::bytes(report.bytes)
            ))?;
            if report.unchanged > 0 {
                output::line(format!(
                    "{} files were already in place with the right content, and not written",
                    report.unchanged
                ))?;
            }
            if a.verify {
                output::line(format!("verified {} files", report.verified))?;
            }
        }
    }
    if report.out_of_space {
        // Every file the full disk stopped is named above, and none is left under its name.
        return Err(Partial {
            code: exit::NO_SPACE,
            message: format!(
                "the restore target is full: {} file(s) could not be restored (named above); \
                 every other file was",
                report.errors.len()
            ),
        }
        .into());
    }
    if !report.errors.is_empty() {
        return Err(Partial {
            code: exit::DAMAGED_DATA,
            message: format!(
                "{} file(s) could not be restored; every other file was",
                report.errors.len()
            ),
        }
        .into());
    }
    Ok(())
}

/// What a verified restore restored.
struct Scope<'a> {
    id: engine::id::SnapshotId,
    snap: &'a engine::format::snapshot::Snapshot,
    path: &'a str,
    filtered: bool,
}

/// Leaves the verified restore's record for `repo report`.
fn record_verified(
    repo: &engine::repo::Repository,
    started: chrono::DateTime<chrono::Utc>,
    scope: &Scope<'_>,
    restored: &engine::Result<engine::restore::RestoreReport>,
) {
    let outcome = match restored {
        Ok(r) => record::Outcome::problems_if(
            !r.errors.is_empty() || r.out_of_space,
            format!(
                "{} file(s) could not be restored or verified",
                r.errors.len()
            ),
        ),
        Err(e) => record::Outcome::failed(&anyhow::anyhow!("{e}")),
    };
    let mut rec = record::record(RecordKind::RestoreVerify, started, outcome);
    let report = restored.as_ref().ok();
    rec.restore = Some(RestoreRecord {
        snapshot: scope.id,
        snapshot_time: scope.snap.time.clone(),
        host: scope.snap.host.clone(),
        paths: scope.snap.paths.clone(),
        source: scope.snap.source.clone(),
        path: if scope.path.is_empty() {
            "/".into()
        } else {
            scope.path.to_string()
        },
        filtered: scope.filtered,
        files: report.map_or(0, |r| r.files),
        bytes: report.map_or(0, |r| r.bytes),
        verified: report.map_or(0, |r| r.verified),
        errors: report.map_or(0, |r| r.errors.len() as u64),
    });
    record::store(repo, &rec);
}

/// A path inside the target as shown in messages: the target itself is ".".
fn shown(path: &std::path::Path) -> std::path::Display<'_> {
    if path.as_os_str().is_empty() {
        std::path::Path::new(".").display()
    } else {
        path.display()
    }
}
