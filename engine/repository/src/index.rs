//! The in-memory index: where every blob lives. Loaded from all index files at the start of an
//! operation; a blob is only ever looked up here after its pack was written.
//!
//! Memory: one 46-byte [`Entry`] per blob, in 65,536 buckets by the id's first two bytes (which
//! the bucket implies, so an entry keeps the other 30), each bucket sorted; a 256 KiB table of
//! bucket starts; and one `(PackId, u64)` per pack. About 46 bytes per blob at 10 million blobs.
//! Ids are keyed hashes, so buckets are evenly filled and a lookup is one table read and a short
//! binary search.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::repo::Repository;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::BlobKind;
use kairn_format::id::{BlobId, IndexId, PackId};
use kairn_format::index::IndexFile;

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

/// One blob as kept in memory: 46 bytes, byte-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Entry {
    /// Bytes 2..32 of the id; bytes 0..2 are the bucket number.
    tail: [u8; 30],
    /// Pack position in the low 31 bits; the top bit set for tree blobs.
    pack_kind: [u8; 4],
    offset: [u8; 4],
    length: [u8; 4],
    raw_length: [u8; 4],
}

const TREE_BIT: u32 = 1 << 31;
const BUCKETS: usize = 1 << 16;

impl Entry {
    fn new(id: &BlobId, pack_kind: u32, offset: u32, length: u32, raw_length: u32) -> Self {
        let mut tail = [0u8; 30];
        tail.copy_from_slice(&id.0.0[2..]);
        Self {
            tail,
            pack_kind: pack_kind.to_le_bytes(),
            offset: offset.to_le_bytes(),
            length: length.to_le_bytes(),
            raw_length: raw_length.to_le_bytes(),
        }
    }

    fn id(&self, bucket: usize) -> BlobId {
        let mut raw = [0u8; 32];
        raw[..2].copy_from_slice(&(bucket as u16).to_be_bytes());
        raw[2..].copy_from_slice(&self.tail);
        BlobId(kairn_format::id::Id(raw))
    }

    fn location(&self) -> BlobLocation {
        let pack_kind = u32::from_le_bytes(self.pack_kind);
        BlobLocation {
            pack: pack_kind & !TREE_BIT,
            kind: if pack_kind & TREE_BIT != 0 {
                BlobKind::Tree
            } else {
                BlobKind::Data
            },
            offset: u32::from_le_bytes(self.offset),
            length: u32::from_le_bytes(self.length),
            raw_length: u32::from_le_bytes(self.raw_length),
        }
    }
}

fn bucket_of(id: &BlobId) -> usize {
    usize::from(u16::from_be_bytes([id.0.0[0], id.0.0[1]]))
}

/// An entry with its bucket, while the index is built: 48 bytes, byte-aligned, so that the
/// finished index reuses the same allocation for its 46-byte entries.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Wide {
    bucket: [u8; 2],
    entry: Entry,
}

impl Wide {
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        (a.bucket, a.entry.tail).cmp(&(b.bucket, b.entry.tail))
    }
}

/// Collects index entries, then sorts them once into an [`Index`].
#[derive(Debug, Default)]
pub struct IndexBuilder {
    packs: Vec<(PackId, u64)>,
    pack_pos: HashMap<PackId, u32>,
    entries: Vec<Wide>,
    files: Vec<IndexId>,
}

impl IndexBuilder {
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
            self.entries.reserve(pack.blobs.len());
            for b in &pack.blobs {
                let kind_bit = if b.kind == BlobKind::Tree {
                    TREE_BIT
                } else {
                    0
                };
                self.entries.push(Wide {
                    bucket: [b.id.0.0[0], b.id.0.0[1]],
                    entry: Entry::new(&b.id, pos | kind_bit, b.offset, b.length, b.raw_length),
                });
            }
        }
    }

    /// Records that an index file was read.
    pub fn add_file_id(&mut self, id: IndexId) {
        self.files.push(id);
    }

    /// Sorts by id; a blob stored in several packs keeps its first location.
    pub fn finish(mut self) -> Index {
        // Stable sort: of duplicates, the first added stays first and is kept.
        self.entries.par_sort_by(Wide::order);
        self.sorted()
    }

    /// Sorts by id in place, without the stable sort's buffer (as large as the entries); of a
    /// blob stored in several packs, any one location is kept. For files added in no
    /// particular order anyway.
    fn finish_any_duplicate(mut self) -> Index {
        self.entries.par_sort_unstable_by(Wide::order);
        self.sorted()
    }

    fn sorted(mut self) -> Index {
        self.entries.dedup_by(|later, earlier| {
            (later.bucket, later.entry.tail) == (earlier.bucket, earlier.entry.tail)
        });
        let mut starts = vec![0u32; BUCKETS + 1];
        for wide in &self.entries {
            starts[usize::from(u16::from_be_bytes(wide.bucket)) + 1] += 1;
        }
        for b in 0..BUCKETS {
            starts[b + 1] += starts[b];
        }
        // Collected in place (same alignment, smaller items), then shrunk: building never holds
        // a second copy of the entries.
        let mut entries: Vec<Entry> = self.entries.into_iter().map(|w| w.entry).collect();
        entries.shrink_to_fit();
        self.files.sort_unstable();
        Index {
            packs: self.packs,
            starts,
            entries,
            files: self.files,
        }
    }
}

