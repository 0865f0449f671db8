#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use super::*;

fn pack_name() -> String {
    format!("ab{}", "0".repeat(62))
}

fn repo() -> (tempfile::TempDir, LocalBackend) {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open_or_make(&dir.path().join("repo")).unwrap();
    backend.create().unwrap();
    (dir, backend)
}

#[test]
fn a_fifo_in_place_of_a_pack_is_damage_and_never_blocks() {
    let (_dir, b) = repo();
    let name = pack_name();
    let path = b.object_path(FileKind::Pack, &name);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Without O_NONBLOCK, opening the FIFO would wait for a writer that never comes.
    for err in [
        b.read(FileKind::Pack, &name).unwrap_err(),
        b.read_range(FileKind::Pack, &name, 0, 4).unwrap_err(),
        b.size(FileKind::Pack, &name).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(
            err.to_string().contains("not a regular file: a FIFO"),
            "{err}"
        );
    }
    assert_eq!(b.list(FileKind::Pack).unwrap(), vec![(name.clone(), 0)]);
    b.delete(FileKind::Pack, &name).unwrap();
    assert!(b.list(FileKind::Pack).unwrap().is_empty());
}

#[test]
fn a_symlink_in_the_repository_is_never_followed() {
    let (dir, b) = repo();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, vec![7u8; 12345]).unwrap();
    let name = pack_name();
    std::os::unix::fs::symlink(&secret, b.object_path(FileKind::Pack, &name)).unwrap();
    for err in [
        b.read(FileKind::Pack, &name).unwrap_err(),
        b.size(FileKind::Pack, &name).unwrap_err(),
        b.modified(FileKind::Pack, &name).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        assert!(!err.to_string().contains("12345"), "{err}");
    }
    assert_eq!(
        b.list(FileKind::Pack).unwrap(),
        vec![(name.clone(), 0)],
        "the link is listed, not its target's size"
    );
    // A linked directory of packs is not walked into either.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join(pack_name()), b"x").unwrap();
    std::fs::remove_dir(dir.path().join("repo/data/cd")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("repo/data/cd")).unwrap();
    assert_eq!(b.list(FileKind::Pack).unwrap().len(), 1);
    b.delete(FileKind::Pack, &name).unwrap();
    assert!(secret.exists(), "delete removes the link, not its target");
}

#[test]
fn files_are_0600_and_directories_0700() {
    let (dir, b) = repo();
    b.write(FileKind::Pack, &pack_name(), b"pack".to_vec())
        .unwrap();
    b.write(FileKind::Config, "config", b"cfg".to_vec())
        .unwrap();
    b.create_exclusive(FileKind::Fence, &pack_name(), b"f".to_vec())
        .unwrap();
    let mut seen = 0;
    let mut stack = vec![dir.path().join("repo")];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            assert_eq!(mode, DIR_MODE, "{}", path.display());
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, FILE_MODE, "{}", path.display());
            seen += 1;
        }
    }
    assert_eq!(seen, 3);
}

#[test]
fn a_write_over_an_existing_object_fails_and_leaves_no_staged_file() {
    let (dir, b) = repo();
    b.write(FileKind::Pack, &pack_name(), b"one".to_vec())
        .unwrap();
    let err = b
        .write(FileKind::Pack, &pack_name(), b"two".to_vec())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        std::fs::read_dir(dir.path().join("repo/tmp"))
            .unwrap()
            .count(),
        0
    );
}
