//! Planning a restore: create every entry, and group the blobs files need by pack.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::existing::already_in_place;
use super::fs::{clear_for_entry, create_file, make_dir};
use super::{RestoreProblem, RestoreReport};
use crate::backup::Excludes;
use kairn_format::error::{Error, Result};
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

/// A regular file to fill.
pub(crate) struct FileJob {
    pub rel: PathBuf,
    pub abs: PathBuf,
    pub node: Node,
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

/// Non-file, non-directory entries already created; metadata comes later.
pub(crate) struct OtherEntry {
    pub abs: PathBuf,
    pub rel: PathBuf,
    pub node: Node,
}

pub(crate) struct Plan {
    pub files: Vec<FileJob>,
    /// Hard links to create after the data: (file index of the original, link rel, link abs).
    pub links: Vec<(usize, PathBuf, PathBuf)>,
    /// Directories in creation order, with their metadata when the snapshot has it.
    pub dirs: Vec<(PathBuf, PathBuf, Option<Node>)>,
    pub others: Vec<OtherEntry>,
    pub packs: Vec<PackWork>,
    /// File index → why it could not be restored.
    pub failures: Mutex<BTreeMap<usize, String>>,
    /// Directories whose listing could not be read: everything below them is lost.
    pub lost_dirs: Vec<RestoreProblem>,
    pub warnings: Vec<RestoreProblem>,
    /// Files already in place with the right content: nothing to write.
    pub unchanged: u64,
}

impl Plan {
    pub fn total_bytes(&self) -> u64 {
        self.packs
            .iter()
            .flat_map(|p| &p.blobs)
            .map(|b| u64::from(b.raw_length) * b.targets.len() as u64)
            .sum()
    }

    pub fn fail(&self, file: usize, message: String) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(file)
            .or_insert(message);
    }

    pub fn failed(&self, file: usize) -> bool {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(&file)
    }

