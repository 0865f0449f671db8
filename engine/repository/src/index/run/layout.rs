//! The byte layout of an index run's pages (repo-format.md §11.1): 4 KiB pages of sorted
//! 48-byte records, in four 1 KiB blocks that each carry their own tag. The header is in
//! [`super::header`]. Pure: no I/O.

use kairn_format::id::{BlobId, Id};

/// Bytes of one record: the 32-byte id, then pack-and-kind, offset, length and raw length
/// (little-endian u32 each).
pub const RECORD: usize = 48;
/// Bytes of a page on disk.
pub const PAGE: usize = 4096;
/// Bytes of the header's MAC.
pub const MAC: usize = 32;
/// Bytes of a block: the unit a tag covers, so a lookup verifies 1 KiB, not the page.
pub const BLOCK: usize = 1024;
/// Bytes of a block's tag (a truncated keyed BLAKE3).
pub const TAG: usize = 16;
/// Records in a full block: what fits before the tag.
pub const PER_BLOCK: usize = (BLOCK - TAG) / RECORD;
/// Records in a full page.
pub const PER_PAGE: usize = PER_BLOCK * (PAGE / BLOCK);
/// Filters, one per value of the id's first byte.
pub const PARTITIONS: usize = 256;
/// The header's first bytes.
pub const MAGIC: &[u8; 8] = b"KAIRNRUN";
/// The trailer's last bytes.
pub const END: &[u8; 8] = b"KAIRNEND";
/// The layout's version.
pub const VERSION: u32 = 1;
/// Bytes of the trailer: header length (u64), header MAC, end magic.
pub const TRAILER: usize = 8 + MAC + 8;

/// The first `N` bytes of a slice at least that long.
pub fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
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

/// The tag of block `block` of page `page` of the run `nonce`, over its records: a block
/// verifies only in its own place in its own run.
pub fn block_tag(
    key: &[u8; 32],
    nonce: &[u8; 16],
    page: u64,
    block: usize,
    records: &[u8],
) -> [u8; TAG] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(b"block");
    h.update(nonce);
    h.update(&page.to_le_bytes());
    h.update(&[block as u8]);
    h.update(records);
    array(h.finalize().as_bytes())
}

/// Records held by page `number` of a run of `blobs` records.
pub fn records_in_page(blobs: u64, number: u64) -> usize {
    (blobs - number * PER_PAGE as u64).min(PER_PAGE as u64) as usize
}

/// Records held by block `block` of a page of `records` records.
pub fn records_in_block(records: usize, block: usize) -> usize {
    records.saturating_sub(block * PER_BLOCK).min(PER_BLOCK)
}
