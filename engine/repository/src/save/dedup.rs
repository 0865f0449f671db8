//! Deduplication: a blob is stored once. It is known when the loaded index has it, or when this
//! operation already claimed it (stored or being stored by another worker).

use std::collections::HashSet;
use std::sync::Mutex;

use kairn_format::id::BlobId;

use crate::index::Index;
use kairn_format::sync::lock;

/// The blobs an operation may skip: the loaded index, plus what it claimed itself.
pub struct Dedup<'a> {
    index: &'a Index,
    claimed: Mutex<HashSet<BlobId>>,
}

impl<'a> Dedup<'a> {
    /// Dedups against `index`.
    pub fn new(index: &'a Index) -> Self {
        Self {
            index,
            claimed: Mutex::default(),
        }
    }

    /// True when the blob is stored or being stored.
    pub fn known(&self, id: &BlobId) -> bool {
        self.index.contains(id) || lock(&self.claimed).contains(id)
    }

    /// Claims a blob for storing: true when it is new, and then the caller must store it.
    pub fn claim(&self, id: BlobId) -> bool {
        !self.index.contains(&id) && lock(&self.claimed).insert(id)
    }
}
