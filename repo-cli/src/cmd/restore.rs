use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use engine::format::record::{RecordKind, RestoreRecord};
use engine::locate::locate;
use engine::restore::{Overwrite, RestoreOptions, RestoreReport, restore};

use crate::args::Global;
use crate::cmd::select::FilterArgs;
use crate::exit::Partial;
use crate::progress::CliProgress;
use crate::{exit, output, record};

/// Restore a snapshot, or a part of it, into a directory.
#[derive(Debug, Args)]
#[command(
    after_long_help = "With SNAPSHOT:SUBPATH the target stands for SUBPATH, and \
--include/--exclude patterns are matched relative to it, as restic does: \
`repo restore latest:/data --target /mnt/restore --include /www` restores /data/www to \
/mnt/restore/www. A pattern that matches nothing in the snapshot is named on stderr, with the \
relative form when it starts with SUBPATH."
)]
pub struct RestoreArgs {
    /// SNAPSHOT[:SUBPATH]; `latest` is the newest snapshot.
    snapshot: String,
    /// Directory to restore into (created if missing; not with --dry-run).
    #[arg(short, long)]
    target: PathBuf,
    /// Restore only paths matching this pattern (repeatable); relative to SUBPATH with
    /// SNAPSHOT:SUBPATH (see below).
    #[arg(short, long = "include", value_name = "PATTERN")]
    include: Vec<String>,
    /// Skip paths matching this pattern (repeatable); relative to SUBPATH with
    /// SNAPSHOT:SUBPATH.
    #[arg(short, long = "exclude", value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Re-read every restored file and check it against the snapshot.
    #[arg(long, conflicts_with = "dry_run")]
    verify: bool,
    /// What to do with an entry that already exists in the target. Kairn compares a file's
    /// content by hashing it against the snapshot, never by size and mtime alone, and never
    /// writes a file whose content is already right. always: replace every existing entry
    /// (a file already holding the snapshot's content gets only its metadata set);
    /// if-changed: replace an entry only when its content or metadata (mode, mtime, owner,
    /// xattrs) differs; if-newer: only when the snapshot's mtime is later than the existing
    /// entry's; never: leave every existing entry (counted as skipped). Directories are always
    /// made and get the snapshot's metadata; a directory holding entries where the snapshot
    /// has a file is replaced only with --delete.
    #[arg(long, value_enum, default_value = "if-changed", value_name = "WHEN")]
    overwrite: OverwriteArg,
    /// Remove what the restored directories of the target hold and the snapshot lacks. Only
    /// inside the restored part, only what --include/--exclude select (an excluded path stays;
    /// a directory the snapshot lacks goes whole, as in restic, whatever is inside it), and a
    /// symlink is removed as a link, never followed. Try it first with --dry-run.
    #[arg(long)]
    delete: bool,
    /// Change nothing (the target is not even created): list what would be new, replaced,
    /// deleted or skipped, and count what is already in place.
    #[arg(short = 'n', long)]
    dry_run: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OverwriteArg {
    Always,
    IfChanged,
    IfNewer,
    Never,
}

impl From<OverwriteArg> for Overwrite {
    fn from(a: OverwriteArg) -> Self {
        match a {
            OverwriteArg::Always => Self::Always,
            OverwriteArg::IfChanged => Self::IfChanged,
            OverwriteArg::IfNewer => Self::IfNewer,
            OverwriteArg::Never => Self::Never,
        }
    }
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
        overwrite: a.overwrite.into(),
        delete: a.delete,
        dry_run: a.dry_run,
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
    warn_unmatched(&report, &path);
    if g.json {
        output::json(&summary_json(id, &a.target, &opts, &report))?;
    } else {
        for w in &report.warnings {
            eprintln!("warning: {}: {}", shown(&w.path), w.message);
        }
        for e in &report.errors {
            eprintln!("error: {}: {}", shown(&e.path), e.message);
        }
        if !g.quiet {
            print_text(id, &a.target, &opts, &report)?;
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
        let message = if opts.dry_run {
            format!(
                "dry run: {} file(s) could not be restored (named above)",
                report.errors.len()
            )
        } else {
            format!(
                "{} file(s) could not be restored; every other file was",
                report.errors.len()
            )
        };
        return Err(Partial {
            code: exit::DAMAGED_DATA,
            message,
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

/// The report as JSON: the counts, what `--delete` removed, patterns that matched nothing,
/// and for a dry run every change it found.
fn summary_json(
    id: engine::id::SnapshotId,
    target: &std::path::Path,
    opts: &RestoreOptions,
    report: &RestoreReport,
) -> serde_json::Value {
    let problems = |list: &[engine::restore::RestoreProblem]| {
        list.iter()
            .map(|e| serde_json::json!({"path": e.path.to_string_lossy(), "message": e.message}))
            .collect::<Vec<_>>()
    };
    let paths = |list: &[PathBuf]| {
        list.iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    let mut doc = serde_json::json!({
        "snapshot": id.to_hex(),
        "target": target.to_string_lossy(),
        "dry_run": opts.dry_run,
        "overwrite": opts.overwrite.name(),
        "delete": opts.delete,
        "files": report.files, "unchanged": report.unchanged, "dirs": report.dirs,
        "others": report.others, "bytes": report.bytes,
        "replaced": report.replaced, "skipped": report.skipped,
        "deleted": report.deleted.len(), "deleted_paths": paths(&report.deleted),
        "unmatched_include": report.unmatched_include,
        "unmatched_exclude": report.unmatched_exclude,
        "verified": report.verified, "out_of_space": report.out_of_space,
        "errors": problems(&report.errors),
        "warnings": problems(&report.warnings),
    });
    if opts.dry_run {
        doc["new"] = new_count(report).into();
        doc["changes"] = report
            .changes
            .iter()
            .map(|c| {
                serde_json::json!({
                    "path": c.path.to_string_lossy(),
                    "action": c.action.name(),
                    "dir": c.dir,
                })
            })
            .collect::<Vec<_>>()
            .into();
    }
    doc
}

fn new_count(report: &RestoreReport) -> usize {
    report
        .changes
        .iter()
        .filter(|c| c.action == engine::restore::ChangeAction::New)
        .count()
}

/// The text summary; a dry run first lists each change, a real run each path it deleted.
fn print_text(
    id: engine::id::SnapshotId,
    target: &std::path::Path,
    opts: &RestoreOptions,
    report: &RestoreReport,
) -> Result<()> {
    let at = |rel: &std::path::Path| target.join(rel).display().to_string();
    let policy = opts.overwrite.name();
    if opts.dry_run {
        for c in &report.changes {
            let slash = if c.dir { "/" } else { "" };
            output::line(format!("{:<8} {}{slash}", c.action.name(), at(&c.path)))?;
        }
        output::line(format!(
            "dry run: restoring snapshot {} to {} would make {} new, replace {}, delete {}; \
             already in place: {} file(s); skipped by --overwrite {policy}: {}; nothing was \
             written",
            id.short(),
            target.display(),
            new_count(report),
            report.replaced,
            report.deleted.len(),
            report.unchanged,
            report.skipped,
        ))?;
        return Ok(());
    }
    for rel in &report.deleted {
        output::line(format!("deleted {}", at(rel)))?;
    }
    output::line(format!(
        "restored snapshot {} to {}: {} files, {} dirs, {} others, {}",
        id.short(),
        target.display(),
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
    if report.replaced + report.skipped > 0 || !report.deleted.is_empty() {
        output::line(format!(
            "replaced {}, skipped {} (--overwrite {policy}), deleted {}",
            report.replaced,
            report.skipped,
            report.deleted.len()
        ))?;
    }
    if opts.verify {
        output::line(format!("verified {} files", report.verified))?;
    }
    Ok(())
}

/// Warns, on stderr, of each pattern that matched nothing in the snapshot, with a hint when
/// the pattern starts with the SUBPATH it is relative to.
fn warn_unmatched(report: &RestoreReport, subpath: &str) {
    let given = [
        ("--include", &report.unmatched_include),
        ("--exclude", &report.unmatched_exclude),
    ];
    for (flag, patterns) in given {
        for pattern in patterns {
            let hint = relative_hint(subpath, flag, pattern)
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            eprintln!("warning: {flag} {pattern:?} matched nothing in the snapshot{hint}");
        }
    }
}

/// Patterns are relative to SUBPATH: a pattern that starts with it was most likely written
/// for the whole snapshot. Says what to type instead.
fn relative_hint(subpath: &str, flag: &str, pattern: &str) -> Option<String> {
    let parts: Vec<&str> = subpath
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() {
        return None;
    }
    let prefix = format!("/{}", parts.join("/"));
    let rest = pattern.trim_end_matches('/').strip_prefix(&prefix)?;
    if rest.is_empty() {
        return Some(format!(
            "patterns are relative to {prefix}, which the target stands for: leave out {flag} \
             {pattern} to take all of it"
        ));
    }
    rest.starts_with('/')
        .then(|| format!("patterns are relative to {prefix}: try {flag} {rest}"))
}

#[cfg(test)]
mod tests {
    use super::relative_hint;

    #[test]
    fn the_hint_strips_the_subpath_it_finds_at_the_start_of_a_pattern() {
        assert_eq!(
            relative_hint("/data", "--include", "/data/www").as_deref(),
            Some("patterns are relative to /data: try --include /www")
        );
        assert_eq!(
            relative_hint("data/", "--exclude", "/data/www/*.log").as_deref(),
            Some("patterns are relative to /data: try --exclude /www/*.log")
        );
        assert!(
            relative_hint("/data", "--include", "/data")
                .is_some_and(|h| h.contains("leave out --include /data"))
        );
        assert_eq!(relative_hint("", "--include", "/data/www"), None);
        assert_eq!(relative_hint("/data", "--include", "/database"), None);
        assert_eq!(relative_hint("/data", "--include", "*.log"), None);
    }
}
