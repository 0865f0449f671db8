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
    pub abs: PathBuf,
    pub rel: PathBuf,
    pub node: Option<Node>,
}

/// A regular file to create and fill.
pub(crate) struct FileJob {
    pub rel: PathBuf,
    pub abs: PathBuf,
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
    pub abs: PathBuf,
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
    pub abs: PathBuf,
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
    target: &'a Path,
    filters: &'a Filters,
    plan: Plan,
    /// Directories already in the plan (the target's own path is the empty one).
    planned_dirs: HashSet<PathBuf>,
    dir_nodes: HashMap<PathBuf, Node>,
    hardlinks: HashMap<(u64, u64), usize>,
    packs: HashMap<u32, HashMap<BlobId, BlobNeed>>,
}

/// Plans restoring what `start` names into `target`; reads the repository, never the target.
pub(crate) fn build(
    repo: &Repository,
    index: &Index,
    start: &Located,
    target: &Path,
    filters: &Filters,
) -> Result<Plan> {
    let mut b = Builder {
        repo,
        index,
        target,
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
                    abs: target.to_path_buf(),
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
            abs: self.target.join(rel),
            rel: rel.to_path_buf(),
            node: self.dir_nodes.get(rel).cloned(),
        });
    }

    fn entry(&mut self, node: Node, rel: PathBuf) {
        if let Some(parent) = rel.parent() {
            self.plan_dir(parent);
        }
        let abs = self.target.join(&rel);
        match &node.kind {
            NodeKind::File { .. } => self.file(node, rel, abs),
            NodeKind::Dir { .. } => {}
            NodeKind::Socket => self.plan.steps.push(Step::Skip {
                rel,
                why: "sockets are recorded but not restored".into(),
            }),
            _ => {
                self.plan.steps.push(Step::Other(self.plan.others.len()));
                self.plan.others.push(OtherEntry { abs, rel, node });
            }
        }
    }

    fn file(&mut self, node: Node, rel: PathBuf, abs: PathBuf) {
        if node.links > 1 {
            let key = (node.device, node.inode);
            if let Some(&original) = self.hardlinks.get(&key) {
                self.plan.links.push(HardLink { original, rel, abs });
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
        self.plan.files.push(FileJob {
            rel,
            abs,
            node,
            missing,
        });
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
