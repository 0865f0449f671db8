//! Reading a byte range of a file from its blobs, for readers that jump around (`repo mount`):
//! only the blobs that cover the range are read, each verified by the read path and against
//! the length its tree records, and a small cache of decrypted blobs serves the neighbouring
//! reads that follow, so a reader holds a few MiB however large the file is.
//!
//! [`ContentReader`](kairn_repository::read::content::ContentReader) is the sequential reader;
//! this one seeks.

use std::sync::{Arc, Mutex, PoisonError};

use kairn_format::error::{Error, Result};
use kairn_format::id::{BlobId, BlobKind};
use kairn_format::tree::Extent;
use kairn_repository::index::Index;
use kairn_repository::read::read_blob;
use kairn_repository::repo::Repository;

/// Decrypted blob bytes a [`BlobCache`] keeps unless told otherwise: a few average chunks, so
/// that a sequential reader asking for 128 KiB at a time reads each blob once.
pub const DEFAULT_BLOB_CACHE_BYTES: usize = 8 << 20;

/// Where [`FileExtents::read_with`] gets a data blob: its id and the length its tree records.
pub type LoadBlob<'a> = dyn FnMut(&BlobId, u32) -> Result<Arc<Vec<u8>>> + 'a;

/// A file's extents with where each ends, so that the extents under an offset are found by a
/// binary search rather than a walk from the start.
#[derive(Debug, Clone)]
pub struct FileExtents {
    extents: Vec<Extent>,
    /// `ends[i]`: the offset just past extent `i`.
    ends: Vec<u64>,
}

/// The part of one extent that a range covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Which extent.
    pub extent: usize,
    /// Bytes of the extent before the range starts.
    pub skip: u64,
    /// Bytes of the extent in the range.
    pub len: u64,
}

impl FileExtents {
    /// The extents of one file, in order.
    pub fn new(extents: Vec<Extent>) -> Self {
        let mut end = 0u64;
        let ends = extents
            .iter()
            .map(|e| {
                // Saturating: a hostile tree with absurd hole lengths reads short, never wraps.
                end = end.saturating_add(e.len());
                end
            })
            .collect();
        Self { extents, ends }
    }

