//! etcd snapshots as repository snapshots of kind `etcd`.
//!
//! The stream from etcd's `Maintenance.Snapshot` is chunked like any file, so consecutive
//! snapshots of a slowly changing database share most of their chunks. It is checked as it
//! passes ([`verify`]): a stream that was cut, altered, or whose SHA-256 does not match is
//! refused before a snapshot is written. What was stored before the refusal is only packs, which
//! the next backup adopts or a prune removes (the write-ordering invariant, repo-format.md §10).
//! Restored, the file is what `etcdctl snapshot save` writes: `etcdctl snapshot restore` (or
//! `etcdutl`) accepts it.

pub mod client;
pub mod gateway;
pub mod verify;

use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::snapshot::{Source, SourceKind};
use kairn_ops::backup::{BackupOptions, BackupOutcome, backup_stream};
use kairn_ops::progress::Progress;
use kairn_repository::index::Index;
use kairn_repository::repo::Repository;
use kairn_repository::session::Session;

pub use client::{EtcdSource, EtcdTls};

/// The name the snapshot file gets in the repository: `/etcd-snapshot.db`.
pub const SNAPSHOT_FILE: &str = "etcd-snapshot.db";

/// What an etcd backup produced.
#[derive(Debug, Clone)]
pub struct EtcdBackup {
    /// The repository snapshot.
    pub outcome: BackupOutcome,
    /// The endpoint that served the snapshot.
    pub endpoint: String,
    /// SHA-256 of the database, hex, as etcd sent it and as checked.
    pub sha256: String,
    /// Size of the stored file: the database and its 32-byte hash.
    pub size: u64,
}

/// Streams a snapshot from etcd into the repository. `opts.paths` is ignored; `opts.source`
/// may name the cluster. A stream that fails its checks, or is not a snapshot stream at all, is
/// [`ErrorKind::SourceCorrupt`]; an etcd that cannot be reached, refuses, or breaks off is
/// [`ErrorKind::SourceUnavailable`]; both retryable (the next snapshot is a new one). Errors of
/// the repository keep their own kinds.
pub fn backup_etcd(
    repo: &Repository,
    session: &Session,
    index: &Index,
    source: &EtcdSource,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<EtcdBackup> {
    let open = client::open(source)?;
    let endpoint = open.endpoint;
    let mut reader = verify::VerifiedReader::new(open.stream);
    let opts = BackupOptions {
        paths: Vec::new(),
        source: Source {
            kind: SourceKind::Etcd,
            ..opts.source.clone()
        },
        ..opts.clone()
    };
    let result = backup_stream(
        repo,
        session,
        index,
        &mut reader,
        SNAPSHOT_FILE,
        &opts,
        progress,
    );
    match (result, reader.verdict()) {
        (Ok(outcome), Some(Ok(sha256))) => {
            let size = outcome.snapshot.summary.total_bytes;
            Ok(EtcdBackup {
                outcome,
                endpoint,
                sha256: sha256.clone(),
                size,
            })
        }
        (_, Some(Err(refusal))) => Err(Error::new(
            ErrorKind::SourceCorrupt,
            format!("refused the etcd snapshot from {endpoint}: {refusal}"),
        )
        .set_retryable(true)),
        (Err(e), _) if reader.stream_error() == Some(std::io::ErrorKind::InvalidData) => {
            Err(Error::new(
                ErrorKind::SourceCorrupt,
                format!("{endpoint} sent something that is not an etcd snapshot stream"),
            )
            .with_source(e)
            .set_retryable(true))
        }
        (Err(e), _) if reader.stream_error().is_some() => Err(Error::new(
            ErrorKind::SourceUnavailable,
            format!("the etcd snapshot stream from {endpoint} broke off"),
        )
        .with_source(e)
        .set_retryable(true)),
        (Err(e), _) => Err(e),
        (Ok(_), None) => Err(Error::internal(
            "the etcd snapshot was stored without being checked",
        )),
    }
}
