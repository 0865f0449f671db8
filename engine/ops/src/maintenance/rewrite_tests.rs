//! The tree rewrite over trees held in memory.

use std::cell::RefCell;

use super::*;
use kairn_format::id::Id;
use kairn_format::tree::{Extent, Timestamp};

/// Trees by the BLAKE3 of their encoding; counts what was saved.
#[derive(Default)]
struct Memory {
    trees: RefCell<HashMap<BlobId, Tree>>,
    saved: RefCell<u32>,
}

impl Memory {
    fn put(&self, tree: Tree) -> BlobId {
        let id = BlobId(Id(*blake3::hash(&tree.encode().unwrap()).as_bytes()));
        self.trees.borrow_mut().insert(id, tree);
        id
    }

    fn names(&self, id: &BlobId) -> Vec<String> {
        self.load(id)
            .unwrap()
            .nodes
            .iter()
            .map(Node::display_name)
            .collect()
    }
}

impl TreeStore for Memory {
    fn load(&self, id: &BlobId) -> Result<Tree> {
        self.trees
            .borrow()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::invalid("no such tree"))
    }

    fn save(&self, tree: &Tree) -> Result<BlobId> {
        *self.saved.borrow_mut() += 1;
        Ok(self.put(tree.clone()))
    }
}

fn node(name: &str, kind: NodeKind) -> Node {
    Node {
        name: name.as_bytes().to_vec(),
        kind,
        mode: 0o644,
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
        xattrs: Vec::new(),
    }
}

fn file(name: &str, size: u64) -> Node {
    node(
        name,
        NodeKind::File {
            size,
            content: vec![Extent::Hole { len: size }],
        },
    )
}

fn dir(name: &str, subtree: BlobId) -> Node {
    node(name, NodeKind::Dir { subtree })
}

/// /data/{a.txt, keep/{b.txt}, secret/{key, more/{deep}}, link} and /etc/x.
fn sample(m: &Memory) -> (BlobId, BlobId) {
    let keep = m.put(Tree {
        nodes: vec![file("b.txt", 5)],
    });
    let more = m.put(Tree {
        nodes: vec![file("deep", 7)],
    });
    let secret = m.put(Tree {
        nodes: vec![file("key", 11), dir("more", more)],
    });
    let data = m.put(Tree {
        nodes: vec![
            file("a.txt", 3),
            dir("keep", keep),
            node(
                "link",
                NodeKind::Symlink {
                    target: b"a".to_vec(),
                },
            ),
            dir("secret", secret),
        ],
    });
    let etc = m.put(Tree {
        nodes: vec![file("x", 1)],
    });
    let root = m.put(Tree {
        nodes: vec![dir("data", data), dir("etc", etc)],
    });
    (root, keep)
}

fn matcher(ex: &[&str], iex: &[&str]) -> Matcher {
    let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Matcher::new(&v(ex), &v(iex)).unwrap()
}

#[test]
fn removes_a_directory_whole_and_reuses_untouched_subtrees() {
    let m = Memory::default();
    let (root, keep) = sample(&m);
    let matcher = matcher(&["/data/secret"], &[]);
    let mut rw = TreeRewriter::new(&m, &matcher);
    let out = rw.tree(Path::new("/"), root).unwrap();
    assert_eq!(
        out.removed,
        vec![RemovedEntry {
            path: "/data/secret".into(),
            kind: "dir",
            size: 18,
        }]
    );
    assert_eq!(
        out.counts,
        Counts {
            files: 2,
            dirs: 2,
            others: 0,
            bytes: 18
        }
    );
    // Two trees written (data and the root); keep/ and etc/ keep their ids.
    assert_eq!(*m.saved.borrow(), 2);
    assert_eq!(m.names(&out.id), vec!["data", "etc"]);
    let data = m.load(&out.id).unwrap().nodes[0].subtree().unwrap();
    assert_eq!(m.names(&data), vec!["a.txt", "keep", "link"]);
    assert_eq!(m.load(&data).unwrap().nodes[1].subtree(), Some(keep));

    // Again: remembered, nothing saved twice.
    let again = rw.tree(Path::new("/"), root).unwrap();
    assert_eq!(again.id, out.id);
    assert_eq!(*m.saved.borrow(), 2);
}

#[test]
fn name_patterns_match_anywhere_and_nothing_matching_changes_nothing() {
    let m = Memory::default();
    let (root, _) = sample(&m);
    let by_name = matcher(&["*.txt"], &[]);
    let out = TreeRewriter::new(&m, &by_name)
        .tree(Path::new("/"), root)
        .unwrap();
    let paths: Vec<&str> = out.removed.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, vec!["/data/a.txt", "/data/keep/b.txt"]);
    assert_eq!(out.counts.bytes, 8);

    let none = matcher(&["*.nothing"], &[]);
    let saved = *m.saved.borrow();
    let out = TreeRewriter::new(&m, &none)
        .tree(Path::new("/"), root)
        .unwrap();
    assert_eq!(out.id, root);
    assert!(out.removed.is_empty());
    assert_eq!(*m.saved.borrow(), saved);
}

#[test]
fn case_insensitive_patterns_fold_case() {
    let m = Memory::default();
    let (root, _) = sample(&m);
    let exact = matcher(&["/DATA/LINK"], &[]);
    assert!(
        TreeRewriter::new(&m, &exact)
            .tree(Path::new("/"), root)
            .unwrap()
            .removed
            .is_empty()
    );
    let folded = matcher(&[], &["/DATA/LINK"]);
    let out = TreeRewriter::new(&m, &folded)
        .tree(Path::new("/"), root)
        .unwrap();
    assert_eq!(out.removed.len(), 1);
    assert_eq!(out.removed[0].kind, "symlink");
    assert_eq!(out.counts.others, 1);
}

#[test]
fn no_pattern_is_refused() {
    assert!(Matcher::new(&[], &[]).is_err());
    assert!(Matcher::new(&["a[".into()], &[]).is_err());
}

#[test]
fn summaries_lose_what_was_removed() {
    let s = Summary {
        files_new: 4,
        files_changed: 1,
        files_unmodified: 2,
        dirs: 5,
        others: 1,
        total_bytes: 100,
        ..Default::default()
    };
    let c = Counts {
        files: 4,
        dirs: 2,
        others: 1,
        bytes: 30,
    };
    let out = corrected(s, &c);
    assert_eq!(
        (out.files_unmodified, out.files_changed, out.files_new),
        (0, 0, 3)
    );
    assert_eq!((out.dirs, out.others, out.total_bytes), (3, 0, 70));
}
