//! Append-only is a property of the open repository, not of a command: whoever calls the
//! engine (the node agent's retention calls `forget` directly) cannot delete with an
//! append-only key, while backups through it keep working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use engine::backend::{Backend, OpendalBackend};
use engine::backup::{BackupOptions, backup};
use engine::crypto::KdfParams;
use engine::forget::{ForgetOptions, forget};
use engine::format::FileKind;
use engine::index::Index;
use engine::progress::NoProgress;
use engine::prune::{PruneOptions, prune};
use engine::repo::{InitOptions, Repository};
use engine::session::DEFAULT_EXPIRY;
use engine::{ErrorKind, id::SnapshotId};

const FAST: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn backed_up(backend: Arc<dyn Backend>, dir: &std::path::Path) -> SnapshotId {
    let opts = InitOptions {
        kdf: FAST,
        ..Default::default()
    };
    let repo = Repository::init(backend, b"full", &opts).unwrap();
    repo.add_key(b"append", FAST, true).unwrap();
    std::fs::write(dir.join("file"), b"some data worth keeping").unwrap();
    snapshot_of(&repo, dir)
}

fn snapshot_of(repo: &Repository, dir: &std::path::Path) -> SnapshotId {
    let session = repo.begin_session("backup", DEFAULT_EXPIRY).unwrap();
    let index = Index::load(repo).unwrap();
    let opts = BackupOptions {
        paths: vec![dir.to_path_buf()],
        ..Default::default()
    };
    let outcome = backup(repo, &session, &index, &opts, &NoProgress).unwrap();
    session.end().unwrap();
    outcome.id
}

fn snapshots(backend: &dyn Backend) -> usize {
    backend.list(FileKind::Snapshot).unwrap().len()
}

#[test]
fn an_append_only_key_refuses_every_delete_below_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
    let first = backed_up(backend.clone(), dir.path());
    let repo = Repository::open(backend.clone(), b"append").unwrap();
    assert!(repo.append_only());

    // Writing still works, and its session ends without deleting anything.
    let second = snapshot_of(&repo, dir.path());
    assert_eq!(snapshots(backend.as_ref()), 2);

    // The engine's forget, as the node agent's retention calls it.
    let session = repo.begin_session("forget", DEFAULT_EXPIRY).unwrap();
    let opts = ForgetOptions {
        ids: vec![first, second],
        ..Default::default()
    };
    let err = forget(&repo, &session, &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AppendOnly, "{err}");

    let err = prune(&repo, &session, &PruneOptions::default(), &NoProgress).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AppendOnly, "{err}");
    session.end().unwrap();

    // A caller that reaches for the store itself is refused too.
    let err = repo
        .backend()
        .delete(FileKind::Snapshot, &first.to_hex())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AppendOnly, "{err}");
    assert_eq!(snapshots(backend.as_ref()), 2);
}

#[test]
fn a_full_key_put_in_append_only_mode_refuses_deletes_too() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
    let first = backed_up(backend.clone(), dir.path());
    let repo = Repository::open(backend.clone(), b"full").unwrap();
    repo.set_append_only();
    let err = repo
        .backend()
        .delete(FileKind::Snapshot, &first.to_hex())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AppendOnly, "{err}");

    // The same store opened with the full key still deletes (the guard is per handle).
    let full = Repository::open(backend.clone(), b"full").unwrap();
    let session = full.begin_session("forget", DEFAULT_EXPIRY).unwrap();
    let opts = ForgetOptions {
        ids: vec![first],
        ..Default::default()
    };
    forget(&full, &session, &opts).unwrap();
    session.end().unwrap();
    assert_eq!(snapshots(backend.as_ref()), 0);
}
