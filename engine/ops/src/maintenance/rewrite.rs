//! `rewrite`: removes files and directories from existing snapshots (restic's `rewrite
//! --exclude`), for a secret or a cache that should never have been backed up.
//!
//! Patterns are backup's (`backup::excludes`): with a `/` a glob on the absolute path in the
//! snapshot, without one a glob on the name; a directory that matches goes with everything in
//! it. Trees are rewritten bottom-up, and only those on the way to something removed: every
//! other subtree keeps its id, so the new snapshot shares all it can with the old one.
//!
//! **Write ordering** (repo-format.md §14, invariants 1 and 2). The new trees go through a
//! [`BlobSaver`]; before a rewritten snapshot is written the saver is flushed, so its packs are
//! stored and an index file lists them. Only then is the snapshot written (through the session,
//! which commits first), and only after that, with `forget`, is the old snapshot file removed.
//! Every snapshot's trees are rewritten before any snapshot is written, so a refusal (patterns
//! that would leave a snapshot without a file) writes no snapshot. An interruption leaves at worst unreferenced trees (a prune removes them) or both snapshots.
//!
//! The new snapshot keeps every field of the old one but its tree, its `original` (the old
//! snapshot's `original`, else its id, as `tag` and `copy` set it) and its summary, whose
//! total size and counts lose what was removed. Removed files are taken from the unmodified
//! count first, then changed, then new: which of them a removed file was, the tree does not say.
//!
//! A snapshot rewritten the same way before (another snapshot has its `original` and the new
//! tree) is not written again: sealed files differ on every write, so running a rewrite without
//! `--forget` twice would otherwise leave two equal snapshots. With `forget` the old one goes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::tag::{origin, remove_old, replace};
use crate::backup::Excludes;
use crate::inspect::find::kind_name;
use kairn_format::error::{Error, Result};
use kairn_format::id::{BlobId, BlobKind, SnapshotId};
use kairn_format::snapshot::{Snapshot, Summary};
use kairn_format::tree::{Node, NodeKind, Tree};
use kairn_repository::index::Index;
use kairn_repository::read::{load_tree, tree_blob};
use kairn_repository::repo::Repository;
use kairn_repository::save::BlobSaver;
use kairn_repository::session::Session;

/// What to remove, and whether the old snapshots go.
#[derive(Debug, Clone, Default)]
pub struct RewriteOptions {
    /// Patterns as backup's `--exclude`.
    pub excludes: Vec<String>,
    /// The same, matched without regard to case.
    pub iexcludes: Vec<String>,
    /// Remove each snapshot that was rewritten once its replacement is stored.
    pub forget: bool,
    /// Only say what would be removed; write nothing.
    pub dry_run: bool,
}

/// What was removed: counts and logical bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks, devices, FIFOs, sockets.
    pub others: u64,
    /// Bytes of the files.
    pub bytes: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.files += o.files;
        self.dirs += o.dirs;
        self.others += o.others;
        self.bytes += o.bytes;
    }
}

/// One entry removed (with all below it, for a directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedEntry {
    /// Its absolute path in the snapshot (lossy for names that are not UTF-8).
    pub path: String,
    /// Its type, as `find` names it.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Bytes of the files it is or holds.
    pub size: u64,
}

/// One snapshot rewritten (or that would be).
#[derive(Debug, Clone, Serialize)]
pub struct RewrittenSnapshot {
    /// The snapshot before.
    pub old: SnapshotId,
    /// Its replacement; `None` in a dry run unless it exists already.
    pub new: Option<SnapshotId>,
    /// True when the replacement was already stored by an earlier rewrite (same `original`,
    /// same tree), so none was written.
    pub existing: bool,
    /// What was removed, in path order.
    pub removed: Vec<RemovedEntry>,
    /// Totals of what was removed.
    pub counts: Counts,
    /// With `forget`: the old snapshot was to be removed but the store's retention lock holds
    /// it until then (ms since the epoch, storage time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_locked_until: Option<i64>,
}

/// What `rewrite` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RewriteReport {
    /// Snapshots that had something to remove.
    pub rewritten: Vec<RewrittenSnapshot>,
    /// Snapshots where nothing matched, left alone.
    pub unchanged: Vec<SnapshotId>,
    /// True when the old snapshots are removed.
    pub forget: bool,
    /// True when nothing was written.
    pub dry_run: bool,
}

