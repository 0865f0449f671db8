//! Trees, rewritten: every node kept as it is but for the subtree ids and content lists, which
//! name blobs of the destination.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::memo::{FILE_MEMO_WEIGHT, Memo, TREE_MEMO_WEIGHT};
use crate::progress::Progress;
use kairn_format::error::Result;
use kairn_format::id::BlobId;
use kairn_format::id::BlobKind;
use kairn_format::tree::{Extent, Node, NodeKind, Tree};
use kairn_repository::index::Index;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;
use kairn_repository::save::BlobSaver;

/// What the rewrite read and stored, for the report.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) files: AtomicU64,
    pub(super) bytes_read: AtomicU64,
    pub(super) new_blobs: AtomicU64,
    pub(super) new_bytes: AtomicU64,
    pub(super) dedup_blobs: AtomicU64,
    pub(super) dedup_bytes: AtomicU64,
}

pub(super) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Rewrites source trees into the destination, remembering what it did within the run.
pub(super) struct Rewriter<'a> {
    pub(super) src: &'a Repository,
    pub(super) src_index: &'a Index,
    pub(super) dst: &'a Repository,
    pub(super) saver: &'a BlobSaver<'a>,
    pub(super) progress: &'a dyn Progress,
    /// Source tree id to destination tree id.
    trees: Memo<BlobId, BlobId>,
    /// Digest of a source content list to the destination content list.
    pub(super) files: Memo<[u8; 32], Vec<Extent>>,
    pub(super) counts: Counts,
}

impl<'a> Rewriter<'a> {
    pub(super) fn new(
        src: &'a Repository,
        src_index: &'a Index,
        dst: &'a Repository,
        saver: &'a BlobSaver<'a>,
        progress: &'a dyn Progress,
    ) -> Self {
        Self {
            src,
            src_index,
            dst,
            saver,
            progress,
            trees: Memo::new(TREE_MEMO_WEIGHT),
            files: Memo::new(FILE_MEMO_WEIGHT),
            counts: Counts::default(),
        }
    }

    /// Stores the destination version of source tree `id` (the directory at `path`).
    pub(super) fn tree(&self, id: BlobId, path: &Path) -> Result<BlobId> {
        if let Some(done) = self.trees.get(&id) {
            return Ok(done);
        }
        let tree = load_tree(self.src, self.src_index, &id)
            .map_err(|e| e.with_context("path", path.display()))?;
        // Entries in parallel, as a backup reads them: a small file costs a round trip to the
        // source storage, and a tree's files overlap their waits.
        let nodes = tree
            .nodes
            .into_par_iter()
            .map(|node| self.node(node, path))
            .collect::<Result<Vec<_>>>()?;
        // Names are unchanged, so the nodes are still in canonical order.
        let (new, _) = self.saver.save(BlobKind::Tree, &Tree { nodes }.encode()?)?;
        self.trees.insert(id, new, 1);
        Ok(new)
    }

    fn node(&self, mut node: Node, dir: &Path) -> Result<Node> {
        let path = dir.join(OsStr::from_bytes(&node.name));
        match &mut node.kind {
            NodeKind::Dir { subtree } => *subtree = self.tree(*subtree, &path)?,
            NodeKind::File { content, .. } => {
                *content = self
                    .content(content, &path)
                    .map_err(|e| e.with_context("path", path.display()))?;
            }
            _ => {}
        }
        Ok(node)
    }
}
