//! The envelope of the config, snapshot and index files.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "KRNF"
//! 4       1     format version (1)
//! 5       1     file type: 1 config, 2 snapshot, 3 index, ... (repo-format.md §6)
//! 6       24    nonce
//! 30      n     ciphertext of (compression marker ‖ payload)
//! 30+n    16    Poly1305 tag
//! ```
//! The associated data is bytes 0..6, so a file cannot be passed off as another type or version.

use crate::compress;
use crate::crypto::{MasterKeys, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::{FORMAT_VERSION, check_version};

/// Magic bytes of a sealed file.
pub const MAGIC: &[u8; 4] = b"KRNF";
/// Length of the clear header (magic, version, type).
pub const HEADER_LEN: usize = 6;
/// The largest payload a sealed file may decompress to (a bound against hostile input).
pub const MAX_PAYLOAD: usize = 1 << 30;

/// The type byte of a sealed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SealedType {
    /// The repository config.
    Config = 1,
    /// A snapshot.
    Snapshot = 2,
    /// An index file.
    Index = 3,
    /// A session heartbeat.
    Session = 4,
    /// A session fence.
    Fence = 5,
    /// A prune's garbage list.
    Garbage = 6,
    /// A record of a check, prune or verified restore.
    Record = 7,
}

fn header(ty: SealedType) -> [u8; HEADER_LEN] {
    [
        MAGIC[0],
        MAGIC[1],
        MAGIC[2],
        MAGIC[3],
        FORMAT_VERSION,
        ty as u8,
    ]
}

/// Seals `payload` (compressed at `level` when that helps) as a file of type `ty`.
pub fn seal(keys: &MasterKeys, ty: SealedType, payload: &[u8], level: i32) -> Vec<u8> {
    let mut plain = Vec::with_capacity(payload.len() / 2 + 16);
    compress::encode_into(payload, level, &mut plain);
    let head = header(ty);
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&head);
    keys.seal_into(&head, &plain, &mut out);
    out
}

/// Reads the clear header only: checks the magic, version and type.
pub fn check_header(bytes: &[u8], ty: SealedType) -> Result<()> {
    if bytes.len() < HEADER_LEN + SEAL_OVERHEAD || &bytes[..4] != MAGIC {
        return Err(Error::corrupt(format!(
            "not a kairn {ty:?} file (bad magic or truncated)"
        )));
    }
    check_version(bytes[4], &format!("{ty:?} file"))?;
    if bytes[5] != ty as u8 {
        return Err(Error::corrupt(format!(
            "file type byte {} where {ty:?} was expected",
            bytes[5]
        )));
    }
    Ok(())
}

/// Opens a sealed file of type `ty` and returns its payload.
pub fn open(keys: &MasterKeys, ty: SealedType, bytes: &[u8]) -> Result<Vec<u8>> {
    check_header(bytes, ty)?;
    let plain = keys.open(&bytes[..HEADER_LEN], &bytes[HEADER_LEN..])?;
    compress::decode_unbounded(&plain, MAX_PAYLOAD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn round_trip_and_type_confusion() {
        let keys = MasterKeys::generate();
        let f = seal(&keys, SealedType::Snapshot, b"{\"a\":1}", 3);
        assert_eq!(open(&keys, SealedType::Snapshot, &f).unwrap(), b"{\"a\":1}");
        assert_eq!(
            open(&keys, SealedType::Index, &f).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        let mut newer = f.clone();
        newer[4] = FORMAT_VERSION + 1;
        assert_eq!(
            open(&keys, SealedType::Snapshot, &newer)
                .unwrap_err()
                .kind(),
            ErrorKind::UnsupportedVersion
        );
        let mut retyped = f.clone();
        retyped[5] = SealedType::Index as u8;
        assert_eq!(
            open(&keys, SealedType::Index, &retyped).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        assert!(open(&keys, SealedType::Snapshot, &f[..f.len() - 3]).is_err());
    }
}
