//! The walk that plans a restore in batches: the snapshot's trees are read depth first (through
//! the index) and their entries handed out a batch at a time, so that what a restore holds is
//! one batch and the walk's frontier, never a record of every file. A million small files cost
//! what a few thousand do.
//!
//! Kept across batches, and so growing with the tree: one path per directory not planned yet
//! when include patterns are given, and one entry per hard-linked inode (so that its later
//! names link to the first). Directories' metadata is applied at the end by the caller, which
//! keeps one record per directory.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::plan::{
    BlobNeed, BlobTarget, DirEntry, FileJob, Filters, HardLink, Listed, Original, OtherEntry,
    PackWork, Plan, Step, data_bytes,
};
use super::report::RestoreProblem;
use kairn_format::error::{ErrorKind, Result};
use kairn_format::id::BlobId;
use kairn_format::tree::{Extent, Node, NodeKind};
use kairn_repository::index::Index;
use kairn_repository::locate::Located;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;

/// Entries per batch: enough that each step of a batch keeps every core busy, few enough that
/// a batch is a few MiB.
const BATCH_STEPS: usize = 8192;
/// Blob placements per batch, which bound a batch of large files the same way.
const BATCH_TARGETS: usize = 32_768;

/// A tree still to list.
struct Frame {
    tree: BlobId,
    rel: PathBuf,
    included: bool,
}

/// The listing being planned: its directory, and the entries not planned yet.
struct Listing {
    rel: PathBuf,
    included: bool,
    nodes: std::iter::Rev<std::vec::IntoIter<Node>>,
}

pub(crate) struct Planner<'a> {
    repo: &'a Repository,
    index: &'a Index,
    filters: &'a Filters,
    stack: Vec<Frame>,
    listing: Option<Listing>,
    /// A lone entry to plan (`SNAP:path` naming something that is not a directory).
    lone: Option<Node>,
    /// With include patterns only: directories planned so far (the target itself is ""), and
    /// the metadata of those not planned yet, for when something below them is included.
    planned_dirs: HashSet<PathBuf>,
    unplanned_dirs: HashMap<PathBuf, Node>,
    /// The first name of each hard-linked inode, by (device, inode): its file number and path.
    hardlinks: HashMap<(u64, u64), (usize, PathBuf)>,
    /// Files planned in earlier batches.
    files_before: usize,
    limits: (usize, usize),
    batch: Batch,
    /// With `--delete`: record each directory's names (`Plan::listed`).
    listing_names: bool,
}

/// The batch being filled.
#[derive(Default)]
struct Batch {
    plan: Option<Plan>,
    packs: HashMap<u32, HashMap<BlobId, BlobNeed>>,
    targets: usize,
}

impl<'a> Planner<'a> {
    pub fn new(
        repo: &'a Repository,
        index: &'a Index,
        start: &Located,
        filters: &'a Filters,
    ) -> Self {
        let mut planner = Self {
            repo,
            index,
            filters,
            stack: Vec::new(),
            listing: None,
            lone: None,
            planned_dirs: HashSet::from([PathBuf::new()]),
            unplanned_dirs: HashMap::new(),
            hardlinks: HashMap::new(),
            files_before: 0,
            limits: (BATCH_STEPS, BATCH_TARGETS),
            batch: Batch::default(),
            listing_names: false,
        };
        let included = filters.include.is_empty();
        match start {
            Located::Root(tree) => planner.push(*tree, PathBuf::new(), included),
            Located::Node(node) => match node.subtree() {
                Some(tree) => {
                    // The target stands for this directory: only its metadata is planned.
                    planner.plan().dirs.push(DirEntry {
                        rel: PathBuf::new(),
                        node: Some(node.clone()),
                    });
                    planner.push(tree, PathBuf::new(), included);
                }
                None => planner.lone = Some(node.clone()),
            },
        }
        planner
    }

    /// Records the names of every directory's listing, for `--delete`.
    pub fn with_listing_names(mut self, on: bool) -> Self {
        self.listing_names = on;
        self
    }

