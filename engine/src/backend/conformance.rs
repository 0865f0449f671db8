//! The backend contract as a test suite, run against every implementation.

use super::*;
use crate::format::FileKind;

fn name(i: u8) -> String {
    format!("{i:02x}{}", "0".repeat(62))
}

fn suite(b: &dyn Backend) {
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

    // Exclusive create: of many racing callers exactly one wins, and the winner's bytes stay.
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

#[test]
fn memory_backend_keeps_the_contract() {
    suite(&OpendalBackend::memory().unwrap());
}

#[test]
fn local_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let b = OpendalBackend::local(dir.path()).unwrap();
    suite(&b);
    // Storage time: a later object is not older than an earlier one.
    b.write(FileKind::Session, &name(3), b"first".to_vec())
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
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
    assert!(
        std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no staged files left"
    );
}
