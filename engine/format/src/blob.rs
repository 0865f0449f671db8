//! Blobs: the unit of deduplication. A stored blob is the sealed box of
//! `compression marker ‖ payload`, with associated data `kind byte ‖ blob id`.

use crate::compress;
use crate::crypto::MasterKeys;
use crate::error::{Error, Result};
use crate::id::{BlobId, BlobKind};

/// The associated data of a blob: `kind ‖ id`.
pub fn blob_aad(kind: BlobKind, id: &BlobId) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = kind.byte();
    aad[1..].copy_from_slice(&id.0.0);
    aad
}

/// Compresses (when it helps) and seals a blob, appending the stored bytes to `out`.
/// `scratch` is reused between calls to avoid an allocation per blob.
pub fn seal_blob(
    keys: &MasterKeys,
    kind: BlobKind,
    id: &BlobId,
    plaintext: &[u8],
    level: i32,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    scratch.clear();
    compress::encode_into(plaintext, level, scratch);
    keys.seal_into(&blob_aad(kind, id), scratch, out);
}

/// Like [`open_blob`], decrypting in place in `stored`: a raw blob is returned as a slice of
/// it, with no copy; a compressed one is decompressed into a new buffer.
pub fn open_blob_in_place<'b>(
    keys: &MasterKeys,
    kind: BlobKind,
    id: &BlobId,
    stored: &'b mut [u8],
    raw_len: usize,
) -> Result<std::borrow::Cow<'b, [u8]>> {
    let plain = keys
        .open_in_place(&blob_aad(kind, id), stored)
        .map_err(|e| e.with_context("blob", id.short()))?;
    let data = compress::decode_borrowed(plain, raw_len)
        .map_err(|e| e.with_context("blob", id.short()))?;
    if keys.blob_id(kind, &data) != *id {
        return Err(
            Error::corrupt("blob content does not match its id").with_context("blob", id.short())
        );
    }
    Ok(data)
}

/// Opens a stored blob, decompresses it and checks that its keyed hash is `id`.
pub fn open_blob(
    keys: &MasterKeys,
    kind: BlobKind,
    id: &BlobId,
    stored: &[u8],
    raw_len: usize,
) -> Result<Vec<u8>> {
    let plain = keys
        .open(&blob_aad(kind, id), stored)
        .map_err(|e| e.with_context("blob", id.short()))?;
    let data = compress::decode(&plain, raw_len).map_err(|e| e.with_context("blob", id.short()))?;
    if keys.blob_id(kind, &data) != *id {
        return Err(
            Error::corrupt("blob content does not match its id").with_context("blob", id.short())
        );
    }
    Ok(data)
}
