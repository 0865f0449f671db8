//! A volume read from a path that changes with every pod, stored under one stable name, and an
//! operation stopped through `Progress::should_stop`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use engine::backend::OpendalBackend;
use engine::backup::{BackupOptions, ParentChoice, backup};
use engine::crypto::KdfParams;
use engine::index::Index;
use engine::locate::{Located, locate};
use engine::progress::{NoProgress, Progress};
use engine::repo::{InitOptions, Repository};
use engine::restore::{RestoreOptions, restore};
use engine::{ErrorKind, Result};

fn repo() -> Repository {
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    Repository::init(Arc::new(OpendalBackend::memory().unwrap()), b"pw", &opts).unwrap()
}

fn volume(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a"), vec![7u8; 300_000]).unwrap();
    std::fs::write(dir.join("sub/b"), b"bee").unwrap();
}

fn stored(
    repo: &Repository,
    path: &std::path::Path,
    parent: ParentChoice,
) -> Result<engine::backup::BackupOutcome> {
    let index = Index::load(repo)?;
    let opts = BackupOptions {
        paths: vec![path.to_path_buf()],
        stored_as: Some("data".into()),
        parent,
        ..Default::default()
    };
    backup(repo, &writer(repo), &index, &opts, &NoProgress)
}

#[test]
fn a_volume_moved_to_another_path_stays_incremental() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("pods/uid-1/volumes/x/data");
    volume(&first);
    let one = stored(&repo, &first, ParentChoice::None).unwrap();
    assert_eq!(one.snapshot.paths, vec!["/data".to_string()]);

    let second = tmp.path().join("pods/uid-2/volumes/x/data");
    std::fs::create_dir_all(second.parent().unwrap()).unwrap();
    std::fs::rename(&first, &second).unwrap();
    let two = stored(&repo, &second, ParentChoice::Snapshot(one.id)).unwrap();
    assert_eq!(two.snapshot.summary.files_unmodified, 2);
    assert_eq!(two.snapshot.summary.bytes_read, 0);

    let index = Index::load(&repo).unwrap();
    let start = locate(&repo, &index, two.snapshot.tree, "/data").unwrap();
    assert!(matches!(start, Located::Node(_)));
    let target = tmp.path().join("restored");
    restore(
        &repo,
        &index,
        &start,
        &target,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(std::fs::read(target.join("sub/b")).unwrap(), b"bee");
    assert_eq!(std::fs::read(target.join("a")).unwrap().len(), 300_000);
}

#[test]
fn a_stored_name_must_be_one_component_for_one_path() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();
    volume(tmp.path());
    for bad in ["", ".", "..", "a/b"] {
        let index = Index::load(&repo).unwrap();
        let opts = BackupOptions {
            paths: vec![tmp.path().to_path_buf()],
            stored_as: Some(bad.into()),
            ..Default::default()
        };
        let err = backup(&repo, &writer(&repo), &index, &opts, &NoProgress).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
    }
    let index = Index::load(&repo).unwrap();
    let opts = BackupOptions {
        paths: vec![tmp.path().join("a"), tmp.path().join("sub")],
        stored_as: Some("data".into()),
        ..Default::default()
    };
    assert_eq!(
        backup(&repo, &writer(&repo), &index, &opts, &NoProgress)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
}

/// Asks to stop once this many bytes were reported.
struct StopAfter(u64, AtomicU64);

impl Progress for StopAfter {
    fn bytes(&self, n: u64) {
        self.1.fetch_add(n, Ordering::Relaxed);
    }
    fn should_stop(&self) -> bool {
        self.1.load(Ordering::Relaxed) >= self.0
    }
}

#[test]
fn a_stopped_backup_publishes_nothing_and_a_stopped_restore_says_so() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    volume(&src);
    for i in 0..20 {
        std::fs::write(src.join(format!("f{i}")), vec![i as u8; 100_000]).unwrap();
    }
    let index = Index::load(&repo).unwrap();
    let opts = BackupOptions {
        paths: vec![src.clone()],
        ..Default::default()
    };
    let err = backup(
        &repo,
        &writer(&repo),
        &index,
        &opts,
        &StopAfter(1, AtomicU64::new(0)),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Canceled);
    assert!(
        engine::snapshots::list(&repo, &Default::default())
            .unwrap()
            .is_empty()
    );

    let done = backup(&repo, &writer(&repo), &index, &opts, &NoProgress).unwrap();
    let index = Index::load(&repo).unwrap();
    let start = Located::Root(done.snapshot.tree);
    let err = restore(
        &repo,
        &index,
        &start,
        &tmp.path().join("out"),
        &RestoreOptions::default(),
        &StopAfter(0, AtomicU64::new(0)),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Canceled);
}

/// A writer session, as every publishing caller must hold one.
fn writer(repo: &engine::repo::Repository) -> engine::session::Session {
    repo.begin_session("backup", engine::session::DEFAULT_EXPIRY)
        .unwrap()
}
