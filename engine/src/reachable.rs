//! What the snapshots use: every tree and data blob reachable from a snapshot's root.

use std::collections::HashSet;

use crate::blobs::load_tree;
use crate::error::Result;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Extent, NodeKind};
use crate::id::{BlobId, SnapshotId};
use crate::index::Index;
use crate::repo::Repository;

/// The blobs used by `snapshots`, whose trees `index` must locate. Any tree that cannot be
/// read is an error: a caller deciding what to delete must see everything. List the snapshots
/// before loading the index: a snapshot's index files are written before it, so they are then
/// sure to be seen.
pub fn used_blobs(
    repo: &Repository,
    index: &Index,
    snapshots: &[(SnapshotId, Snapshot)],
) -> Result<HashSet<BlobId>> {
    let mut used = HashSet::new();
    let mut stack: Vec<BlobId> = snapshots.iter().map(|(_, s)| s.tree).collect();
    while let Some(tree_id) = stack.pop() {
        if !used.insert(tree_id) {
            continue;
        }
        let tree = load_tree(repo, index, &tree_id)
            .map_err(|e| e.with_context("tree", tree_id.short()))?;
        for node in tree.nodes {
            match node.kind {
                NodeKind::Dir { subtree } => stack.push(subtree),
                NodeKind::File { content, .. } => {
                    used.extend(content.into_iter().filter_map(|e| match e {
                        Extent::Data { id, .. } => Some(id),
                        Extent::Hole { .. } => None,
                    }));
                }
                _ => {}
            }
        }
    }
    Ok(used)
}
