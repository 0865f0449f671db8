//! `prune`: deletes packs no snapshot uses and repacks partly used ones, safely beside running
//! writers. Deletion is two-phase (repo-format.md §14.1): a *mark* rewrites the index without
//! the chosen packs and records them, with the sessions then live, in a garbage list; a *sweep*
//! deletes them once those sessions have ended, after checking again what the snapshots use.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rayon::prelude::*;
use serde::Serialize;

use crate::maintenance::reachable::used_blobs;
use crate::progress::Progress;
use kairn_format::FileKind;
use kairn_format::blob::open_blob;
use kairn_format::error::{Error, Result};
use kairn_format::garbage::GarbageList;
use kairn_format::id::{BlobId, GarbageId, IndexId, PackId, SessionId};
use kairn_format::index::{IndexFile, IndexPack};
use kairn_format::pack::PackEntry;
use kairn_format::session::Outcome;
use kairn_repository::index::Index;
use kairn_repository::read::read_pack_header;
use kairn_repository::repo::Repository;
use kairn_repository::save::BlobSaver;
use kairn_repository::save::index::write_index_files;
use kairn_repository::session::registry::{SessionView, list_sessions};
use kairn_repository::session::{Session, fence};

/// How to prune.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Repack partly used packs until at most this share (percent) of the stored bytes is
    /// unused.
    pub max_unused_percent: f64,
    /// Repack at most this many bytes of packs in one run.
    pub max_repack_bytes: Option<u64>,
    /// A session with no heartbeat for this long, in storage time, is expired.
    pub expiry: Duration,
    /// Wait for the sessions that block a sweep (up to twice the expiry, long enough for any
    /// dead writer to expire) instead of leaving it to a later prune.
    pub wait: bool,
    /// How often to look again while waiting.
    pub poll: Duration,
    /// Decide and report, change nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused_percent: 5.0,
            max_repack_bytes: None,
            expiry: kairn_repository::session::DEFAULT_EXPIRY,
            wait: false,
            poll: Duration::from_secs(10),
            dry_run: false,
        }
    }
}

/// A garbage list still waiting for sessions.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    /// The list.
    pub garbage: GarbageId,
    /// Packs it holds.
    pub packs: usize,
    /// The sessions it waits for.
    pub waiting_for: Vec<WaitingFor>,
}

/// A session a sweep waits for.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingFor {
    /// The session.
    pub session: SessionId,
    /// What it does, where, as which process.
    pub kind: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds since its last heartbeat, in storage time.
    pub idle_secs: i64,
    /// True when it has committed and is writing its snapshot.
    pub committing: bool,
}

/// What a prune found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Snapshots whose blobs were kept.
    pub snapshots: u64,
    /// Blobs the snapshots use.
    pub used_blobs: u64,
    /// Indexed blobs no snapshot uses (or duplicates).
    pub unused_blobs: u64,
    /// Packs stored when the mark began.
    pub packs: u64,
    /// Indexed packs with no used blob, chosen for deletion.
    pub unused_packs: u64,
    /// Packs no index listed, chosen for deletion.
    pub unindexed_packs: u64,
    /// Packs no index listed, younger than the session expiry: left for a later prune, since a
    /// running backup may still index them, or a re-run of an interrupted one adopt them.
    pub young_unindexed_packs: u64,
    /// Partly used packs whose used blobs were copied to new packs.
    pub repacked_packs: u64,
    /// Bytes of those packs.
    pub repacked_bytes: u64,
    /// Packs indexed again because a snapshot uses them.
    pub reindexed_packs: u64,
    /// Packs deleted by sweeps.
    pub deleted_packs: u64,
    /// Bytes deleted by sweeps.
    pub deleted_bytes: u64,
    /// Index files written.
    pub index_files_written: u64,
    /// Index files deleted (superseded).
    pub index_files_deleted: u64,
    /// Garbage lists swept.
    pub swept: u64,
    /// Garbage lists still waiting for sessions.
    pub pending: Vec<Pending>,
    /// Packs and index files the store's retention lock still holds: not deleted, planned for
    /// a prune after their lock ends.
    pub deferred_packs: u64,
    /// Bytes of those packs.
    pub deferred_bytes: u64,
    /// Index files left for the same reason (superseded, so unused).
    pub deferred_index_files: u64,
    /// When the last of the deferred objects may go, ms since the epoch in storage time.
    pub deferred_until: Option<i64>,
}