/// Where trees come from and go to: the repository, or memory in the tests.
pub trait TreeStore {
    /// Loads a tree.
    fn load(&self, id: &BlobId) -> Result<Tree>;
    /// Stores a tree (or only names it), returning its id.
    fn save(&self, tree: &Tree) -> Result<BlobId>;
}

struct StoredTrees<'a> {
    repo: &'a Repository,
    index: &'a Index,
    saver: &'a BlobSaver<'a>,
    dry_run: bool,
}

impl TreeStore for StoredTrees<'_> {
    fn load(&self, id: &BlobId) -> Result<Tree> {
        load_tree(self.repo, self.index, id)
    }

    fn save(&self, tree: &Tree) -> Result<BlobId> {
        if self.dry_run {
            return tree_blob(self.repo, tree).map(|(id, _)| id);
        }
        self.saver
            .save(BlobKind::Tree, &tree.encode()?)
            .map(|(id, _)| id)
    }
}

/// The patterns, as backup's `--exclude` and `--iexclude`.
pub struct Matcher(Excludes);

impl Matcher {
    /// Compiles both kinds of pattern; at least one must be given.
    pub fn new(excludes: &[String], iexcludes: &[String]) -> Result<Self> {
        let set = Excludes::with_insensitive(excludes, iexcludes)?;
        if set.is_empty() {
            return Err(Error::invalid(
                "nothing to remove: give --exclude, --iexclude or --exclude-file",
            ));
        }
        Ok(Self(set))
    }

    /// True when `path` (absolute in the snapshot) is to be removed.
    pub fn matches(&self, path: &Path) -> bool {
        self.0.matches(path)
    }
}

/// A tree once rewritten.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The new tree (the old one when nothing was removed).
    pub id: BlobId,
    /// What was removed below it.
    pub removed: Vec<RemovedEntry>,
    /// Their totals.
    pub counts: Counts,
}

/// Rewrites trees, remembering what it did: by directory path and tree, since the same
/// directory is usually unchanged across snapshots (and a path pattern depends on the path).
pub struct TreeRewriter<'a, S: TreeStore> {
    store: &'a S,
    matcher: &'a Matcher,
    done: HashMap<(PathBuf, BlobId), Outcome>,
    sizes: HashMap<BlobId, Counts>,
}

impl<'a, S: TreeStore> TreeRewriter<'a, S> {
    /// A rewriter over `store`.
    pub fn new(store: &'a S, matcher: &'a Matcher) -> Self {
        Self {
            store,
            matcher,
            done: HashMap::new(),
            sizes: HashMap::new(),
        }
    }

    /// The tree `id` of the directory `dir` without what matches.
    pub fn tree(&mut self, dir: &Path, id: BlobId) -> Result<Outcome> {
        let key = (dir.to_path_buf(), id);
        if let Some(done) = self.done.get(&key) {
            return Ok(done.clone());
        }
        let tree = self
            .store
            .load(&id)
            .map_err(|e| e.with_context("path", dir.display()))?;
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        let mut removed = Vec::new();
        let mut counts = Counts::default();
        for mut node in tree.nodes {
            let path = dir.join(OsStr::from_bytes(&node.name));
            if self.matcher.matches(&path) {
                let c = self.count(&node)?;
                removed.push(RemovedEntry {
                    path: path.to_string_lossy().into_owned(),
                    kind: kind_name(&node.kind),
                    size: c.bytes,
                });
                counts.add(&c);
                continue;
            }
            if let NodeKind::Dir { subtree } = &mut node.kind {
                let below = self.tree(&path, *subtree)?;
                *subtree = below.id;
                removed.extend(below.removed);
                counts.add(&below.counts);
            }
            nodes.push(node);
        }
        // Only entries were dropped, so the nodes are still in canonical order.
        let new = if removed.is_empty() {
            id
        } else {
            self.store.save(&Tree { nodes })?
        };
        let outcome = Outcome {
            id: new,
            removed,
            counts,
        };
        self.done.insert(key, outcome.clone());
        Ok(outcome)
    }

    /// What a node is and holds.
    fn count(&mut self, node: &Node) -> Result<Counts> {
        Ok(match &node.kind {
            NodeKind::File { size, .. } => Counts {
                files: 1,
                bytes: *size,
                ..Default::default()
            },
            NodeKind::Dir { subtree } => {
                let mut c = self.count_tree(*subtree)?;
                c.dirs += 1;
                c
            }
            _ => Counts {
                others: 1,
                ..Default::default()
            },
        })
    }

