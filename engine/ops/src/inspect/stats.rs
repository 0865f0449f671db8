//! Repository statistics: logical size, stored size, deduplication and compression ratios.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use kairn_format::error::Result;
use kairn_format::id::BlobId;
use kairn_format::id::BlobKind;
use kairn_format::tree::NodeKind;
use kairn_repository::index::Index;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;

/// What `repo stats` reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Snapshots counted.
    pub snapshots: u64,
    /// Files in all snapshots together (a file in two snapshots counts twice).
    pub total_files: u64,
    /// Bytes a full restore of every snapshot would write.
    pub logical_bytes: u64,
    /// Distinct data blobs referenced.
    pub unique_blobs: u64,
    /// Plaintext bytes of all data and tree blobs in the index.
    pub raw_bytes: u64,
    /// Bytes of those blobs as stored (compressed and sealed).
    pub blob_bytes: u64,
    /// Bytes of all packs, headers included.
    pub pack_bytes: u64,
    /// Packs.
    pub packs: u64,
    /// logical_bytes / raw data bytes: how much deduplication saves.
    pub dedup_ratio: f64,
    /// raw_bytes / blob_bytes: how much compression saves.
    pub compression_ratio: f64,
    /// logical_bytes / pack_bytes: overall.
    pub total_ratio: f64,
}

/// Sizes of a subtree, memoized by tree id (unchanged subtrees are shared between snapshots).
fn tree_size(
    repo: &Repository,
    index: &Index,
    id: BlobId,
    memo: &mut HashMap<BlobId, (u64, u64)>,
    blobs: &mut HashSet<BlobId>,
) -> Result<(u64, u64)> {
    if let Some(&v) = memo.get(&id) {
        return Ok(v);
    }
    let mut total = (0u64, 0u64);
    for node in load_tree(repo, index, &id)?.nodes {
        match &node.kind {
            NodeKind::File { size, content } => {
                total.0 += 1;
                total.1 += size;
                for e in content {
                    if let kairn_format::tree::Extent::Data { id, .. } = e {
                        blobs.insert(*id);
                    }
                }
            }
            NodeKind::Dir { subtree } => {
                let (f, b) = tree_size(repo, index, *subtree, memo, blobs)?;
                total.0 += f;
                total.1 += b;
            }
            _ => {}
        }
    }
    memo.insert(id, total);
    Ok(total)
}

/// Computes statistics over every snapshot.
pub fn stats(repo: &Repository, index: &Index) -> Result<Stats> {
    let snaps = repo.load_snapshots()?;
    let mut s = Stats {
        snapshots: snaps.len() as u64,
        ..Default::default()
    };
    let mut memo = HashMap::new();
    let mut blobs = HashSet::new();
    for (_, snap) in &snaps {
        let (files, bytes) = tree_size(repo, index, snap.tree, &mut memo, &mut blobs)?;
        s.total_files += files;
        s.logical_bytes += bytes;
    }
    s.unique_blobs = blobs.len() as u64;
    let mut data_raw = 0u64;
    for (_, loc) in index.iter() {
        s.raw_bytes += u64::from(loc.raw_length);
        s.blob_bytes += u64::from(loc.length);
        if loc.kind == BlobKind::Data {
            data_raw += u64::from(loc.raw_length);
        }
    }
    s.packs = index.packs().len() as u64;
    s.pack_bytes = index.packs().iter().map(|(_, size)| size).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    s.dedup_ratio = ratio(s.logical_bytes, data_raw);
    s.compression_ratio = ratio(s.raw_bytes, s.blob_bytes);
    s.total_ratio = ratio(s.logical_bytes, s.pack_bytes);
    Ok(s)
}
