//! `copy`: snapshots from one repository into another that has other keys and chunk sizes.
//!
//! Blob ids are keyed and chunk boundaries come from a keyed gear table (repo-format.md §3, §8),
//! so no blob of the source means anything in the destination. Every file's content is read
//! from the source blob by blob, verified as every read is (`reader`), and cut again with the
//! destination's chunker (`content`); the chunks go through a [`BlobSaver`], which stores only
//! what the destination does not hold yet. Each data region between holes is chunked as one
//! input, as a backup does (§12), so holes stay holes and the same file backed up straight into
//! the destination yields the same chunks. Trees are rewritten with the new content lists and
//! subtree ids (`rewrite`); every other field of every node (names, modes, owners, times,
//! inode, device and link count, xattrs, symlink targets, device numbers) is kept as it is.
//! Memory per file is the chunker's buffer plus a bounded read-ahead of source blobs, never the
//! whole file.
//!
//! The new snapshot keeps every field of the source snapshot (time, host, user, paths, tags,
//! source identity, completeness, the summary of the original backup and the program that
//! wrote it) but its root tree, its parent and its `original`. The parent names a source
//! snapshot; it becomes that snapshot's copy in the destination when there is one, and is
//! dropped otherwise. `original` (§13) is the source snapshot's own `original` when it has one
//! and its id otherwise, so every copy in a chain of copies (A to B to C) names the snapshot
//! first backed up.
//!
//! **Recognising a snapshot already copied** (`recognise`). Snapshot ids are hashes of sealed
//! bytes and tree ids are keyed, so neither can be compared across repositories; `original` can.
//! A destination snapshot is the copy of a source snapshot when its `original` or its own id is
//! the source snapshot's id or the source's `original` (the own id covers a copy brought back to
//! the repository it came from). Tags changed on either side after the copy do not matter.
//! Copies made before the field existed record none; for them, a copy is recognised by what it
//! keeps and no two backups share: the start time to the nanosecond, host, user, sorted paths
//! and tags, and source identity. This fallback considers only destination snapshots that no
//! source snapshot claims through `original`, so two source snapshots of equal identity (only
//! `repair snapshots --keep-original` of a snapshot already tagged `repaired` makes them) are
//! each copied. Against copies without the field the old limits remain: a snapshot whose tags
//! were changed on one side after such a copy is copied again, and two source snapshots of equal
//! identity both match one such copy.
//!
//! Each snapshot is published on its own: its packs and index are flushed, the session is
//! committed and the snapshot written before the next one is read, so an interrupted copy
//! keeps what it finished and a second run copies only the rest. Within a run, trees (by
//! source tree id) and file contents (by source content list) are rewritten once, so what
//! successive snapshots share is read once; the memo is bounded, and forgets when full
//! (`memo`).

mod content;
mod memo;
mod recognise;
mod rewrite;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use serde::Serialize;

use self::recognise::{Copies, Shape, origin};
use self::rewrite::Rewriter;
use crate::progress::Progress;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::SnapshotId;
use kairn_format::snapshot::Snapshot;
use kairn_repository::index::Index;
use kairn_repository::repo::Repository;
use kairn_repository::save::BlobSaver;
use kairn_repository::session::Session;
use kairn_repository::snapshots::SnapshotFilter;

/// Which snapshots to copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// The source snapshots passing this filter, when `ids` is empty.
    pub filter: SnapshotFilter,
    /// Exactly these source snapshots; the filter is then not applied.
    pub ids: Vec<SnapshotId>,
    /// Only decide what would be copied: read no data, write nothing.
    pub dry_run: bool,
}

/// A snapshot that was copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopiedSnapshot {
    /// The snapshot in the source.
    pub source: SnapshotId,
    /// Its copy in the destination; `None` in a dry run.
    pub copy: Option<SnapshotId>,
}

