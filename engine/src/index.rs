//! The in-memory index: where every blob lives. Loaded from all index files at the start of an
//! operation; a blob is only ever looked up here after its pack was written.
//!
//! Memory: a hash map entry of 32 bytes of key and 20 of location, about 60 bytes per blob with
//! the table's overhead.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::error::Result;
use crate::format::blob::BlobKind;
use crate::format::index::IndexFile;
use crate::id::{BlobId, IndexId, PackId};
use crate::repo::Repository;

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Position of the pack in [`Index::packs`].
    pub pack: u32,
    /// Kind of the blob.
    pub kind: BlobKind,
    /// Offset in the pack.
    pub offset: u32,
    /// Stored length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

/// All blobs of the repository, by id.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<(PackId, u64)>,
    pack_pos: HashMap<PackId, u32>,
    blobs: HashMap<BlobId, BlobLocation>,
    files: Vec<IndexId>,
}

impl Index {
    /// Loads every index file of the repository (in parallel), verifying each.
    pub fn load(repo: &Repository) -> Result<Self> {
        let ids = repo.list_ids::<IndexFile>()?;
        let files: Vec<(IndexId, IndexFile)> = ids
            .par_iter()
            .map(|id| repo.load_file::<IndexFile>(id).map(|f| (*id, f)))
            .collect::<Result<_>>()?;
        let mut index = Self::default();
        for (id, file) in files {
            index.add_file(&file);
            index.files.push(id);
        }
        Ok(index)
    }

    /// Adds every pack of an index file.
    pub fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            let pos = match self.pack_pos.get(&pack.id) {
                Some(&pos) => pos,
                None => {
                    let pos = self.packs.len() as u32;
                    self.packs.push((pack.id, pack.size));
                    self.pack_pos.insert(pack.id, pos);
                    pos
                }
            };
            for b in &pack.blobs {
                self.blobs.entry(b.id).or_insert(BlobLocation {
                    pack: pos,
                    kind: b.kind,
                    offset: b.offset,
                    length: b.length,
                    raw_length: b.raw_length,
                });
            }
        }
    }

    /// Where a blob is.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.blobs.get(id).copied()
    }

    /// True when the blob is stored.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// The pack at a position, with its size.
    pub fn pack(&self, pos: u32) -> (PackId, u64) {
        self.packs[pos as usize]
    }

    /// Every pack with its size.
    pub fn packs(&self) -> &[(PackId, u64)] {
        &self.packs
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Every blob and where it is.
    pub fn iter(&self) -> impl Iterator<Item = (&BlobId, &BlobLocation)> {
        self.blobs.iter()
    }

    /// The index files this index was loaded from.
    pub fn files(&self) -> &[IndexId] {
        &self.files
    }
}