    /// What the tree `id` holds, all the way down.
    pub fn count_tree(&mut self, id: BlobId) -> Result<Counts> {
        if let Some(c) = self.sizes.get(&id) {
            return Ok(*c);
        }
        let mut total = Counts::default();
        for node in self.store.load(&id)?.nodes {
            total.add(&self.count(&node)?);
        }
        self.sizes.insert(id, total);
        Ok(total)
    }
}

/// The summary without what was removed.
fn corrected(mut s: Summary, c: &Counts) -> Summary {
    s.total_bytes = s.total_bytes.saturating_sub(c.bytes);
    s.dirs = s.dirs.saturating_sub(c.dirs);
    s.others = s.others.saturating_sub(c.others);
    let mut files = c.files;
    for n in [
        &mut s.files_unmodified,
        &mut s.files_changed,
        &mut s.files_new,
    ] {
        let take = files.min(*n);
        *n -= take;
        files -= take;
    }
    s
}

/// Rewrites `snapshots` (chosen by the caller, oldest first) under `session`, whose index
/// `index` was loaded after the session began.
pub fn rewrite(
    repo: &Repository,
    session: &Session,
    index: &Index,
    snapshots: Vec<(SnapshotId, Snapshot)>,
    opts: &RewriteOptions,
) -> Result<RewriteReport> {
    let matcher = Matcher::new(&opts.excludes, &opts.iexcludes)?;
    if opts.forget && !opts.dry_run {
        repo.refuse_append_only("rewrite --forget")?;
    }
    let saver = BlobSaver::new(repo, session, index)?;
    let store = StoredTrees {
        repo,
        index,
        saver: &saver,
        dry_run: opts.dry_run,
    };
    let mut trees = TreeRewriter::new(&store, &matcher);
    let mut report = RewriteReport {
        forget: opts.forget,
        dry_run: opts.dry_run,
        ..Default::default()
    };
    // Every snapshot is decided before any is written, so a refusal writes nothing.
    let mut pending = Vec::new();
    for (id, snap) in snapshots {
        let out = trees
            .tree(Path::new("/"), snap.tree)
            .map_err(|e| e.with_context("snapshot", id.short()))?;
        if out.removed.is_empty() {
            report.unchanged.push(id);
            continue;
        }
        let all = trees.count_tree(snap.tree)?;
        if all.files + all.others > 0
            && all.files + all.others == out.counts.files + out.counts.others
        {
            return Err(Error::invalid(format!(
                "the patterns remove every file from snapshot {}: forget it instead",
                id.short()
            )));
        }
        pending.push((id, snap, out));
    }
    if !opts.dry_run && !pending.is_empty() {
        // Invariant 2 of §14: the trees' packs, then their index, then the snapshots.
        saver.flush()?;
    }
    let earlier = rewritten_before(repo)?;
    for (id, snap, out) in pending {
        let origin = origin(id, &snap);
        let mut done = RewrittenSnapshot {
            old: id,
            new: earlier.get(&(origin, out.id)).copied(),
            existing: false,
            removed: out.removed,
            counts: out.counts,
            old_locked_until: None,
        };
        done.existing = done.new.is_some();
        if opts.dry_run {
            report.rewritten.push(done);
            continue;
        }
        if done.existing {
            // Rewritten the same way before (a rewrite without --forget, run again): the
            // snapshot is there, and a second one would only be a duplicate.
            if opts.forget {
                done.old_locked_until = remove_old(repo, session, id)?;
            }
        } else {
            let new = Snapshot {
                tree: out.id,
                original: Some(origin),
                summary: corrected(snap.summary.clone(), &out.counts),
                ..snap
            };
            let (new_id, locked) = replace(repo, session, id, &new, !opts.forget)?;
            done.new = Some(new_id);
            done.old_locked_until = locked;
        }
        report.rewritten.push(done);
    }
    Ok(report)
}

/// The snapshots that stand for another, by that one's `original` and their tree.
fn rewritten_before(repo: &Repository) -> Result<HashMap<(SnapshotId, BlobId), SnapshotId>> {
    Ok(repo
        .scan_snapshots()?
        .snapshots
        .into_iter()
        .filter_map(|(id, s)| s.original.map(|o| ((o, s.tree), id)))
        .collect())
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
