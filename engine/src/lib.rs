//! Kairn's backup engine: a content-addressed, deduplicating, encrypted repository of file trees.
//!
//! Layers, bottom to top (a lower layer never uses a higher one):
//! 1. bytes to types, no I/O: [`format`], [`crypto`], [`chunker`], [`compress`], [`id`];
//! 2. storage: [`backend`], a small trait with its contract written on it;
//! 3. the repository: [`repo`], [`index`], [`packer`], [`blobs`];
//! 4. operations: [`backup`], [`restore`], [`copy`], [`snapshots`], [`ops`], and the cluster
//!    sources that feed a backup: [`etcd`], [`manifests`].
//!
//! The engine never prints; it reports through [`progress::Progress`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use engine::{backend::OpendalBackend, repo::{InitOptions, Repository}, index::Index};
//! # fn main() -> engine::Result<()> {
//! let backend = Arc::new(OpendalBackend::local(std::path::Path::new("/tmp/repo"))?);
//! let repo = Repository::init(backend, b"secret", &InitOptions::default())?;
//! let index = Index::load(&repo)?;
//! let opts = engine::backup::BackupOptions { paths: vec!["/etc".into()], ..Default::default() };
//! let outcome = engine::backup::backup(&repo, &index, &opts, &engine::progress::NoProgress)?;
//! println!("snapshot {}", outcome.id);
//! # Ok(()) }
//! ```

pub mod backend;
pub mod backup;
pub mod blobs;
pub mod cache;
pub mod check;
pub mod chunker;
pub mod compress;
pub mod copy;
pub mod crypto;
pub mod error;
pub mod etcd;
pub mod forget;
pub mod format;
pub mod id;
pub mod index;
pub mod locate;
pub mod manifests;
pub mod ops;
pub mod pack_cache;
pub mod packer;
pub mod progress;
pub mod prune;
pub mod reachable;
pub mod repair;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod session;
pub mod snapshots;
pub mod sysinfo;
pub mod units;
pub mod uploader;

pub use error::{Error, ErrorKind, Result};
