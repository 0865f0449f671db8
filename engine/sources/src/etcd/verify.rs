//! The checks an etcd snapshot stream must pass before it is recorded: no I/O, so it can be
//! unit-tested and fuzzed.
//!
//! etcd's `Maintenance.Snapshot` sends the bbolt database, then its SHA-256 (32 bytes). The
//! concatenation is exactly what `etcdctl snapshot save` writes and what `etcdctl snapshot
//! restore` checks: a bbolt file is a whole number of 512-byte units, so `len % 512 == 32`
//! says the hash is there, and it must equal SHA-256 of everything before it
//! (etcd `clientv3/snapshot/v3_snapshot.go`: `hasChecksum`, `saveDB`).

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// Length of the SHA-256 trailer.
pub const TRAILER_LEN: usize = 32;
/// bbolt's magic number, at offset 16 of its first (meta) page.
const BOLT_MAGIC: u32 = 0xED0C_DAED;
const BOLT_MAGIC_OFFSET: usize = 16;

/// Why a stream is not a good etcd snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The stream ended before a database and its hash could fit.
    TooShort(u64),
    /// The length says there is no 32-byte hash after the database.
    NoTrailer(u64),
    /// The first page is not a bbolt meta page.
    NotBolt,
    /// The hash after the database does not match the database.
    HashMismatch { expected: String, actual: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "the snapshot stream ended after {n} bytes"),
            Self::NoTrailer(n) => write!(
                f,
                "the snapshot is {n} bytes, which leaves no room for its SHA-256 (a bbolt database \
                 is a multiple of 512 bytes, then 32 bytes of hash): the stream was cut or altered"
            ),
            Self::NotBolt => write!(f, "the snapshot does not start with a bbolt meta page"),
            Self::HashMismatch { expected, actual } => write!(
                f,
                "the snapshot's SHA-256 does not match its content: etcd sent {expected}, the \
                 bytes hash to {actual}"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Checks a snapshot stream as it passes through, without holding it: every byte except the
/// last 32 goes into the hash, and the last 32 are compared with it at the end.
#[derive(Default)]
pub struct SnapshotCheck {
    hasher: Sha256,
    /// The latest bytes seen, at most `TRAILER_LEN`: the hash, once the stream ends.
    held: Vec<u8>,
    head: Vec<u8>,
    len: u64,
}

impl SnapshotCheck {
    /// A check for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.head.len() < BOLT_MAGIC_OFFSET + 4 {
            let want = BOLT_MAGIC_OFFSET + 4 - self.head.len();
            self.head.extend_from_slice(&bytes[..want.min(bytes.len())]);
        }
        if bytes.len() >= TRAILER_LEN {
            self.hasher.update(&self.held);
            let (body, tail) = bytes.split_at(bytes.len() - TRAILER_LEN);
            self.hasher.update(body);
            self.held.clear();
            self.held.extend_from_slice(tail);
        } else {
            self.held.extend_from_slice(bytes);
            let spill = self.held.len().saturating_sub(TRAILER_LEN);
            self.hasher.update(&self.held[..spill]);
            self.held.drain(..spill);
        }
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before any byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The verdict once the stream has ended: the database's SHA-256, hex, or why the stream
    /// is refused.
    pub fn finish(self) -> Result<String, Refusal> {
        let n = self.len;
        if n < (512 + TRAILER_LEN) as u64 {
            return Err(Refusal::TooShort(n));
        }
        if n % 512 != TRAILER_LEN as u64 {
            return Err(Refusal::NoTrailer(n));
        }
        let magic = u32::from_le_bytes(
            self.head[BOLT_MAGIC_OFFSET..BOLT_MAGIC_OFFSET + 4]
                .try_into()
                .unwrap_or_default(),
        );
        if magic != BOLT_MAGIC {
            return Err(Refusal::NotBolt);
        }
        let actual = hex::encode(self.hasher.finalize());
        let expected = hex::encode(&self.held);
        if actual != expected {
            return Err(Refusal::HashMismatch { expected, actual });
        }
        Ok(actual)
    }
}