    /// The file's length: the sum of its extents.
    pub fn len(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// True for a file without content.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The extents that `[offset, offset + len)` covers, clipped to the file, in order.
    pub fn pieces(&self, offset: u64, len: u64) -> Vec<Piece> {
        let stop = offset.saturating_add(len).min(self.len());
        let mut pos = offset;
        let mut i = self.ends.partition_point(|&end| end <= offset);
        let mut out = Vec::new();
        while pos < stop && i < self.extents.len() {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            let take = self.ends[i].min(stop) - pos;
            if take > 0 {
                out.push(Piece {
                    extent: i,
                    skip: pos - start,
                    len: take,
                });
            }
            pos += take;
            i += 1;
        }
        out
    }

    /// Up to `len` bytes from `offset` (fewer at the end of the file, none past it), holes as
    /// zeros, data blobs from `load(id, expected length)`.
    pub fn read_with(&self, offset: u64, len: usize, load: &mut LoadBlob<'_>) -> Result<Vec<u8>> {
        let pieces = self.pieces(offset, len as u64);
        let total: u64 = pieces.iter().map(|p| p.len).sum();
        let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for piece in pieces {
            let (skip, take) = (piece.skip as usize, piece.len as usize);
            match self.extents[piece.extent] {
                Extent::Hole { .. } => out.resize(out.len() + take, 0),
                Extent::Data { id, len } => {
                    let blob = load(&id, len)?;
                    let bytes = blob.get(skip..skip + take).ok_or_else(|| {
                        Error::internal(format!("data blob {} read short", id.short()))
                    })?;
                    out.extend_from_slice(bytes);
                }
            }
        }
        Ok(out)
    }

    /// [`read_with`](Self::read_with) from the repository through `cache`.
    pub fn read_at(
        &self,
        repo: &Repository,
        index: &Index,
        cache: &BlobCache,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        self.read_with(offset, len, &mut |id, expected| {
            cache.get_or_load(id, || read_data_blob(repo, index, id, expected))
        })
    }
}

/// One data blob, verified against its id (by [`read_blob`]) and the length its tree records.
fn read_data_blob(repo: &Repository, index: &Index, id: &BlobId, expected: u32) -> Result<Vec<u8>> {
    let blob = read_blob(repo, index, BlobKind::Data, id)?;
    check_len(id, &blob, expected)?;
    Ok(blob)
}

fn check_len(id: &BlobId, blob: &[u8], expected: u32) -> Result<()> {
    if blob.len() != expected as usize {
        return Err(Error::corrupt(format!(
            "data blob {} holds {} bytes, but its tree says {expected}",
            id.short(),
            blob.len()
        )));
    }
    Ok(())
}

/// Decrypted blobs, most recently used last, within a byte budget. The newest blob is kept
/// even when it alone exceeds the budget: the reads that follow a read usually want it again.
pub struct BlobCache {
    budget: usize,
    blobs: Mutex<Vec<(BlobId, Arc<Vec<u8>>)>>,
    /// Held while a missing blob is read, so that readers wanting the same blob at once (the
    /// kernel's read-ahead beside the read) fetch it once.
    loading: Mutex<()>,
}

impl BlobCache {
    /// A cache holding at most `budget` bytes (and always the newest blob).
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            blobs: Mutex::default(),
            loading: Mutex::default(),
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.lock().iter().map(|(_, b)| b.len()).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(BlobId, Arc<Vec<u8>>)>> {
        self.blobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lookup(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        let mut blobs = self.lock();
        let pos = blobs.iter().position(|(b, _)| b == id)?;
        let entry = blobs.remove(pos);
        let bytes = entry.1.clone();
        blobs.push(entry);
        Some(bytes)
    }

    /// The blob's bytes, from the cache or from `load`.
    pub fn get_or_load(
        &self,
        id: &BlobId,
        load: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Arc<Vec<u8>>> {
        if let Some(bytes) = self.lookup(id) {
            return Ok(bytes);
        }
        let _loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bytes) = self.lookup(id) {
            return Ok(bytes);
        }
        let bytes = Arc::new(load()?);
        let mut blobs = self.lock();
        blobs.push((*id, bytes.clone()));
        let mut total: usize = blobs.iter().map(|(_, b)| b.len()).sum();
        while total > self.budget && blobs.len() > 1 {
            total -= blobs.remove(0).1.len();
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairn_format::id::Id;

    fn blob_id(n: u8) -> BlobId {
        BlobId::from(Id([n; 32]))
    }

    fn data(n: u8, len: u32) -> Extent {
        Extent::Data {
            id: blob_id(n),
            len,
        }
    }

    /// Blob `n` holds `len` bytes of value `n`.
    fn fake_blob(id: &BlobId, len: u32) -> Vec<u8> {
        vec![id.to_hex().as_bytes()[0]; len as usize]
    }

    #[test]
    fn a_range_maps_to_the_extents_under_it() {
        // [0,10) data 1, [10,15) hole, [15,15) empty data, [15,35) data 2
        let f = FileExtents::new(vec![
            data(1, 10),
            Extent::Hole { len: 5 },
            data(3, 0),
            data(2, 20),
        ]);
        assert_eq!(f.len(), 35);
        let p = |extent, skip, len| Piece { extent, skip, len };
        assert_eq!(f.pieces(0, 10), vec![p(0, 0, 10)]);
        assert_eq!(f.pieces(8, 10), vec![p(0, 8, 2), p(1, 0, 5), p(3, 0, 3)]);
        assert_eq!(f.pieces(10, 1), vec![p(1, 0, 1)]);
        assert_eq!(f.pieces(15, 100), vec![p(3, 0, 20)]);
        assert_eq!(f.pieces(34, 100), vec![p(3, 19, 1)]);
        assert!(f.pieces(35, 10).is_empty());
        assert!(f.pieces(1000, 10).is_empty());
        assert!(f.pieces(3, 0).is_empty());
        assert!(f.pieces(u64::MAX - 1, u64::MAX).is_empty());
        assert!(FileExtents::new(Vec::new()).pieces(0, 10).is_empty());
    }

    #[test]
    fn a_read_takes_the_bytes_of_each_blob_and_zeros_for_holes() {
        let f = FileExtents::new(vec![data(1, 4), Extent::Hole { len: 3 }, data(2, 4)]);
        let whole = f
            .read_with(0, 100, &mut |id, len| Ok(Arc::new(fake_blob(id, len))))
            .unwrap();
        let one = blob_id(1).to_hex().as_bytes()[0];
        let two = blob_id(2).to_hex().as_bytes()[0];
        assert_eq!(whole, [one, one, one, one, 0, 0, 0, two, two, two, two]);
        let mut loaded = Vec::new();
        let middle = f
            .read_with(5, 3, &mut |id, len| {
                loaded.push(*id);
                Ok(Arc::new(fake_blob(id, len)))
            })
            .unwrap();
        assert_eq!(middle, [0, 0, two]);
        assert_eq!(
            loaded,
            [blob_id(2)],
            "only the blobs under the range are read"
        );
    }

    #[test]
    fn a_blob_shorter_than_its_tree_says_is_an_error_not_a_panic() {
        let f = FileExtents::new(vec![data(1, 8)]);
        let err = f.read_with(2, 6, &mut |_, _| Ok(Arc::new(vec![0; 3])));
        assert!(err.is_err());
        assert!(check_len(&blob_id(1), &[0; 3], 8).is_err());
        assert!(check_len(&blob_id(1), &[0; 8], 8).is_ok());
    }

    #[test]
    fn the_cache_keeps_recent_blobs_within_its_budget() {
        let cache = BlobCache::new(10);
        let loads = std::cell::Cell::new(0);
        let get = |n: u8, len: usize| {
            cache
                .get_or_load(&blob_id(n), || {
                    loads.set(loads.get() + 1);
                    Ok(vec![n; len])
                })
                .unwrap()
        };
        get(1, 4);
        get(2, 4);
        get(1, 4); // a hit, and 1 becomes the most recent
        get(3, 4); // over budget: 2, the least recent, goes
        get(1, 4);
        get(3, 4);
        assert_eq!(loads.get(), 3);
        get(2, 4);
        assert_eq!(loads.get(), 4);
        get(4, 50); // larger than the budget alone: kept, everything else goes
        assert_eq!(cache.held(), 50);
        get(4, 50);
        assert_eq!(loads.get(), 5);
        let failed = cache.get_or_load(&blob_id(9), || Err(Error::internal("boom")));
        assert!(failed.is_err());
        assert_eq!(cache.held(), 50, "a failed load caches nothing");
    }
}
