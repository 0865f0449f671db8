//! Saving blobs: deduplicate, compress, seal, collect into packs, write packs, then index files.
//!
//! Write ordering, the repository's central invariant: an index entry is recorded only after the
//! pack holding the blob was written, and an index file is written only with such entries. So an
//! index never points at a pack that is not stored; a crash leaves at worst unindexed packs.

pub mod upload;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::index::Index;
use crate::repo::Repository;
use crate::save::upload::Uploader;
use kairn_format::FileKind;
use kairn_format::blob::{BlobKind, blob_aad};
use kairn_format::compress::encode_into;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::{BlobId, IndexId};
use kairn_format::index::{IndexFile, IndexPack};
use kairn_format::pack::PackBuilder;

/// Blobs per index file before it is written out, bounding the memory of pending entries.
const INDEX_FLUSH_BLOBS: usize = 100_000;

/// Counters of what a saver stored.
#[derive(Debug, Default)]
pub struct SaveStats {
    /// New data blobs.
    pub data_blobs: AtomicU64,
    /// New tree blobs.
    pub tree_blobs: AtomicU64,
    /// Plaintext bytes of new blobs.
    pub raw_bytes: AtomicU64,
    /// Bytes of packs written, headers included.
    pub stored_bytes: AtomicU64,
    /// Packs written.
    pub packs: AtomicU64,
}

/// Saves blobs for one operation; dedups against the loaded index and against itself.
pub struct BlobSaver<'a> {
    repo: &'a Repository,
    index: &'a Index,
    in_flight: Mutex<HashSet<BlobId>>,
    data: Mutex<PackBuilder>,
    tree: Mutex<PackBuilder>,
    pending: Mutex<IndexFile>,
    written_index: Mutex<Vec<IndexId>>,
    /// Background pack writers; `None` if their threads could not start (then packs are
    /// written by the worker that filled them).
    uploader: Option<Uploader>,
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
    /// A saver that dedups against `index`.
    pub fn new(repo: &'a Repository, index: &'a Index) -> Self {
        Self {
            repo,
            index,
            in_flight: Mutex::default(),
            data: Mutex::default(),
            tree: Mutex::default(),
            pending: Mutex::default(),
            written_index: Mutex::default(),
            uploader: Uploader::new(repo.backend_arc(), UPLOAD_THREADS).ok(),
            stats: SaveStats::default(),
        }
    }

    /// True when the blob is stored or being stored.
    pub fn known(&self, id: &BlobId) -> bool {
        self.index.contains(id) || lock(&self.in_flight).contains(id)
    }

    /// Stores a blob unless it is known. Returns true when it was new.
    pub fn save(&self, kind: BlobKind, id: BlobId, plaintext: &[u8]) -> Result<bool> {
        if self.index.contains(&id) || !lock(&self.in_flight).insert(id) {
            return Ok(false);
        }
        let raw_len =
            u32::try_from(plaintext.len()).map_err(|_| Error::internal("blob over 4 GiB"))?;
        let level = self.repo.config().compression_level;
        let keys = self.repo.keys();
        let aad = blob_aad(kind, &id);
        // Compress and seal outside the lock: sealing under it made one large file's blobs
        // queue on a single core. Under the lock there is only a copy.
        let full = SCRATCH.with(|cell| -> Result<Option<PackBuilder>> {
            let (compressed, sealed) = &mut *cell.borrow_mut();
            compressed.clear();
            encode_into(plaintext, level, compressed);
            sealed.clear();
            keys.seal_into(&aad, compressed, sealed);
            let mut builder = lock(self.builder(kind));
            if builder.is_empty() {
                builder.reserve(self.pack_capacity());
            }
            builder.add_with(kind, id, raw_len, |out| out.extend_from_slice(sealed))?;
            Ok((builder.len() >= self.repo.config().pack_size as usize)
                .then(|| std::mem::take(&mut *builder)))
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
        Ok(true)
    }

    /// A pack's final size: the target, plus the largest blob that can cross it, plus the header.
    fn pack_capacity(&self) -> usize {
        let cfg = self.repo.config();
        cfg.pack_size as usize + cfg.chunk_sizes.max_size as usize + (1 << 20)
    }

    fn builder(&self, kind: BlobKind) -> &Mutex<PackBuilder> {
        match kind {
            BlobKind::Data => &self.data,
            BlobKind::Tree => &self.tree,
        }
    }

    fn write_pack(&self, builder: PackBuilder) -> Result<()> {
        if builder.is_empty() {
            return Ok(());
        }
        let (id, bytes, entries) = builder.finish(self.repo.keys());
        let size = bytes.len() as u64;
        let entry = IndexPack {
            id,
            size,
            blobs: entries,
        };
        self.stats.packs.fetch_add(1, Ordering::Relaxed);
        self.stats.stored_bytes.fetch_add(size, Ordering::Relaxed);
        match &self.uploader {
            Some(up) => {
                up.send(bytes, entry)?;
                let written = up.take_written()?;
                self.add_to_index(written)
            }
            None => {
                match self
                    .repo
                    .backend()
                    .write(FileKind::Pack, &id.to_hex(), bytes)
                {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
                self.add_to_index(vec![entry])
            }
        }
    }

    /// Adds entries of written packs to the pending index, writing it out when it is full.
    fn add_to_index(&self, written: Vec<IndexPack>) -> Result<()> {
        if written.is_empty() {
            return Ok(());
        }
        let to_write = {
            let mut pending = lock(&self.pending);
            pending.packs.extend(written);
            if pending.blob_count() >= INDEX_FLUSH_BLOBS {
                Some(std::mem::take(&mut *pending))
            } else {
                None
            }
        };
        if let Some(file) = to_write {
            self.write_index(&file)?;
        }
        Ok(())
    }

    fn write_index(&self, file: &IndexFile) -> Result<()> {
        if file.packs.is_empty() {
            return Ok(());
        }
        self.repo.check_session()?;
        let (id, size) = self.repo.save_file_sized(file)?;
        self.stats.stored_bytes.fetch_add(size, Ordering::Relaxed);
        lock(&self.written_index).push(id);
        Ok(())
    }

    /// Writes the open packs, then the index for everything written. Call before writing any
    /// snapshot that refers to the saved blobs.
    pub fn flush(&self) -> Result<Vec<IndexId>> {
        for kind in [BlobKind::Data, BlobKind::Tree] {
            let builder = std::mem::take(&mut *lock(self.builder(kind)));
            self.write_pack(builder)?;
        }
        if let Some(up) = &self.uploader {
            let written = up.wait()?;
            self.add_to_index(written)?;
        }
        let file = std::mem::take(&mut *lock(&self.pending));
        self.write_index(&file)?;
        Ok(lock(&self.written_index).clone())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