/// A reader that checks what it passes on. At the end of the stream it fails with
/// `InvalidData` unless the check passes, so a backup reading from it never records a snapshot
/// of a stream that was cut or altered; [`VerifiedReader::verdict`] then says why.
pub struct VerifiedReader<R> {
    inner: R,
    check: Option<SnapshotCheck>,
    verdict: Option<Result<String, Refusal>>,
    failed: Option<io::ErrorKind>,
}

impl<R: Read> VerifiedReader<R> {
    /// Wraps a stream of snapshot bytes.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            check: Some(SnapshotCheck::new()),
            verdict: None,
            failed: None,
        }
    }

    /// The kind of the error the stream itself failed with, if it did (the connection broke,
    /// or what came was not a snapshot stream): what the reader was given, not the check.
    pub fn stream_error(&self) -> Option<io::ErrorKind> {
        self.failed
    }

    /// The result of the check, once the stream has been read to its end.
    pub fn verdict(&self) -> Option<&Result<String, Refusal>> {
        self.verdict.as_ref()
    }
}

impl<R: Read> Read for VerifiedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|e| self.failed = Some(e.kind()))?;
        if n > 0 {
            if let Some(check) = self.check.as_mut() {
                check.update(&buf[..n]);
            }
            return Ok(n);
        }
        if let Some(check) = self.check.take() {
            self.verdict = Some(check.finish());
        }
        match &self.verdict {
            Some(Err(refusal)) => Err(io::Error::new(io::ErrorKind::InvalidData, refusal.clone())),
            _ => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(db_len: usize) -> Vec<u8> {
        let mut db: Vec<u8> = (0..db_len).map(|i| (i * 7 % 251) as u8).collect();
        db[BOLT_MAGIC_OFFSET..BOLT_MAGIC_OFFSET + 4].copy_from_slice(&BOLT_MAGIC.to_le_bytes());
        let hash = Sha256::digest(&db);
        db.extend_from_slice(&hash);
        db
    }

    fn check_in_pieces(bytes: &[u8], piece: usize) -> Result<String, Refusal> {
        let mut check = SnapshotCheck::new();
        for part in bytes.chunks(piece) {
            check.update(part);
        }
        check.finish()
    }

    #[test]
    fn a_good_snapshot_passes_however_it_is_split() {
        let snap = snapshot(4096);
        let expected = hex::encode(Sha256::digest(&snap[..4096]));
        for piece in [1, 5, 31, 32, 33, 512, 4096, 10_000] {
            assert_eq!(
                check_in_pieces(&snap, piece),
                Ok(expected.clone()),
                "{piece}"
            );
        }
    }

    #[test]
    fn one_flipped_bit_anywhere_is_refused() {
        let snap = snapshot(2048);
        for at in [20, 1000, 2047, 2048, 2079] {
            let mut bad = snap.clone();
            bad[at] ^= 0x10;
            assert!(
                matches!(
                    check_in_pieces(&bad, 100),
                    Err(Refusal::HashMismatch { .. })
                ),
                "{at}"
            );
        }
    }

    #[test]
    fn a_cut_stream_is_refused() {
        let snap = snapshot(2048);
        assert_eq!(
            check_in_pieces(&snap[..2048], 64),
            Err(Refusal::NoTrailer(2048))
        );
        assert_eq!(
            check_in_pieces(&snap[..100], 64),
            Err(Refusal::TooShort(100))
        );
        assert_eq!(check_in_pieces(&[], 64), Err(Refusal::TooShort(0)));
    }

    #[test]
    fn a_stream_that_is_not_bolt_is_refused() {
        let mut db = vec![0u8; 1024];
        let hash = Sha256::digest(&db);
        db.extend_from_slice(&hash);
        assert_eq!(check_in_pieces(&db, 64), Err(Refusal::NotBolt));
    }

    #[test]
    fn the_reader_fails_at_the_end_of_a_bad_stream() {
        let mut bad = snapshot(1024);
        bad[500] ^= 1;
        let mut reader = VerifiedReader::new(&bad[..]);
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            reader.verdict(),
            Some(Err(Refusal::HashMismatch { .. }))
        ));

        let good = snapshot(1024);
        let mut reader = VerifiedReader::new(&good[..]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, good);
        assert!(matches!(reader.verdict(), Some(Ok(_))));
    }
}
