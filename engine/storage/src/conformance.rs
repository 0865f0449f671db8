//! The backend contract as a test suite, run against every implementation: here for memory and
//! the local filesystem, and by the end-to-end tests against real S3 servers (feature
//! `test-support`).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // a failed check is a test failure

use super::*;
use kairn_format::FileKind;

fn name(i: u8) -> String {
    format!("{i:02x}{}", "0".repeat(62))
}

/// Checks every clause of the contract on an empty store; panics on the first breach.
pub fn suite(b: &dyn Backend) {
    basics(b);
    exclusive_create_race(b);
}

/// Every clause but the race of exclusive creators.
pub fn basics(b: &dyn Backend) {
    b.create().unwrap();
    b.create().unwrap(); // idempotent
    assert_eq!(
        b.read(FileKind::Snapshot, &name(1)).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        b.size(FileKind::Pack, &name(1)).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(b.list(FileKind::Snapshot).unwrap().is_empty());

    b.write(FileKind::Pack, &name(1), b"hello pack".to_vec())
        .unwrap();
    assert_eq!(b.read(FileKind::Pack, &name(1)).unwrap(), b"hello pack");
    assert_eq!(
        b.read_range(FileKind::Pack, &name(1), 6, 4).unwrap(),
        b"pack"
    );
    assert!(
        b.read_range(FileKind::Pack, &name(1), 6, 40).is_err(),
        "short read must be an error"
    );
    assert_eq!(b.size(FileKind::Pack, &name(1)).unwrap(), 10);
    assert_eq!(b.list(FileKind::Pack).unwrap(), vec![(name(1), 10)]);

    let again = b
        .write(FileKind::Pack, &name(1), b"other".to_vec())
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        b.read(FileKind::Pack, &name(1)).unwrap(),
        b"hello pack",
        "create must never replace"
    );

    b.write(FileKind::Config, "config", b"cfg".to_vec())
        .unwrap();
    assert_eq!(b.read(FileKind::Config, "config").unwrap(), b"cfg");
    assert_eq!(b.list(FileKind::Config).unwrap().len(), 1);

    b.delete(FileKind::Pack, &name(1)).unwrap();
    b.delete(FileKind::Pack, &name(1)).unwrap(); // idempotent
    assert_eq!(
        b.read(FileKind::Pack, &name(1)).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(b.list(FileKind::Pack).unwrap().is_empty());
    // Exclusive create, one caller: a second create fails and keeps the first bytes.
    b.create_exclusive(FileKind::Fence, &name(8), b"one".to_vec())
        .unwrap();
    assert_eq!(
        b.create_exclusive(FileKind::Fence, &name(8), b"two".to_vec())
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(b.read(FileKind::Fence, &name(8)).unwrap(), b"one");
}

/// Exclusive create: of many racing callers exactly one wins, and the winner's bytes stay.
/// Only a store whose conditional create is atomic passes (s3s-fs checks, then writes).
pub fn exclusive_create_race(b: &dyn Backend) {
    let wins: Vec<bool> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..8u8)
            .map(|i| {
                s.spawn(
                    move || match b.create_exclusive(FileKind::Fence, &name(9), vec![i; 64]) {
                        Ok(()) => true,
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
                        Err(e) => panic!("racer {i}: {e}"),
                    },
                )
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
    let winner = wins.iter().position(|w| *w).unwrap() as u8;
    assert_eq!(b.read(FileKind::Fence, &name(9)).unwrap(), vec![winner; 64]);
}

/// Storage time: a later object is not older than an earlier one, and a missing object has
/// none. `gap` is the store's time resolution (a second on S3).
pub fn storage_time(b: &dyn Backend, gap: std::time::Duration) {
    b.write(FileKind::Session, &name(3), b"first".to_vec())
        .unwrap();
    std::thread::sleep(gap);
    b.write(FileKind::Session, &name(4), b"second".to_vec())
        .unwrap();
    let (t3, t4) = (
        b.modified(FileKind::Session, &name(3)).unwrap(),
        b.modified(FileKind::Session, &name(4)).unwrap(),
    );
    assert!(t3 > 1_600_000_000_000 && t4 >= t3, "{t3} {t4}");
    assert_eq!(
        b.modified(FileKind::Session, &name(5)).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn memory_backend_keeps_the_contract() {
    suite(&OpendalBackend::memory().unwrap());
}

#[test]
fn local_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let b = OpendalBackend::local(dir.path()).unwrap();
    suite(&b);
    storage_time(&b, std::time::Duration::from_millis(20));
    assert!(
        std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no staged files left"
    );
}
