//! What the snapshots use: every tree and data blob reachable from a snapshot's root.

use std::collections::HashSet;

use kairn_format::error::Result;
use kairn_format::id::{BlobId, SnapshotId};
use kairn_format::snapshot::Snapshot;
use kairn_format::tree::{Extent, NodeKind};
use kairn_repository::index::Index;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;

/// Calls `visit` with every blob reachable from `root` (trees and data) that is not yet in
/// `seen_trees`, and records the trees it walks there. A tree that cannot be read fails the walk
/// when `strict`, and is skipped (still visited) otherwise.
pub fn walk(
    repo: &Repository,
    index: &Index,
    root: BlobId,
    seen_trees: &mut HashSet<BlobId>,
    strict: bool,
    mut visit: impl FnMut(BlobId),
) -> Result<()> {
    let mut stack = vec![root];
    while let Some(tree_id) = stack.pop() {
        if !seen_trees.insert(tree_id) {
            continue;
        }
        visit(tree_id);
        let tree = match load_tree(repo, index, &tree_id) {
            Ok(t) => t,
            Err(e) if strict => return Err(e.with_context("tree", tree_id.short())),
            Err(_) => continue,
        };
        for node in tree.nodes {
            match node.kind {
                NodeKind::Dir { subtree } => stack.push(subtree),
                NodeKind::File { content, .. } => {
                    for e in content {
                        if let Extent::Data { id, .. } = e {
                            visit(id);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

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
    let mut seen_trees = HashSet::new();
    for (_, snap) in snapshots {
        walk(repo, index, snap.tree, &mut seen_trees, true, |id| {
            used.insert(id);
        })?;
    }
    Ok(used)
}