    /// Removes failed files (so nothing wrong is left behind), creates hard links, and counts.
    pub fn finish_files(&mut self) -> Result<RestoreReport> {
        let failures = std::mem::take(
            &mut *self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut report = RestoreReport {
            warnings: std::mem::take(&mut self.warnings),
            errors: std::mem::take(&mut self.lost_dirs),
            unchanged: self.unchanged,
            ..Default::default()
        };
        for (i, job) in self.files.iter().enumerate() {
            if let Some(message) = failures.get(&i) {
                let _ = std::fs::remove_file(&job.abs);
                report.errors.push(RestoreProblem {
                    path: job.rel.clone(),
                    message: message.clone(),
                });
            } else {
                report.files += 1;
                report.bytes += job.node.size();
            }
        }
        for (orig, rel, abs) in &self.links {
            if failures.contains_key(orig) {
                report.errors.push(RestoreProblem {
                    path: rel.clone(),
                    message: "hard link to a file that could not be restored".into(),
                });
                continue;
            }
            let linked =
                clear_for_entry(abs).and_then(|()| std::fs::hard_link(&self.files[*orig].abs, abs));
            match linked {
                Ok(()) => report.files += 1,
                Err(e) => report.errors.push(RestoreProblem {
                    path: rel.clone(),
                    message: format!("cannot create hard link: {e}"),
                }),
            }
        }
        report.dirs = self.dirs.len() as u64;
        report.others = self.others.len() as u64;
        Ok(report)
    }
}

struct Builder<'a> {
    repo: &'a Repository,
    index: &'a Index,
    target: &'a Path,
    filters: &'a Filters,
    plan: Plan,
    created_dirs: HashSet<PathBuf>,
    dir_nodes: HashMap<PathBuf, Node>,
    hardlinks: HashMap<(u64, u64), usize>,
    packs: HashMap<u32, HashMap<BlobId, BlobNeed>>,
}

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
            files: Vec::new(),
            links: Vec::new(),
            dirs: Vec::new(),
            others: Vec::new(),
            packs: Vec::new(),
            failures: Mutex::default(),
            lost_dirs: Vec::new(),
            warnings: Vec::new(),
            unchanged: 0,
        },
        created_dirs: HashSet::new(),
        dir_nodes: HashMap::new(),
        hardlinks: HashMap::new(),
        packs: HashMap::new(),
    };
    b.created_dirs.insert(PathBuf::new());
    let include_all = filters.include.is_empty();
    match start {
        Located::Root(tree) => b.walk(*tree, include_all)?,
        Located::Node(node) => match node.subtree() {
            Some(tree) => {
                b.plan
                    .dirs
                    .push((target.to_path_buf(), PathBuf::new(), Some(node.clone())));
                b.walk(tree, include_all)?;
            }
            None => b.entry(
                node.clone(),
                PathBuf::from(OsStr::from_bytes(&node.name)),
                include_all,
            )?,
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
                    if inc {
                        self.dir_nodes.insert(rel.clone(), node);
                        self.ensure_dir(&rel)?;
                    } else {
                        self.dir_nodes.insert(rel.clone(), node);
                    }
                    stack.push((sub, rel, inc));
                } else if inc {
                    self.entry(node, rel, inc)?;
                }
            }
        }
        Ok(())
    }

    fn ensure_dir(&mut self, rel: &Path) -> Result<()> {
        if self.created_dirs.contains(rel) {
            return Ok(());
        }
        if let Some(parent) = rel.parent() {
            self.ensure_dir(parent)?;
        }
        let abs = self.target.join(rel);
        if let Err(e) = make_dir(&abs) {
            return Err(Error::io(
                format!("cannot create directory {}", abs.display()),
                e,
            ));
        }
        self.created_dirs.insert(rel.to_path_buf());
        self.plan
            .dirs
            .push((abs, rel.to_path_buf(), self.dir_nodes.get(rel).cloned()));
        Ok(())
    }

    fn problem(&mut self, rel: &Path, message: String) {
        self.plan.warnings.push(RestoreProblem {
            path: rel.to_path_buf(),
            message,
        });
    }

    fn entry(&mut self, node: Node, rel: PathBuf, _included: bool) -> Result<()> {
        if let Some(parent) = rel.parent() {
            self.ensure_dir(parent)?;
        }
        let abs = self.target.join(&rel);
        match &node.kind {
            NodeKind::File { .. } => self.file(node, rel, abs),
            NodeKind::Dir { .. } => Ok(()),
            NodeKind::Socket => {
                self.problem(&rel, "sockets are recorded but not restored".into());
                Ok(())
            }
            _ => {
                if let Err(e) = super::meta::create_special(&abs, &node) {
                    if kairn_format::error::is_no_space(&e) {
                        return Err(Error::io("restore target is full", e));
                    }
                    self.problem(&rel, format!("cannot create: {e}"));
                } else {
                    self.plan.others.push(OtherEntry { abs, rel, node });
                }
                Ok(())
            }
        }
    }

    fn file(&mut self, node: Node, rel: PathBuf, abs: PathBuf) -> Result<()> {
        if node.links > 1 {
            let key = (node.device, node.inode);
            if let Some(&orig) = self.hardlinks.get(&key) {
                self.plan.links.push((orig, rel, abs));
                return Ok(());
            }
            self.hardlinks.insert(key, self.plan.files.len());
        }
        let NodeKind::File { size, content } = &node.kind else {
            return Ok(());
        };
        let file_idx = self.plan.files.len();
        if already_in_place(self.repo.keys(), &abs, &node) {
            self.plan.unchanged += 1;
            self.plan.files.push(FileJob { rel, abs, node });
            return Ok(());
        }
        if let Err(e) = create_file(&abs, *size) {
            if kairn_format::error::is_no_space(&e) {
                return Err(Error::io("restore target is full", e));
            }
            self.plan.files.push(FileJob {
                rel,
                abs,
                node: node.clone(),
            });
            self.plan.fail(file_idx, format!("cannot create file: {e}"));
            return Ok(());
        }
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
        self.plan.files.push(FileJob { rel, abs, node });
        if let Some(message) = missing {
            self.plan.fail(file_idx, message);
        }
        Ok(())
    }
}
