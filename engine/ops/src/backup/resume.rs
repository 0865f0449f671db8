//! Resuming an interrupted backup: the packs it stored before it died are in no index file
//! (§14: packs, then index), so without this a re-run would store their blobs again. A backup
//! adopts the recent ones instead: it reads their headers and indexes them before it starts.
//!
//! Adoption is safe beside a prune only for packs younger than half the session expiry, by
//! storage time, because a prune chooses an unindexed pack only once it is older than the expiry
//! (repo-format.md §14.1): a pack this backup adopts was never chosen by a prune whose garbage
//! list missed this backup's session.

use std::time::Duration;

use rayon::prelude::*;

use kairn_format::FileKind;
use kairn_format::error::Result;
use kairn_format::index::IndexPack;
use kairn_repository::index::Index;
use kairn_repository::read::pack::read_pack_header;
use kairn_repository::repo::Repository;
use kairn_repository::save::index::write_index_files;
use kairn_repository::session::Session;

/// What a backup took over from an interrupted one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adopted {
    /// Packs indexed.
    pub packs: u64,
    /// Their stored bytes.
    pub bytes: u64,
}

/// Indexes the unindexed packs younger than `expiry / 2` whose headers read back whole, so that
/// this backup (and later ones) deduplicate against them. Needs a running writer session: its
/// heartbeat gives the storage's "now". The caller reloads its index when anything was adopted.
pub fn adopt_interrupted_packs(
    repo: &Repository,
    session: &Session,
    index: &Index,
    expiry: Duration,
) -> Result<Adopted> {
    let indexed: std::collections::HashSet<_> = index.packs().iter().map(|(p, _)| *p).collect();
    let unindexed: Vec<_> = repo
        .list_packs()?
        .into_iter()
        .filter(|(p, _)| !indexed.contains(p))
        .collect();
    if unindexed.is_empty() {
        return Ok(Adopted::default());
    }
    let now = session.storage_now()?;
    let window = i64::try_from(expiry.as_millis() / 2).unwrap_or(i64::MAX);
    let adopted: Vec<IndexPack> = unindexed
        .par_iter()
        .filter(|(p, _)| {
            repo.backend()
                .modified(FileKind::Pack, &p.to_hex())
                .is_ok_and(|t| now - t < window)
        })
        .filter_map(|(p, size)| {
            // A pack whose header does not read back (torn, or still being written by another
            // process) is left alone: prune deals with it once it is old.
            let header = read_pack_header(repo, p, *size).ok()?;
            Some(IndexPack {
                id: *p,
                size: *size,
                blobs: header.entries,
            })
        })
        .collect();
    if adopted.is_empty() {
        return Ok(Adopted::default());
    }
    write_index_files(session, adopted.clone(), Vec::new())?;
    let bytes = adopted.iter().map(|p| p.size).sum();
    tracing::info!(
        "indexed {} pack(s), {bytes} bytes, left by an interrupted writer",
        adopted.len()
    );
    Ok(Adopted {
        packs: adopted.len() as u64,
        bytes,
    })
}
