//! `repo stats` over chosen snapshots, in restic's modes: what a restore writes, how many
//! distinct file contents there are, and what the referenced blobs take raw and stored.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use kairn_format::error::Result;
use kairn_format::id::{BlobId, SnapshotId};
use kairn_format::snapshot::Snapshot;
use kairn_format::tree::{Extent, NodeKind};
use kairn_repository::index::Index;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;

/// How `stats` counts the chosen snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatsMode {
    /// Files and bytes a restore of each snapshot writes, added up over the snapshots.
    RestoreSize,
    /// Files counted once per distinct content (the same bytes at two paths count once).
    FilesByContents,
    /// The distinct blobs the snapshots reference: their plaintext and stored size.
    RawData,
}

/// What `stats` reports for the chosen snapshots.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SelectedStats {
    /// Snapshots counted.
    pub snapshots: u64,
    /// Files (restore-size, files-by-contents) or blobs (raw-data).
    pub total_file_count: u64,
    /// Bytes of those files, or plaintext bytes of those blobs.
    pub total_size: u64,
    /// raw-data only: distinct blobs (data and tree).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_blob_count: Option<u64>,
    /// raw-data only: the blobs' bytes as stored, compressed and sealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_stored_size: Option<u64>,
    /// raw-data only: plaintext / stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_ratio: Option<f64>,
    /// Blobs referenced but missing from the index (a damaged repository; `repo check` says
    /// more): counted so a total is never silently short.
    pub missing_blobs: u64,
}

/// Counts `snapshots` the way `mode` says.
pub fn stats_for(
    repo: &Repository,
    index: &Index,
    snapshots: &[(SnapshotId, Snapshot)],
    mode: StatsMode,
) -> Result<SelectedStats> {
    let mut walk = Walk::default();
    for (_, snap) in snapshots {
        let (files, bytes) = walk.tree(repo, index, snap.tree)?;
        walk.restore_files = walk.restore_files.saturating_add(files);
        walk.restore_bytes = walk.restore_bytes.saturating_add(bytes);
    }
    let mut out = SelectedStats {
        snapshots: snapshots.len() as u64,
        ..Default::default()
    };
    match mode {
        StatsMode::RestoreSize => {
            out.total_file_count = walk.restore_files;
            out.total_size = walk.restore_bytes;
        }
        StatsMode::FilesByContents => {
            out.total_file_count = walk.contents.len() as u64;
            out.total_size = walk
                .contents
                .values()
                .fold(0u64, |sum, size| sum.saturating_add(*size));
        }
        StatsMode::RawData => {
            let (mut raw, mut stored) = (0u64, 0u64);
            for id in &walk.blobs {
                match index.get(id) {
                    Some(loc) => {
                        raw += u64::from(loc.raw_length);
                        stored += u64::from(loc.length);
                    }
                    None => out.missing_blobs += 1,
                }
            }
            out.total_file_count = walk.blobs.len() as u64;
            out.total_blob_count = Some(walk.blobs.len() as u64);
            out.total_size = raw;
            out.total_stored_size = Some(stored);
            out.compression_ratio = Some(if stored == 0 {
                0.0
            } else {
                raw as f64 / stored as f64
            });
        }
    }
    if mode != StatsMode::RawData {
        out.missing_blobs = walk
            .blobs
            .iter()
            .filter(|id| index.get(id).is_none())
            .count() as u64;
    }
    Ok(out)
}

/// One pass over the trees, each distinct tree read once.
#[derive(Default)]
struct Walk {
    /// Files and bytes below each tree already read.
    sizes: HashMap<BlobId, (u64, u64)>,
    /// Every blob referenced, trees included.
    blobs: HashSet<BlobId>,
    /// Each distinct file content (its extents) and its size.
    contents: HashMap<Vec<Extent>, u64>,
    restore_files: u64,
    restore_bytes: u64,
}

impl Walk {
    fn tree(&mut self, repo: &Repository, index: &Index, id: BlobId) -> Result<(u64, u64)> {
        if let Some(&known) = self.sizes.get(&id) {
            return Ok(known);
        }
        self.blobs.insert(id);
        let mut total = (0u64, 0u64);
        for node in load_tree(repo, index, &id)?.nodes {
            match node.kind {
                NodeKind::File { size, content } => {
                    // Sizes come from stored trees: a hostile one must not wrap the totals.
                    total.0 += 1;
                    total.1 = total.1.saturating_add(size);
                    for extent in &content {
                        if let Extent::Data { id, .. } = extent {
                            self.blobs.insert(*id);
                        }
                    }
                    self.contents.insert(content, size);
                }
                NodeKind::Dir { subtree } => {
                    let (files, bytes) = self.tree(repo, index, subtree)?;
                    total.0 = total.0.saturating_add(files);
                    total.1 = total.1.saturating_add(bytes);
                }
                _ => {}
            }
        }
        self.sizes.insert(id, total);
        Ok(total)
    }
}
