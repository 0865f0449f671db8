//! The one way a blob comes out of a pack: read a span of the pack (or all of it), find the
//! blob inside it (bounds checked against what was read), then open it: authenticate and
//! decrypt, decompress, and check that its keyed hash is its id (`format::blob`).
//! Restore, check, prune, copy and every tree read go through here.

use std::borrow::Cow;
use std::ops::Range;

use kairn_format::FileKind;
use kairn_format::blob::{open_blob, open_blob_in_place};
use kairn_format::crypto::MasterKeys;
use kairn_format::error::{Error, Result};
use kairn_format::id::PackId;
use kairn_format::pack::{PackHeader, TRAILER_LEN, open_header, parse_trailer};

use crate::files::verify_name;
use crate::repo::Repository;

/// Bytes read from one pack, from `start` on: a span of neighbouring blobs, or the whole pack.
pub struct PackSpan {
    pack: PackId,
    start: u64,
    bytes: Vec<u8>,
}

impl PackSpan {
    /// `length` bytes of `pack` from offset `start`.
    pub fn read(repo: &Repository, pack: PackId, start: u64, length: u64) -> Result<Self> {
        let bytes = repo
            .backend()
            .read_range(FileKind::Pack, &pack.to_hex(), start, length)?;
        Ok(Self { pack, start, bytes })
    }

    /// The whole pack, checked against its name.
    pub fn read_whole(repo: &Repository, pack: PackId) -> Result<Self> {
        let name = pack.to_hex();
        let bytes = repo.backend().read(FileKind::Pack, &name)?;
        verify_name(FileKind::Pack, &name, &bytes)?;
        Ok(Self {
            pack,
            start: 0,
            bytes,
        })
    }

    /// The pack.
    pub fn pack(&self) -> PackId {
        self.pack
    }

    /// The bytes read.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Opens the blob `entry` names, decrypting in place: a blob stored raw comes back as a
    /// slice of the span, with no copy. A span opens each of its blobs once.
    pub fn open(&mut self, keys: &MasterKeys, entry: &BlobAt) -> Result<Cow<'_, [u8]>> {
        let range = locate(self.pack, self.start, self.bytes.len(), entry)?;
        let pack = self.pack;
        open_blob_in_place(
            keys,
            entry.kind,
            &entry.id,
            &mut self.bytes[range],
            entry.raw_length as usize,
        )
        .map_err(|e| e.with_context("pack", pack.short()))
    }
}

/// Where a blob is stored in its pack, and what it must open to.
pub type BlobAt = kairn_format::pack::PackEntry;

/// Opens a blob in bytes shared with other readers (a cached whole pack), copying.
pub fn open_shared(
    keys: &MasterKeys,
    pack: PackId,
    whole: &[u8],
    entry: &BlobAt,
) -> Result<Vec<u8>> {
    let range = locate(pack, 0, whole.len(), entry)?;
    open_blob(
        keys,
        entry.kind,
        &entry.id,
        &whole[range],
        entry.raw_length as usize,
    )
    .map_err(|e| e.with_context("pack", pack.short()))
}

/// The blob's place in bytes read from `start`, or a corrupt-data error when the pack is
/// shorter than the index or header says.
fn locate(pack: PackId, start: u64, len: usize, entry: &BlobAt) -> Result<Range<usize>> {
    let begin = u64::from(entry.offset)
        .checked_sub(start)
        .and_then(|at| usize::try_from(at).ok());
    let range = begin.and_then(|b| Some(b..b.checked_add(entry.length as usize)?));
    match range {
        Some(r) if r.end <= len => Ok(r),
        _ => Err(Error::corrupt(format!(
            "pack {} is shorter than its index says",
            pack.short()
        ))),
    }
}

/// Reads and opens a pack's header from storage: the trailer, then the sealed header.
pub fn read_pack_header(repo: &Repository, pack: &PackId, size: u64) -> Result<PackHeader> {
    let name = pack.to_hex();
    let trailer_len = TRAILER_LEN as u64;
    if size < trailer_len {
        return Err(Error::corrupt(format!(
            "pack {} is shorter than its trailer",
            pack.short()
        )));
    }
    let trailer =
        repo.backend()
            .read_range(FileKind::Pack, &name, size - trailer_len, trailer_len)?;
    let header_len = u64::from(parse_trailer(&trailer, size)?);
    let start = size - trailer_len - header_len;
    let sealed = repo
        .backend()
        .read_range(FileKind::Pack, &name, start, header_len)?;
    open_header(repo.keys(), &sealed, start).map_err(|e| e.with_context("pack", pack.short()))
}
