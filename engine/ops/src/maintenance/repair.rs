//! Repairs: rebuild the index from the packs themselves, and rewrite snapshots that lost data
//! so that what remains restores cleanly. Both run in a writer session (the caller begins it).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

use crate::progress::Progress;
use kairn_format::FileKind;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::BlobKind;
use kairn_format::id::{BlobId, IndexId, PackId, SnapshotId};
use kairn_format::index::{IndexFile, IndexPack};
use kairn_format::snapshot::Snapshot;
use kairn_format::tree::{Extent, Node, NodeKind, Tree};
use kairn_repository::index::Index;
use kairn_repository::read::pack::read_pack_header;
use kairn_repository::read::{load_tree, tree_blob};
use kairn_repository::repo::Repository;
use kairn_repository::save::BlobSaver;
use kairn_repository::save::index::write_index_files;
use kairn_repository::session::Session;
use kairn_repository::snapshots::{UnreadableFile, scan};

/// What `repair index` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexRepair {
    /// Packs whose headers were read and indexed.
    pub packs: u64,
    /// Blobs indexed.
    pub blobs: u64,
    /// Packs whose header could not be read (named); their blobs are not indexed.
    pub unreadable: Vec<String>,
    /// Index files written.
    pub written: u64,
    /// Index files removed (replaced by the new ones).
    pub removed: u64,
    /// Index files the store's retention lock keeps (superseded, so no longer read).
    pub locked: u64,
}

/// Rebuilds the index from the headers of every stored pack: index files that were lost,
/// damaged, or point at missing packs are replaced. Index files written by others while this
/// runs are kept.
pub fn repair_index(
    repo: &Repository,
    session: &Session,
    progress: &dyn Progress,
) -> Result<IndexRepair> {
    repo.refuse_append_only("repair index")?;
    let old = repo.list_ids::<IndexFile>()?;
    let packs = repo.backend().list(FileKind::Pack)?;
    progress.start("reading pack headers", Some(packs.len() as u64));
    let headers: Vec<(String, Result<IndexPack>)> = packs
        .par_iter()
        .map(|(name, size)| {
            let read = name
                .parse::<PackId>()
                .and_then(|id| read_pack_header(repo, &id, *size).map(|h| (id, h)))
                .map(|(id, h)| IndexPack {
                    id,
                    size: *size,
                    blobs: h.entries,
                });
            progress.bytes(1);
            (name.clone(), read)
        })
        .collect();
    progress.finish();
    let mut report = IndexRepair::default();
    let mut good = Vec::new();
    for (name, read) in headers {
        match read {
            Ok(p) => {
                report.packs += 1;
                report.blobs += p.blobs.len() as u64;
                good.push(p);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => report
                .unreadable
                .push(format!("pack {}: {e}", name.get(..8).unwrap_or(&name))),
        }
    }
    if good.is_empty() && !report.unreadable.is_empty() && !keys_open_anything(repo, &old)? {
        // No pack, index file or snapshot opens: these are another repository's keys, and
        // an empty index would hide every pack from every snapshot. (When only the packs are
        // damaged, dropping them from the index is the repair: the next backup stores again.)
        return Err(Error::corrupt(format!(
            "none of the {} packs, and no index file or snapshot, opens with this repository's \
             keys (the config or key file may belong to another repository); the index was \
             left as it was. First: {}",
            report.unreadable.len(),
            report.unreadable[0]
        )));
    }
    good.sort_by_key(|a| a.id);
    report.written = write_index_files(session, good, old.clone())?;
    let now = repo.lock_clock(session)?;
    for id in old {
        match repo.delete_content(FileKind::Index, &id.to_hex(), now)? {
            None => report.removed += 1,
            Some(_) => report.locked += 1,
        }
    }
    Ok(report)
}

/// One snapshot `repair snapshots` rewrote.
#[derive(Debug, Clone, Serialize)]
pub struct RepairedSnapshot {
    /// The damaged snapshot.
    pub original: SnapshotId,
    /// Its repaired replacement.
    pub repaired: SnapshotId,
    /// Paths dropped or emptied, as `/`-joined names below the snapshot root.
    pub lost: Vec<String>,
}

/// What `repair snapshots` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SnapshotRepair {
    /// Snapshots examined.
    pub snapshots: u64,
    /// Snapshots rewritten.
    pub repaired: Vec<RepairedSnapshot>,
    /// Snapshot files that cannot be read at all: removed (or that would be, in a dry run or
    /// with `keep_original`), there being nothing in them to rewrite.
    pub damaged: Vec<UnreadableFile>,
    /// Damaged snapshot files the store's retention lock still holds, with when it ends (ms
    /// since the epoch, storage time): a repair after that removes them.
    pub damaged_locked: Vec<(String, i64)>,
    /// True when nothing was written.
    pub dry_run: bool,
}

