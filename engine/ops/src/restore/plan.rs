//! Planning a restore: walk the snapshot's trees (read through the index) into a plan of every
//! entry to make below the target, the blobs each file needs grouped by pack, and the metadata
//! to apply afterwards. Pure data: nothing here looks at or changes the target, so whatever
//! depends on it (is a file already in place, what stands in the way) is decided when the
//! entries are created (`create.rs`).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::report::RestoreProblem;
use crate::backup::Excludes;
use kairn_format::error::Result;
use kairn_format::id::{BlobId, PackId};
use kairn_format::tree::{Extent, Node, NodeKind};
use kairn_repository::index::Index;
use kairn_repository::locate::Located;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;

pub(crate) struct Filters {
    pub include: Excludes,
    pub exclude: Excludes,
}

/// A directory to make, with its metadata when the snapshot has it.
pub(crate) struct DirEntry {
    pub rel: PathBuf,
    pub node: Option<Node>,
}

/// A regular file to create and fill.
pub(crate) struct FileJob {
    pub rel: PathBuf,
    pub node: Node,
    /// Why its content cannot be restored, found while planning (a blob the index lacks).
    /// The file is still created, as before, and removed at the end.
    pub missing: Option<String>,
}

/// A hard link to create once the data of the file it names is written.
pub(crate) struct HardLink {
    /// Index in `Plan::files` of the first name of the inode.
    pub original: usize,
    pub rel: PathBuf,
}

/// Where one blob goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlobTarget {
    pub file: u32,
    pub offset: u64,
}

/// A blob to read from a pack, and every place it goes.
pub(crate) struct BlobNeed {
    pub id: BlobId,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    pub targets: Vec<BlobTarget>,
}

/// Everything one pack contributes, by offset.
pub(crate) struct PackWork {
    pub pack: PackId,
    pub blobs: Vec<BlobNeed>,
}

/// A symlink, device or FIFO.
pub(crate) struct OtherEntry {
    pub rel: PathBuf,
    pub node: Node,
}

/// One entry to create, in the order of the walk (parents before children). The lists of the
/// plan say what each entry is; this says when, so that creating them on disk happens in the
/// same order as the walk.
pub(crate) enum Step {
    /// `Plan::dirs[i]`.
    Dir(usize),
    /// `Plan::files[i]`.
    File(usize),
    /// `Plan::others[i]`.
    Other(usize),
    /// An entry recorded but never restored (a socket): a warning in its place.
    Skip { rel: PathBuf, why: String },
}

pub(crate) struct Plan {
    /// What to create, in order. The target itself, when it stands for a directory of the
    /// snapshot, is in `dirs` (for its metadata) but not here: it exists already.
    pub steps: Vec<Step>,
    /// Directories in creation order.
    pub dirs: Vec<DirEntry>,
    pub files: Vec<FileJob>,
    pub links: Vec<HardLink>,
    pub others: Vec<OtherEntry>,
    /// The content of every file, by pack, sorted by pack id and blobs by offset.
    pub packs: Vec<PackWork>,
    /// Directories whose listing could not be read: everything below them is lost.
    pub lost_dirs: Vec<RestoreProblem>,
}

impl Plan {
    pub fn total_bytes(&self) -> u64 {
        self.packs
            .iter()
            .flat_map(|p| &p.blobs)
            .map(|b| u64::from(b.raw_length) * b.targets.len() as u64)
            .sum()
    }

    /// Drops the content of files that will not be written (already in place, or not
    /// created), so that no pack is read, and no byte counted, for them.
    pub fn skip_content(&mut self, files: &HashSet<usize>) {
        if files.is_empty() {
            return;
        }
        for work in &mut self.packs {
            for need in &mut work.blobs {
                need.targets.retain(|t| !files.contains(&(t.file as usize)));
            }
            work.blobs.retain(|need| !need.targets.is_empty());
        }
        self.packs.retain(|work| !work.blobs.is_empty());
    }
}

struct Builder<'a> {
    repo: &'a Repository,
    index: &'a Index,
    filters: &'a Filters,
    plan: Plan,
    /// Directories already in the plan (the target's own path is the empty one).
    planned_dirs: HashSet<PathBuf>,
    dir_nodes: HashMap<PathBuf, Node>,
    hardlinks: HashMap<(u64, u64), usize>,
    packs: HashMap<u32, HashMap<BlobId, BlobNeed>>,
}

/// Plans restoring what `start` names; reads the repository, never the target. Every path in
/// the plan is relative to the target.
pub(crate) fn build(
    repo: &Repository,
    index: &Index,
    start: &Located,
    filters: &Filters,
) -> Result<Plan> {
    let mut b = Builder {
        repo,
        index,
        filters,
        plan: Plan {
            steps: Vec::new(),
            dirs: Vec::new(),
            files: Vec::new(),
            links: Vec::new(),
            others: Vec::new(),
            packs: Vec::new(),
            lost_dirs: Vec::new(),
        },
        planned_dirs: HashSet::new(),
        dir_nodes: HashMap::new(),
        hardlinks: HashMap::new(),
        packs: HashMap::new(),
    };
    b.planned_dirs.insert(PathBuf::new());
    let include_all = filters.include.is_empty();
    match start {
        Located::Root(tree) => b.walk(*tree, include_all)?,
        Located::Node(node) => match node.subtree() {
            Some(tree) => {
                b.plan.dirs.push(DirEntry {
                    rel: PathBuf::new(),
                    node: Some(node.clone()),
                });
                b.walk(tree, include_all)?;
            }
            None => b.entry(node.clone(), PathBuf::from(OsStr::from_bytes(&node.name))),
        },
    }
    let mut packs: Vec<PackWork> = b
        .packs
        .into_iter()
        .map(|(pos, blobs)| {
            let mut blobs: Vec<BlobNeed> = blobs.into_values().collect();
            blobs.sort_by_key(|n| n.offset);
            PackWork {
                pack: b.index.pack(pos).0,
                blobs,
            }
        })
        .collect();
    packs.sort_by_key(|p| p.pack);
    b.plan.packs = packs;
    Ok(b.plan)
}

