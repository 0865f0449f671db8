//! Where a backup's blobs go: the repository, or, for a dry run, nowhere. A dry run
//! deduplicates against the loaded index exactly as a backup does, and compresses and seals
//! each new blob to learn its stored size; only pack headers and index entries are estimated.

use std::sync::atomic::Ordering;

use kairn_format::blob::seal_blob;
use kairn_format::error::{Error, Result};
use kairn_format::id::{BlobId, BlobKind};
use kairn_repository::index::Index;
use kairn_repository::repo::Repository;
use kairn_repository::save::dedup::Dedup;
use kairn_repository::save::{BlobSaver, SaveStats};

/// What a blob costs beside its sealed bytes: its pack header entry and its index entry, both
/// sealed and compressed with their neighbours. An estimate; a dry run says so.
const METADATA_PER_BLOB: u64 = 80;

/// The destination of a backup's blobs.
pub(crate) enum Store<'a> {
    /// Packs, then an index, in the repository.
    Repository(Box<BlobSaver<'a>>),
    /// Nothing is written.
    DryRun(DryRun<'a>),
}

impl Store<'_> {
    /// Stores a blob unless it is known; its id, and true when it was new.
    pub(crate) fn save(&self, kind: BlobKind, plaintext: &[u8]) -> Result<(BlobId, bool)> {
        match self {
            Self::Repository(saver) => saver.save(kind, plaintext),
            Self::DryRun(dry) => dry.save(kind, plaintext),
        }
    }

    /// True when the blob is stored, or would be.
    pub(crate) fn known(&self, id: &BlobId) -> bool {
        match self {
            Self::Repository(saver) => saver.known(id),
            Self::DryRun(dry) => dry.dedup.known(id),
        }
    }

    /// What was stored (or would be).
    pub(crate) fn stats(&self) -> &SaveStats {
        match self {
            Self::Repository(saver) => &saver.stats,
            Self::DryRun(dry) => &dry.stats,
        }
    }

    /// Writes the open packs and the index; nothing for a dry run.
    pub(crate) fn flush(&self) -> Result<()> {
        match self {
            Self::Repository(saver) => saver.flush().map(|_| ()),
            Self::DryRun(_) => Ok(()),
        }
    }

    /// True for a dry run.
    pub(crate) fn is_dry_run(&self) -> bool {
        matches!(self, Self::DryRun(_))
    }
}

/// Counts what a backup would store, and stores nothing.
pub(crate) struct DryRun<'a> {
    repo: &'a Repository,
    dedup: Dedup<'a>,
    stats: SaveStats,
}

thread_local! {
    /// Per thread: the compressed blob, then the sealed one.
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

impl<'a> DryRun<'a> {
    pub(crate) fn new(repo: &'a Repository, index: &'a Index) -> Self {
        Self {
            repo,
            dedup: Dedup::new(index),
            stats: SaveStats::default(),
        }
    }

    fn save(&self, kind: BlobKind, plaintext: &[u8]) -> Result<(BlobId, bool)> {
        let id = self.repo.keys().blob_id(kind, plaintext);
        if !self.dedup.claim(id) {
            return Ok((id, false));
        }
        if u32::try_from(plaintext.len()).is_err() {
            return Err(Error::internal("blob over 4 GiB"));
        }
        let level = self.repo.config().compression_level;
        let sealed = SCRATCH.with(|cell| {
            let (compressed, sealed) = &mut *cell.borrow_mut();
            sealed.clear();
            seal_blob(
                self.repo.keys(),
                kind,
                &id,
                plaintext,
                level,
                compressed,
                sealed,
            );
            sealed.len() as u64
        });
        let s = &self.stats;
        match kind {
            BlobKind::Data => s.data_blobs.fetch_add(1, Ordering::Relaxed),
            BlobKind::Tree => s.tree_blobs.fetch_add(1, Ordering::Relaxed),
        };
        s.raw_bytes
            .fetch_add(plaintext.len() as u64, Ordering::Relaxed);
        s.stored_bytes
            .fetch_add(sealed + METADATA_PER_BLOB, Ordering::Relaxed);
        Ok((id, true))
    }
}
