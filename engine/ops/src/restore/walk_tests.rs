//! The restore walk: what a batch holds, in which order, and how batches split a tree.

use std::sync::Arc;

use std::collections::HashSet;
use std::path::Path;

use super::plan::{Filters, Original, Plan, Step};
use super::walk::{Planner, content_bytes};
use kairn_format::crypto::KdfParams;
use kairn_format::id::BlobId;
use kairn_format::id::BlobKind;
use kairn_format::tree::{Extent, Node, NodeKind};
use kairn_format::tree::{Timestamp, Tree};
use kairn_repository::index::Index;
use kairn_repository::locate::Located;
use kairn_repository::repo::InitOptions;
use kairn_repository::repo::Repository;
use kairn_repository::save::BlobSaver;
use kairn_repository::session::DEFAULT_EXPIRY;
use kairn_storage::OpendalBackend;

fn node(name: &str, kind: NodeKind) -> Node {
    Node {
        name: name.as_bytes().to_vec(),
        kind,
        mode: 0o640,
        uid: 7,
        gid: 8,
        user: "u".into(),
        group: "g".into(),
        mtime: Timestamp::default(),
        atime: Timestamp::default(),
        ctime: Timestamp::default(),
        inode: 0,
        device: 0,
        links: 1,
        xattrs: vec![],
    }
}

fn file(name: &str, content: Vec<Extent>) -> Node {
    let size = content.iter().map(Extent::len).sum();
    node(name, NodeKind::File { size, content })
}

fn save_tree(saver: &BlobSaver<'_>, mut nodes: Vec<Node>) -> BlobId {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let tree = Tree { nodes }.encode().unwrap();
    saver.save(BlobKind::Tree, &tree).unwrap().0
}

/// A repository holding one tree of every kind of entry; returns it with the root tree.
fn snapshot() -> (Repository, BlobId) {
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    let backend = Arc::new(OpendalBackend::memory().unwrap());
    let repo = Repository::init(backend, b"pw", &opts).unwrap();
    let session = repo.begin_session("backup", DEFAULT_EXPIRY).unwrap();
    let index = Index::load(&repo).unwrap();
    let saver = BlobSaver::new(&repo, &session, &index).unwrap();
    let data = |bytes: &[u8]| Extent::Data {
        id: saver.save(BlobKind::Data, bytes).unwrap().0,
        len: bytes.len() as u32,
    };
    let (one, two) = (data(b"one"), data(b"second"));
    let lost = Extent::Data {
        id: repo.keys().data_id(b"never stored"),
        len: 12,
    };
    let mut linked = file("h1", vec![one]);
    linked.links = 2;
    linked.inode = 5;
    let mut link = linked.clone();
    link.name = b"h2".to_vec();
    let sub = save_tree(
        &saver,
        vec![file("f", vec![one, Extent::Hole { len: 10 }, two])],
    );
    let root = save_tree(
        &saver,
        vec![
            node("d", NodeKind::Dir { subtree: sub }),
            linked,
            link,
            file("gone", vec![lost]),
            node(
                "l",
                NodeKind::Symlink {
                    target: b"d/f".to_vec(),
                },
            ),
            node("p", NodeKind::Fifo),
            node("s", NodeKind::Socket),
        ],
    );
    saver.flush().unwrap();
    session.end().unwrap();
    (repo, root)
}

fn filters(include: &[&str]) -> Filters {
    let include: Vec<String> = include.iter().map(|s| (*s).to_string()).collect();
    Filters::new(&include, &[]).unwrap()
}

fn order(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|step| match step {
            Step::Dir(i) => format!("dir {}", plan.dirs[*i].rel.display()),
            Step::File(i) => format!("file {}", plan.files[*i].rel.display()),
            Step::Other(i) => format!("other {}", plan.others[*i].rel.display()),
            Step::Skip { rel, .. } => format!("skip {}", rel.display()),
        })
        .collect()
}