/// Rewrites every snapshot that uses a blob the index does not have or that cannot be read:
/// a file with missing data is dropped, a directory whose tree is lost becomes empty. The new
/// snapshot carries the tag `repaired` and names the original as its parent; the original is
/// removed unless `keep_original`.
pub fn repair_snapshots(
    repo: &Repository,
    session: &Session,
    index: &Index,
    dry_run: bool,
    keep_original: bool,
) -> Result<SnapshotRepair> {
    if !dry_run && !keep_original {
        repo.refuse_append_only("repair snapshots without keeping the originals")?;
    }
    let saver = BlobSaver::new(repo, session, index)?;
    let stored: HashSet<PackId> = repo.list_packs()?.into_iter().map(|(id, _)| id).collect();
    let ctx = Ctx {
        repo,
        index,
        saver: &saver,
        stored: &stored,
        dry_run,
    };
    let mut report = SnapshotRepair {
        dry_run,
        ..Default::default()
    };
    let mut memo: HashMap<BlobId, (BlobId, Vec<String>)> = HashMap::new();
    let mut pending = Vec::new();
    let found = scan(repo)?;
    report.damaged = found.damaged;
    if !dry_run && !keep_original {
        remove_damaged(repo, session, &mut report)?;
    }
    for (id, snap) in found.snapshots {
        report.snapshots += 1;
        let (root, lost) = rewrite(&ctx, snap.tree, "", &mut memo)?;
        if lost.is_empty() {
            continue;
        }
        pending.push((id, snap, root, lost));
    }
    if dry_run {
        report.repaired = pending
            .into_iter()
            .map(|(id, _, _, lost)| RepairedSnapshot {
                original: id,
                repaired: id,
                lost,
            })
            .collect();
        return Ok(report);
    }
    saver.flush()?;
    for (id, snap, root, lost) in pending {
        let mut tags = snap.tags.clone();
        if !tags.iter().any(|t| t == "repaired") {
            tags.push("repaired".into());
        }
        let repaired = Snapshot {
            tree: root,
            parent: Some(id),
            // Data was lost: this is no longer a copy of what `original` names, and a later
            // `copy` must not take one for the other.
            original: None,
            tags,
            incomplete: true,
            ..snap
        };
        let new_id = session.save_snapshot(&repaired)?;
        if !keep_original {
            let now = repo.lock_clock(session)?;
            repo.delete_content(FileKind::Snapshot, &id.to_hex(), now)?;
        }
        report.repaired.push(RepairedSnapshot {
            original: id,
            repaired: new_id,
            lost,
        });
    }
    Ok(report)
}

/// Deletes the snapshot files that cannot be read, as forget deletes snapshots: only what the
/// store's retention lock no longer holds.
fn remove_damaged(repo: &Repository, session: &Session, report: &mut SnapshotRepair) -> Result<()> {
    if report.damaged.is_empty() {
        return Ok(());
    }
    let now = repo.lock_clock(session)?;
    let mut removed = Vec::new();
    for file in std::mem::take(&mut report.damaged) {
        match repo.delete_content(FileKind::Snapshot, &file.name, now)? {
            None => removed.push(file),
            Some(until) => report.damaged_locked.push((file.name, until)),
        }
    }
    report.damaged = removed;
    Ok(())
}

