//! Reading blobs and trees through the index, verified.

pub mod pack_cache;

use crate::index::Index;
use crate::repo::Repository;
use kairn_format::FileKind;
use kairn_format::blob::open_blob;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::BlobKind;
use kairn_format::id::{BlobId, PackId};
use kairn_format::pack::{PackHeader, TRAILER_LEN, open_header, parse_trailer};
use kairn_format::tree::Tree;

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
    let (offset, length) = (u64::from(loc.offset), u64::from(loc.length));
    let opened = if kind == BlobKind::Tree && repo.tree_packs().admits(pack_size) {
        let whole = repo
            .tree_packs()
            .get_or_load(&pack, || repo.read_verified(FileKind::Pack, &pack.to_hex()))?;
        let stored = usize::try_from(offset + length)
            .ok()
            .and_then(|end| whole.get(offset as usize..end))
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "pack is {} bytes, shorter than the index says",
                    whole.len()
                ))
            });
        stored.and_then(|stored| open_blob(repo.keys(), kind, id, stored, loc.raw_length as usize))
    } else {
        let stored = repo
            .backend()
            .read_range(FileKind::Pack, &pack.to_hex(), offset, length)?;
        open_blob(repo.keys(), kind, id, &stored, loc.raw_length as usize)
    };
    opened.map_err(|e| e.with_context("pack", pack.short()))
}

/// Loads and decodes a tree.
pub fn load_tree(repo: &Repository, index: &Index, id: &BlobId) -> Result<Tree> {
    let bytes = read_blob(repo, index, BlobKind::Tree, id)?;
    Tree::decode(&bytes).map_err(|e| e.with_context("tree", id.short()))
}

/// Encodes a tree and returns its bytes with its id.
pub fn tree_blob(repo: &Repository, tree: &Tree) -> Result<(BlobId, Vec<u8>)> {
    let bytes = tree.encode()?;
    Ok((repo.keys().tree_id(&bytes), bytes))
}

/// Reads and opens a pack's header from storage: the trailer, then the sealed header.
pub fn read_pack_header(repo: &Repository, pack: &PackId, size: u64) -> Result<PackHeader> {
    let name = pack.to_hex();
    let trailer_len = TRAILER_LEN as u64;
    if size < trailer_len {
        return Err(Error::corrupt(format!(
            "pack {} is shorter than its trailer",
            pack.short()
        )));
    }
    let trailer =
        repo.backend()
            .read_range(FileKind::Pack, &name, size - trailer_len, trailer_len)?;
    let header_len = u64::from(parse_trailer(&trailer, size)?);
    let start = size - trailer_len - header_len;
    let sealed = repo
        .backend()
        .read_range(FileKind::Pack, &name, start, header_len)?;
    open_header(repo.keys(), &sealed, start).map_err(|e| e.with_context("pack", pack.short()))
}
