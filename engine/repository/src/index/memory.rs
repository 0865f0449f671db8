//! The in-memory part of the index: sorted 46-byte entries in 65,536 buckets by the id's first
//! two bytes (which the bucket implies, so an entry keeps the other 30), and a 256 KiB table of
//! bucket starts. Ids are keyed hashes, so buckets are evenly filled and a lookup is one table
//! read and a short binary search.

use kairn_format::id::{BlobId, Id};

use super::location::{BlobLocation, location};

const BUCKETS: usize = 1 << 16;

/// One blob as kept in memory: 46 bytes, byte-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(super) struct Entry {
    /// Bytes 2..32 of the id; bytes 0..2 are the bucket number.
    tail: [u8; 30],
    /// Pack position in the low 31 bits; the top bit set for tree blobs.
    pack_kind: [u8; 4],
    offset: [u8; 4],
    length: [u8; 4],
    raw_length: [u8; 4],
}

impl Entry {
    fn id(&self, bucket: usize) -> BlobId {
        let mut raw = [0u8; 32];
        raw[..2].copy_from_slice(&(bucket as u16).to_be_bytes());
        raw[2..].copy_from_slice(&self.tail);
        BlobId(Id(raw))
    }

    fn location(&self) -> BlobLocation {
        location(
            u32::from_le_bytes(self.pack_kind),
            u32::from_le_bytes(self.offset),
            u32::from_le_bytes(self.length),
            u32::from_le_bytes(self.raw_length),
        )
    }
}

fn bucket_of(id: &BlobId) -> usize {
    usize::from(u16::from_be_bytes([id.0.0[0], id.0.0[1]]))
}

/// An entry with its bucket, while the index is built: 48 bytes, byte-aligned, so that the
/// finished index reuses the same allocation for its 46-byte entries.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(super) struct Wide {
    bucket: [u8; 2],
    entry: Entry,
}

impl Wide {
    pub(super) fn new(id: &BlobId, pack_kind: u32, offset: u32, length: u32, raw: u32) -> Self {
        let mut tail = [0u8; 30];
        tail.copy_from_slice(&id.0.0[2..]);
        Self {
            bucket: [id.0.0[0], id.0.0[1]],
            entry: Entry {
                tail,
                pack_kind: pack_kind.to_le_bytes(),
                offset: offset.to_le_bytes(),
                length: length.to_le_bytes(),
                raw_length: raw.to_le_bytes(),
            },
        }
    }

    /// The 48 bytes as they are spilled to disk: the whole id, then the four numbers.
    pub(super) fn record(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[..2].copy_from_slice(&self.bucket);
        out[2..32].copy_from_slice(&self.entry.tail);
        out[32..36].copy_from_slice(&self.entry.pack_kind);
        out[36..40].copy_from_slice(&self.entry.offset);
        out[40..44].copy_from_slice(&self.entry.length);
        out[44..48].copy_from_slice(&self.entry.raw_length);
        out
    }

    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        (a.bucket, a.entry.tail).cmp(&(b.bucket, b.entry.tail))
    }
}

/// Sorted entries with their bucket table.
#[derive(Debug, Default)]
pub(super) struct Entries {
    /// `entries[starts[b]..starts[b + 1]]` is bucket `b`; empty for an empty index.
    starts: Vec<u32>,
    entries: Vec<Entry>,
}

impl Entries {
    /// Sorts and deduplicates: with `stable`, of a blob added twice the first stays; otherwise
    /// the sort is in place (no buffer as large as the entries) and any one stays.
    pub(super) fn sort(mut wide: Vec<Wide>, stable: bool) -> Self {
        use rayon::slice::ParallelSliceMut;
        if stable {
            wide.par_sort_by(Wide::order);
        } else {
            wide.par_sort_unstable_by(Wide::order);
        }
        wide.dedup_by(|later, earlier| {
            (later.bucket, later.entry.tail) == (earlier.bucket, earlier.entry.tail)
        });
        if wide.is_empty() {
            return Self::default(); // no bucket table either: a spilled index holds none
        }
        let mut starts = vec![0u32; BUCKETS + 1];
        for w in &wide {
            starts[usize::from(u16::from_be_bytes(w.bucket)) + 1] += 1;
        }
        for b in 0..BUCKETS {
            starts[b + 1] += starts[b];
        }
        // Collected in place (same alignment, smaller items), then shrunk: building never holds
        // a second copy of the entries.
        let mut entries: Vec<Entry> = wide.into_iter().map(|w| w.entry).collect();
        entries.shrink_to_fit();
        Self { starts, entries }
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

    pub(super) fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.position(id).map(|i| self.entries[i].location())
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
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

    pub(super) fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>() + self.starts.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::location::pack_kind;
    use kairn_format::id::BlobKind;

    #[test]
    fn an_entry_is_46_bytes_and_a_wide_one_48() {
        assert_eq!(std::mem::size_of::<Entry>(), 46);
        assert_eq!(std::mem::size_of::<Wide>(), 48);
    }

    #[test]
    fn a_record_keeps_the_whole_id_and_location() {
        let id = BlobId(Id(std::array::from_fn(|i| i as u8 * 7)));
        let w = Wide::new(&id, pack_kind(9, BlobKind::Tree), 1, 2, 3);
        let r = w.record();
        assert_eq!(&r[..32], &id.0.0);
        let loc = location(u32::from_le_bytes(r[32..36].try_into().unwrap()), 1, 2, 3);
        assert_eq!((loc.pack, loc.kind), (9, BlobKind::Tree));
    }
}
