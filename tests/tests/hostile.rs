//! A malicious repository (one whose key the attacker holds, so its trees authenticate) cannot
//! make restore write outside the target: unsafe names are refused when trees are decoded, and
//! a symlink already at the destination is replaced, never written through, a symlink cannot
//! be a parent directory, and deep nesting is reported without overflowing a stack.

use std::fs;
use std::sync::Arc;

use engine::backend::OpendalBackend;
use engine::crypto::KdfParams;
use engine::format::tree::{Node, NodeKind, Timestamp, Tree};
use engine::id::BlobKind;
use engine::index::Index;
use engine::locate::Located;
use engine::progress::NoProgress;
use engine::repo::{InitOptions, Repository};
use engine::restore::{RestoreOptions, RestoreReport, restore};
use engine::save::BlobSaver;

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

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        user: String::new(),
        group: String::new(),
        mtime: Timestamp::default(),
        atime: Timestamp::default(),
        ctime: Timestamp::default(),
        inode: 0,
        device: 0,
        links: 1,
        xattrs: vec![],
    }
}

/// Restores a root tree with default options.
fn restore_root(
    repo: &Repository,
    index: &Index,
    root: engine::id::BlobId,
    target: &std::path::Path,
) -> RestoreReport {
    restore(
        repo,
        index,
        &Located::Root(root),
        target,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap()
}

/// Stores a tree as the attacker would: encoded without the writer's validation.
fn store_raw_tree(saver: &BlobSaver<'_>, tree: &Tree) -> engine::id::BlobId {
    let bytes = postcard::to_stdvec(tree).unwrap();
    let (id, _) = saver.save(BlobKind::Tree, &bytes).unwrap();
    id
}

fn file(saver: &BlobSaver<'_>, name: &[u8], data: &[u8]) -> Node {
    let (id, _) = saver.save(BlobKind::Data, data).unwrap();
    let content = vec![engine::format::tree::Extent::Data {
        id,
        len: data.len() as u32,
    }];
    let mut n = node(
        name,
        NodeKind::File {
            size: data.len() as u64,
            content,
        },
    );
    n.mode = 0o644;
    n
}

#[test]
fn unsafe_names_never_reach_the_filesystem() {
    let repo = repo();
    let empty = Index::default();
    let session = repo
        .begin_session("backup", engine::session::DEFAULT_EXPIRY)
        .unwrap();
    let saver = BlobSaver::new(&repo, &session, &empty).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let escape = outside.path().join("escaped");
    let absolute = escape.to_str().unwrap().as_bytes().to_vec();
    let bad_names: Vec<Vec<u8>> = vec![
        b"..".to_vec(),
        b"../../escaped".to_vec(),
        absolute,
        b".".to_vec(),
        b"a/../../x".to_vec(),
    ];
    let mut roots = Vec::new();
    for bad in &bad_names {
        let evil = Tree {
            nodes: vec![file(&saver, bad, b"pwned")],
        };
        let evil_id = store_raw_tree(&saver, &evil);
        let good = file(&saver, b"good", b"fine");
        let root = Tree {
            nodes: vec![node(b"evil", NodeKind::Dir { subtree: evil_id }), good],
        };
        roots.push(store_raw_tree(&saver, &root));
    }
    saver.flush().unwrap();
    let index = Index::load(&repo).unwrap();
    for (bad, root) in bad_names.iter().zip(roots) {
        let target = tempfile::tempdir().unwrap();
        let report = restore_root(&repo, &index, root, target.path());
        assert_eq!(
            report.errors.len(),
            1,
            "{:?}: {:?}",
            String::from_utf8_lossy(bad),
            report.errors
        );
        assert!(
            report.errors[0].message.contains("unsafe entry name"),
            "{:?}",
            report.errors
        );
        assert_eq!(
            fs::read(target.path().join("good")).unwrap(),
            b"fine",
            "the rest is restored"
        );
        assert!(!escape.exists());
        assert!(!outside.path().join("pwned").exists());
        assert!(!target.path().parent().unwrap().join("escaped").exists());
    }
}

#[test]
fn a_symlink_at_the_destination_is_replaced_not_followed() {
    let repo = repo();
    let empty = Index::default();
    let session = repo
        .begin_session("backup", engine::session::DEFAULT_EXPIRY)
        .unwrap();
    let saver = BlobSaver::new(&repo, &session, &empty).unwrap();
    let inner = Tree {
        nodes: vec![file(&saver, b"payload", b"data")],
    };
    let inner_id = store_raw_tree(&saver, &inner);
    let f = file(&saver, b"plain", b"plain data");
    let root = Tree {
        nodes: vec![node(b"dir", NodeKind::Dir { subtree: inner_id }), f],
    };
    let root_id = store_raw_tree(&saver, &root);
    saver.flush().unwrap();
    let index = Index::load(&repo).unwrap();

    let outside = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    // Planted before the restore: `dir` and `plain` point outside the target.
    std::os::unix::fs::symlink(outside.path(), target.path().join("dir")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("plain-victim"),
        target.path().join("plain"),
    )
    .unwrap();
    fs::write(outside.path().join("plain-victim"), b"untouched").unwrap();

    let report = restore_root(&repo, &index, root_id, target.path());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        fs::symlink_metadata(target.path().join("dir"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(
        fs::read(target.path().join("dir/payload")).unwrap(),
        b"data"
    );
    assert_eq!(
        fs::read(target.path().join("plain")).unwrap(),
        b"plain data"
    );
    assert!(
        !outside.path().join("payload").exists(),
        "nothing written through the symlink"
    );
    assert_eq!(
        fs::read(outside.path().join("plain-victim")).unwrap(),
        b"untouched"
    );
}

#[test]
fn a_tree_claiming_a_huge_file_is_refused() {
    let repo = repo();
    let empty = Index::default();
    let session = repo
        .begin_session("backup", engine::session::DEFAULT_EXPIRY)
        .unwrap();
    let saver = BlobSaver::new(&repo, &session, &empty).unwrap();
    let liar = node(
        b"huge",
        NodeKind::File {
            size: u64::MAX,
            content: vec![],
        },
    );
    let root_id = store_raw_tree(&saver, &Tree { nodes: vec![liar] });
    saver.flush().unwrap();
    let index = Index::load(&repo).unwrap();
    let target = tempfile::tempdir().unwrap();
    let report = restore_root(&repo, &index, root_id, target.path());
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(!target.path().join("huge").exists());
}

/// The tar attack: a symlink `link -> /outside`, then `link/file`. A tree cannot hold both a
/// symlink and a directory called `link` (names are unique, checked when trees are decoded), so
/// the attacker's tree is refused whole and nothing is written through the link.
#[test]
fn a_symlink_cannot_be_used_as_a_parent_directory() {
    let repo = repo();
    let empty = Index::default();
    let session = repo
        .begin_session("backup", engine::session::DEFAULT_EXPIRY)
        .unwrap();
    let saver = BlobSaver::new(&repo, &session, &empty).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let inner = Tree {
        nodes: vec![file(&saver, b"file", b"pwned")],
    };
    let inner_id = store_raw_tree(&saver, &inner);
    let link = node(
        b"link",
        NodeKind::Symlink {
            target: outside.path().as_os_str().as_encoded_bytes().to_vec(),
        },
    );
    let dir = node(b"link", NodeKind::Dir { subtree: inner_id });
    let mut roots = Vec::new();
    for nodes in [vec![link.clone(), dir.clone()], vec![dir, link]] {
        let evil = store_raw_tree(&saver, &Tree { nodes });
        let root = Tree {
            nodes: vec![
                node(b"evil", NodeKind::Dir { subtree: evil }),
                file(&saver, b"good", b"fine"),
            ],
        };
        roots.push(store_raw_tree(&saver, &root));
    }
    saver.flush().unwrap();
    let index = Index::load(&repo).unwrap();
    for root in roots {
        let target = tempfile::tempdir().unwrap();
        let report = restore_root(&repo, &index, root, target.path());
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        assert!(
            report.errors[0].message.contains("not strictly sorted"),
            "{:?}",
            report.errors
        );
        assert_eq!(fs::read(target.path().join("good")).unwrap(), b"fine");
        assert!(
            !outside.path().join("file").exists(),
            "written through the link"
        );
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
    }
}

/// Nesting deeper than any path the kernel takes: the restore reports it, stays inside the
/// target, and does not overflow its stack (every walk over trees is iterative).
#[test]
fn deep_nesting_is_restored_as_far_as_paths_allow_and_reported_beyond() {
    const DEPTH: usize = 3000;
    let repo = repo();
    let empty = Index::default();
    let session = repo
        .begin_session("backup", engine::session::DEFAULT_EXPIRY)
        .unwrap();
    let saver = BlobSaver::new(&repo, &session, &empty).unwrap();
    let mut child = store_raw_tree(
        &saver,
        &Tree {
            nodes: vec![file(&saver, b"bottom", b"deep")],
        },
    );
    for _ in 0..DEPTH {
        child = store_raw_tree(
            &saver,
            &Tree {
                nodes: vec![node(b"d", NodeKind::Dir { subtree: child })],
            },
        );
    }
    let root = store_raw_tree(
        &saver,
        &Tree {
            nodes: vec![
                node(b"deep", NodeKind::Dir { subtree: child }),
                file(&saver, b"good", b"fine"),
            ],
        },
    );
    saver.flush().unwrap();
    let index = Index::load(&repo).unwrap();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target");
    let result = restore(
        &repo,
        &index,
        &Located::Root(root),
        &target,
        &RestoreOptions::default(),
        &NoProgress,
    );
    // 3000 levels make a path of 6000 bytes: past PATH_MAX (4096), so restore must say so,
    // either for the entries it cannot create or as an error of the whole run.
    match result {
        Ok(report) => {
            assert!(!report.errors.is_empty(), "nothing reported");
            assert_eq!(fs::read(target.join("good")).unwrap(), b"fine");
        }
        Err(e) => assert!(e.to_string().contains("name too long"), "{e}"),
    }
    let escaped: Vec<_> = fs::read_dir(work.path()).unwrap().flatten().collect();
    assert_eq!(escaped.len(), 1, "only the target was written: {escaped:?}");
}
