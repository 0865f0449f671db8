//! `copy` of whole snapshots between in-memory repositories with other keys and chunk sizes.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::progress::NoProgress;
use kairn_format::chunker::ChunkerParams;
use kairn_format::crypto::KdfParams;
use kairn_format::id::BlobId;
use kairn_format::id::BlobKind;
use kairn_format::tree::{Extent, Node, NodeKind, Timestamp, Tree, Xattr};
use kairn_repository::read::{load_tree, read_blob};
use kairn_repository::repo::InitOptions;
use kairn_repository::save::BlobSaver;
use kairn_storage::OpendalBackend;

fn repo(min: u32, avg: u32, max: u32) -> Repository {
    let backend = Arc::new(OpendalBackend::memory().unwrap());
    let opts = InitOptions {
        chunk_sizes: ChunkerParams {
            min_size: min,
            avg_size: avg,
            max_size: max,
        },
        pack_size: 1 << 20,
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    Repository::init(backend, b"pw", &opts).unwrap()
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn node(name: &str, kind: NodeKind) -> Node {
    Node {
        name: name.as_bytes().to_vec(),
        kind,
        mode: 0o640,
        uid: 7,
        gid: 8,
        user: "u".into(),
        group: "g".into(),
        mtime: Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        },
        atime: Timestamp {
            secs: 1_700_000_001,
            nanos: 6,
        },
        ctime: Timestamp {
            secs: 1_700_000_002,
            nanos: 7,
        },
        inode: 42,
        device: 9,
        links: 1,
        xattrs: vec![Xattr {
            name: b"user.k".to_vec(),
            value: b"v".to_vec(),
        }],
    }
}

/// Chunks `data` into the source and returns its extents.
fn store(repo: &Repository, saver: &BlobSaver<'_>, data: &[u8]) -> Vec<Extent> {
    let mut out = Vec::new();
    repo.chunker()
        .for_each_chunk(data, |c| {
            let (id, _) = saver.save(BlobKind::Data, c)?;
            out.push(Extent::Data {
                id,
                len: c.len() as u32,
            });
            Ok(())
        })
        .unwrap()
        .unwrap();
    out
}

fn save_tree(saver: &BlobSaver<'_>, mut nodes: Vec<Node>) -> BlobId {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let (id, _) = saver
        .save(BlobKind::Tree, &Tree { nodes }.encode().unwrap())
        .unwrap();
    id
}

/// A snapshot holding a sparse file, a large file, a symlink and a directory shared twice.
fn source_snapshot(
    repo: &Repository,
    big: &[u8],
    time: &str,
    parent: Option<SnapshotId>,
) -> SnapshotId {
    let index = Index::load(repo).unwrap();
    let session = writer(repo);
    let saver = BlobSaver::new(repo, &session, &index).unwrap();
    let mut sparse = vec![Extent::Hole { len: 1000 }];
    sparse.extend(store(repo, &saver, &noise(3, 50_000)));
    sparse.push(Extent::Hole { len: 7 });
    sparse.extend(store(repo, &saver, &noise(4, 30_000)));
    let big_content = store(repo, &saver, big);
    let shared = save_tree(
        &saver,
        vec![node(
            "f",
            NodeKind::File {
                size: 20_000,
                content: store(repo, &saver, &noise(5, 20_000)),
            },
        )],
    );
    let root = save_tree(
        &saver,
        vec![
            node(
                "sparse",
                NodeKind::File {
                    size: 81_007,
                    content: sparse,
                },
            ),
            node(
                "big",
                NodeKind::File {
                    size: big.len() as u64,
                    content: big_content,
                },
            ),
            node(
                "empty",
                NodeKind::File {
                    size: 0,
                    content: Vec::new(),
                },
            ),
            node(
                "link",
                NodeKind::Symlink {
                    target: b"big".to_vec(),
                },
            ),
            node("a", NodeKind::Dir { subtree: shared }),
            node("b", NodeKind::Dir { subtree: shared }),
        ],
    );
    saver.flush().unwrap();
    let snap = Snapshot {
        time: time.into(),
        host: "h".into(),
        username: "u".into(),
        paths: vec!["/data".into()],
        tags: vec!["t".into()],
        tree: root,
        parent,
        original: None,
        source: Default::default(),
        group: None,
        incomplete: false,
        summary: Default::default(),
        program: "kairn test".into(),
    };
    session.save_snapshot(&snap).unwrap()
}

/// A file's bytes, holes as zeros.
fn read_all(repo: &Repository, index: &Index, content: &[Extent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in content {
        match *e {
            Extent::Data { id, .. } => {
                out.extend(read_blob(repo, index, BlobKind::Data, &id).unwrap())
            }
            Extent::Hole { len } => out.resize(out.len() + len as usize, 0),
        }
    }
    out
}

/// Compares two trees node by node: content by bytes, holes by place, the rest as is.
fn assert_same_tree(a: (&Repository, &Index, BlobId), b: (&Repository, &Index, BlobId)) {
    let ta = load_tree(a.0, a.1, &a.2).unwrap();
    let tb = load_tree(b.0, b.1, &b.2).unwrap();
    assert_eq!(ta.nodes.len(), tb.nodes.len());
    for (na, nb) in ta.nodes.iter().zip(&tb.nodes) {
        let mut plain_a = na.clone();
        let mut plain_b = nb.clone();
        match (&na.kind, &nb.kind) {
            (
                NodeKind::File {
                    size: sa,
                    content: ca,
                },
                NodeKind::File {
                    size: sb,
                    content: cb,
                },
            ) => {
                assert_eq!(sa, sb);
                assert_eq!(read_all(a.0, a.1, ca), read_all(b.0, b.1, cb));
                let holes = |c: &[Extent]| {
                    let mut at = 0;
                    let mut out = Vec::new();
                    for e in c {
                        if let Extent::Hole { len } = e {
                            out.push((at, *len));
                        }
                        at += e.len();
                    }
                    out
                };
                assert_eq!(holes(ca), holes(cb));
                plain_a.kind = NodeKind::Fifo;
                plain_b.kind = NodeKind::Fifo;
            }
            (NodeKind::Dir { subtree: sa }, NodeKind::Dir { subtree: sb }) => {
                assert_same_tree((a.0, a.1, *sa), (b.0, b.1, *sb));
                plain_a.kind = NodeKind::Fifo;
                plain_b.kind = NodeKind::Fifo;
            }
            _ => {}
        }
        assert_eq!(plain_a, plain_b);
    }
}

#[test]
fn copies_rechunked_with_everything_else_kept_and_only_once() {
    let src = repo(256, 1024, 4096);
    let dst = repo(512, 2048, 8192);
    let big = noise(1, 300_000);
    let first = source_snapshot(&src, &big, "2024-01-01T00:00:00.000000001Z", None);
    let mut changed = big.clone();
    changed.extend(noise(2, 5_000));
    let second = source_snapshot(
        &src,
        &changed,
        "2024-01-02T00:00:00.000000002Z",
        Some(first),
    );
    let src_index = Index::load(&src).unwrap();
    let opts = CopyOptions::default();

    let dry = copy(
        &src,
        &src_index,
        &dst,
        &writer(&dst),
        &Index::load(&dst).unwrap(),
        &CopyOptions {
            dry_run: true,
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(dry.copied.len(), 2);
    assert!(
        dst.load_snapshots().unwrap().is_empty(),
        "a dry run writes nothing"
    );

    let report = copy(
        &src,
        &src_index,
        &dst,
        &writer(&dst),
        &Index::load(&dst).unwrap(),
        &opts,
        &NoProgress,
    )
    .unwrap();
    let sources: Vec<SnapshotId> = report.copied.iter().map(|c| c.source).collect();
    assert_eq!(sources, [first, second], "oldest first");
    assert!(report.skipped.is_empty());
    // Sparse, big, the shared directory's file, and the changed big file: the unchanged
    // files of the second snapshot are not read again. (The first snapshot's two copies of
    // one directory are rewritten in parallel, so both may miss the memo.)
    assert!((4..=5).contains(&report.files_read), "{report:?}");
    // The second snapshot's big file shares all but its end with the first.
    assert!(report.data_bytes_deduplicated > 250_000, "{report:?}");

    let dst_index = Index::load(&dst).unwrap();
    let copies: HashMap<SnapshotId, Snapshot> = dst.load_snapshots().unwrap().into_iter().collect();
    for pair in &report.copied {
        let original = src.load_file::<Snapshot>(&pair.source).unwrap();
        let copy = &copies[&pair.copy.unwrap()];
        assert_eq!(
            (
                &copy.time,
                &copy.host,
                &copy.paths,
                &copy.tags,
                &copy.program
            ),
            (
                &original.time,
                &original.host,
                &original.paths,
                &original.tags,
                &original.program
            )
        );
        assert_same_tree(
            (&src, &src_index, original.tree),
            (&dst, &dst_index, copy.tree),
        );
        assert_eq!(copy.original, Some(pair.source));
    }
    assert_eq!(
        copies[&report.copied[1].copy.unwrap()].parent,
        report.copied[0].copy,
        "the parent is the parent's copy"
    );
    // The big file is cut exactly as a backup straight into the destination would cut it.
    let root = load_tree(
        &dst,
        &dst_index,
        &copies[&report.copied[0].copy.unwrap()].tree,
    )
    .unwrap();
    let mut direct = Vec::new();
    dst.chunker()
        .for_each_chunk(big.as_slice(), |c| {
            direct.push(Extent::Data {
                id: dst.keys().data_id(c),
                len: c.len() as u32,
            });
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        root.find(b"big").unwrap().kind,
        NodeKind::File {
            size: big.len() as u64,
            content: direct
        }
    );

    let again = copy(
        &src,
        &src_index,
        &dst,
        &writer(&dst),
        &dst_index,
        &opts,
        &NoProgress,
    )
    .unwrap();
    assert!(again.copied.is_empty());
    assert_eq!(again.skipped.len(), 2);
    assert_eq!(again.bytes_read, 0);
}

#[test]
fn a_chain_of_copies_keeps_the_first_id_and_is_recognised_whatever_its_tags() {
    let a = repo(256, 1024, 4096);
    let b = repo(512, 2048, 8192);
    let c = repo(1024, 4096, 16384);
    let first = source_snapshot(&a, &noise(1, 50_000), "2024-01-01T00:00:00Z", None);
    let run = |from: &Repository, to: &Repository| {
        let (from_index, to_index) = (Index::load(from).unwrap(), Index::load(to).unwrap());
        copy(
            from,
            &from_index,
            to,
            &writer(to),
            &to_index,
            &CopyOptions::default(),
            &NoProgress,
        )
        .unwrap()
    };
    run(&a, &b);
    let in_c = run(&b, &c).copied[0].copy.unwrap();
    let mut retagged = c.load_file::<Snapshot>(&in_c).unwrap();
    assert_eq!(
        retagged.original,
        Some(first),
        "a copy of a copy names the first"
    );
    // The copy is retagged in C: its identity no longer matches, its original still does.
    retagged.tags.push("kept".into());
    let session = writer(&c);
    session.save_snapshot(&retagged).unwrap();
    let now = c.lock_clock(&session).unwrap();
    c.delete_content(kairn_format::FileKind::Snapshot, &in_c.to_hex(), now)
        .unwrap();
    for (from, to) in [(&a, &c), (&b, &c), (&c, &b), (&c, &a)] {
        let again = run(from, to);
        assert!(again.copied.is_empty(), "{again:?}");
        assert_eq!(again.skipped.len(), 1);
    }
}

#[test]
fn a_missing_source_blob_fails_the_copy_naming_the_file_and_publishes_nothing() {
    let src = repo(256, 1024, 4096);
    let dst = repo(512, 2048, 8192);
    source_snapshot(&src, &noise(1, 100_000), "2024-01-01T00:00:00Z", None);
    // An index that lacks the data blobs: every file read fails as a missing blob would.
    let mut builder = kairn_repository::index::IndexBuilder::default();
    for (_, file) in kairn_repository::index::load_live_files(&src).unwrap().live {
        let mut file = file;
        for pack in &mut file.packs {
            pack.blobs.retain(|b| b.kind == BlobKind::Tree);
        }
        builder.add_file(&file);
    }
    let crippled = builder.finish();
    let err = copy(
        &src,
        &crippled,
        &dst,
        &writer(&dst),
        &Index::load(&dst).unwrap(),
        &CopyOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("path: /"), "{err}");
    assert!(dst.load_snapshots().unwrap().is_empty());
}

/// A writer session, as every publishing caller must hold one.
fn writer(repo: &Repository) -> kairn_repository::session::Session {
    repo.begin_session("copy", kairn_repository::session::DEFAULT_EXPIRY)
        .unwrap()
}
