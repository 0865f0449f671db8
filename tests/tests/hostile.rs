//! A malicious repository (one whose key the attacker holds, so its trees authenticate) cannot
//! make restore write outside the target: unsafe names are refused when trees are decoded, and
//! a symlink already at the destination is replaced, never written through.

use std::fs;
use std::sync::Arc;

use engine::backend::OpendalBackend;
use engine::crypto::KdfParams;
use engine::format::blob::BlobKind;
use engine::format::tree::{Node, NodeKind, Timestamp, Tree};
use engine::index::Index;
use engine::locate::Located;
use engine::packer::BlobSaver;
use engine::progress::NoProgress;
use engine::repo::{InitOptions, Repository};
use engine::restore::{RestoreOptions, RestoreReport, restore};

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
fn store_raw_tree(repo: &Repository, saver: &BlobSaver<'_>, tree: &Tree) -> engine::id::BlobId {
    let bytes = postcard::to_stdvec(tree).unwrap();
    let id = repo.keys().tree_id(&bytes);
    saver.save(BlobKind::Tree, id, &bytes).unwrap();
    id
}

fn file(repo: &Repository, saver: &BlobSaver<'_>, name: &[u8], data: &[u8]) -> Node {
    let id = repo.keys().data_id(data);
    saver.save(BlobKind::Data, id, data).unwrap();
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
    let saver = BlobSaver::new(&repo, &empty);
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
            nodes: vec![file(&repo, &saver, bad, b"pwned")],
        };
        let evil_id = store_raw_tree(&repo, &saver, &evil);
        let good = file(&repo, &saver, b"good", b"fine");
        let root = Tree {
            nodes: vec![node(b"evil", NodeKind::Dir { subtree: evil_id }), good],
        };
        roots.push(store_raw_tree(&repo, &saver, &root));
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
    let saver = BlobSaver::new(&repo, &empty);
    let inner = Tree {
        nodes: vec![file(&repo, &saver, b"payload", b"data")],
    };
    let inner_id = store_raw_tree(&repo, &saver, &inner);
    let f = file(&repo, &saver, b"plain", b"plain data");
    let root = Tree {
        nodes: vec![node(b"dir", NodeKind::Dir { subtree: inner_id }), f],
    };
    let root_id = store_raw_tree(&repo, &saver, &root);
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
    let saver = BlobSaver::new(&repo, &empty);
    let liar = node(
        b"huge",
        NodeKind::File {
            size: u64::MAX,
            content: vec![],
        },
    );
    let root_id = store_raw_tree(&repo, &saver, &Tree { nodes: vec![liar] });
    saver.flush().unwrap();
    let index = Index::load(&repo).unwrap();
    let target = tempfile::tempdir().unwrap();
    let report = restore_root(&repo, &index, root_id, target.path());
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(!target.path().join("huge").exists());
}