    /// Smaller batches, for tests.
    #[cfg(test)]
    pub fn with_limits(mut self, steps: usize, targets: usize) -> Self {
        self.limits = (steps, targets);
        self
    }

    /// The next batch, or `None` when the walk is done.
    pub fn next_batch(&mut self) -> Result<Option<Plan>> {
        if let Some(node) = self.lone.take() {
            let rel = PathBuf::from(OsStr::from_bytes(&node.name));
            self.entry(node, rel);
        }
        while !self.batch_full() {
            if let Some(listing) = &mut self.listing {
                match listing.nodes.next() {
                    Some(node) => {
                        let (rel_dir, included) = (listing.rel.clone(), listing.included);
                        self.node(node, &rel_dir, included);
                    }
                    None => self.listing = None,
                }
                continue;
            }
            let Some(frame) = self.stack.pop() else {
                break;
            };
            self.list(frame)?;
        }
        Ok(self.take_batch())
    }

    fn push(&mut self, tree: BlobId, rel: PathBuf, included: bool) {
        self.stack.push(Frame {
            tree,
            rel,
            included,
        });
    }

    fn plan(&mut self) -> &mut Plan {
        let first_file = self.files_before;
        self.batch.plan.get_or_insert_with(|| Plan {
            first_file,
            steps: Vec::new(),
            dirs: Vec::new(),
            files: Vec::new(),
            links: Vec::new(),
            others: Vec::new(),
            packs: Vec::new(),
            lost_dirs: Vec::new(),
            listed: Vec::new(),
        })
    }

    fn batch_full(&self) -> bool {
        self.batch
            .plan
            .as_ref()
            .is_some_and(|p| p.steps.len() + p.links.len() >= self.limits.0)
            || self.batch.targets >= self.limits.1
    }

    fn take_batch(&mut self) -> Option<Plan> {
        let batch = std::mem::take(&mut self.batch);
        let mut plan = batch.plan?;
        let mut packs: Vec<PackWork> = batch
            .packs
            .into_iter()
            .map(|(pos, blobs)| {
                let mut blobs: Vec<BlobNeed> = blobs.into_values().collect();
                blobs.sort_by_key(|n| n.offset);
                PackWork {
                    pack: self.index.pack(pos).0,
                    blobs,
                }
            })
            .collect();
        packs.sort_by_key(|p| p.pack);
        plan.packs = packs;
        self.files_before += plan.files.len();
        Some(plan)
    }

