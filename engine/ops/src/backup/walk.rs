//! Walking a source tree bottom-up: every directory becomes a tree blob after its entries are
//! stored. Entries of a directory are processed in parallel (rayon); unchanged files are taken
//! from the parent snapshot without being read.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::excludes::Filters;
use super::file::{ReadFailure, read_file};
use super::metadata::{NameCache, list_dir, node_from_metadata, read_xattrs};
use super::options::{FileChange, Warning};
use super::store::Store;
use crate::progress::Progress;
use kairn_format::error::Result;
use kairn_format::id::BlobId;
use kairn_format::id::BlobKind;
use kairn_format::tree::{Extent, Node, NodeKind, Tree};
use kairn_repository::index::Index;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;

/// Counters for the snapshot summary.
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) files_new: AtomicU64,
    pub(crate) files_changed: AtomicU64,
    pub(crate) files_unmodified: AtomicU64,
    pub(crate) dirs: AtomicU64,
    pub(crate) others: AtomicU64,
    pub(crate) total_bytes: AtomicU64,
    pub(crate) bytes_read: AtomicU64,
}

/// Walks and stores a source tree.
pub struct Archiver<'a> {
    pub(crate) repo: &'a Repository,
    pub(crate) index: &'a Index,
    pub(crate) saver: Store<'a>,
    pub(crate) filters: Filters,
    pub(crate) one_file_system: bool,
    pub(crate) progress: &'a dyn Progress,
    pub(crate) names: NameCache,
    pub(crate) warnings: Mutex<Vec<Warning>>,
    /// Entries left out on purpose, with why (not warnings: the snapshot is complete).
    pub(crate) notes: Mutex<Vec<Warning>>,
    /// The local repository's directory as (device, inode): never stored into itself.
    pub(crate) repository_dir: Option<(u64, u64)>,
    pub(crate) counters: Counters,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<'a> Archiver<'a> {
    /// An archiver that stores into `saver`, which dedups against `index`.
    pub(crate) fn new(
        repo: &'a Repository,
        saver: Store<'a>,
        index: &'a Index,
        filters: Filters,
        one_file_system: bool,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        Ok(Self {
            repo,
            index,
            saver,
            filters,
            one_file_system,
            progress,
            names: NameCache::default(),
            warnings: Mutex::default(),
            notes: Mutex::default(),
            repository_dir: None,
            counters: Counters::default(),
        })
    }

    /// Leaves out the directory at `dir` (the repository being written), wherever the walk meets
    /// it. Compared by device and inode, so another path to it (a link, a bind mount) is caught.
    pub(crate) fn skip_repository(&mut self, dir: &Path) {
        self.repository_dir = std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()));
    }

    pub(crate) fn warn(&self, path: &Path, message: String) {
        self.progress.warning(path, &message);
        lock(&self.warnings).push(Warning {
            path: path.to_path_buf(),
            message,
        });
    }

    /// Stores a tree and returns its id.
    pub(crate) fn save_tree(&self, mut tree: Tree) -> Result<BlobId> {
        tree.sort();
        let (id, _) = self.saver.save(BlobKind::Tree, &tree.encode()?)?;
        Ok(id)
    }

    fn parent_subtree(&self, parent: Option<&Node>) -> Option<Tree> {
        let id = parent?.subtree()?;
        match load_tree(self.repo, self.index, &id) {
            Ok(tree) => Some(tree),
            Err(e) => {
                tracing::warn!(
                    "parent tree {} unreadable, reading everything below it: {e}",
                    id.short()
                );
                None
            }
        }
    }

    /// Stores directory `path` and everything below it; returns its tree id.
    pub(crate) fn dir_tree(
        &self,
        path: &Path,
        parent_tree: Option<Tree>,
        root_dev: u64,
    ) -> Result<BlobId> {
        let mut names = list_dir(path).unwrap_or_else(|e| {
            self.warn(path, format!("cannot list directory: {e}"));
            Vec::new()
        });
        self.filters.drop_marked(path, &mut names);
        names.sort();
        let nodes: Vec<Option<Node>> = names
            .par_iter()
            .map(|name| {
                let child = path.join(std::ffi::OsStr::from_bytes(name));
                if self.filters.excludes_path(&child) {
                    return Ok(None);
                }
                let parent_node = parent_tree.as_ref().and_then(|t| t.find(name));
                self.entry_node(&child, name, parent_node, root_dev)
            })
            .collect::<Result<_>>()?;
        self.save_tree(Tree {
            nodes: nodes.into_iter().flatten().collect(),
        })
    }

    /// Builds the node for one entry, storing its content; `None` when it could not be read.
    pub(crate) fn entry_node(
        &self,
        path: &Path,
        name: &[u8],
        parent: Option<&Node>,
        root_dev: u64,
    ) -> Result<Option<Node>> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.warn(path, format!("cannot stat: {e}"));
                return Ok(None);
            }
        };
        if meta.is_dir() && self.repository_dir == Some((meta.dev(), meta.ino())) {
            lock(&self.notes).push(Warning {
                path: path.to_path_buf(),
                message: "left out: it is the repository this backup writes to".into(),
            });
            return Ok(None);
        }
        if self.filters.too_large(meta.is_file(), meta.len()) {
            return Ok(None);
        }
        let mut node = node_from_metadata(name, &meta, &self.names);
        match read_xattrs(path) {
            Ok(x) => node.xattrs = x,
            Err(e) => self.warn(path, format!("cannot read extended attributes: {e}")),
        }
        match &mut node.kind {
            NodeKind::Dir { subtree } => {
                add(&self.counters.dirs, 1);
                *subtree = if self.one_file_system && meta.dev() != root_dev {
                    self.save_tree(Tree::default())?
                } else {
                    self.dir_tree(path, self.parent_subtree(parent), root_dev)?
                };
            }
            NodeKind::Symlink { target } => {
                add(&self.counters.others, 1);
                match std::fs::read_link(path) {
                    Ok(t) => *target = t.as_os_str().as_bytes().to_vec(),
                    Err(e) => {
                        self.warn(path, format!("cannot read symlink: {e}"));
                        return Ok(None);
                    }
                }
            }
            NodeKind::File { .. } => return self.file_node(path, node, meta.len(), parent),
            _ => add(&self.counters.others, 1),
        }
        Ok(Some(node))
    }

    fn unchanged_content(&self, node: &Node, parent: Option<&Node>) -> Option<(u64, Vec<Extent>)> {
        let parent = parent?;
        let NodeKind::File { size, content } = &parent.kind else {
            return None;
        };
        let same =
            parent.mtime == node.mtime && parent.ctime == node.ctime && parent.inode == node.inode;
        let all_stored = content.iter().all(|e| match e {
            Extent::Data { id, .. } => self.saver.known(id),
            Extent::Hole { .. } => true,
        });
        (same && all_stored).then(|| (*size, content.clone()))
    }

    fn file_node(
        &self,
        path: &Path,
        mut node: Node,
        meta_size: u64,
        parent: Option<&Node>,
    ) -> Result<Option<Node>> {
        if self.progress.should_stop() {
            return Err(kairn_format::error::Error::canceled());
        }
        if let Some((size, content)) = self
            .unchanged_content(&node, parent)
            .filter(|(s, _)| *s == meta_size)
        {
            add(&self.counters.files_unmodified, 1);
            add(&self.counters.total_bytes, size);
            node.kind = NodeKind::File { size, content };
            self.progress.file_status(path, FileChange::Unchanged, size);
            self.progress.file_done(path);
            return Ok(Some(node));
        }
        self.progress.file_started(path);
        match read_file(self.repo, &self.saver, path, self.progress) {
            Ok(read) => {
                if read.changed_while_read {
                    self.warn(
                        path,
                        "file changed while it was read; stored as last read".into(),
                    );
                }
                let xattrs = std::mem::take(&mut node.xattrs);
                node = node_from_metadata(&node.name, &read.meta, &self.names);
                node.xattrs = xattrs;
                node.kind = NodeKind::File {
                    size: read.size,
                    content: read.extents,
                };
                add(&self.counters.bytes_read, read.bytes_read);
                add(&self.counters.total_bytes, read.size);
                let (counter, change) = if parent.is_some() {
                    (&self.counters.files_changed, FileChange::Modified)
                } else {
                    (&self.counters.files_new, FileChange::New)
                };
                add(counter, 1);
                self.progress.file_status(path, change, read.size);
                self.progress.file_done(path);
                Ok(Some(node))
            }
            Err(ReadFailure::Source(e)) => {
                self.warn(path, format!("cannot read file: {e}"));
                Ok(None)
            }
            Err(ReadFailure::Repository(e)) => Err(e),
        }
    }
}
