//! The mark (repo-format.md §14.1): reads the repository's state, has `plan.rs` decide, then
//! carries the plan out: repacks, writes the new index, deletes the old index files and
//! records the chosen packs in a garbage list, in that order.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::maintenance::reachable::used_blobs;
use crate::progress::Progress;
use kairn_format::FileKind;
use kairn_format::error::Result;
use kairn_format::garbage::GarbageList;
use kairn_format::id::{GarbageId, PackId, SessionId};
use kairn_repository::index::IndexFiles;
use kairn_repository::repo::Repository;
use kairn_repository::save::index::write_index_files;
use kairn_repository::session::Session;
use kairn_repository::session::registry::list_sessions;

use super::load::{load_index_files, read_headers};
use super::options::PruneOptions;
use super::plan::{MarkInputs, PrunePlan, find_reindexed, unindexed_packs, with_packs};
use super::repack::copy_used_blobs;
use super::report::PruneReport;

/// Marks: returns the garbage list written, if any pack was chosen (and this is no dry run).
pub(super) fn mark(
    repo: &Repository,
    session: &Session,
    opts: &PruneOptions,
    own: SessionId,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<Option<GarbageId>> {
    let inputs = load_inputs(repo, report, progress)?;
    let reindexed = find_reindexed(&inputs)?;
    let ages = pack_ages(repo, session, &reindexed.rest)?;
    let plan = PrunePlan::compute(inputs, reindexed, &ages, opts);
    count(&plan, report);
    if plan.deletes_nothing() {
        if !plan.reindex.is_empty() && !opts.dry_run {
            report.index_files_written += write_index_files(session, plan.reindex, Vec::new())?;
        }
        return Ok(None);
    }
    if opts.dry_run {
        return Ok(None);
    }
    carry_out(repo, session, own, plan, report, progress).map(Some)
}

/// Reads the snapshots, the index and the unindexed packs' headers, and walks the snapshots.
fn load_inputs(
    repo: &Repository,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<MarkInputs> {
    progress.start("prune: reading the index and snapshots", None);
    let snapshot_list = repo.load_snapshots()?;
    // The new index supersedes every stored file, superseded ones too: one kept by a retention
    // lock must never come back into use when the file that superseded it is deleted.
    let IndexFiles {
        live: files,
        all: index_ids,
    } = load_index_files(repo)?;
    let stored: HashMap<PackId, u64> = repo.list_packs()?.into_iter().collect();
    let unindexed = unindexed_packs(&files, &stored);
    // Unindexed packs (of running or interrupted writers, or an interrupted prune) may hold
    // trees a snapshot already uses: the walk must be able to read them.
    let unindexed_headers = read_headers(repo, unindexed.iter().copied());
    let used = used_blobs(
        repo,
        &with_packs(&files, &unindexed_headers),
        &snapshot_list,
    )
    .map_err(|e| e.with_context("hint", "run `repo check`; nothing was deleted"))?;
    progress.finish();
    report.snapshots = snapshot_list.len() as u64;
    report.used_blobs = used.len() as u64;
    report.packs = stored.len() as u64;
    Ok(MarkInputs {
        files,
        index_ids,
        unindexed,
        unindexed_headers,
        used,
    })
}

/// How long ago each of these packs was stored, in ms by the storage's clock; a pack deleted
/// since it was listed has no age.
fn pack_ages(
    repo: &Repository,
    session: &Session,
    packs: &[(PackId, u64)],
) -> Result<HashMap<PackId, i64>> {
    if packs.is_empty() {
        return Ok(HashMap::new()); // and writes no heartbeat to learn `now`
    }
    let now = session.storage_now()?;
    let ages: Vec<Result<Option<(PackId, i64)>>> = packs
        .par_iter()
        .map(
            |(id, _)| match repo.backend().modified(FileKind::Pack, &id.to_hex()) {
                Ok(t) => Ok(Some((*id, now - t))),
                Err(e) if e.kind() == kairn_format::error::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        )
        .collect();
    ages.into_iter().filter_map(Result::transpose).collect()
}

/// Counts what the plan chose.
fn count(plan: &PrunePlan, report: &mut PruneReport) {
    report.reindexed_packs += plan.reindex.len() as u64;
    report.young_unindexed_packs = plan.young.len() as u64;
    report.unused_blobs += plan.unused_blobs;
    report.repacked_bytes += plan.repack_bytes();
    report.unused_packs = plan.unused.len() as u64;
    report.unindexed_packs = plan.unindexed.len() as u64;
    report.repacked_packs = plan.repack.len() as u64;
}

/// Repacks, writes the new index, deletes the old index files, then writes the garbage list.
fn carry_out(
    repo: &Repository,
    session: &Session,
    own: SessionId,
    plan: PrunePlan,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<GarbageId> {
    if !plan.repack.is_empty() {
        // The copies are stored and indexed before the index that drops their old packs
        // (repo-format.md §14.1, mark step 3).
        progress.start("prune: repacking", Some(report.repacked_bytes));
        report.index_files_written += copy_used_blobs(repo, session, &plan.repack, progress)?;
        progress.finish();
    }
    report.index_files_written += write_index_files(session, plan.keep, plan.supersede.clone())?;
    let now = repo.lock_clock(session)?;
    for id in &plan.supersede {
        match repo.delete_content(FileKind::Index, &id.to_hex(), now)? {
            None => report.index_files_deleted += 1,
            Some(until) => report.defer(until, 0),
        }
    }
    // The sessions are listed only now that the new index is stored (mark step 5): a writer
    // loads the index after its first heartbeat, so one not listed here sees the new index,
    // which no longer lists the chosen packs.
    let sessions = list_sessions(repo.files())?
        .into_iter()
        .map(|v| v.session)
        .filter(|s| *s != own)
        .collect();
    let garbage = GarbageList {
        indexed: plan.chosen,
        unindexed: plan.unindexed,
        sessions,
    };
    session.save_garbage(&garbage)
}
