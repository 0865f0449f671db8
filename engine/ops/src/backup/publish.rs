//! The end of a backup: the summary, then (packs, index, snapshot, in that order) publishing.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::options::{BackupOptions, BackupOutcome, Warning};
use super::walk::{self, Archiver};
use kairn_format::error::Result;
use kairn_format::id::{BlobId, SnapshotId};
use kairn_format::snapshot::{Snapshot, Source, Summary};
use kairn_repository::session::Session;
use kairn_repository::snapshots::UnreadableFile;

/// What a dry run found: the snapshot a backup would have written (not written), with its
/// summary. `new_bytes_stored` is an estimate: each new blob was compressed and sealed to
/// measure it, but pack headers and index entries are reckoned, not built.
#[derive(Debug, Clone)]
pub struct DryRunOutcome {
    /// The snapshot that was not written.
    pub snapshot: Snapshot,
    /// Entries that could not be read, or changed while read.
    pub warnings: Vec<Warning>,
    /// Entries left out on purpose (the repository itself), with why.
    pub notes: Vec<Warning>,
    /// Snapshot files skipped as damaged while looking for the parent: the caller warns.
    pub skipped_snapshots: Vec<UnreadableFile>,
}

/// A walked backup, not yet published.
pub(crate) struct Pending {
    pub(crate) root: BlobId,
    pub(crate) started: chrono::DateTime<chrono::Utc>,
    pub(crate) clock: Instant,
    pub(crate) host: String,
    pub(crate) paths: Vec<String>,
    pub(crate) source: Source,
    pub(crate) parent: Option<SnapshotId>,
    pub(crate) skipped_snapshots: Vec<UnreadableFile>,
}

type Summarized = (Snapshot, Vec<Warning>, Vec<Warning>, Vec<UnreadableFile>);

/// Writes the packs and the index (nothing for a dry run), then builds the snapshot.
pub(crate) fn summarize(a: &Archiver<'_>, p: Pending, opts: &BackupOptions) -> Result<Summarized> {
    a.saver.flush()?;
    let warnings = std::mem::take(&mut *walk::lock(&a.warnings));
    let notes = std::mem::take(&mut *walk::lock(&a.notes));
    let c = &a.counters;
    let s = a.saver.stats();
    let summary = Summary {
        files_new: c.files_new.load(Ordering::Relaxed),
        files_changed: c.files_changed.load(Ordering::Relaxed),
        files_unmodified: c.files_unmodified.load(Ordering::Relaxed),
        dirs: c.dirs.load(Ordering::Relaxed),
        others: c.others.load(Ordering::Relaxed),
        total_bytes: c.total_bytes.load(Ordering::Relaxed),
        bytes_read: c.bytes_read.load(Ordering::Relaxed),
        data_blobs_new: s.data_blobs.load(Ordering::Relaxed),
        tree_blobs_new: s.tree_blobs.load(Ordering::Relaxed),
        new_bytes_raw: s.raw_bytes.load(Ordering::Relaxed),
        new_bytes_stored: s.stored_bytes.load(Ordering::Relaxed),
        started: rfc3339(p.started),
        finished: rfc3339(chrono::Utc::now()),
        duration_secs: p.clock.elapsed().as_secs_f64(),
        warnings: warnings.len() as u64,
        warning_samples: warnings
            .iter()
            .take(100)
            .map(|w| format!("{}: {}", w.path.display(), w.message))
            .collect(),
    };
    let snapshot = Snapshot {
        time: rfc3339(p.started),
        host: p.host,
        username: kairn_repository::sysinfo::username(),
        paths: p.paths,
        tags: opts.tags.clone(),
        tree: p.root,
        parent: p.parent,
        original: None,
        source: p.source,
        group: opts.group.clone(),
        incomplete: !warnings.is_empty(),
        summary,
        program: format!("kairn {}", env!("CARGO_PKG_VERSION")),
    };
    Ok((snapshot, warnings, notes, p.skipped_snapshots))
}

/// Publishes a walked backup: packs, then index, then the snapshot.
pub(crate) fn finish(
    a: &Archiver<'_>,
    session: &Session,
    p: Pending,
    opts: &BackupOptions,
) -> Result<BackupOutcome> {
    debug_assert!(!a.saver.is_dry_run());
    let (snapshot, warnings, notes, skipped_snapshots) = summarize(a, p, opts)?;
    let id = session.save_snapshot(&snapshot)?;
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings,
        notes,
        skipped_snapshots,
    })
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