impl PruneReport {
    fn defer(&mut self, until: i64, pack_bytes: u64) {
        if pack_bytes > 0 {
            self.deferred_packs += 1;
            self.deferred_bytes += pack_bytes;
        } else {
            self.deferred_index_files += 1;
        }
        self.deferred_until = Some(self.deferred_until.map_or(until, |u| u.max(until)));
    }
}

/// Prunes. The repository must have a session of its own (`Repository::begin_session`): its
/// heartbeats give the storage's time and keep other prunes from sweeping under it.
pub fn prune(
    repo: &Repository,
    session: &Session,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let own = session.id();
    let mut report = PruneReport::default();
    sweep_all(repo, session, opts, own, &mut report, progress)?;
    if !opts.dry_run {
        remove_ended_sessions(repo)?;
    }
    let marked = mark(repo, session, opts, own, &mut report, progress)?;
    if marked.is_some() || !report.pending.is_empty() {
        let deadline = std::time::Instant::now() + opts.expiry * 2;
        loop {
            sweep_all(repo, session, opts, own, &mut report, progress)?;
            if report.pending.is_empty() || !opts.wait || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(opts.poll);
        }
    }
    Ok(report)
}

fn mark(
    repo: &Repository,
    session: &Session,
    opts: &PruneOptions,
    own: SessionId,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<Option<GarbageId>> {
    progress.start("prune: reading the index and snapshots", None);
    let snapshot_list = repo.load_snapshots()?;
    // The new index supersedes every stored file, superseded ones too: one kept by a retention
    // lock must never come back into use when the file that superseded it is deleted.
    let kairn_repository::index::IndexFiles {
        live: files,
        all: index_ids,
    } = load_index_files(repo)?;
    let stored: HashMap<PackId, u64> = repo.list_packs()?.into_iter().collect();
    let index = Index::from_files(files.iter().map(|(_, f)| f));
    // Every indexed pack once (an interrupted prune can leave a pack in two index files).
    let mut packs: HashMap<PackId, IndexPack> = HashMap::new();
    for (_, f) in &files {
        for p in &f.packs {
            packs.entry(p.id).or_insert_with(|| p.clone());
        }
    }
    let mut unindexed: Vec<(PackId, u64)> = stored
        .iter()
        .filter(|(id, _)| !packs.contains_key(id))
        .map(|(id, size)| (*id, *size))
        .collect();
    unindexed.sort();
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

    // Used blobs that no index lists are looked for in unindexed packs (left by an interrupted
    // prune), which are then indexed again.
    let missing: HashSet<BlobId> = used
        .iter()
        .filter(|b| !index.contains(b))
        .copied()
        .collect();
    let mut reindexed = Vec::new();
    if !missing.is_empty() {
        let mut found = HashSet::new();
        for p in &unindexed_headers {
            if p.blobs.iter().any(|e| missing.contains(&e.id)) {
                found.extend(p.blobs.iter().map(|e| e.id));
                reindexed.push(p.clone());
            }
        }
        let lost = missing.iter().filter(|b| !found.contains(b)).count();
        if lost > 0 {
            return Err(Error::corrupt(format!(
                "snapshots use {lost} blob(s) that are in no pack; nothing was deleted: run \
                 `repo check`, then `repo repair snapshots`"
            )));
        }
        unindexed.retain(|(id, _)| !reindexed.iter().any(|p| p.id == *id));
        report.reindexed_packs += reindexed.len() as u64;
        for p in &reindexed {
            packs.insert(p.id, p.clone());
        }
    }
    let young = young_packs(repo, session, &unindexed, opts.expiry)?;
    unindexed.retain(|p| !young.contains(p));
    report.young_unindexed_packs = young.len() as u64;

    let canonical = with_packs(&files, &reindexed);
    let mut unused_packs = Vec::new();
    let mut partly: Vec<(PackId, u64, u64)> = Vec::new(); // id, size, unused bytes
    let mut unused_total = 0u64;
    for p in packs.values() {
        let is_used = |e: &PackEntry| kept_here(&used, &canonical, p.id, e);
        let used_count = p.blobs.iter().filter(|e| is_used(e)).count();
        report.unused_blobs += (p.blobs.len() - used_count) as u64;
        if used_count == 0 {
            unused_packs.push(p.id);
            continue;
        }
        let unused_bytes: u64 = p
            .blobs
            .iter()
            .filter(|e| !is_used(e))
            .map(|e| u64::from(e.length))
            .sum();
        if unused_bytes > 0 {
            unused_total += unused_bytes;
            partly.push((p.id, p.size, unused_bytes));
        }
    }
    unused_packs.sort();
    let kept_bytes: u64 = packs
        .values()
        .filter(|p| !unused_packs.contains(&p.id))
        .map(|p| p.size)
        .sum();
    let allowed = (kept_bytes as f64 * opts.max_unused_percent / 100.0) as u64;
    partly.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let mut repack = Vec::new();
    for (id, size, unused_bytes) in partly {
        if unused_total <= allowed {
            break;
        }
        if opts
            .max_repack_bytes
            .is_some_and(|max| report.repacked_bytes + size > max)
        {
            continue;
        }
        report.repacked_bytes += size;
        unused_total -= unused_bytes;
        repack.push(id);
    }
    report.unused_packs = unused_packs.len() as u64;
    report.unindexed_packs = unindexed.len() as u64;
    report.repacked_packs = repack.len() as u64;
    if unused_packs.is_empty() && unindexed.is_empty() && repack.is_empty() {
        if !reindexed.is_empty() && !opts.dry_run {
            write_index(session, &reindexed, Vec::new(), report)?;
        }
        return Ok(None);
    }
    if opts.dry_run {
        return Ok(None);
    }

    if !repack.is_empty() {
        progress.start("prune: repacking", Some(report.repacked_bytes));
        copy_used_blobs(
            repo, session, &repack, &packs, &used, &canonical, report, progress,
        )?;
        progress.finish();
    }

    let chosen: HashSet<PackId> = unused_packs.iter().chain(&repack).copied().collect();
    let mut kept: Vec<IndexPack> = packs
        .values()
        .filter(|p| !chosen.contains(&p.id))
        .cloned()
        .collect();
    kept.sort_by_key(|a| a.id);
    write_index(session, &kept, index_ids.clone(), report)?;
    let now = repo.lock_clock(session)?;
    for id in &index_ids {
        match repo.delete_content(FileKind::Index, &id.to_hex(), now)? {
            None => report.index_files_deleted += 1,
            Some(until) => report.defer(until, 0),
        }
    }

    let sessions = list_sessions(repo.files())?
        .into_iter()
        .map(|v| v.session)
        .filter(|s| *s != own)
        .collect();
    let mut indexed: Vec<IndexPack> = packs
        .into_values()
        .filter(|p| chosen.contains(&p.id))
        .collect();
    indexed.sort_by_key(|a| a.id);
    let garbage = GarbageList {
        indexed,
        unindexed,
        sessions,
    };
    Ok(Some(session.save_garbage(&garbage)?))
}

/// The index files in use, verified (a damaged one stops the prune), and the ids of every
/// index file stored, superseded ones too.
fn load_index_files(repo: &Repository) -> Result<kairn_repository::index::IndexFiles> {
    kairn_repository::index::load_live_files(repo)
        .map_err(|e| e.with_context("hint", "run `repo repair index`; nothing was deleted"))
}

/// The packs among `packs` stored less than `expiry` ago, by the storage's clock: too young to
/// choose (backup/resume.rs adopts those younger than half the expiry).
fn young_packs(
    repo: &Repository,
    session: &Session,
    packs: &[(PackId, u64)],
    expiry: std::time::Duration,
) -> Result<HashSet<(PackId, u64)>> {
    if packs.is_empty() {
        return Ok(HashSet::new());
    }
    let now = session.storage_now()?;
    let expiry_ms = i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX);
    let ages: Vec<Result<Option<(PackId, u64)>>> = packs
        .par_iter()
        .map(
            |(id, size)| match repo.backend().modified(FileKind::Pack, &id.to_hex()) {
                Ok(t) => Ok((now - t < expiry_ms).then_some((*id, *size))),
                Err(e) if e.kind() == kairn_format::error::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        )
        .collect();
    ages.into_iter().filter_map(Result::transpose).collect()
}

/// The headers of these packs, as index entries; unreadable ones are left out (a damaged
/// unindexed pack holds nothing a snapshot can use).
fn read_headers(repo: &Repository, packs: impl Iterator<Item = (PackId, u64)>) -> Vec<IndexPack> {
    let packs: Vec<(PackId, u64)> = packs.collect();
    packs
        .par_iter()
        .filter_map(|(id, size)| {
            read_pack_header(repo, id, *size).ok().map(|h| IndexPack {
                id: *id,
                size: *size,
                blobs: h.entries,
            })
        })
        .collect()
}

/// An index of `files` plus `extra` packs, for walking trees that may sit in either.
fn with_packs(files: &[(IndexId, IndexFile)], extra: &[IndexPack]) -> Index {
    let extra = IndexFile {
        supersedes: Vec::new(),
        packs: extra.to_vec(),
    };
    Index::from_files(files.iter().map(|(_, f)| f).chain(std::iter::once(&extra)))
}

/// True when `entry` of `pack` is a used blob and this pack holds its one counted copy: the
/// location `canonical` resolves it to. Other copies are unused duplicates.
fn kept_here(used: &HashSet<BlobId>, canonical: &Index, pack: PackId, entry: &PackEntry) -> bool {
    used.contains(&entry.id)
        && canonical
            .get(&entry.id)
            .is_some_and(|loc| canonical.pack(loc.pack).0 == pack)
}

#[allow(clippy::too_many_arguments)]
/// Copies the used blobs of `repack` into new packs, then writes their index.
fn copy_used_blobs(
    repo: &Repository,
    session: &Session,
    repack: &[PackId],
    packs: &HashMap<PackId, IndexPack>,
    used: &HashSet<BlobId>,
    canonical: &Index,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<()> {
    let nothing = Index::from_files(std::iter::empty());
    let saver = BlobSaver::new(repo, session, &nothing)?;
    repack.par_iter().try_for_each(|id| -> Result<()> {
        let pack = &packs[id];
        let bytes = repo.backend().read(FileKind::Pack, &id.to_hex())?;
        kairn_repository::files::verify_name(FileKind::Pack, &id.to_hex(), &bytes)?;
        for e in &pack.blobs {
            if !kept_here(used, canonical, *id, e) {
                continue;
            }
            let (start, end) = (e.offset as usize, e.offset as usize + e.length as usize);
            let stored = bytes.get(start..end).ok_or_else(|| {
                Error::corrupt(format!(
                    "pack {} is shorter than its index says",
                    id.short()
                ))
            })?;
            let plain = open_blob(repo.keys(), e.kind, &e.id, stored, e.raw_length as usize)
                .map_err(|err| err.with_context("pack", id.short()))?;
            saver.save(e.kind, &plain)?;
        }
        progress.bytes(pack.size);
        Ok(())
    })?;
    report.index_files_written += saver.flush()?.len() as u64;
    Ok(())
}

fn write_index(
    session: &Session,
    packs: &[IndexPack],
    supersedes: Vec<IndexId>,
    report: &mut PruneReport,
) -> Result<()> {
    report.index_files_written += write_index_files(session, packs.to_vec(), supersedes)?;
    Ok(())
}

fn sweep_all(
    repo: &Repository,
    session: &Session,
    opts: &PruneOptions,
    own: SessionId,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<()> {
    report.pending.clear();
    let ids = repo.list_ids::<GarbageList>()?;
    if ids.is_empty() {
        return Ok(());
    }
    let sessions: HashMap<SessionId, SessionView> = list_sessions(repo.files())?
        .into_iter()
        .map(|v| (v.session, v))
        .collect();
    let now = session.storage_now()?;
    let mut ready = Vec::new();
    for id in ids {
        let list = repo.load_file::<GarbageList>(&id)?;
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
    if ready.is_empty() || opts.dry_run {
        return Ok(());
    }

    progress.start("prune: deleting", None);
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
    let needed = |entries: &[PackEntry]| {
        entries
            .iter()
            .any(|e| used.contains(&e.id) && !index.contains(&e.id))
    };
    let any_missing = used.iter().any(|b| !index.contains(b));
    let mut reindex = Vec::new();
    let mut delete: Vec<(PackId, u64)> = Vec::new();
    for (_, list) in &ready {
        for p in &list.indexed {
            if indexed.contains(&p.id) || !stored.contains(&p.id) {
                continue; // kept by its writer, or already deleted by an interrupted sweep
            }
            if needed(&p.blobs) {
                reindex.push(p.clone());
            } else {
                delete.push((p.id, p.size));
            }
        }
        for (id, size) in &list.unindexed {
            if indexed.contains(id) || !stored.contains(id) {
                continue;
            }
            if any_missing
                && let Some(p) = chosen.iter().find(|p| p.id == *id)
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
    if !reindex.is_empty() {
        report.reindexed_packs += reindex.len() as u64;
        write_index(session, &reindex, Vec::new(), report)?;
    }
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
    for (id, _) in &ready {
        repo.backend().delete(FileKind::Garbage, &id.to_hex())?;
        report.swept += 1;
    }
    remove_finished_fences(repo)?;
    progress.finish();
    Ok(())
}

/// Whether session `s`, named by a garbage list, still blocks its sweep; expires it when stale.
fn blocking(
    repo: &Repository,
    opts: &PruneOptions,
    sessions: &HashMap<SessionId, SessionView>,
    s: SessionId,
    now: i64,
) -> Result<Option<WaitingFor>> {
    let Some(view) = sessions.get(&s).filter(|v| !v.latest.ended) else {
        return Ok(None); // no heartbeat, or its last one says so: it ended
    };
    let idle_ms = now - view.last_beat_ms;
    let expiry_ms = i64::try_from(opts.expiry.as_millis()).unwrap_or(i64::MAX);
    let outcome = match view.fence {
        Some(o) => Some(o),
        None if idle_ms > expiry_ms && !opts.dry_run => {
            if fence::create(repo.files(), s, Outcome::Expire)? {
                Some(Outcome::Expire)
            } else {
                fence::outcome(repo.files(), s)?
            }
        }
        None => None,
    };
    if outcome == Some(Outcome::Expire) {
        return Ok(None);
    }
    Ok(Some(WaitingFor {
        session: s,
        kind: view.latest.kind.clone(),
        host: view.latest.host.clone(),
        pid: view.latest.pid,
        idle_secs: idle_ms / 1000,
        committing: outcome == Some(Outcome::Commit),
    }))
}

/// Fences of committed sessions that have ended (no heartbeat) are no longer needed. Fences
/// are listed before heartbeats: a committed session deletes its heartbeats only after writing
/// its snapshot. Fences that expired a session stay: the expired writer may still wake up, and
/// its fence is what stops it from committing.
fn remove_finished_fences(repo: &Repository) -> Result<()> {
    remove_ended_sessions(repo)?;
    let fences = repo.backend().list(FileKind::Fence)?;
    if fences.is_empty() {
        return Ok(());
    }
    let live: HashSet<SessionId> = list_sessions(repo.files())?
        .into_iter()
        .map(|v| v.session)
        .collect();
    for (name, _) in fences {
        let Ok(id) = name.parse::<SessionId>() else {
            continue;
        };
        if !live.contains(&id) && fence::outcome(repo.files(), id)? == Some(Outcome::Commit) {
            repo.backend().delete(FileKind::Fence, &name)?;
        }
    }
    Ok(())
}

/// Heartbeats of sessions whose last heartbeat says they ended (writers in append-only mode
/// leave them; repo-format.md §14.1).
fn remove_ended_sessions(repo: &Repository) -> Result<()> {
    for view in list_sessions(repo.files())?
        .into_iter()
        .filter(|v| v.latest.ended)
    {
        for f in view.files {
            repo.backend().delete(FileKind::Session, &f.to_hex())?;
        }
    }
    Ok(())
}
