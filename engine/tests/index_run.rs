//! A repository whose index passes the memory bound: backup, restore and check through the
//! on-disk run, its reuse from the cache, and what a damaged run costs (nothing but time).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::backend::OpendalBackend;
use engine::backup::{BackupOptions, ParentChoice, backup};
use engine::check::{CheckOptions, check};
use engine::crypto::KdfParams;
use engine::index::Index;
use engine::locate::locate;
use engine::progress::NoProgress;
use engine::repo::{InitOptions, Repository};
use engine::restore::{RestoreOptions, restore};

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

/// `n` files of distinct content (one blob each), numbered from `first`.
fn volume(dir: &Path, first: usize, n: usize) {
    std::fs::create_dir_all(dir.join("d")).unwrap();
    for i in first..first + n {
        std::fs::write(
            dir.join(format!("d/f{i}")),
            format!("file {i} ").repeat(i % 50 + 1),
        )
        .unwrap();
    }
}

fn back_up(repo: &Repository, src: &Path, parent: ParentChoice) -> engine::backup::BackupOutcome {
    let index = Index::load(repo).unwrap();
    // Nothing stored yet, nothing to spill; after that the bound is small and it spills.
    assert_eq!(index.spilled(), !index.is_empty());
    let opts = BackupOptions {
        paths: vec![src.to_path_buf()],
        stored_as: Some("data".into()),
        parent,
        ..Default::default()
    };
    let session = repo
        .begin_session("backup", engine::session::DEFAULT_EXPIRY)
        .unwrap();
    backup(repo, &session, &index, &opts, &NoProgress).unwrap()
}

fn restored_equal(repo: &Repository, tree: engine::id::BlobId, src: &Path, to: &Path) {
    let index = Index::load(repo).unwrap();
    let start = locate(repo, &index, tree, "/data").unwrap();
    restore(
        repo,
        &index,
        &start,
        to,
        &RestoreOptions {
            verify: true,
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap();
    let mut names: Vec<_> = std::fs::read_dir(src.join("d"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in &names {
        let (a, b) = (
            std::fs::read(src.join("d").join(name)).unwrap(),
            std::fs::read(to.join("d").join(name)).unwrap(),
        );
        assert_eq!(a, b, "{name:?}");
    }
    assert_eq!(
        std::fs::read_dir(to.join("d")).unwrap().count(),
        names.len()
    );
    index.intact().unwrap();
}

fn runs(cache: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for repo_dir in std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
    {
        if let Ok(dir) = std::fs::read_dir(repo_dir.path().join("index-run")) {
            out.extend(dir.flatten().map(|e| e.path()));
        }
    }
    out
}

#[test]
fn a_spilled_index_backs_up_restores_and_is_reused_from_the_cache() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    repo.use_cache(&cache, 1 << 30).unwrap();
    repo.set_index_memory(100);
    let src = tmp.path().join("src");
    volume(&src, 0, 400);
    back_up(&repo, &src, ParentChoice::None);
    let one = back_up(&repo, &src, ParentChoice::None);
    assert_eq!(
        one.snapshot.summary.data_blobs_new, 0,
        "every blob deduplicated through the run"
    );
    let first_run = runs(&cache);
    assert_eq!(first_run.len(), 1, "{first_run:?}");
    // A few new files: held in memory on top of the cached run, which stays.
    volume(&src, 400, 20);
    let two = back_up(&repo, &src, ParentChoice::Snapshot(one.id));
    assert_eq!(runs(&cache), first_run);
    restored_equal(&repo, two.snapshot.tree, &src, &tmp.path().join("r1"));
    // Many new files: past the bound on top of the run, so it is built again.
    volume(&src, 420, 300);
    let three = back_up(&repo, &src, ParentChoice::Snapshot(two.id));
    restored_equal(&repo, three.snapshot.tree, &src, &tmp.path().join("r2"));
    let second_run = runs(&cache);
    assert_eq!(second_run.len(), 1);
    assert_ne!(second_run, first_run);
    let report = check(
        &repo,
        &CheckOptions {
            read_data: true,
            subset: None,
        },
        &NoProgress,
    )
    .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn a_damaged_run_costs_time_not_data() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    repo.use_cache(&cache, 1 << 30).unwrap();
    repo.set_index_memory(50);
    let src = tmp.path().join("src");
    volume(&src, 0, 300);
    back_up(&repo, &src, ParentChoice::None);
    back_up(&repo, &src, ParentChoice::None);
    let run = runs(&cache).pop().unwrap();
    let mut bytes = std::fs::read(&run).unwrap();
    for page in 0..3 {
        bytes[page * 4096 + 100] ^= 0xff;
    }
    std::fs::write(&run, &bytes).unwrap();
    // The blobs on the damaged pages look new and are stored again; nothing is lost.
    volume(&src, 300, 5);
    let again = back_up(&repo, &src, ParentChoice::None);
    assert!(again.snapshot.summary.data_blobs_new > 0);
    assert!(!run.exists(), "the damaged run was deleted");
    restored_equal(&repo, again.snapshot.tree, &src, &tmp.path().join("r"));
    // A planted file in the index cache is refused and removed.
    let dir = run.parent().unwrap().to_path_buf();
    std::fs::write(dir.join("run-planted.kidx"), b"KAIRNRUN junk").unwrap();
    let index = Index::load(&repo).unwrap();
    assert!(index.spilled());
    assert!(!dir.join("run-planted.kidx").exists());
}

#[test]
fn without_a_cache_the_run_is_temporary() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();
    repo.set_index_memory(50);
    let src = tmp.path().join("src");
    volume(&src, 0, 200);
    let one = back_up(&repo, &src, ParentChoice::None);
    restored_equal(&repo, one.snapshot.tree, &src, &tmp.path().join("r"));
    let scratch = std::env::temp_dir().join(format!("kairn-index-{}", std::process::id()));
    assert!(!scratch.exists() || std::fs::read_dir(&scratch).unwrap().count() == 0);
}

#[test]
fn a_run_that_cannot_be_written_leaves_the_index_in_memory() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();
    repo.set_index_memory(50);
    let src = tmp.path().join("src");
    volume(&src, 0, 200);
    let index = Index::load(&repo).unwrap();
    let opts = BackupOptions {
        paths: vec![src.clone()],
        stored_as: Some("data".into()),
        ..Default::default()
    };
    let session = repo
        .begin_session("backup", engine::session::DEFAULT_EXPIRY)
        .unwrap();
    let one = backup(&repo, &session, &index, &opts, &NoProgress).unwrap();
    session.end().unwrap();
    // Where the run would go is a regular file: nothing can be created below it.
    let blocked = tmp.path().join("blocked");
    std::fs::write(&blocked, b"").unwrap();
    repo.keep_index_runs_in(&blocked);
    let index = Index::load(&repo).unwrap();
    assert!(!index.spilled());
    assert!(index.len() > 50);
    let start = locate(&repo, &index, one.snapshot.tree, "/data").unwrap();
    restore(
        &repo,
        &index,
        &start,
        &tmp.path().join("r"),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_dir(tmp.path().join("r/d")).unwrap().count(),
        200
    );
}
