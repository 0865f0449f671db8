//! Blob compression: zstd, kept only when it shrinks the blob, and bounded on the way back.
//!
//! The stored plaintext of a blob is one marker byte and the payload: `0x00` raw, `0x01` zstd.

use crate::error::{Error, Result};

/// Marker: the payload is stored as is.
pub const RAW: u8 = 0;
/// Marker: the payload is a zstd frame.
pub const ZSTD: u8 = 1;

/// A zstd context and an output buffer, kept per thread: creating a context per blob showed
/// in profiles.
struct Zstd {
    level: i32,
    compressor: zstd::bulk::Compressor<'static>,
    buf: Vec<u8>,
}

thread_local! {
    static ZSTD_STATE: std::cell::RefCell<Option<Zstd>> = const { std::cell::RefCell::new(None) };
}

/// Compresses `data` at `level` and appends the result to `out`, if it is smaller than `data`.
fn compress_smaller(data: &[u8], level: i32, out: &mut Vec<u8>) -> bool {
    ZSTD_STATE.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return false;
        };
        if slot.as_ref().is_none_or(|z| z.level != level) {
            *slot = zstd::bulk::Compressor::new(level)
                .ok()
                .map(|compressor| Zstd {
                    level,
                    compressor,
                    buf: Vec::new(),
                });
        }
        let Some(z) = slot.as_mut() else { return false };
        // zstd writes from the start of a Vec and fails when the output would not fit: a buffer
        // of the input's size both bounds memory and rejects results that are not smaller.
        z.buf.clear();
        z.buf.reserve(data.len());
        match z.compressor.compress_to_buffer(data, &mut z.buf) {
            Ok(n) if n < data.len() => {
                out.extend_from_slice(&z.buf[..n]);
                true
            }
            _ => false,
        }
    })
}

thread_local! {
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses a frame into exactly `expected_len` bytes of room, with this thread's context:
/// creating a context per blob was the top entry of a restore's profile (10% of its cycles).
fn decompress(frame: &[u8], expected_len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut out = Vec::with_capacity(expected_len);
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return zstd::bulk::decompress(frame, expected_len);
        };
        let decompressor = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress_to_buffer(frame, &mut out)?;
        Ok(out)
    })
}

/// Appends `marker ‖ payload` for `data` to `out`, compressing at `level` when that is smaller.
pub fn encode_into(data: &[u8], level: i32, out: &mut Vec<u8>) {
    if level != 0 && !data.is_empty() {
        let start = out.len();
        out.push(ZSTD);
        if compress_smaller(data, level, out) {
            return;
        }
        out.truncate(start);
    }
    out.push(RAW);
    out.extend_from_slice(data);
}

/// Decodes `marker ‖ payload` without copying a raw payload; refuses output of any length but
/// `expected_len` (and so a zip bomb).
pub fn decode_borrowed(stored: &[u8], expected_len: usize) -> Result<std::borrow::Cow<'_, [u8]>> {
    match stored.split_first() {
        Some((&RAW, payload)) if payload.len() == expected_len => {
            Ok(std::borrow::Cow::Borrowed(payload))
        }
        _ => decode(stored, expected_len).map(std::borrow::Cow::Owned),
    }
}

/// No blob is larger: data chunks are at most 16 MiB, trees at most 256 MiB.
pub const MAX_BLOB_LEN: usize = 256 << 20;

/// Refuses a zstd frame whose header declares another size than `expected_len`, or any claim
/// beyond [`MAX_BLOB_LEN`], before memory is allocated for it.
fn check_frame_size(frame: &[u8], expected_len: usize) -> Result<()> {
    if expected_len > MAX_BLOB_LEN {
        return Err(Error::corrupt(format!(
            "blob claims {expected_len} bytes, more than any blob holds"
        )));
    }
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n == expected_len as u64 => Ok(()),
        Ok(Some(n)) => Err(Error::corrupt(format!(
            "zstd frame holds {n} bytes, index says {expected_len}"
        ))),
        // Frames written by Kairn always declare their size.
        Ok(None) | Err(_) => Err(Error::corrupt("zstd frame does not declare its size")),
    }
}

