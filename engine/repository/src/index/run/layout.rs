//! The byte layout of an index run (repo-format.md §11.1): pages of sorted 48-byte records,
//! each page with its own MAC, then a header section (packs, index files, page fences,
//! filters) with one MAC, then a fixed trailer. Pure: no I/O, so it is unit-tested and fuzzed.

use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::{BlobId, Id, IndexId, PackId};
use xorf::{BinaryFuse8, Filter};

/// Bytes of one record: the 32-byte id, then pack-and-kind, offset, length and raw length
/// (little-endian u32 each).
pub const RECORD: usize = 48;
/// Bytes of a page on disk.
pub const PAGE: usize = 4096;
/// Bytes of a MAC.
pub const MAC: usize = 32;
/// Records in a full page: what fits before the MAC.
pub const PER_PAGE: usize = (PAGE - MAC) / RECORD;
/// Filters, one per value of the id's first byte.
pub const PARTITIONS: usize = 256;
const MAGIC: &[u8; 8] = b"KAIRNRUN";
const END: &[u8; 8] = b"KAIRNEND";
const VERSION: u32 = 1;
/// Bytes of the trailer: header length (u64), header MAC, end magic.
pub const TRAILER: usize = 8 + MAC + 8;

/// The first `N` bytes of a slice at least that long.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// The id of a record.
pub fn record_id(r: &[u8]) -> BlobId {
    BlobId(Id(array(r)))
}

/// The four numbers of a record: pack-and-kind, offset, length, raw length.
pub fn record_numbers(r: &[u8]) -> [u32; 4] {
    std::array::from_fn(|i| u32::from_le_bytes(array(&r[32 + 4 * i..])))
}

/// What a partition's filter is keyed on: id bytes 8..16 (bytes 0..8 order the records, byte
/// 0 picks the partition, so these are independent of both).
pub fn filter_key(id: &BlobId) -> u64 {
    u64::from_le_bytes(array(&id.0.0[8..]))
}

/// What page fences hold: the first 8 bytes of a page's first id, as a big-endian number, so
/// numbers order like ids.
pub fn fence_of(id: &BlobId) -> u64 {
    u64::from_be_bytes(array(&id.0.0))
}

/// The MAC of page `number` of the run `nonce`, over its records.
pub fn page_mac(key: &[u8; 32], nonce: &[u8; 16], number: u64, records: &[u8]) -> [u8; MAC] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(b"page");
    h.update(nonce);
    h.update(&number.to_le_bytes());
    h.update(records);
    *h.finalize().as_bytes()
}

/// Records held by page `number` of a run of `blobs` records.
pub fn records_in_page(blobs: u64, number: u64) -> usize {
    (blobs - number * PER_PAGE as u64).min(PER_PAGE as u64) as usize
}

/// Everything of a run but its pages; held in memory while the run is open.
pub struct Header {
    /// Random per run: a page of one run does not verify in another.
    pub nonce: [u8; 16],
    /// Records in the pages.
    pub blobs: u64,
    /// Every pack a record may name, by position.
    pub packs: Vec<(PackId, u64)>,
    /// The index files the run was built from.
    pub files: Vec<IndexId>,
    /// The first id prefix ([`fence_of`]) of every page.
    pub fences: Vec<u64>,
    /// One filter per partition; `None` for an empty partition.
    pub filters: Vec<Option<BinaryFuse8>>,
}

fn damaged(what: &str) -> Error {
    Error::new(ErrorKind::Corrupt, format!("index run: {what}"))
}

