//! Reading what prune decides from, for the mark and the sweep alike: the index files and the
//! headers of packs no index lists.

use rayon::prelude::*;

use kairn_format::error::Result;
use kairn_format::id::PackId;
use kairn_format::index::IndexPack;
use kairn_repository::index::IndexFiles;
use kairn_repository::read::pack::read_pack_header;
use kairn_repository::repo::Repository;

/// The index files in use, verified (a damaged one stops the prune), and the ids of every
/// index file stored, superseded ones too.
pub(super) fn load_index_files(repo: &Repository) -> Result<IndexFiles> {
    kairn_repository::index::load_live_files(repo)
        .map_err(|e| e.with_context("hint", "run `repo repair index`; nothing was deleted"))
}

/// The headers of these packs, as index entries; unreadable ones are left out (a damaged
/// unindexed pack holds nothing a snapshot can use).
pub(super) fn read_headers(
    repo: &Repository,
    packs: impl Iterator<Item = (PackId, u64)>,
) -> Vec<IndexPack> {
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
