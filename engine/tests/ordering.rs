//! The write-ordering invariant, observed at the storage: every pack is written before the index
//! file that lists it, and every index file before the snapshot that needs it. A failure at any
//! write leaves no snapshot, and no index entry for a pack that was not stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use engine::backend::{Backend, OpendalBackend};
use engine::backup::{BackupOptions, backup};
use engine::chunker::ChunkerParams;
use engine::crypto::KdfParams;
use engine::format::FileKind;
use engine::format::index::IndexFile;
use engine::index::Index;
use engine::progress::NoProgress;
use engine::repo::{InitOptions, Repository};
use engine::session::Session;
use engine::{Error, ErrorKind, Result};

/// Records every write, and fails the `fail_at`-th write of `fail_kind` if set.
struct Recording {
    inner: OpendalBackend,
    log: Mutex<Vec<(FileKind, String)>>,
    fail: Mutex<Option<(FileKind, usize)>>,
}

impl Backend for Recording {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        self.inner.read(kind, name)
    }
    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.inner.read_range(kind, name, offset, length)
    }
    fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        let mut fail = self.fail.lock().unwrap();
        if let Some((k, n)) = *fail
            && k == kind
        {
            if n == 0 {
                *fail = None;
                return Err(Error::new(ErrorKind::Backend, "injected write failure"));
            }
            *fail = Some((k, n - 1));
        }
        drop(fail);
        self.inner.write(kind, name, data)?;
        self.log.lock().unwrap().push((kind, name.to_string()));
        Ok(())
    }
    fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        self.inner.size(kind, name)
    }
    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        self.inner.list(kind)
    }
    fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        self.inner.delete(kind, name)?;
        self.log
            .lock()
            .unwrap()
            .push((kind, format!("deleted {name}")));
        Ok(())
    }
    fn create_exclusive(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        self.inner.create_exclusive(kind, name, data)?;
        self.log.lock().unwrap().push((kind, name.to_string()));
        Ok(())
    }
    fn modified(&self, kind: FileKind, name: &str) -> Result<i64> {
        self.inner.modified(kind, name)
    }
}

fn setup() -> (Arc<Recording>, Repository, tempfile::TempDir) {
    let rec = Arc::new(Recording {
        inner: OpendalBackend::memory().unwrap(),
        log: Mutex::default(),
        fail: Mutex::default(),
    });
    let opts = InitOptions {
        chunk_sizes: ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        },
        pack_size: 1 << 20,
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    let repo = Repository::init(rec.clone(), b"pw", &opts).unwrap();
    let src = tempfile::tempdir().unwrap();
    for i in 0..6u64 {
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i + 1);
        let data: Vec<u8> = (0..700_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        std::fs::write(src.path().join(format!("f{i}")), data).unwrap();
    }
    rec.log.lock().unwrap().clear();
    (rec, repo, src)
}

/// A writer session, as every publishing caller must hold one.
fn session(repo: &Repository) -> Session {
    repo.begin_session("backup", std::time::Duration::from_secs(600))
        .unwrap()
}

fn run(
    repo: &Repository,
    session: &Session,
    src: &std::path::Path,
) -> Result<engine::backup::BackupOutcome> {
    let index = Index::load(repo)?;
    backup(
        repo,
        session,
        &index,
        &BackupOptions {
            paths: vec![src.to_path_buf()],
            ..Default::default()
        },
        &NoProgress,
    )
}

#[test]
fn packs_then_index_then_snapshot() {
    let (rec, repo, src) = setup();
    let writer = session(&repo);
    run(&repo, &writer, src.path()).unwrap();
    let log = rec.log.lock().unwrap().clone();
    let packs: Vec<usize> = (0..log.len())
        .filter(|&i| log[i].0 == FileKind::Pack)
        .collect();
    let indexes: Vec<usize> = (0..log.len())
        .filter(|&i| log[i].0 == FileKind::Index)
        .collect();
    let snaps: Vec<usize> = (0..log.len())
        .filter(|&i| log[i].0 == FileKind::Snapshot)
        .collect();
    let packs: Vec<usize> = packs
        .into_iter()
        .filter(|&i| !log[i].1.starts_with("deleted"))
        .collect();
    assert!(packs.len() >= 3, "{log:?}");
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        *snaps.last().unwrap(),
        log.len() - 1,
        "the snapshot is the last write"
    );
    // Every pack listed by an index file was written before that index file.
    for &i in &indexes {
        let id = log[i].1.parse().unwrap();
        let file: IndexFile = repo.load_file(&id).unwrap();
        let before: HashSet<&str> = log[..i]
            .iter()
            .filter(|(k, _)| *k == FileKind::Pack)
            .map(|(_, n)| n.as_str())
            .collect();
        for p in &file.packs {
            assert!(
                before.contains(p.id.to_hex().as_str()),
                "index lists pack {} before it was written",
                p.id
            );
        }
    }
    // Every blob the snapshot needs is in the index.
    let index = Index::load(&repo).unwrap();
    let snap = repo.load_snapshots().unwrap().pop().unwrap().1;
    assert!(index.contains(&snap.tree));
}