/// A snapshot that was not copied because the destination already has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedSnapshot {
    /// The snapshot in the source.
    pub source: SnapshotId,
    /// The destination snapshot it matches (in a dry run, possibly the source snapshot it
    /// matches that would be copied first).
    pub existing: SnapshotId,
}

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots copied, oldest first.
    pub copied: Vec<CopiedSnapshot>,
    /// Snapshots already in the destination.
    pub skipped: Vec<SkippedSnapshot>,
    /// True when nothing was read or written.
    pub dry_run: bool,
    /// Files whose content was read and chunked again (each distinct content once per run).
    pub files_read: u64,
    /// Bytes of file content read from the source.
    pub bytes_read: u64,
    /// Chunks the destination did not have, stored.
    pub data_blobs_new: u64,
    /// Their bytes, before compression.
    pub data_bytes_new: u64,
    /// Chunks the destination already had (or got earlier in this run), not stored again.
    pub data_blobs_deduplicated: u64,
    /// Their bytes.
    pub data_bytes_deduplicated: u64,
    /// Trees stored.
    pub tree_blobs_new: u64,
    /// Bytes added to the destination: packs and index files.
    pub bytes_stored: u64,
}

/// Copies snapshots of `src` into `dst`, which must be in a writer session (the caller begins
/// it before loading `dst_index`, and ends it).
pub fn copy(
    src: &Repository,
    src_index: &Index,
    dst: &Repository,
    dst_session: &Session,
    dst_index: &Index,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let all = src.load_snapshots()?;
    let sources: HashMap<SnapshotId, Snapshot> = all.iter().cloned().collect();
    let chosen = choose(all, opts)?;
    let mut present = Copies::new(dst.load_snapshots()?, &sources);
    let mut report = CopyReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let saver = BlobSaver::new(dst, dst_session, dst_index)?;
    let rewriter = Rewriter::new(src, src_index, dst, &saver, progress);
    progress.start("copy", None);
    for (id, snap) in chosen {
        if let Some(existing) = present.find(id, &snap) {
            report.skipped.push(SkippedSnapshot {
                source: id,
                existing,
            });
            continue;
        }
        let original = origin(id, &snap);
        let shape = Shape::of(&snap);
        if opts.dry_run {
            present.insert(original, shape, id);
            report.copied.push(CopiedSnapshot {
                source: id,
                copy: None,
            });
            continue;
        }
        let root = rewriter
            .tree(snap.tree, Path::new("/"))
            .map_err(|e| e.with_context("snapshot", id.short()))?;
        // Ordering: packs, then index (flush), then the snapshot.
        saver.flush()?;
        let parent = snap
            .parent
            .and_then(|p| sources.get(&p).and_then(|s| present.find(p, s)));
        let copy = Snapshot {
            tree: root,
            parent,
            original: Some(original),
            ..snap
        };
        let new_id = dst_session.save_snapshot(&copy)?;
        present.insert(original, shape, new_id);
        report.copied.push(CopiedSnapshot {
            source: id,
            copy: Some(new_id),
        });
    }
    progress.finish();
    let c = &rewriter.counts;
    report.files_read = c.files.load(Ordering::Relaxed);
    report.bytes_read = c.bytes_read.load(Ordering::Relaxed);
    report.data_blobs_new = c.new_blobs.load(Ordering::Relaxed);
    report.data_bytes_new = c.new_bytes.load(Ordering::Relaxed);
    report.data_blobs_deduplicated = c.dedup_blobs.load(Ordering::Relaxed);
    report.data_bytes_deduplicated = c.dedup_bytes.load(Ordering::Relaxed);
    report.tree_blobs_new = saver.stats.tree_blobs.load(Ordering::Relaxed);
    report.bytes_stored = saver.stats.stored_bytes.load(Ordering::Relaxed);
    Ok(report)
}

/// The snapshots to consider, oldest first.
fn choose(
    all: Vec<(SnapshotId, Snapshot)>,
    opts: &CopyOptions,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    if opts.ids.is_empty() {
        return Ok(all
            .into_iter()
            .filter(|(_, s)| opts.filter.matches(s))
            .collect());
    }
    if let Some(missing) = opts
        .ids
        .iter()
        .find(|id| !all.iter().any(|(a, _)| a == *id))
    {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("the source repository has no snapshot {}", missing.short()),
        ));
    }
    Ok(all
        .into_iter()
        .filter(|(id, _)| opts.ids.contains(id))
        .collect())
}