/// All blobs of the repository, by id.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<(PackId, u64)>,
    /// `entries[starts[b]..starts[b + 1]]` is bucket `b`; empty for an empty index.
    starts: Vec<u32>,
    entries: Vec<Entry>,
    files: Vec<IndexId>,
}

impl Index {
    /// Loads every index file of the repository (in parallel), verifying each, and uses
    /// those no other file supersedes. Each file is added as soon as it is decoded and then
    /// dropped, so loading holds the entries being built and a few files, not every file.
    pub fn load(repo: &Repository) -> Result<Self> {
        // A file listed and then gone was deleted by a maintenance run, which stores its
        // replacement first: listing again finds that one.
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            match load_streaming(repo) {
                Err(e) if e.kind() == ErrorKind::NotFound && attempt < ATTEMPTS => continue,
                other => return other,
            }
        }
        Err(Error::internal("index load attempts exhausted"))
    }

    /// Builds an index from index files already in memory.
    pub fn from_files<'a>(files: impl IntoIterator<Item = &'a IndexFile>) -> Self {
        let mut builder = IndexBuilder::default();
        for f in files {
            builder.add_file(f);
        }
        builder.finish()
    }

    fn position(&self, id: &BlobId) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let b = bucket_of(id);
        let (lo, hi) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        let bucket = &self.entries[lo..hi];
        let key = &id.0.0[2..];
        // Ids are uniform, so the next two bytes predict the position within the bucket closely:
        // search a small window around the guess first (one or two cache lines), then the rest.
        let guess = (usize::from(u16::from_be_bytes([key[0], key[1]])) * bucket.len()) >> 16;
        let (wlo, whi) = (guess.saturating_sub(8), (guess + 8).min(bucket.len()));
        let window = &bucket[wlo..whi];
        let found = match window.binary_search_by(|e| e.tail[..].cmp(key)) {
            Ok(i) => Some(wlo + i),
            Err(i) if (i > 0 || wlo == 0) && (i < window.len() || whi == bucket.len()) => None,
            Err(_) => bucket.binary_search_by(|e| e.tail[..].cmp(key)).ok(),
        };
        found.map(|i| lo + i)
    }

    /// Where a blob is.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.position(id).map(|i| self.entries[i].location())
    }

    /// True when the blob is stored.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.position(id).is_some()
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
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every blob and where it is, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        (0..BUCKETS).flat_map(move |b| {
            let range = if self.entries.is_empty() {
                0..0
            } else {
                self.starts[b] as usize..self.starts[b + 1] as usize
            };
            self.entries[range]
                .iter()
                .map(move |e| (e.id(b), e.location()))
        })
    }

    /// The index files this index was loaded from.
    pub fn files(&self) -> &[IndexId] {
        &self.files
    }

    /// Bytes of memory held for blob entries and the bucket table (for the benchmarks'
    /// bytes-per-blob figure).
    pub fn entry_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>() + self.starts.capacity() * 4
    }
}

/// The index files of a repository, as [`load_live_files`] found them.
pub struct IndexFiles {
    /// The files in use (superseded by no other), verified.
    pub live: Vec<(IndexId, IndexFile)>,
    /// Every index file stored, superseded ones too.
    pub all: Vec<IndexId>,
}

/// Every index file, verified, split into those in use and the ids of all files read: a file
/// another one supersedes is left out of the first (repo-format.md §11), because it may still
/// name packs that a prune deleted while the file itself was kept by a retention lock.
pub fn load_live_files(repo: &Repository) -> Result<IndexFiles> {
    // A file listed and then gone was deleted by a maintenance run, which stores its
    // replacement first: listing again finds that one.
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        match load_listed(repo) {
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < ATTEMPTS => continue,
            other => return other,
        }
    }
    Err(Error::internal("index load attempts exhausted"))
}