#[test]
fn planning_lists_every_entry() {
    let (repo, root) = snapshot();
    let index = Index::load(&repo).unwrap();

    let plan = one_batch(&repo, &index, root, &filters(&[]));

    // The walk's order: a tree's entries last to first, each directory where it is met.
    assert_eq!(
        order(&plan),
        [
            "skip s",
            "other p",
            "other l",
            "file h2",
            "file gone",
            "dir d",
            "file d/f"
        ]
    );
    assert_eq!(plan.links.len(), 1);
    assert_eq!(plan.links[0].rel, Path::new("h1"));
    let Original::InBatch(original) = plan.links[0].original else {
        panic!("the first name is in the same batch");
    };
    assert_eq!(plan.files[original].rel, Path::new("h2"));
    assert_eq!(plan.dirs[0].rel, Path::new("d"));
    assert!(plan.dirs[0].node.is_some());
    let missing: Vec<_> = plan.files.iter().map(|f| f.missing.is_some()).collect();
    assert_eq!(missing, [false, true, false]);
    // "one" goes to h2 and to d/f, "second" to d/f after the hole.
    assert_eq!(plan.total_bytes(), 3 + 3 + 6);
    let mut targets: Vec<(usize, u64)> = plan
        .packs
        .iter()
        .flat_map(|p| &p.blobs)
        .flat_map(|b| &b.targets)
        .map(|t| (t.file as usize, t.offset))
        .collect();
    targets.sort_unstable();
    assert_eq!(targets, [(0, 0), (2, 0), (2, 13)]);
    assert!(plan.lost_dirs.is_empty());
}

#[test]
fn an_included_file_brings_its_directories_and_skipping_its_content_drops_its_packs() {
    let (repo, root) = snapshot();
    let index = Index::load(&repo).unwrap();
    let mut plan = one_batch(&repo, &index, root, &filters(&["/d/f"]));

    assert_eq!(order(&plan), ["dir d", "file d/f"]);
    assert_eq!(plan.total_bytes(), 9);
    plan.skip_content(&HashSet::from([0]));
    assert!(plan.packs.is_empty());
    assert_eq!(plan.total_bytes(), 0);
}

/// The whole snapshot as one batch (it is small), checking that it is the only one.
fn one_batch(repo: &Repository, index: &Index, root: BlobId, filters: &Filters) -> Plan {
    let mut planner = Planner::new(repo, index, &Located::Root(root), filters);
    let plan = planner.next_batch().unwrap().expect("a batch");
    assert!(planner.next_batch().unwrap().is_none());
    plan
}

#[test]
fn small_batches_split_the_walk_and_a_later_name_links_to_an_earlier_batch() {
    let (repo, root) = snapshot();
    let index = Index::load(&repo).unwrap();
    let all = filters(&[]);
    let mut planner = Planner::new(&repo, &index, &Located::Root(root), &all).with_limits(2, 100);
    let mut batches = Vec::new();
    while let Some(batch) = planner.next_batch().unwrap() {
        batches.push(batch);
    }

    let orders: Vec<Vec<String>> = batches.iter().map(order).collect();
    assert_eq!(
        orders,
        [
            vec!["skip s", "other p"],
            vec!["other l", "file h2"],
            vec!["file gone"],
            vec!["dir d", "file d/f"],
        ]
    );
    // h1 is the second name of h2's inode, which an earlier batch restores.
    assert_eq!(batches[2].links.len(), 1);
    match &batches[2].links[0].original {
        Original::Earlier { file, rel } => {
            assert_eq!((*file, rel.as_path()), (0, Path::new("h2")));
        }
        Original::InBatch(_) => panic!("h2 is in an earlier batch"),
    }
    let firsts: Vec<usize> = batches.iter().map(|b| b.first_file).collect();
    assert_eq!(firsts, [0, 0, 1, 2]);
    let written: u64 = batches.iter().map(Plan::total_bytes).sum();
    assert_eq!(written, 12);
    // The progress total also counts what the index lacks (gone's 12 bytes).
    let total = content_bytes(&repo, &index, &Located::Root(root), &all);
    assert_eq!(total, 3 + 12 + 3 + 6);
}
