//! The bottom layer: the on-disk format, bytes to types and back, with no I/O. The file types
//! mirror the sections of `repo-format.md`; the pipeline's byte stages live here too: [`chunker`]
//! (content-defined chunks), [`crypto`] (keyed ids and sealed boxes), [`compress`].

pub mod blob;
pub mod chunker;
pub mod codec;
pub mod compress;
pub mod config;
pub mod crypto;
pub mod error;
pub mod garbage;
pub mod hash;
pub mod id;
pub mod index;
pub mod keyfile;
pub mod pack;
pub mod record;
pub mod repofile;
pub mod sealed;
pub mod session;
pub mod snapshot;
pub mod sync;
pub mod tree;
pub mod units;

pub use error::{Error, ErrorKind, Result};

/// The repository format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u8 = 1;

/// The kinds of file a repository holds, and where each lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// The single `config` file.
    Config,
    /// Password-wrapped copies of the master keys, `keys/<id>`.
    Key,
    /// Snapshots, `snapshots/<id>`.
    Snapshot,
    /// Index files, `index/<id>`.
    Index,
    /// Packs of blobs, `data/<first two hex digits>/<id>`.
    Pack,
    /// Heartbeats of running writers, `sessions/<id>` (§14.1).
    Session,
    /// Commit-or-expire fences of sessions, `fences/<session id>` (§14.1).
    Fence,
    /// A prune's pending deletions, `garbage/<id>` (§14.1).
    Garbage,
    /// What a check, prune or verified restore did, `records/<id>` (§13.1).
    Record,
}

impl FileKind {
    /// Every kind, in the order `init` creates their directories.
    pub const ALL: [FileKind; 9] = [
        Self::Config,
        Self::Key,
        Self::Snapshot,
        Self::Index,
        Self::Pack,
        Self::Session,
        Self::Fence,
        Self::Garbage,
        Self::Record,
    ];

    /// The directory of this kind, relative to the repository root (`""` for the config).
    pub fn dir(self) -> &'static str {
        match self {
            Self::Config => "",
            Self::Key => "keys",
            Self::Snapshot => "snapshots",
            Self::Index => "index",
            Self::Pack => "data",
            Self::Session => "sessions",
            Self::Fence => "fences",
            Self::Garbage => "garbage",
            Self::Record => "records",
        }
    }

    /// The path of object `name` of this kind, relative to the repository root.
    pub fn path(self, name: &str) -> String {
        match self {
            Self::Config => "config".to_string(),
            Self::Pack => format!("data/{}/{}", name.get(..2).unwrap_or("__"), name),
            other => format!("{}/{}", other.dir(), name),
        }
    }

    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Key => "key",
            Self::Snapshot => "snapshot",
            Self::Index => "index",
            Self::Pack => "pack",
            Self::Session => "session heartbeat",
            Self::Fence => "session fence",
            Self::Garbage => "garbage list",
            Self::Record => "record",
        }
    }
}

/// Decodes postcard bytes that must be consumed entirely (trailing bytes are corruption).
pub fn decode_exact<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> crate::Result<T> {
    let (value, rest) = postcard::take_from_bytes(bytes)
        .map_err(|e| crate::Error::corrupt(format!("{what} does not decode")).with_source(e))?;
    if !rest.is_empty() {
        return Err(crate::Error::corrupt(format!(
            "{what} has {} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

/// Refuses a version byte newer than [`FORMAT_VERSION`], and the unused version 0.
pub fn check_version(found: u8, what: &str) -> crate::Result<()> {
    if found == 0 || found > FORMAT_VERSION {
        return Err(crate::Error::new(
            crate::ErrorKind::UnsupportedVersion,
            format!(
                "{what} has format version {found}; this kairn reads version {FORMAT_VERSION}: upgrade kairn"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_paths_fan_out_by_prefix() {
        assert_eq!(FileKind::Pack.path("abcdef"), "data/ab/abcdef");
        assert_eq!(FileKind::Snapshot.path("abcdef"), "snapshots/abcdef");
        assert_eq!(FileKind::Config.path("ignored"), "config");
    }
}
