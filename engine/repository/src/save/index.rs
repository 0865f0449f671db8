//! The one index writer: entries of written packs collect into index files, published through
//! the writer's session once a file holds enough blobs, and the rest at `finish`.
//!
//! Write ordering: only entries of packs whose write returned success reach it (the saver and
//! the uploader see to that), and every file goes through [`Session::save_index`], which
//! publishes nothing once the session may have been expired.

use std::sync::Mutex;

use kairn_format::error::Result;
use kairn_format::id::IndexId;
use kairn_format::index::{IndexFile, IndexPack};

use crate::session::Session;
use kairn_format::sync::lock;

/// Blobs per index file before it is written out, bounding the memory of pending entries.
pub const INDEX_FILE_BLOBS: usize = 100_000;

/// Collects index entries of written packs and publishes them as index files.
pub struct IndexWriter<'s> {
    session: &'s Session,
    pending: Mutex<IndexFile>,
    written: Mutex<Vec<IndexId>>,
    stored_bytes: Mutex<u64>,
}

impl<'s> IndexWriter<'s> {
    /// A writer publishing through `session`.
    pub fn new(session: &'s Session) -> Self {
        Self {
            session,
            pending: Mutex::default(),
            written: Mutex::default(),
            stored_bytes: Mutex::new(0),
        }
    }

    /// Adds entries of written packs, writing out a file whenever one holds enough blobs.
    pub fn add(&self, packs: Vec<IndexPack>) -> Result<()> {
        for pack in packs {
            let full = {
                let mut pending = lock(&self.pending);
                pending.packs.push(pack);
                (pending.blob_count() >= INDEX_FILE_BLOBS).then(|| std::mem::take(&mut *pending))
            };
            if let Some(file) = full {
                self.write(&file)?;
            }
        }
        Ok(())
    }

    /// Writes what is pending, recording in the last file the index files it `supersedes` (a
    /// file is written for them even with no entries). Returns every file written.
    pub fn finish(&self, supersedes: Vec<IndexId>) -> Result<Vec<IndexId>> {
        let mut file = std::mem::take(&mut *lock(&self.pending));
        file.supersedes = supersedes;
        if !file.packs.is_empty() || !file.supersedes.is_empty() {
            self.write(&file)?;
        }
        Ok(lock(&self.written).clone())
    }

    /// Bytes of index files written since the last call.
    pub fn take_stored_bytes(&self) -> u64 {
        std::mem::take(&mut *lock(&self.stored_bytes))
    }

    fn write(&self, file: &IndexFile) -> Result<()> {
        let (id, size) = self.session.save_index(file)?;
        *lock(&self.stored_bytes) += size;
        lock(&self.written).push(id);
        Ok(())
    }
}

/// Writes `packs` as index files; returns how many were written. Only the last one lists
/// `supersedes`, so readers switch to the new files only once all of them are stored (an
/// interrupted write leaves the old files in use). With no packs and something to supersede,
/// one empty file says so.
pub fn write_index_files(
    session: &Session,
    packs: Vec<IndexPack>,
    supersedes: Vec<IndexId>,
) -> Result<u64> {
    let writer = IndexWriter::new(session);
    writer.add(packs)?;
    Ok(writer.finish(supersedes)?.len() as u64)
}