struct Ctx<'a> {
    repo: &'a Repository,
    index: &'a Index,
    saver: &'a BlobSaver<'a>,
    stored: &'a HashSet<PackId>,
    dry_run: bool,
}

impl Ctx<'_> {
    /// True when the blob is indexed in a pack that is stored.
    fn present(&self, id: &BlobId) -> bool {
        self.index
            .get(id)
            .is_some_and(|loc| self.stored.contains(&self.index.pack(loc.pack).0))
    }
}

/// The tree `id` with everything lost removed, stored; and the paths lost below `path`.
fn rewrite(
    ctx: &Ctx<'_>,
    id: BlobId,
    path: &str,
    memo: &mut HashMap<BlobId, (BlobId, Vec<String>)>,
) -> Result<(BlobId, Vec<String>)> {
    let repo = ctx.repo;
    if let Some((new, lost)) = memo.get(&id) {
        let lost = lost.iter().map(|l| format!("{path}{l}")).collect();
        return Ok((*new, lost));
    }
    let tree = match load_tree(repo, ctx.index, &id) {
        Ok(t) => t,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Corrupt) => {
            let empty = save_tree(ctx, &Tree { nodes: Vec::new() })?;
            memo.insert(id, (empty, vec!["/ (directory contents lost)".into()]));
            return Ok((empty, vec![format!("{path}/ (directory contents lost)")]));
        }
        Err(e) => return Err(e),
    };
    let mut nodes: Vec<Node> = Vec::with_capacity(tree.nodes.len());
    let mut lost_rel = Vec::new();
    for mut node in tree.nodes {
        let name = String::from_utf8_lossy(&node.name).into_owned();
        match &mut node.kind {
            NodeKind::Dir { subtree } => {
                let (new, lost) = rewrite(ctx, *subtree, &format!("/{name}"), memo)?;
                *subtree = new;
                lost_rel.extend(lost);
            }
            NodeKind::File { content, .. } => {
                let readable = content.iter().all(|e| match e {
                    Extent::Data { id, .. } => ctx.present(id),
                    Extent::Hole { .. } => true,
                });
                if !readable {
                    lost_rel.push(format!("/{name}"));
                    continue;
                }
            }
            _ => {}
        }
        nodes.push(node);
    }
    if lost_rel.is_empty() {
        memo.insert(id, (id, Vec::new()));
        return Ok((id, Vec::new()));
    }
    let new_tree = Tree { nodes };
    let new_id = save_tree(ctx, &new_tree)?;
    memo.insert(id, (new_id, lost_rel.clone()));
    let lost = lost_rel.into_iter().map(|l| format!("{path}{l}")).collect();
    Ok((new_id, lost))
}

/// Stores a rewritten tree, or only computes its id on a dry run.
fn save_tree(ctx: &Ctx<'_>, tree: &Tree) -> Result<BlobId> {
    if ctx.dry_run {
        return tree_blob(ctx.repo, tree).map(|(id, _)| id);
    }
    ctx.saver
        .save(BlobKind::Tree, &tree.encode()?)
        .map(|(id, _)| id)
}

/// Whether any index file or snapshot authenticates with the keys in use.
fn keys_open_anything(repo: &Repository, index_files: &[IndexId]) -> Result<bool> {
    if index_files
        .iter()
        .any(|id| repo.load_file::<IndexFile>(id).is_ok())
    {
        return Ok(true);
    }
    Ok(repo
        .list_ids::<Snapshot>()?
        .iter()
        .any(|id| repo.load_file::<Snapshot>(id).is_ok()))
}
