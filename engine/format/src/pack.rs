//! Packs: many stored blobs of one kind, then a sealed header that lists them, then a trailer.
//!
//! ```text
//! blob_1 ‖ … ‖ blob_n ‖ sealed header (h bytes) ‖ h: u32 LE ‖ "KRNP" ‖ version u8
//! ```
//! The header plaintext is a postcard-encoded [`PackHeader`]; its associated data is
//! `"KRNP" ‖ version`. A pack's name is the BLAKE3 hash of all its bytes.

use serde::{Deserialize, Serialize};

use crate::crypto::MasterKeys;
use crate::error::{Error, Result};
use crate::id::BlobKind;
use crate::id::{BlobId, Id, PackId};
use crate::{FORMAT_VERSION, check_version};

/// Magic bytes at the end of every pack.
pub const PACK_MAGIC: &[u8; 4] = b"KRNP";
/// Length of the trailer: header length, magic and version.
pub const TRAILER_LEN: usize = 9;
/// The largest header a reader accepts (about 1.4 million entries).
pub const MAX_HEADER_LEN: u32 = 64 << 20;

/// One blob in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// The blob's kind.
    pub kind: BlobKind,
    /// The blob's id.
    pub id: BlobId,
    /// Offset of the stored blob from the start of the pack.
    pub offset: u32,
    /// Stored (sealed) length.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_length: u32,
}

/// The decrypted pack header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackHeader {
    /// The blobs, in the order they are stored.
    pub entries: Vec<PackEntry>,
}

fn header_aad() -> [u8; 5] {
    [
        PACK_MAGIC[0],
        PACK_MAGIC[1],
        PACK_MAGIC[2],
        PACK_MAGIC[3],
        FORMAT_VERSION,
    ]
}

/// Assembles a pack in memory, with no I/O.
#[derive(Debug, Default)]
pub struct PackBuilder {
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty builder with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
            entries: Vec::new(),
        }
    }

    /// Appends a stored blob produced by `write`, which appends to the buffer it is given.
    pub fn add_with(
        &mut self,
        kind: BlobKind,
        id: BlobId,
        raw_length: u32,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<()> {
        let offset = self.bytes.len();
        write(&mut self.bytes);
        let length = self.bytes.len() - offset;
        let (Ok(offset), Ok(length)) = (u32::try_from(offset), u32::try_from(length)) else {
            return Err(Error::internal("pack grew beyond 4 GiB"));
        };
        self.entries.push(PackEntry {
            kind,
            id,
            offset,
            length,
            raw_length,
        });
        Ok(())
    }

    /// Reserves room for `additional` more bytes.
    pub fn reserve(&mut self, additional: usize) {
        self.bytes.reserve_exact(additional);
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Blobs so far.
    pub fn blobs(&self) -> usize {
        self.entries.len()
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seals the header, appends it and the trailer, and names the pack.
    pub fn finish(mut self, keys: &MasterKeys) -> (PackId, Vec<u8>, Vec<PackEntry>) {
        let header = PackHeader {
            entries: self.entries,
        };
        let plain = postcard::to_stdvec(&header).unwrap_or_default();
        let start = self.bytes.len();
        keys.seal_into(&header_aad(), &plain, &mut self.bytes);
        let header_len = (self.bytes.len() - start) as u32;
        self.bytes.extend_from_slice(&header_len.to_le_bytes());
        self.bytes.extend_from_slice(PACK_MAGIC);
        self.bytes.push(FORMAT_VERSION);
        let id = PackId(Id::hash_of(&self.bytes));
        (id, self.bytes, header.entries)
    }
}

/// Parses a pack's trailer and returns the length of its sealed header.
pub fn parse_trailer(trailer: &[u8], pack_len: u64) -> Result<u32> {
    if trailer.len() != TRAILER_LEN || &trailer[4..8] != PACK_MAGIC {
        return Err(Error::corrupt("pack trailer is damaged (bad magic)"));
    }
    check_version(trailer[8], "pack")?;
    let header_len = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    if header_len > MAX_HEADER_LEN || u64::from(header_len) + TRAILER_LEN as u64 > pack_len {
        return Err(Error::corrupt(format!(
            "pack header length {header_len} does not fit the pack"
        )));
    }
    Ok(header_len)
}

/// Decrypts and checks a pack header: every entry must lie inside the blob area, in order,
/// without overlap.
pub fn open_header(keys: &MasterKeys, sealed: &[u8], blob_area_len: u64) -> Result<PackHeader> {
    let plain = keys.open(&header_aad(), sealed)?;
    let header: PackHeader = crate::decode_exact(&plain, "pack header")?;
    let mut end = 0u64;
    for e in &header.entries {
        let start = u64::from(e.offset);
        if start < end || start + u64::from(e.length) > blob_area_len {
            return Err(Error::corrupt(
                "pack header lists a blob outside the pack or overlapping another",
            ));
        }
        end = start + u64::from(e.length);
    }
    Ok(header)
}

/// Splits a whole pack into its header (checked) given all its bytes.
pub fn read_header_from_bytes(keys: &MasterKeys, pack: &[u8]) -> Result<PackHeader> {
    let len = pack.len() as u64;
    if pack.len() < TRAILER_LEN {
        return Err(Error::corrupt("pack is shorter than its trailer"));
    }
    let header_len = parse_trailer(&pack[pack.len() - TRAILER_LEN..], len)? as usize;
    let header_start = pack.len() - TRAILER_LEN - header_len;
    open_header(
        keys,
        &pack[header_start..pack.len() - TRAILER_LEN],
        header_start as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{open_blob, seal_blob};

    #[test]
    fn build_and_read_back() {
        let keys = MasterKeys::generate();
        let mut b = PackBuilder::default();
        let mut scratch = Vec::new();
        let blobs: Vec<Vec<u8>> = vec![b"one".to_vec(), vec![7u8; 5000], Vec::new()];
        for data in &blobs {
            let id = keys.data_id(data);
            b.add_with(BlobKind::Data, id, data.len() as u32, |out| {
                seal_blob(&keys, BlobKind::Data, &id, data, 3, &mut scratch, out);
            })
            .unwrap();
        }
        let (id, bytes, entries) = b.finish(&keys);
        assert_eq!(id.0, Id::hash_of(&bytes));
        let header = read_header_from_bytes(&keys, &bytes).unwrap();
        assert_eq!(header.entries, entries);
        for (e, data) in entries.iter().zip(&blobs) {
            let stored = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(
                &open_blob(&keys, e.kind, &e.id, stored, e.raw_length as usize).unwrap(),
                data
            );
            assert!(
                open_blob(&keys, BlobKind::Tree, &e.id, stored, e.raw_length as usize).is_err()
            );
        }
        for cut in [0, 5, bytes.len() - 1] {
            assert!(read_header_from_bytes(&keys, &bytes[..cut]).is_err());
        }
    }
}