fn load_listed(repo: &Repository) -> Result<IndexFiles> {
    let ids = repo.list_ids::<IndexFile>()?;
    let loaded: Vec<(IndexId, Result<IndexFile>)> = ids
        .par_iter()
        .map(|id| (*id, repo.load_file::<IndexFile>(id)))
        .collect();
    let superseded: std::collections::HashSet<IndexId> = loaded
        .iter()
        .filter_map(|(_, f)| f.as_ref().ok())
        .flat_map(|f| f.supersedes.iter().copied())
        .collect();
    let mut live = Vec::with_capacity(loaded.len());
    for (id, file) in loaded {
        if superseded.contains(&id) {
            continue; // even a damaged one: nothing reads it
        }
        live.push((id, file?));
    }
    Ok(IndexFiles { live, all: ids })
}

/// One pass of [`Index::load`]. Files that others supersede exist only briefly (a maintenance
/// run stores the replacement, then deletes them); when one is met, the index is built again
/// from the live files alone.
fn load_streaming(repo: &Repository) -> Result<Index> {
    let ids = repo.list_ids::<IndexFile>()?;
    let builder = std::sync::Mutex::new(IndexBuilder::default());
    let superseded = std::sync::Mutex::new(std::collections::HashSet::new());
    let failed: Vec<(IndexId, Error)> = ids
        .par_iter()
        .filter_map(|id| match repo.load_file::<IndexFile>(id) {
            Ok(file) => {
                lock(&superseded).extend(file.supersedes.iter().copied());
                let mut builder = lock(&builder);
                builder.add_file(&file);
                builder.add_file_id(*id);
                None
            }
            Err(e) => Some((*id, e)),
        })
        .collect();
    let superseded = superseded
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // A damaged file that another supersedes does not matter: nothing reads it.
    if let Some((_, e)) = failed.into_iter().find(|(id, _)| !superseded.contains(id)) {
        return Err(e);
    }
    if ids.iter().any(|id| superseded.contains(id)) {
        let mut builder = IndexBuilder::default();
        for (id, file) in load_live_files(repo)?.live {
            builder.add_file(&file);
            builder.add_file_id(id);
        }
        return Ok(builder.finish());
    }
    let builder = builder
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(builder.finish_any_duplicate())
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairn_format::id::Id;
    use kairn_format::index::IndexPack;
    use kairn_format::pack::PackEntry;

    #[test]
    fn an_entry_is_46_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 46);
    }

    #[test]
    fn finds_every_blob_and_nothing_else() {
        let keys = kairn_format::crypto::MasterKeys::generate();
        let mut packs = Vec::new();
        for p in 0..50u32 {
            let blobs = (0..200u32)
                .map(|i| PackEntry {
                    kind: if i % 7 == 0 {
                        BlobKind::Tree
                    } else {
                        BlobKind::Data
                    },
                    id: keys.data_id(&(p * 1000 + i).to_le_bytes()),
                    offset: i * 10,
                    length: 10,
                    raw_length: i,
                })
                .collect();
            packs.push(IndexPack {
                id: PackId(Id([p as u8; 32])),
                size: 2000,
                blobs,
            });
        }
        let file = IndexFile {
            supersedes: vec![],
            packs,
        };
        let index = Index::from_files([&file]);
        assert_eq!(index.len(), 10_000);
        for pack in &file.packs {
            for b in &pack.blobs {
                let loc = index.get(&b.id).unwrap();
                assert_eq!(index.pack(loc.pack).0, pack.id);
                assert_eq!(
                    (loc.kind, loc.offset, loc.raw_length),
                    (b.kind, b.offset, b.raw_length)
                );
            }
        }
        for i in 0..10_000u32 {
            assert!(!index.contains(&keys.data_id(&(i + 1_000_000).to_be_bytes())));
        }
        assert!(!index.contains(&BlobId(Id([0; 32]))));
        assert!(!index.contains(&BlobId(Id([0xff; 32]))));
        assert!(Index::default().get(&BlobId(Id([1; 32]))).is_none());
        let mut listed: Vec<BlobId> = index.iter().map(|(id, _)| id).collect();
        let mut expected: Vec<BlobId> = file
            .packs
            .iter()
            .flat_map(|p| p.blobs.iter().map(|b| b.id))
            .collect();
        expected.sort();
        assert_eq!(listed.len(), expected.len());
        listed.sort();
        assert_eq!(listed, expected);
    }
}
