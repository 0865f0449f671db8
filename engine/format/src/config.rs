//! The repository config: format version, repository id, chunker, compression and pack size.
//! Stored as a sealed file of type 1 holding JSON.

use serde::{Deserialize, Serialize};

use crate::FORMAT_VERSION;
use crate::chunker::ChunkerParams;
use crate::error::{Error, Result};
use crate::id::Id;

/// The smallest and largest pack size a config may set (offsets in packs are 32-bit).
pub const PACK_SIZE_RANGE: std::ops::RangeInclusive<u32> = (1 << 20)..=(512 << 20);

/// The decrypted `config` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Repository format version; equal to the sealed header's version byte.
    pub version: u8,
    /// Random id that names this repository.
    pub id: Id,
    /// Chunker algorithm name, `fastcdc-2020-keyed-gear`.
    pub chunker: String,
    /// Chunk size bounds.
    pub chunk_sizes: ChunkerParams,
    /// zstd level for blobs and metadata; 0 stores everything raw.
    pub compression_level: i32,
    /// Target size of a pack, in bytes.
    pub pack_size: u32,
    /// The store keeps every object under a retention lock (S3 Object Lock default retention)
    /// for this long after it is written; maintenance never deletes content before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
}

/// The retention the store applies to every new object, declared at `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    /// `compliance` or `governance`: for people; Kairn treats both the same.
    pub mode: LockMode,
    /// Days from an object's write until its lock ends.
    pub days: u32,
}

/// S3 Object Lock retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// No one can delete a locked object version, not even the account root.
    Compliance,
    /// Holders of `s3:BypassGovernanceRetention` can.
    Governance,
}

impl ObjectLock {
    /// Milliseconds from an object's write until it may be deleted: the retention, plus an
    /// hour so that the store's clock and the retain-until date never race.
    pub fn hold_ms(&self) -> i64 {
        i64::from(self.days) * 86_400_000 + 3_600_000
    }
}

/// The one chunker algorithm of format version 1.
pub const CHUNKER_FASTCDC: &str = "fastcdc-2020-keyed-gear";

impl Config {
    /// A new config with a random id.
    pub fn new(chunk_sizes: ChunkerParams, compression_level: i32, pack_size: u32) -> Result<Self> {
        let cfg = Self {
            version: FORMAT_VERSION,
            id: Id(crate::crypto::random_bytes()),
            chunker: CHUNKER_FASTCDC.to_string(),
            chunk_sizes,
            compression_level,
            pack_size,
            object_lock: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field against what this build supports.
    pub fn validate(&self) -> Result<()> {
        crate::check_version(self.version, "repository config")?;
        if self.chunker != CHUNKER_FASTCDC {
            return Err(Error::corrupt(format!(
                "unknown chunker {:?}",
                self.chunker
            )));
        }
        self.chunk_sizes.validate()?;
        if !(0..=22).contains(&self.compression_level) {
            return Err(Error::invalid(format!(
                "zstd level {} is outside 0..=22",
                self.compression_level
            )));
        }
        if !PACK_SIZE_RANGE.contains(&self.pack_size) {
            return Err(Error::invalid(format!(
                "pack size {} is outside 1 MiB..512 MiB",
                self.pack_size
            )));
        }
        if self
            .object_lock
            .is_some_and(|l| l.days == 0 || l.days > 36_500)
        {
            return Err(Error::invalid("object lock days must be 1..=36500"));
        }
        Ok(())
    }

    /// JSON bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        crate::codec::to_json(self, "config")
    }

    /// Parses and validates JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let cfg: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt("config is not valid").with_source(e))?;
        cfg.validate()?;
        Ok(cfg)
    }
}
