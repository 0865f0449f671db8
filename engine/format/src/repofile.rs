//! One trait ties each stored file type to where it lives and how it is sealed, as rustic_core's
//! `repofile.rs` does: the repository layer stores and loads any [`RepoFile`] the same way, and
//! a new file type is one `impl` here, next to its byte layout.

use crate::FileKind;
use crate::codec::{to_json, to_postcard};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::garbage::GarbageList;
use crate::id::{GarbageId, HeartbeatId, Id, IndexId, RecordId, SnapshotId};
use crate::index::IndexFile;
use crate::record::Record;
use crate::sealed::SealedType;
use crate::session::{Fence, Heartbeat};
use crate::snapshot::Snapshot;

/// A stored file type: its place in the repository, its sealed-file type byte, and its payload
/// encoding (repo-format.md §sealed files).
pub trait RepoFile: Sized {
    /// Where it is stored.
    const KIND: FileKind;
    /// Its sealed-file type byte.
    const SEALED: SealedType;
    /// The payload bytes; an encoding failure is an error, never an empty payload.
    fn to_payload(&self) -> Result<Vec<u8>>;
    /// Parses payload bytes.
    fn from_payload(bytes: &[u8]) -> Result<Self>;
}

/// A stored file named by the hash of its sealed bytes (all but the config and fences).
pub trait ContentFile: RepoFile {
    /// Its typed id.
    type Id: From<Id> + AsRef<Id> + Copy;
}

impl RepoFile for Config {
    const KIND: FileKind = FileKind::Config;
    const SEALED: SealedType = SealedType::Config;
    fn to_payload(&self) -> Result<Vec<u8>> {
        self.encode()
    }
    fn from_payload(bytes: &[u8]) -> Result<Self> {
        Self::decode(bytes)
    }
}

impl RepoFile for Snapshot {
    const KIND: FileKind = FileKind::Snapshot;
    const SEALED: SealedType = SealedType::Snapshot;
    fn to_payload(&self) -> Result<Vec<u8>> {
        self.encode()
    }
    fn from_payload(bytes: &[u8]) -> Result<Self> {
        Self::decode(bytes)
    }
}

impl ContentFile for Snapshot {
    type Id = SnapshotId;
}

impl RepoFile for IndexFile {
    const KIND: FileKind = FileKind::Index;
    const SEALED: SealedType = SealedType::Index;
    fn to_payload(&self) -> Result<Vec<u8>> {
        self.encode()
    }
    fn from_payload(bytes: &[u8]) -> Result<Self> {
        Self::decode(bytes)
    }
}

impl ContentFile for IndexFile {
    type Id = IndexId;
}

impl RepoFile for Heartbeat {
    const KIND: FileKind = FileKind::Session;
    const SEALED: SealedType = SealedType::Session;
    fn to_payload(&self) -> Result<Vec<u8>> {
        to_json(self, "session heartbeat")
    }
    fn from_payload(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt("session heartbeat does not decode").with_source(e))
    }
}

impl ContentFile for Heartbeat {
    type Id = HeartbeatId;
}

impl RepoFile for Fence {
    const KIND: FileKind = FileKind::Fence;
    const SEALED: SealedType = SealedType::Fence;
    fn to_payload(&self) -> Result<Vec<u8>> {
        to_json(self, "session fence")
    }
    fn from_payload(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt("session fence does not decode").with_source(e))
    }
}

impl RepoFile for GarbageList {
    const KIND: FileKind = FileKind::Garbage;
    const SEALED: SealedType = SealedType::Garbage;
    fn to_payload(&self) -> Result<Vec<u8>> {
        to_postcard(self, "garbage list")
    }
    fn from_payload(bytes: &[u8]) -> Result<Self> {
        crate::decode_exact(bytes, "garbage list")
    }
}

impl ContentFile for GarbageList {
    type Id = GarbageId;
}

impl RepoFile for Record {
    const KIND: FileKind = FileKind::Record;
    const SEALED: SealedType = SealedType::Record;
    fn to_payload(&self) -> Result<Vec<u8>> {
        self.encode()
    }
    fn from_payload(bytes: &[u8]) -> Result<Self> {
        Self::decode(bytes)
    }
}

impl ContentFile for Record {
    type Id = RecordId;
}
