//! Kairn's backup engine: a content-addressed, deduplicating, encrypted repository of file trees.
//!
//! This crate only re-exports the layer crates beside it, so that the binaries see one library.
//! Each layer is a crate, and Cargo enforces their direction (a lower one cannot name a higher
//! one). `engine/README.md` draws the pipeline and the layers with their real paths.
//!
//! | layer | crate | modules |
//! |---|---|---|
//! | bytes ↔ types, no I/O | `engine/format` | [`format`], [`chunker`], [`crypto`], [`compress`], [`id`], [`error`], [`units`] |
//! | storage | `engine/storage` | [`backend`] (the trait and its contract), [`cache`] |
//! | repository | `engine/repository` | [`repo`], [`session`], [`index`], [`save`], [`read`], [`records`], [`snapshots`], [`locate`], [`sysinfo`] |
//! | operations | `engine/ops` | [`backup`], [`restore`], [`copy`], [`inspect`], [`check`], [`forget`], [`retention`], [`prune`], [`repair`], [`progress`] |
//! | sources | `engine/sources` | [`etcd`], [`manifests`], [`images`] |
//!
//! The engine never prints; it reports through [`progress::Progress`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use engine::{backend::OpendalBackend, repo::{InitOptions, Repository}, index::Index};
//! # fn main() -> engine::Result<()> {
//! let backend = Arc::new(OpendalBackend::local(std::path::Path::new("/tmp/repo"))?);
//! let repo = Repository::init(backend, b"secret", &InitOptions::default())?;
//! let session = repo.begin_session("backup", engine::session::DEFAULT_EXPIRY)?;
//! let index = Index::load(&repo)?;
//! let opts = engine::backup::BackupOptions { paths: vec!["/etc".into()], ..Default::default() };
//! let outcome =
//!     engine::backup::backup(&repo, &session, &index, &opts, &engine::progress::NoProgress)?;
//! session.end()?;
//! println!("snapshot {}", outcome.id);
//! # Ok(()) }
//! ```
//!
//! Publishing without a writer session does not compile: the fence that protects a backup
//! from a concurrent prune cannot be skipped. Neither a backup without one
//!
//! ```compile_fail,E0061
//! # use engine::{index::Index, repo::Repository};
//! # fn f(repo: &Repository, index: &Index) -> engine::Result<()> {
//! let opts = engine::backup::BackupOptions::default();
//! engine::backup::backup(repo, index, &opts, &engine::progress::NoProgress)?;
//! # Ok(()) }
//! ```
//!
//! nor a snapshot stored around one (the sealed-file store writes only for the session):
//!
//! ```compile_fail,E0624
//! # use engine::{format::snapshot::Snapshot, repo::Repository};
//! # fn f(repo: &Repository, snapshot: &Snapshot) -> engine::Result<()> {
//! repo.files().save(snapshot)?;
//! # Ok(()) }
//! ```

pub mod allocator;
pub use kairn_format::{Error, ErrorKind, Result};
pub use kairn_format::{chunker, compress, crypto, error, id, units};

/// The on-disk format: each stored file type, bytes to types and back.
pub mod format {
    pub use kairn_format::{
        FORMAT_VERSION, FileKind, blob, check_version, config, decode_exact, garbage, index,
        keyfile, pack, record, repofile, sealed, session, snapshot, tree,
    };
}

pub use kairn_storage as backend;
pub use kairn_storage::cache;

pub use kairn_repository::{
    garbage, index, locate, read, records, repo, save, session, snapshots, sysinfo,
};

pub use kairn_ops::maintenance::{
    check, forget, prune, reachable, repair, retention, rewrite, tag,
};
pub use kairn_ops::{backup, copy, inspect, progress, restore};

pub use kairn_sources::{etcd, images, manifests};