impl Builder<'_> {
    fn walk(&mut self, root: BlobId, included: bool) -> Result<()> {
        let mut stack = vec![(root, PathBuf::new(), included)];
        while let Some((tree_id, rel_dir, included)) = stack.pop() {
            let tree = match load_tree(self.repo, self.index, &tree_id) {
                Ok(t) => t,
                Err(e) => {
                    if e.kind() != crate::ErrorKind::Corrupt
                        && e.kind() != crate::ErrorKind::NotFound
                    {
                        return Err(e);
                    }
                    let shown = if rel_dir.as_os_str().is_empty() {
                        PathBuf::from("/")
                    } else {
                        rel_dir.clone()
                    };
                    let message = format!("directory contents lost: {e}");
                    self.plan.lost_dirs.push(RestoreProblem {
                        path: shown,
                        message,
                    });
                    continue;
                }
            };
            for node in tree.nodes.into_iter().rev() {
                let rel = rel_dir.join(OsStr::from_bytes(&node.name));
                if self.filters.exclude.matches(&Path::new("/").join(&rel)) {
                    continue;
                }
                let inc = included || self.filters.include.matches(&Path::new("/").join(&rel));
                if let Some(sub) = node.subtree() {
                    self.dir_nodes.insert(rel.clone(), node);
                    if inc {
                        self.plan_dir(&rel);
                    }
                    stack.push((sub, rel, inc));
                } else if inc {
                    self.entry(node, rel);
                }
            }
        }
        Ok(())
    }

    /// Plans `rel` and every directory above it not planned yet, parents first.
    fn plan_dir(&mut self, rel: &Path) {
        if self.planned_dirs.contains(rel) {
            return;
        }
        if let Some(parent) = rel.parent() {
            self.plan_dir(parent);
        }
        self.planned_dirs.insert(rel.to_path_buf());
        self.plan.steps.push(Step::Dir(self.plan.dirs.len()));
        self.plan.dirs.push(DirEntry {
            rel: rel.to_path_buf(),
            node: self.dir_nodes.get(rel).cloned(),
        });
    }

    fn entry(&mut self, node: Node, rel: PathBuf) {
        if let Some(parent) = rel.parent() {
            self.plan_dir(parent);
        }
        match &node.kind {
            NodeKind::File { .. } => self.file(node, rel),
            NodeKind::Dir { .. } => {}
            NodeKind::Socket => self.plan.steps.push(Step::Skip {
                rel,
                why: "sockets are recorded but not restored".into(),
            }),
            _ => {
                self.plan.steps.push(Step::Other(self.plan.others.len()));
                self.plan.others.push(OtherEntry { rel, node });
            }
        }
    }

    fn file(&mut self, node: Node, rel: PathBuf) {
        if node.links > 1 {
            let key = (node.device, node.inode);
            if let Some(&original) = self.hardlinks.get(&key) {
                self.plan.links.push(HardLink { original, rel });
                return;
            }
            self.hardlinks.insert(key, self.plan.files.len());
        }
        let NodeKind::File { content, .. } = &node.kind else {
            return;
        };
        let file_idx = self.plan.files.len();
        let missing = self.need_content(file_idx, content);
        self.plan.steps.push(Step::File(file_idx));
        self.plan.files.push(FileJob { rel, node, missing });
    }

    /// Records where each blob of a file goes; returns why the content cannot be restored
    /// when the index lacks one (the last such reason, as before).
    fn need_content(&mut self, file_idx: usize, content: &[Extent]) -> Option<String> {
        let mut offset = 0u64;
        let mut missing = None;
        for extent in content {
            if let Extent::Data { id, len } = *extent {
                match self.index.get(&id) {
                    Some(loc) if loc.raw_length == len => {
                        let need = self
                            .packs
                            .entry(loc.pack)
                            .or_default()
                            .entry(id)
                            .or_insert_with(|| BlobNeed {
                                id,
                                offset: loc.offset,
                                length: loc.length,
                                raw_length: loc.raw_length,
                                targets: Vec::new(),
                            });
                        need.targets.push(BlobTarget {
                            file: file_idx as u32,
                            offset,
                        });
                    }
                    Some(_) => {
                        missing = Some(format!(
                            "blob {} has a different length in the index",
                            id.short()
                        ))
                    }
                    None => missing = Some(format!("blob {} is not in the index", id.short())),
                }
            }
            offset += extent.len();
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use kairn_format::crypto::KdfParams;
    use kairn_format::id::BlobKind;
    use kairn_format::tree::{Timestamp, Tree};
    use kairn_repository::repo::InitOptions;
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
        Filters {
            include: Excludes::new(&include).unwrap(),
            exclude: Excludes::new(&[]).unwrap(),
        }
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

        let plan = build(&repo, &index, &Located::Root(root), &filters(&[])).unwrap();

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
        assert_eq!(plan.files[plan.links[0].original].rel, Path::new("h2"));
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
        let mut plan = build(&repo, &index, &Located::Root(root), &filters(&["/d/f"])).unwrap();

        assert_eq!(order(&plan), ["dir d", "file d/f"]);
        assert_eq!(plan.total_bytes(), 9);
        plan.skip_content(&HashSet::from([0]));
        assert!(plan.packs.is_empty());
        assert_eq!(plan.total_bytes(), 0);
    }
}
