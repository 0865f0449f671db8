//! The save pipeline: hash → [`dedup`] → compress and seal → [`pack`] → [`upload`] →
//! [`index`]. Callers hand over plaintext; the saver computes the blob's keyed id itself.
//!
//! Write ordering, the repository's central invariant: an index entry is recorded only after the
//! pack holding the blob was written, and an index file is written only with such entries, and
//! only through the writer's session. So an index never points at a pack that is not stored; a
//! crash leaves at worst unindexed packs.

pub mod dedup;
pub mod index;
pub mod pack;
pub mod upload;

use std::sync::atomic::{AtomicU64, Ordering};

use kairn_format::blob::seal_blob;
use kairn_format::error::{Error, Result};
use kairn_format::id::{BlobId, BlobKind, IndexId};
use kairn_format::index::IndexPack;
use kairn_format::pack::PackBuilder;

use self::dedup::Dedup;
use self::index::IndexWriter;
use self::pack::OpenPacks;
use self::upload::Uploader;
use crate::index::Index;
use crate::repo::Repository;
use crate::session::Session;

/// Counters of what a saver stored.
#[derive(Debug, Default)]
pub struct SaveStats {
    /// New data blobs.
    pub data_blobs: AtomicU64,
    /// New tree blobs.
    pub tree_blobs: AtomicU64,
    /// Plaintext bytes of new blobs.
    pub raw_bytes: AtomicU64,
    /// Bytes of packs written, headers included (index files are added at `flush`).
    pub stored_bytes: AtomicU64,
    /// Packs written.
    pub packs: AtomicU64,
}

/// Saves blobs for one operation; dedups against the loaded index and against itself.
pub struct BlobSaver<'a> {
    repo: &'a Repository,
    dedup: Dedup<'a>,
    packs: OpenPacks,
    uploader: Uploader,
    index: IndexWriter<'a>,
    /// What was stored.
    pub stats: SaveStats,
}

/// Threads writing packs: two keep a local disk busy while the workers chunk and seal.
const UPLOAD_THREADS: usize = 2;

thread_local! {
    /// Per thread: the compressed blob, then the sealed one.
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

impl<'a> BlobSaver<'a> {
    /// A saver that dedups against `index` and publishes through `session`.
    pub fn new(repo: &'a Repository, session: &'a Session, index: &'a Index) -> Result<Self> {
        Ok(Self {
            repo,
            dedup: Dedup::new(index),
            packs: OpenPacks::new(repo.config()),
            uploader: Uploader::new(repo.backend_arc(), UPLOAD_THREADS)?,
            index: IndexWriter::new(session),
            stats: SaveStats::default(),
        })
    }

    /// True when the blob is stored or being stored.
    pub fn known(&self, id: &BlobId) -> bool {
        self.dedup.known(id)
    }

    /// Stores a blob unless it is known. Returns its id, and true when it was new.
    pub fn save(&self, kind: BlobKind, plaintext: &[u8]) -> Result<(BlobId, bool)> {
        let id = self.repo.keys().blob_id(kind, plaintext);
        if !self.dedup.claim(id) {
            return Ok((id, false));
        }
        let raw_len =
            u32::try_from(plaintext.len()).map_err(|_| Error::internal("blob over 4 GiB"))?;
        let level = self.repo.config().compression_level;
        // Compress and seal outside the pack's lock: sealing under it made one large file's
        // blobs queue on a single core. Under the lock there is only a copy.
        let full = SCRATCH.with(|cell| -> Result<Option<PackBuilder>> {
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
            self.packs.add(kind, id, raw_len, sealed)
        })?;
        match kind {
            BlobKind::Data => self.stats.data_blobs.fetch_add(1, Ordering::Relaxed),
            BlobKind::Tree => self.stats.tree_blobs.fetch_add(1, Ordering::Relaxed),
        };
        self.stats
            .raw_bytes
            .fetch_add(u64::from(raw_len), Ordering::Relaxed);
        if let Some(builder) = full {
            self.write_pack(builder)?;
        }
        Ok((id, true))
    }

    fn write_pack(&self, builder: PackBuilder) -> Result<()> {
        if builder.is_empty() {
            return Ok(());
        }
        let (id, bytes, entries) = builder.finish(self.repo.keys());
        let size = bytes.len() as u64;
        self.stats.packs.fetch_add(1, Ordering::Relaxed);
        self.stats.stored_bytes.fetch_add(size, Ordering::Relaxed);
        let entry = IndexPack {
            id,
            size,
            blobs: entries,
        };
        self.uploader.send(bytes, entry)?;
        self.index.add(self.uploader.take_written()?)
    }

    /// Writes the open packs, then the index for everything written, recording in it the
    /// index files it `supersedes`. Call before writing any snapshot that refers to the saved
    /// blobs. Returns the index files written.
    pub fn flush_superseding(&self, supersedes: Vec<IndexId>) -> Result<Vec<IndexId>> {
        for kind in [BlobKind::Data, BlobKind::Tree] {
            self.write_pack(self.packs.take(kind))?;
        }
        self.index.add(self.uploader.wait()?)?;
        let written = self.index.finish(supersedes)?;
        self.stats
            .stored_bytes
            .fetch_add(self.index.take_stored_bytes(), Ordering::Relaxed);
        Ok(written)
    }

    /// [`Self::flush_superseding`] nothing.
    pub fn flush(&self) -> Result<Vec<IndexId>> {
        self.flush_superseding(Vec::new())
    }

    /// Publishes index entries of packs stored earlier (adopted or repacked elsewhere).
    pub fn add_written(&self, packs: Vec<IndexPack>) -> Result<()> {
        self.index.add(packs)
    }
}
