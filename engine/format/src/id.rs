//! 32-byte identifiers and their typed wrappers, one per kind of stored object.
//!
//! In JSON an id is 64 lowercase hex digits; in the binary encodings (postcard) it is 32 raw bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A raw 32-byte identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// The id as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, as shown to humans.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Parses exactly 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|e| Error::invalid(format!("not a 64-digit hex id: {s:?}")).with_source(e))?;
        Ok(Self(out))
    }

    /// The unkeyed BLAKE3 hash of `data`: how packs, snapshots, index and key files are named.
    pub fn hash_of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_hex(s)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Id::from_hex(&s).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(Id)
        }
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Id);

        impl $name {
            /// The id as 64 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }
            /// The first 8 hex digits.
            pub fn short(&self) -> String {
                self.0.short()
            }
        }
        impl From<Id> for $name {
            fn from(id: Id) -> Self {
                Self(id)
            }
        }
        impl AsRef<Id> for $name {
            fn as_ref(&self) -> &Id {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.short())
            }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Id::from_hex(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// A blob: keyed BLAKE3 of its plaintext. Data chunks and trees are both blobs.
    BlobId
);
typed_id!(
    /// A pack file: BLAKE3 of its stored bytes.
    PackId
);
typed_id!(
    /// A snapshot file: BLAKE3 of its stored bytes.
    SnapshotId
);
typed_id!(
    /// An index file: BLAKE3 of its stored bytes.
    IndexId
);
typed_id!(
    /// A key file: BLAKE3 of its stored bytes.
    KeyId
);
typed_id!(
    /// A session heartbeat file: BLAKE3 of its stored bytes.
    HeartbeatId
);
typed_id!(
    /// A garbage list: BLAKE3 of its stored bytes.
    GarbageId
);
typed_id!(
    /// A record of a check, prune or verified restore: BLAKE3 of its stored bytes.
    RecordId
);
typed_id!(
    /// A writer's session: 32 random bytes.
    SessionId
);

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A chunk of file content.
    Data,
    /// An encoded tree (one directory).
    Tree,
}

impl BlobKind {
    /// The byte that stands for the kind in associated data and headers.
    pub fn byte(self) -> u8 {
        match self {
            Self::Data => 0,
            Self::Tree => 1,
        }
    }
}
