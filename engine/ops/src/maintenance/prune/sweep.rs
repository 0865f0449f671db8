//! The sweep (repo-format.md §14.1): deletes the packs of the garbage lists whose sessions have
//! all ended, after checking again what the snapshots use.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::maintenance::reachable::used_blobs;
use crate::progress::Progress;
use kairn_format::FileKind;
use kairn_format::error::Result;
use kairn_format::garbage::GarbageList;
use kairn_format::id::{BlobId, GarbageId, PackId, SessionId};
use kairn_format::index::IndexPack;
use kairn_format::pack::PackEntry;
use kairn_repository::index::Index;
use kairn_repository::repo::Repository;
use kairn_repository::save::index::write_index_files;
use kairn_repository::session::Session;
use kairn_repository::session::registry::{SessionView, list_sessions};

use super::load::{load_index_files, read_headers};
use super::options::PruneOptions;
use super::plan::with_packs;
use super::report::{Pending, PruneReport};
use super::sessions::{blocking, held_back, remove_finished_fences};

/// Sweeps every garbage list no live session blocks; lists the others in `report.pending`.
pub(super) fn sweep_all(
    repo: &Repository,
    session: &Session,
    opts: &PruneOptions,
    own: SessionId,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<()> {
    report.pending.clear();
    if held_back(repo, session, opts, report)? {
        return Ok(());
    }
    let ready = ready_lists(repo, session, opts, own, report)?;
    if ready.is_empty() || opts.dry_run {
        return Ok(());
    }

    progress.start("prune: deleting", None);
    let Verdict { reindex, delete } = judge(repo, &ready)?;
    if !reindex.is_empty() {
        report.reindexed_packs += reindex.len() as u64;
        report.index_files_written += write_index_files(session, reindex, Vec::new())?;
    }
    delete_packs(repo, session, &ready, &delete, report)?;
    for (id, _) in &ready {
        repo.backend().delete(FileKind::Garbage, &id.to_hex())?;
        report.swept += 1;
    }
    remove_finished_fences(repo)?;
    progress.finish();
    Ok(())
}

/// The garbage lists whose sessions have all ended (expiring the stale ones); the others go to
/// `report.pending`.
fn ready_lists(
    repo: &Repository,
    session: &Session,
    opts: &PruneOptions,
    own: SessionId,
    report: &mut PruneReport,
) -> Result<Vec<(GarbageId, GarbageList)>> {
    let found = kairn_repository::garbage::scan(repo)?;
    report.unreadable_garbage = found.unreadable;
    if found.lists.is_empty() {
        return Ok(Vec::new());
    }
    let sessions: HashMap<SessionId, SessionView> = list_sessions(repo.files())?
        .into_iter()
        .map(|v| (v.session, v))
        .collect();
    let now = session.storage_now()?;
    let mut ready = Vec::new();
    for (id, list) in found.lists {
        let mut waiting = Vec::new();
        for s in list.sessions.iter().filter(|s| **s != own) {
            if let Some(w) = blocking(repo, opts, &sessions, *s, now)? {
                waiting.push(w);
            }
        }
        if waiting.is_empty() {
            ready.push((id, list));
        } else {
            report.pending.push(Pending {
                garbage: id,
                packs: list.indexed.len() + list.unindexed.len(),
                waiting_for: waiting,
            });
        }
    }
    Ok(ready)
}

/// What a sweep does with the packs of its ready lists.
struct Verdict {
    /// Packs a snapshot turned out to use: indexed again, by id.
    reindex: Vec<IndexPack>,
    /// Packs to delete, with their sizes, by id.
    delete: Vec<(PackId, u64)>,
}

/// Reads the index and the snapshots as they are now, walks the snapshots, and decides.
fn judge(repo: &Repository, ready: &[(GarbageId, GarbageList)]) -> Result<Verdict> {
    let snapshot_list = repo.load_snapshots()?;
    let files = load_index_files(repo)?.live;
    let index = Index::from_files(files.iter().map(|(_, f)| f));
    let indexed: HashSet<PackId> = index.packs().iter().map(|(id, _)| *id).collect();
    let stored: HashSet<PackId> = repo.list_packs()?.into_iter().map(|(id, _)| id).collect();
    // A snapshot written since the mark may use trees that only the chosen packs hold.
    let mut chosen: Vec<IndexPack> = ready
        .iter()
        .flat_map(|(_, l)| l.indexed.iter())
        .filter(|p| stored.contains(&p.id) && !indexed.contains(&p.id))
        .cloned()
        .collect();
    chosen.extend(read_headers(
        repo,
        ready
            .iter()
            .flat_map(|(_, l)| l.unindexed.iter().copied())
            .filter(|(id, _)| stored.contains(id) && !indexed.contains(id)),
    ));
    let used = used_blobs(repo, &with_packs(&files, &chosen), &snapshot_list)
        .map_err(|e| e.with_context("hint", "run `repo check`; nothing was deleted"))?;
    let state = SweepState {
        index,
        indexed,
        stored,
        chosen,
        used,
    };
    Ok(state.decide(ready))
}

/// The repository as a sweep finds it.
struct SweepState {
    /// The index in use now.
    index: Index,
    /// The packs it lists.
    indexed: HashSet<PackId>,
    /// The packs stored.
    stored: HashSet<PackId>,
    /// The packs of the ready lists still stored and unindexed, with their entries (read from
    /// their headers for the unindexed ones that could be read).
    chosen: Vec<IndexPack>,
    /// The blobs the snapshots use now.
    used: HashSet<BlobId>,
}

impl SweepState {
    /// Keeps a pack an index file lists again (its writer indexed it), indexes again one a
    /// snapshot uses a blob of that no index lists, and deletes the others.
    fn decide(&self, ready: &[(GarbageId, GarbageList)]) -> Verdict {
        let needed = |entries: &[PackEntry]| {
            entries
                .iter()
                .any(|e| self.used.contains(&e.id) && !self.index.contains(&e.id))
        };
        let kept_or_deleted = |id: &PackId| self.indexed.contains(id) || !self.stored.contains(id);
        let any_missing = self.used.iter().any(|b| !self.index.contains(b));
        let mut reindex = Vec::new();
        let mut delete: Vec<(PackId, u64)> = Vec::new();
        for (_, list) in ready {
            for p in &list.indexed {
                if kept_or_deleted(&p.id) {
                    continue; // kept by its writer, or already deleted by an interrupted sweep
                }
                if needed(&p.blobs) {
                    reindex.push(p.clone());
                } else {
                    delete.push((p.id, p.size));
                }
            }
            for (id, size) in &list.unindexed {
                if kept_or_deleted(id) {
                    continue;
                }
                if any_missing
                    && let Some(p) = self.chosen.iter().find(|p| p.id == *id)
                    && needed(&p.blobs)
                {
                    reindex.push(p.clone());
                    continue;
                }
                delete.push((*id, *size));
            }
        }
        delete.sort();
        delete.dedup();
        reindex.sort_by_key(|a| a.id);
        reindex.dedup_by(|a, b| a.id == b.id);
        delete.retain(|(id, _)| !reindex.iter().any(|p| p.id == *id));
        Verdict { reindex, delete }
    }
}

/// Deletes `delete`; the packs the store's retention lock still holds go to a new garbage list.
fn delete_packs(
    repo: &Repository,
    session: &Session,
    ready: &[(GarbageId, GarbageList)],
    delete: &[(PackId, u64)],
    report: &mut PruneReport,
) -> Result<()> {
    let now = repo.lock_clock(session)?;
    let outcomes: Vec<Option<i64>> = delete
        .par_iter()
        .map(|(id, _)| repo.delete_content(FileKind::Pack, &id.to_hex(), now))
        .collect::<Result<_>>()?;
    let mut later = GarbageList::default();
    for ((id, size), outcome) in delete.iter().zip(outcomes) {
        match outcome {
            None => {
                report.deleted_packs += 1;
                report.deleted_bytes += size;
            }
            Some(until) => {
                report.defer(until, *size);
                match ready
                    .iter()
                    .flat_map(|(_, l)| &l.indexed)
                    .find(|p| p.id == *id)
                {
                    Some(p) => later.indexed.push(p.clone()),
                    None => later.unindexed.push((*id, *size)),
                }
            }
        }
    }
    if !later.indexed.is_empty() || !later.unindexed.is_empty() {
        // Locked packs: the deletion is planned for a prune after their lock ends. The list
        // waits for no session, as every writer's snapshots were already judged above.
        later.indexed.sort_by_key(|p| p.id);
        later.unindexed.sort();
        session.save_garbage(&later)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairn_format::id::{BlobKind, Id};
    use kairn_format::index::IndexFile;

    fn pack(n: u8, blob: u8) -> IndexPack {
        IndexPack {
            id: PackId(Id([n; 32])),
            size: 100,
            blobs: vec![PackEntry {
                kind: BlobKind::Tree,
                id: BlobId(Id([blob; 32])),
                offset: 0,
                length: 100,
                raw_length: 100,
            }],
        }
    }

    #[test]
    fn a_sweep_keeps_reindexes_or_deletes_each_chosen_pack() {
        let listed_again = pack(1, 10);
        let used = pack(2, 20);
        let unused = pack(3, 30);
        let unindexed_used = pack(4, 40);
        let index = Index::from_files([&IndexFile {
            supersedes: Vec::new(),
            packs: vec![listed_again.clone()],
        }]);
        let state = SweepState {
            index,
            indexed: HashSet::from([listed_again.id]),
            stored: [&listed_again, &used, &unused, &unindexed_used]
                .iter()
                .map(|p| p.id)
                .collect(),
            chosen: vec![used.clone(), unused.clone(), unindexed_used.clone()],
            used: [10, 20, 40].iter().map(|&b| BlobId(Id([b; 32]))).collect(),
        };
        let list = GarbageList {
            indexed: vec![listed_again, used.clone(), unused.clone()],
            unindexed: vec![(unindexed_used.id, 100), (PackId(Id([5; 32])), 100)],
            sessions: Vec::new(),
        };
        let verdict = state.decide(&[(GarbageId::default(), list)]);
        assert_eq!(verdict.reindex, vec![used, unindexed_used]);
        // Pack 5 is no longer stored (an interrupted sweep deleted it): nothing to do.
        assert_eq!(verdict.delete, vec![(unused.id, 100)]);
    }
}
