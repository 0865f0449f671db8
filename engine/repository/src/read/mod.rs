//! The read path: blobs and trees through the index, verified. Every blob comes out of its pack
//! through [`pack`].

pub mod content;
pub mod pack;
pub mod pack_cache;

use kairn_format::FileKind;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::{BlobId, BlobKind};
use kairn_format::tree::Tree;

use self::pack::{BlobAt, PackSpan, open_shared};
use crate::index::Index;
use crate::repo::Repository;

/// Reads, decrypts and verifies one blob.
pub fn read_blob(repo: &Repository, index: &Index, kind: BlobKind, id: &BlobId) -> Result<Vec<u8>> {
    let loc = index.get(id).ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!("{kind:?} blob {} is not in the index", id.short()),
        )
    })?;
    if kind == BlobKind::Tree && loc.raw_length as usize > kairn_format::tree::MAX_TREE_LEN {
        return Err(Error::corrupt(format!(
            "tree {} claims an implausible size",
            id.short()
        )));
    }
    if loc.kind != kind {
        return Err(Error::corrupt(format!(
            "blob {} is a {:?} blob, not {kind:?}",
            id.short(),
            loc.kind
        )));
    }
    let (pack, pack_size) = index.pack(loc.pack);
    let at = BlobAt {
        kind,
        id: *id,
        offset: loc.offset,
        length: loc.length,
        raw_length: loc.raw_length,
    };
    if kind == BlobKind::Tree && repo.tree_packs().admits(pack_size) {
        let whole = repo
            .tree_packs()
            .get_or_load(&pack, || repo.read_verified(FileKind::Pack, &pack.to_hex()))?;
        return open_shared(repo.keys(), pack, &whole, &at);
    }
    let mut span = PackSpan::read(repo, pack, u64::from(loc.offset), u64::from(loc.length))?;
    span.open(repo.keys(), &at).map(|data| data.into_owned())
}

/// Loads and decodes a tree.
pub fn load_tree(repo: &Repository, index: &Index, id: &BlobId) -> Result<Tree> {
    let bytes = read_blob(repo, index, BlobKind::Tree, id)?;
    Tree::decode(&bytes).map_err(|e| e.with_context("tree", id.short()))
}

/// Encodes a tree and returns its bytes with its id (for a dry run, which stores nothing; the
/// saver computes the id of what it stores itself).
pub fn tree_blob(repo: &Repository, tree: &Tree) -> Result<(BlobId, Vec<u8>)> {
    let bytes = tree.encode()?;
    Ok((repo.keys().tree_id(&bytes), bytes))
}