#[test]
fn a_failed_write_anywhere_leaves_no_snapshot_and_no_dangling_index_entry() {
    for (kind, nth) in [
        (FileKind::Pack, 0),
        (FileKind::Pack, 2),
        (FileKind::Index, 0),
        (FileKind::Snapshot, 0),
    ] {
        let (rec, repo, src) = setup();
        *rec.fail.lock().unwrap() = Some((kind, nth));
        let err = run(&repo, &session(&repo), src.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Backend, "{kind:?} {nth}");
        assert!(
            repo.load_snapshots().unwrap().is_empty(),
            "{kind:?} {nth}: no snapshot"
        );
        let index = Index::load(&repo).unwrap();
        let stored: HashSet<String> = rec
            .list(FileKind::Pack)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for (pack, _) in index.packs() {
            assert!(
                stored.contains(&pack.to_hex()),
                "{kind:?} {nth}: index names a pack that is not stored"
            );
        }
        // The next backup succeeds and reuses what was stored.
        let outcome = run(&repo, &session(&repo), src.path()).unwrap();
        assert_eq!(repo.load_snapshots().unwrap().len(), 1);
        assert!(outcome.warnings.is_empty());
    }
}

#[test]
fn a_session_beats_first_fences_its_commit_and_cleans_up_after_the_snapshot() {
    let (rec, repo, src) = setup();
    let writer = session(&repo);
    run(&repo, &writer, src.path()).unwrap();
    writer.end().unwrap();
    let log = rec.log.lock().unwrap().clone();
    let at = |kind: FileKind, deleted: bool| {
        log.iter()
            .position(|(k, n)| *k == kind && n.starts_with("deleted") == deleted)
            .unwrap_or_else(|| panic!("no {kind:?} (deleted: {deleted}) in {log:?}"))
    };
    let first_beat = at(FileKind::Session, false);
    let first_pack = at(FileKind::Pack, false);
    let fence = at(FileKind::Fence, false);
    let snapshot = at(FileKind::Snapshot, false);
    let beat_gone = at(FileKind::Session, true);
    let fence_gone = at(FileKind::Fence, true);
    let last_index = log
        .iter()
        .rposition(|(k, _)| *k == FileKind::Index)
        .unwrap();
    assert_eq!(first_beat, 0, "the heartbeat is the first write: {log:?}");
    assert!(first_pack < last_index && last_index < fence, "{log:?}");
    assert_eq!(
        snapshot,
        fence + 1,
        "the snapshot right after the fence: {log:?}"
    );
    assert!(snapshot < beat_gone && beat_gone < fence_gone, "{log:?}");
    assert!(rec.list(FileKind::Session).unwrap().is_empty());
    assert!(rec.list(FileKind::Fence).unwrap().is_empty());
}

#[test]
fn an_expired_session_cannot_commit_and_writes_no_snapshot() {
    let (rec, repo, src) = setup();
    let writer = session(&repo);
    let id = writer.id();
    // What a prune does to a stale session: it takes the fence first.
    assert!(
        engine::session::fence::create(repo.files(), id, engine::format::session::Outcome::Expire)
            .unwrap()
    );
    let err = run(&repo, &writer, src.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SessionExpired, "{err}");
    assert!(repo.load_snapshots().unwrap().is_empty());
    assert_eq!(
        engine::session::fence::outcome(repo.files(), id).unwrap(),
        Some(engine::format::session::Outcome::Expire)
    );
    drop(repo);
    let _ = rec;
}
