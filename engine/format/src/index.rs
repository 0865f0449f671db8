//! Index files: which blobs each pack holds, so that nothing needs to read pack headers to find a
//! blob. The payload of a sealed index file (type 3) is a postcard-encoded [`IndexFile`].

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::{IndexId, PackId};
use crate::pack::PackEntry;

/// One pack and its blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    /// The pack's id.
    pub id: PackId,
    /// Total size of the pack file in bytes.
    pub size: u64,
    /// The pack's blobs, as in its header.
    pub blobs: Vec<PackEntry>,
}

/// The payload of an index file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Index files this one replaces (written by a later maintenance operation).
    pub supersedes: Vec<IndexId>,
    /// Packs described by this file.
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    /// Postcard bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        crate::codec::to_postcard(self, "index file")
    }

    /// Decodes postcard bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        crate::decode_exact(bytes, "index file")
    }

    /// Number of blobs listed.
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }
}