    /// Reads one directory's listing; a listing that cannot be read loses what is below it.
    fn list(&mut self, frame: Frame) -> Result<()> {
        match load_tree(self.repo, self.index, &frame.tree) {
            Ok(tree) => {
                if self.listing_names {
                    let listed = Listed {
                        rel: frame.rel.clone(),
                        names: tree.nodes.iter().map(|n| n.name.clone()).collect(),
                        included: frame.included,
                    };
                    self.plan().listed.push(listed);
                }
                self.listing = Some(Listing {
                    rel: frame.rel,
                    included: frame.included,
                    nodes: tree.nodes.into_iter().rev(),
                });
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {
                let path = if frame.rel.as_os_str().is_empty() {
                    PathBuf::from("/")
                } else {
                    frame.rel
                };
                let message = format!("directory contents lost: {e}");
                self.plan().lost_dirs.push(RestoreProblem { path, message });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Plans one entry of a listing (entries last to first, each directory where it is met).
    fn node(&mut self, node: Node, rel_dir: &Path, included: bool) {
        let rel = rel_dir.join(OsStr::from_bytes(&node.name));
        let Some(included) = self.filters.admit(&rel, included) else {
            return;
        };
        match node.subtree() {
            Some(sub) => {
                if included {
                    self.plan_dir(&rel, Some(node));
                } else {
                    self.unplanned_dirs.insert(rel.clone(), node);
                }
                self.push(sub, rel, included);
            }
            None if included => self.entry(node, rel),
            None => {}
        }
    }

    /// Plans directory `rel` (and, with include patterns, every directory above it not planned
    /// yet, parents first). Without include patterns every directory is planned where it is
    /// met, after its parent, so nothing needs remembering.
    fn plan_dir(&mut self, rel: &Path, node: Option<Node>) {
        if !self.filters.include.is_empty() {
            if self.planned_dirs.contains(rel) {
                return;
            }
            if let Some(parent) = rel.parent() {
                let above = self.unplanned_dirs.remove(parent);
                self.plan_dir(parent, above);
            }
            self.planned_dirs.insert(rel.to_path_buf());
        }
        let plan = self.plan();
        plan.steps.push(Step::Dir(plan.dirs.len()));
        plan.dirs.push(DirEntry {
            rel: rel.to_path_buf(),
            node,
        });
    }

    fn entry(&mut self, node: Node, rel: PathBuf) {
        if let Some(parent) = rel.parent()
            && !self.filters.include.is_empty()
        {
            let above = self.unplanned_dirs.remove(parent);
            self.plan_dir(parent, above);
        }
        match &node.kind {
            NodeKind::File { .. } => self.file(node, rel),
            NodeKind::Dir { .. } => {}
            NodeKind::Socket => self.plan().steps.push(Step::Skip {
                rel,
                why: "sockets are recorded but not restored".into(),
            }),
            _ => {
                let plan = self.plan();
                plan.steps.push(Step::Other(plan.others.len()));
                plan.others.push(OtherEntry { rel, node });
            }
        }
    }

    fn file(&mut self, node: Node, rel: PathBuf) {
        let file_idx = self.plan().files.len();
        if node.links > 1 {
            let key = (node.device, node.inode);
            if let Some((number, first)) = self.hardlinks.get(&key) {
                let original = match number.checked_sub(self.files_before) {
                    Some(i) => Original::InBatch(i),
                    None => Original::Earlier {
                        file: *number,
                        rel: first.clone(),
                    },
                };
                let mtime = node.mtime;
                self.plan().links.push(HardLink {
                    original,
                    rel,
                    mtime,
                });
                return;
            }
            let number = self.files_before + file_idx;
            self.hardlinks.insert(key, (number, rel.clone()));
        }
        let NodeKind::File { content, .. } = &node.kind else {
            return;
        };
        let missing = self.need_content(file_idx, content);
        let plan = self.plan();
        plan.steps.push(Step::File(file_idx));
        plan.files.push(FileJob { rel, node, missing });
    }

    /// Records where each blob of a file goes; returns why the content cannot be restored
    /// when the index lacks one (the last such reason).
    fn need_content(&mut self, file_idx: usize, content: &[Extent]) -> Option<String> {
        let mut offset = 0u64;
        let mut missing = None;
        for extent in content {
            if let Extent::Data { id, len } = *extent {
                match self.index.get(&id) {
                    Some(loc) if loc.raw_length == len => {
                        let need = self
                            .batch
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
                        self.batch.targets += 1;
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

/// The bytes a restore of `start` writes (file content without holes; a hard-linked inode
/// once), for progress: a walk of the trees alone, before the batches.
pub(crate) fn content_bytes(
    repo: &Repository,
    index: &Index,
    start: &Located,
    filters: &Filters,
) -> u64 {
    let mut linked = HashSet::new();
    let mut total = 0u64;
    let mut stack = match start {
        Located::Root(tree) => vec![(*tree, PathBuf::new(), filters.include.is_empty())],
        Located::Node(node) => match node.subtree() {
            Some(tree) => vec![(tree, PathBuf::new(), filters.include.is_empty())],
            None => return data_bytes(node),
        },
    };
    while let Some((tree, rel_dir, included)) = stack.pop() {
        let Ok(tree) = load_tree(repo, index, &tree) else {
            continue;
        };
        for node in tree.nodes {
            let rel = rel_dir.join(OsStr::from_bytes(&node.name));
            let Some(included) = filters.admit(&rel, included) else {
                continue;
            };
            if let Some(sub) = node.subtree() {
                stack.push((sub, rel, included));
            } else if included && (node.links <= 1 || linked.insert((node.device, node.inode))) {
                total += data_bytes(&node);
            }
        }
    }
    total
}