impl Header {
    /// The header section, followed by the trailer that authenticates it.
    pub fn encode(&self, key: &[u8; 32]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.nonce);
        for n in [self.blobs, self.packs.len() as u64, self.files.len() as u64] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for (id, size) in &self.packs {
            out.extend_from_slice(&id.0.0);
            out.extend_from_slice(&size.to_le_bytes());
        }
        for id in &self.files {
            out.extend_from_slice(&id.0.0);
        }
        for fence in &self.fences {
            out.extend_from_slice(&fence.to_le_bytes());
        }
        for filter in &self.filters {
            encode_filter(filter.as_ref(), &mut out);
        }
        let mac = header_mac(key, &out);
        let len = out.len() as u64;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&mac);
        out.extend_from_slice(END);
        out
    }

    /// The header length a trailer states, once its magic is checked.
    pub fn length_in(trailer: &[u8]) -> Result<u64> {
        if trailer.len() != TRAILER || &trailer[TRAILER - 8..] != END {
            return Err(damaged("no trailer (an unfinished or foreign file)"));
        }
        Ok(u64::from_le_bytes(array(trailer)))
    }

    /// Verifies and decodes a header section against its trailer.
    pub fn decode(key: &[u8; 32], section: &[u8], trailer: &[u8]) -> Result<Self> {
        let expected: [u8; MAC] = array(&trailer[8..]);
        if header_mac(key, section) != expected {
            return Err(damaged("header does not verify (another key, or damage)"));
        }
        let mut r = Reader { bytes: section };
        if r.take(8)? != MAGIC || r.u32()? != VERSION {
            return Err(damaged("unknown magic or version"));
        }
        let nonce = array(r.take(16)?);
        let (blobs, packs, files) = (r.u64()?, r.u64()?, r.u64()?);
        let pages = blobs.div_ceil(PER_PAGE as u64);
        let packs = (0..packs)
            .map(|_| Ok((PackId(r.id()?), r.u64()?)))
            .collect::<Result<_>>()?;
        let files = (0..files)
            .map(|_| Ok(IndexId(r.id()?)))
            .collect::<Result<_>>()?;
        let fences = (0..pages).map(|_| r.u64()).collect::<Result<_>>()?;
        let filters = (0..PARTITIONS)
            .map(|_| decode_filter(&mut r))
            .collect::<Result<_>>()?;
        if !r.bytes.is_empty() {
            return Err(damaged("trailing bytes in the header"));
        }
        Ok(Self {
            nonce,
            blobs,
            packs,
            files,
            fences,
            filters,
        })
    }

    /// True when the partition of `id` may hold it.
    pub fn may_hold(&self, id: &BlobId) -> bool {
        self.filters[usize::from(id.0.0[0])]
            .as_ref()
            .is_some_and(|f| f.contains(&filter_key(id)))
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        let filters: usize = self.filters.iter().flatten().map(|f| f.len()).sum();
        self.packs.capacity() * 40
            + self.files.capacity() * 32
            + self.fences.capacity() * 8
            + filters
    }
}

fn header_mac(key: &[u8; 32], section: &[u8]) -> [u8; MAC] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(b"header");
    h.update(section);
    *h.finalize().as_bytes()
}

fn encode_filter(filter: Option<&BinaryFuse8>, out: &mut Vec<u8>) {
    let Some(f) = filter else {
        out.extend_from_slice(&u64::MAX.to_le_bytes());
        return;
    };
    out.extend_from_slice(&(f.fingerprints.len() as u64).to_le_bytes());
    out.extend_from_slice(&f.descriptor.seed.to_le_bytes());
    for n in [
        f.descriptor.segment_length,
        f.descriptor.segment_length_mask,
        f.descriptor.segment_count_length,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&f.fingerprints);
}

fn decode_filter(r: &mut Reader) -> Result<Option<BinaryFuse8>> {
    let len = r.u64()?;
    if len == u64::MAX {
        return Ok(None);
    }
    let seed = r.u64()?;
    let (segment_length, segment_length_mask, segment_count_length) =
        (r.u32()?, r.u32()?, r.u32()?);
    // The header verified, so these are what the builder wrote; check the shape anyway, since
    // the filter indexes its fingerprints with them.
    let fits = segment_length.is_power_of_two()
        && segment_length_mask == segment_length - 1
        && u64::from(segment_count_length) + 2 * u64::from(segment_length) <= len
        && len <= u64::from(u32::MAX);
    if !fits {
        return Err(damaged("a filter's shape does not match its length"));
    }
    let fingerprints = r.take(usize::try_from(len).map_err(|_| damaged("filter length"))?)?;
    Ok(Some(BinaryFuse8 {
        descriptor: xorf::Descriptor {
            seed,
            segment_length,
            segment_length_mask,
            segment_count_length,
        },
        fingerprints: fingerprints.into(),
    }))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(damaged("header cut short"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(array(self.take(4)?)))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(array(self.take(8)?)))
    }

    fn id(&mut self) -> Result<Id> {
        Ok(Id(array(self.take(32)?)))
    }
}
