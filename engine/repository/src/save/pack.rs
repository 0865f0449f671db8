//! Packing: sealed blobs collect in one open pack per blob kind (trees apart from data, so a
//! walk of trees reads small packs) until a pack reaches the target size or
//! [`MAX_BLOBS_PER_PACK`] blobs (repo-format.md §9).

use std::sync::Mutex;

use kairn_format::config::Config;
use kairn_format::error::Result;
use kairn_format::id::{BlobId, BlobKind};
use kairn_format::pack::PackBuilder;
use kairn_format::sync::lock;

/// Blobs in a pack at most: a header's entries (about 48 bytes each, in memory while the pack
/// is written or its header read) stay under 1 MiB however small the files.
pub const MAX_BLOBS_PER_PACK: usize = 16_384;

/// The open packs of one operation.
pub struct OpenPacks {
    data: Mutex<PackBuilder>,
    tree: Mutex<PackBuilder>,
    target: usize,
    capacity: usize,
}

impl OpenPacks {
    /// Packs of the repository's target size.
    pub fn new(config: &Config) -> Self {
        let target = config.pack_size as usize;
        Self {
            data: Mutex::default(),
            tree: Mutex::default(),
            target,
            // The target, plus the largest blob that can cross it, plus the header.
            capacity: target + config.chunk_sizes.max_size as usize + (1 << 20),
        }
    }

    /// Adds a sealed blob; returns the pack it filled, to be written.
    pub fn add(
        &self,
        kind: BlobKind,
        id: BlobId,
        raw_len: u32,
        sealed: &[u8],
    ) -> Result<Option<PackBuilder>> {
        let mut builder = lock(self.builder(kind));
        if builder.is_empty() {
            // Reserved, not touched: only what is written becomes resident.
            builder.reserve(self.capacity);
        }
        builder.add_with(kind, id, raw_len, |out| out.extend_from_slice(sealed))?;
        let full = builder.len() >= self.target || builder.blobs() >= MAX_BLOBS_PER_PACK;
        Ok(full.then(|| std::mem::take(&mut *builder)))
    }

    /// Takes the open pack of `kind`, however full.
    pub fn take(&self, kind: BlobKind) -> PackBuilder {
        std::mem::take(&mut *lock(self.builder(kind)))
    }

    fn builder(&self, kind: BlobKind) -> &Mutex<PackBuilder> {
        match kind {
            BlobKind::Data => &self.data,
            BlobKind::Tree => &self.tree,
        }
    }
}
