//! Where a blob is, as the index answers, and how the index stores it.

use std::path::PathBuf;

use kairn_format::id::BlobKind;

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Position of the pack in [`Index::packs`].
    pub pack: u32,
    /// Kind of the blob.
    pub kind: BlobKind,
    /// Offset in the pack.
    pub offset: u32,
    /// Stored length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

/// Where and when a builder spills its entries to a run.
#[derive(Debug, Clone)]
pub struct SpillTo {
    /// The directory the run is written to.
    pub dir: PathBuf,
    /// The key of the run's MACs.
    pub key: [u8; 32],
    /// Entries held in memory before spilling.
    pub at: usize,
    /// Keep the run for later operations (a cache directory); otherwise it is unlinked once
    /// open and gone when the index is dropped.
    pub keep: bool,
}

/// The top bit of a stored pack position: set for tree blobs.
pub(crate) const TREE_BIT: u32 = 1 << 31;

/// A pack position with the kind folded into its top bit.
pub(crate) fn pack_kind(pack: u32, kind: BlobKind) -> u32 {
    if kind == BlobKind::Tree {
        pack | TREE_BIT
    } else {
        pack
    }
}

/// The location a stored position, offset and lengths describe.
pub(crate) fn location(pack_kind: u32, offset: u32, length: u32, raw_length: u32) -> BlobLocation {
    BlobLocation {
        pack: pack_kind & !TREE_BIT,
        kind: if pack_kind & TREE_BIT != 0 {
            BlobKind::Tree
        } else {
            BlobKind::Data
        },
        offset,
        length,
        raw_length,
    }
}
