//! Deduplication: a blob is stored once. It is known when the loaded index has it, or when this
//! operation already claimed it (stored or being stored by another worker).
//!
//! The claimed set grows with the new blobs of one operation (a million for a first backup of a
//! million small files), so it is kept compact: 64 shards by the id's first byte, each a small
//! hash set of recent claims that is merged, 2,048 at a time, into a sorted vector of exactly
//! the ids it holds. 32 bytes per blob and a little, where one hash set took 69 bytes (its
//! spare buckets) and doubled all at once.

use std::collections::HashSet;
use std::sync::Mutex;

use kairn_format::id::BlobId;

use crate::index::Index;
use kairn_format::sync::lock;

const SHARDS: usize = 64;
/// Claims held in a shard's hash set before they are merged into its sorted ids.
const RECENT: usize = 2048;

#[derive(Default)]
struct Shard {
    sorted: Vec<BlobId>,
    recent: HashSet<BlobId>,
}

impl Shard {
    fn contains(&self, id: &BlobId) -> bool {
        self.recent.contains(id) || self.sorted.binary_search(id).is_ok()
    }

    /// True when the id was not claimed before.
    fn insert(&mut self, id: BlobId) -> bool {
        if self.sorted.binary_search(&id).is_ok() || !self.recent.insert(id) {
            return false;
        }
        if self.recent.len() >= RECENT {
            self.merge();
        }
        true
    }

    fn merge(&mut self) {
        let mut recent: Vec<BlobId> = self.recent.drain().collect();
        recent.sort_unstable();
        let mut merged = Vec::with_capacity(self.sorted.len() + recent.len());
        let (mut a, mut b) = (self.sorted.iter().peekable(), recent.into_iter().peekable());
        while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
            if *x < y {
                merged.push(**x);
                a.next();
            } else {
                merged.push(*y);
                b.next();
            }
        }
        merged.extend(a);
        merged.extend(b);
        self.sorted = merged;
    }
}

/// The blobs an operation may skip: the loaded index, plus what it claimed itself.
pub struct Dedup<'a> {
    index: &'a Index,
    claimed: Vec<Mutex<Shard>>,
}

impl<'a> Dedup<'a> {
    /// Dedups against `index`.
    pub fn new(index: &'a Index) -> Self {
        Self {
            index,
            claimed: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, id: &BlobId) -> &Mutex<Shard> {
        &self.claimed[usize::from(id.0.0[0]) % SHARDS]
    }

    /// True when the blob is stored or being stored.
    pub fn known(&self, id: &BlobId) -> bool {
        self.index.contains(id) || lock(self.shard(id)).contains(id)
    }

    /// Claims a blob for storing: true when it is new, and then the caller must store it.
    pub fn claim(&self, id: BlobId) -> bool {
        !self.index.contains(&id) && lock(self.shard(&id)).insert(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairn_format::id::Id;

    #[test]
    fn a_blob_is_claimed_once_across_merges() {
        let index = Index::default();
        let dedup = Dedup::new(&index);
        let ids: Vec<BlobId> = (0..200_000u32)
            .map(|i| BlobId(Id(*blake3::hash(&i.to_le_bytes()).as_bytes())))
            .collect();
        for id in &ids {
            assert!(dedup.claim(*id));
        }
        for id in &ids {
            assert!(dedup.known(id));
            assert!(!dedup.claim(*id), "claimed twice");
        }
        assert!(!dedup.known(&BlobId(Id([0; 32]))));
        let merged: usize = dedup.claimed.iter().map(|s| lock(s).sorted.len()).sum();
        assert!(merged > 100_000, "{merged} ids merged into sorted vectors");
    }
}
