//! Blob compression: zstd, kept only when it shrinks the blob, and bounded on the way back.
//!
//! The stored plaintext of a blob is one marker byte and the payload: `0x00` raw, `0x01` zstd.

use crate::error::{Error, Result};

/// Marker: the payload is stored as is.
pub const RAW: u8 = 0;
/// Marker: the payload is a zstd frame.
pub const ZSTD: u8 = 1;

/// Appends `marker ‖ payload` for `data` to `out`, compressing at `level` when that is smaller.
pub fn encode_into(data: &[u8], level: i32, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(ZSTD);
    let bound = zstd::zstd_safe::compress_bound(data.len());
    out.reserve(bound);
    let mut compressed = false;
    if level != 0 && !data.is_empty() {
        let spare = out.len();
        out.resize(spare + bound, 0);
        match zstd::bulk::compress_to_buffer(data, &mut out[spare..], level) {
            Ok(n) if n < data.len() => {
                out.truncate(spare + n);
                compressed = true;
            }
            _ => out.truncate(spare),
        }
    }
    if !compressed {
        out[start] = RAW;
        out.extend_from_slice(data);
    }
}

/// Decodes `marker ‖ payload`, refusing output larger than `expected_len` (a zip bomb).
pub fn decode(stored: &[u8], expected_len: usize) -> Result<Vec<u8>> {
    let (&marker, payload) = stored
        .split_first()
        .ok_or_else(|| Error::corrupt("empty blob payload"))?;
    let out = match marker {
        RAW => payload.to_vec(),
        ZSTD => zstd::bulk::decompress(payload, expected_len)
            .map_err(|e| Error::corrupt("zstd payload does not decompress").with_source(e))?,
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
