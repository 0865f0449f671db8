//! The hash stage: a blob's id is BLAKE3 keyed with the repository's id key, so someone with
//! read access to the storage cannot confirm which known content it holds (repo-format.md §3).

use crate::crypto::MasterKeys;
use crate::id::{BlobId, BlobKind, Id};

impl MasterKeys {
    /// The id of a data blob: BLAKE3 keyed with the id key.
    pub fn data_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(Id(*blake3::keyed_hash(&self.id, plaintext).as_bytes()))
    }

    /// The id of a tree blob: BLAKE3 keyed with a key derived from the id key, so that a data
    /// chunk can never share an id with a tree of the same bytes.
    pub fn tree_id(&self, plaintext: &[u8]) -> BlobId {
        let key = blake3::derive_key("kairn tree id v1", &self.id);
        BlobId(Id(*blake3::keyed_hash(&key, plaintext).as_bytes()))
    }

    /// The id of a blob of `kind`.
    pub fn blob_id(&self, kind: BlobKind, plaintext: &[u8]) -> BlobId {
        match kind {
            BlobKind::Data => self.data_id(plaintext),
            BlobKind::Tree => self.tree_id(plaintext),
        }
    }
}