/// Decodes `marker ‖ payload`, refusing output larger than `expected_len` (a zip bomb).
pub fn decode(stored: &[u8], expected_len: usize) -> Result<Vec<u8>> {
    let (&marker, payload) = stored
        .split_first()
        .ok_or_else(|| Error::corrupt("empty blob payload"))?;
    let out = match marker {
        RAW => payload.to_vec(),
        ZSTD => {
            // The output buffer is allocated up front, so the claimed length must be checked
            // first: an index entry may claim up to 4 GiB for a blob of a few bytes (found by
            // the `blob` fuzz target).
            check_frame_size(payload, expected_len)?;
            decompress(payload, expected_len)
                .map_err(|e| Error::corrupt("zstd payload does not decompress").with_source(e))?
        }
        other => {
            return Err(Error::corrupt(format!(
                "unknown compression marker {other:#04x}"
            )));
        }
    };
    if out.len() != expected_len {
        return Err(Error::corrupt(format!(
            "blob decodes to {} bytes, index says {expected_len}",
            out.len()
        )));
    }
    Ok(out)
}

/// Decodes a payload of unknown size (sealed files), capped at `limit` bytes.
pub fn decode_unbounded(stored: &[u8], limit: usize) -> Result<Vec<u8>> {
    let (&marker, payload) = stored
        .split_first()
        .ok_or_else(|| Error::corrupt("empty payload"))?;
    match marker {
        RAW => Ok(payload.to_vec()),
        ZSTD => {
            let mut out = Vec::new();
            let decoder = zstd::stream::read::Decoder::new(payload)
                .map_err(|e| Error::corrupt("bad zstd payload").with_source(e))?;
            let mut limited = std::io::Read::take(decoder, limit as u64 + 1);
            std::io::Read::read_to_end(&mut limited, &mut out)
                .map_err(|e| Error::corrupt("zstd payload does not decompress").with_source(e))?;
            if out.len() > limit {
                return Err(Error::corrupt(format!(
                    "payload decompresses beyond the {limit}-byte limit"
                )));
            }
            Ok(out)
        }
        other => Err(Error::corrupt(format!(
            "unknown compression marker {other:#04x}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzz/artifacts/blob/oom-829ba840…): a 16-byte zstd payload with a claimed
    /// length of 4 GiB made the decoder allocate 4 GiB before it failed.
    #[test]
    fn a_huge_claimed_length_is_refused_before_allocating() {
        let mut stored = vec![ZSTD];
        stored.extend_from_slice(&zstd::bulk::compress(b"tiny", 3).unwrap());
        for claim in [u32::MAX as usize - 100, MAX_BLOB_LEN + 1, 5] {
            let err = decode(&stored, claim).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Corrupt, "{claim}");
        }
        assert_eq!(decode(&stored, 4).unwrap(), b"tiny");
    }

    #[test]
    fn compressible_data_is_compressed_and_round_trips() {
        let data = vec![b'a'; 100_000];
        let mut out = Vec::new();
        encode_into(&data, 3, &mut out);
        assert_eq!(out[0], ZSTD);
        assert!(out.len() < 1000);
        assert_eq!(decode(&out, data.len()).unwrap(), data);
        assert!(decode(&out, data.len() - 1).is_err());
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let mut out = Vec::new();
        encode_into(&data, 3, &mut out);
        assert_eq!(out[0], RAW);
        assert_eq!(&out[1..], &data[..]);
        assert_eq!(decode(&out, data.len()).unwrap(), data);
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        assert!(decode(&[], 0).is_err());
        assert!(decode(&[9, 1, 2], 2).is_err());
        assert!(decode(&[ZSTD, 1, 2, 3], 10).is_err());
        assert!(decode_unbounded(&[ZSTD, 0x28, 0xb5, 0x2f, 0xfd], 10).is_err());
    }
}
