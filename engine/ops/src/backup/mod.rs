//! Backup: walk the sources, store new content, then write the packs, the index and, last, the
//! snapshot.

pub mod excludes;
mod file;
pub mod memory;
mod metadata;
pub mod options;
mod publish;
pub mod resume;
mod scan;
mod shrinking;
mod store;
mod walk;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub use self::excludes::{CACHEDIR_TAG, Excludes, Filters};
use self::metadata::{node_from_metadata, read_xattrs};
pub use self::options::{BackupOptions, BackupOutcome, FileChange, ParentChoice, Warning};
pub use self::publish::DryRunOutcome;
use self::publish::{Pending, finish, summarize};
pub use self::scan::{ScanTotals, scan_totals};
use self::store::{DryRun, Store};
use self::walk::Archiver;
use crate::progress::Progress;
use kairn_format::error::{Error, Result};
use kairn_format::id::BlobId;
use kairn_format::id::BlobKind;
use kairn_format::snapshot::{Snapshot, Source, SourceKind};
use kairn_format::tree::{Extent, Node, NodeKind, Timestamp, Tree};
use kairn_repository::index::Index;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;
use kairn_repository::save::BlobSaver;
use kairn_repository::session::Session;
use kairn_repository::snapshots::{Latest, SnapshotFilter, latest_matching};

/// Lexically absolute path: joined to the working directory, `.` and `..` resolved without
/// following symlinks.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path)
        .map_err(|e| Error::io(format!("cannot resolve {}", path.display()), e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The backup paths arranged as a tree of names, so that several paths share a root tree.
#[derive(Debug, Default)]
struct PathTrie {
    target: bool,
    children: BTreeMap<Vec<u8>, PathTrie>,
}

impl PathTrie {
    fn of(paths: &[PathBuf]) -> Self {
        let mut trie = Self::default();
        for p in paths {
            trie.insert(p);
        }
        trie
    }

    fn insert(&mut self, path: &Path) {
        let mut node = self;
        for c in path.components() {
            if node.target {
                return; // an ancestor is already backed up whole
            }
            if let Component::Normal(n) = c {
                node = node.children.entry(n.as_bytes().to_vec()).or_default();
            }
        }
        node.target = true;
        node.children.clear();
    }
}

/// Backs up file trees and writes a snapshot.
pub fn backup(
    repo: &Repository,
    session: &Session,
    index: &Index,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    let store = Store::Repository(Box::new(BlobSaver::new(repo, session, index)?));
    let (archiver, pending) = walk_sources(repo, index, store, opts, progress)?;
    finish(&archiver, session, pending, opts)
}

/// Walks and chunks as [`backup`] does, deduplicating against `index`, and writes nothing:
/// no pack, no index, no snapshot, and no session is needed. The summary says what a backup
/// would add; its stored size is estimated (see [`DryRunOutcome`]).
pub fn dry_run(
    repo: &Repository,
    index: &Index,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<DryRunOutcome> {
    let store = Store::DryRun(DryRun::new(repo, index));
    let (archiver, pending) = walk_sources(repo, index, store, opts, progress)?;
    let (snapshot, warnings, notes, skipped_snapshots) = summarize(&archiver, pending, opts)?;
    Ok(DryRunOutcome {
        snapshot,
        warnings,
        notes,
        skipped_snapshots,
    })
}

/// The filters `opts` asks for.
pub fn filters(opts: &BackupOptions) -> Result<Filters> {
    Filters::new(
        &opts.excludes,
        &opts.iexcludes,
        opts.exclude_larger_than,
        &opts.exclude_if_present,
    )
}

/// Walks the backup paths, storing into `store`: the archiver that did it, and the root tree.
fn walk_sources<'a>(
    repo: &'a Repository,
    index: &'a Index,
    store: Store<'a>,
    opts: &BackupOptions,
    progress: &'a dyn Progress,
) -> Result<(Archiver<'a>, Pending)> {
    if opts.paths.is_empty() {
        return Err(Error::invalid("no paths to back up"));
    }
    if let Some(group) = &opts.group {
        group.validate()?;
    }
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let paths = accessible_paths(&opts.paths)?;
    let stored_as = match &opts.stored_as {
        None => None,
        Some(name) => Some(stored_name(name, &paths)?),
    };
    let path_strings: Vec<String> = match &stored_as {
        Some(name) => vec![format!("/{name}")],
        None => paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
    };
    let host = opts
        .host
        .clone()
        .unwrap_or_else(kairn_repository::sysinfo::hostname);
    let source = Source {
        kind: SourceKind::Filesystem,
        ..opts.source.clone()
    };
    // The parent only saves reading unchanged files: if it cannot be used (forgotten, or newer
    // than the index this backup loaded), everything is read instead.
    let (mut parent, skipped_snapshots) = find_parent(repo, opts, &host, &path_strings, &source)?;
    let parent_root = match &parent {
        Some((id, snap)) => match load_tree(repo, index, &snap.tree) {
            Ok(tree) => Some(tree),
            Err(e) => {
                tracing::warn!(
                    "parent snapshot {} unusable, reading everything: {e}",
                    id.short()
                );
                parent = None;
                None
            }
        },
        None => None,
    };
    let mut archiver = Archiver::new(
        repo,
        store,
        index,
        filters(opts)?,
        opts.one_file_system,
        progress,
    )?;
    if let Some(dir) = &opts.repository_dir {
        archiver.skip_repository(dir);
    }
    progress.start("backup", None);
    let trie = PathTrie::of(&paths);
    let root = if let Some(name) = &stored_as {
        stored_root(&archiver, &paths[0], name, parent_root.as_ref())?
    } else if trie.target {
        let dev = std::fs::symlink_metadata("/").map(|m| m.dev()).unwrap_or(0);
        archiver.dir_tree(Path::new("/"), parent_root, dev)?
    } else {
        virtual_dir(&archiver, Path::new("/"), &trie, parent_root.as_ref())?
    };
    progress.finish();
    let pending = Pending {
        root,
        started,
        clock,
        host,
        paths: path_strings,
        source,
        parent: parent.map(|p| p.0),
        skipped_snapshots,
    };
    Ok((archiver, pending))
}

/// The backup paths made absolute, sorted and deduplicated; each must exist.
fn accessible_paths(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for p in given {
        let abs = absolute(p)?;
        std::fs::symlink_metadata(&abs).map_err(|e| {
            Error::io(
                format!("backup path {} is not accessible", abs.display()),
                e,
            )
        })?;
        paths.push(abs);
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// Checks a [`BackupOptions::stored_as`] name: one path component, for exactly one path.
fn stored_name(name: &str, paths: &[PathBuf]) -> Result<String> {
    if paths.len() != 1 {
        return Err(Error::invalid(
            "a backup stored under another name takes exactly one path",
        ));
    }
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::invalid(format!(
            "{name:?} cannot name an entry at the snapshot root"
        )));
    }
    Ok(name.to_string())
}

/// A root tree holding one entry, `name`, read from `path`.
fn stored_root(a: &Archiver<'_>, path: &Path, name: &str, parent: Option<&Tree>) -> Result<BlobId> {
    let dev = std::fs::symlink_metadata(path)
        .map(|m| m.dev())
        .unwrap_or(0);
    let parent_node = parent.and_then(|t| t.find(name.as_bytes()));
    let nodes = a
        .entry_node(path, name.as_bytes(), parent_node, dev)?
        .into_iter()
        .collect();
    a.save_tree(Tree { nodes })
}

/// Stores a directory that lies on the way to backup paths but is not backed up whole: only
/// the children that lead to backup paths are included.
fn virtual_dir(
    a: &Archiver<'_>,
    path: &Path,
    trie: &PathTrie,
    parent: Option<&Tree>,
) -> Result<BlobId> {
    let mut nodes = Vec::new();
    for (name, child) in &trie.children {
        let child_path = path.join(std::ffi::OsStr::from_bytes(name));
        let parent_node = parent.and_then(|t| t.find(name));
        if child.target {
            let dev = std::fs::symlink_metadata(&child_path)
                .map(|m| m.dev())
                .unwrap_or(0);
            if let Some(node) = a.entry_node(&child_path, name, parent_node, dev)? {
                nodes.push(node);
            }
            continue;
        }
        // A directory on the way to a backup path; a symlink there is followed, as the path was.
        let meta = std::fs::metadata(&child_path)
            .map_err(|e| Error::io(format!("cannot stat {}", child_path.display()), e))?;
        let mut node = node_from_metadata(name, &meta, &a.names);
        node.xattrs = read_xattrs(&child_path).unwrap_or_default();
        let parent_sub = parent_node
            .and_then(|n| n.subtree())
            .and_then(|id| load_tree(a.repo, a.index, &id).ok());
        node.kind = NodeKind::Dir {
            subtree: virtual_dir(a, &child_path, child, parent_sub.as_ref())?,
        };
        nodes.push(node);
    }
    a.save_tree(Tree { nodes })
}

fn find_parent(
    repo: &Repository,
    opts: &BackupOptions,
    host: &str,
    paths: &[String],
    source: &Source,
) -> Result<Latest> {
    match &opts.parent {
        ParentChoice::None => Ok((None, Vec::new())),
        ParentChoice::Snapshot(id) => {
            Ok((Some((*id, repo.load_file::<Snapshot>(id)?)), Vec::new()))
        }
        ParentChoice::Latest => {
            let filter = SnapshotFilter {
                hosts: vec![host.to_string()],
                exact_paths: Some(paths.to_vec()),
                source: Some(source.clone()),
                ..Default::default()
            };
            latest_matching(repo, &filter)
        }
    }
}

/// Backs up one stream (standard input, or a block device when `opts.source.kind` is
/// [`SourceKind::BlockDevice`]) as a file called `filename`. For a block device, chunks that
/// are all zeros are stored as holes: unwritten space costs neither storage nor a blob.
pub fn backup_stream(
    repo: &Repository,
    session: &Session,
    index: &Index,
    reader: &mut dyn Read,
    filename: &str,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    kairn_format::tree::validate_name(filename.as_bytes())
        .map_err(|_| Error::invalid(format!("{filename:?} is not a valid file name")))?;
    if let Some(group) = &opts.group {
        group.validate()?;
    }
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let store = Store::Repository(Box::new(BlobSaver::new(repo, session, index)?));
    let archiver = Archiver::new(repo, store, index, Filters::none(), false, progress)?;
    progress.start("backup", None);
    let mut content = Vec::new();
    let block = opts.source.kind == SourceKind::BlockDevice;
    let result = repo.chunker().for_each_chunk(reader, |chunk| {
        if progress.should_stop() {
            return Err(Error::canceled());
        }
        if block && chunk.iter().all(|&b| b == 0) {
            match content.last_mut() {
                Some(Extent::Hole { len }) => *len += chunk.len() as u64,
                _ => content.push(Extent::Hole {
                    len: chunk.len() as u64,
                }),
            }
            progress.bytes(chunk.len() as u64);
            return Ok(());
        }
        let (id, _) = archiver.saver.save(BlobKind::Data, chunk)?;
        content.push(Extent::Data {
            id,
            len: chunk.len() as u32,
        });
        progress.bytes(chunk.len() as u64);
        Ok(())
    });
    let size = match result {
        Err(e) => return Err(Error::io(format!("cannot read {filename}"), e)),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(n)) => n,
    };
    let now = Timestamp {
        secs: started.timestamp(),
        nanos: started.timestamp_subsec_nanos(),
    };
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let node = Node {
        name: filename.as_bytes().to_vec(),
        kind: NodeKind::File { size, content },
        mode: 0o644,
        uid,
        gid,
        user: kairn_repository::sysinfo::username(),
        group: String::new(),
        mtime: now,
        atime: now,
        ctime: now,
        inode: 0,
        device: 0,
        links: 1,
        xattrs: Vec::new(),
    };
    archiver.counters.files_new.store(1, Ordering::Relaxed);
    archiver.counters.total_bytes.store(size, Ordering::Relaxed);
    archiver.counters.bytes_read.store(size, Ordering::Relaxed);
    let root = archiver.save_tree(Tree { nodes: vec![node] })?;
    progress.finish();
    let host = opts
        .host
        .clone()
        .unwrap_or_else(kairn_repository::sysinfo::hostname);
    let source = Source {
        kind: match opts.source.kind {
            SourceKind::Filesystem => SourceKind::Stdin,
            kind => kind,
        },
        ..opts.source.clone()
    };
    let pending = Pending {
        root,
        started,
        clock,
        host,
        paths: vec![format!("/{filename}")],
        source,
        parent: None,
        skipped_snapshots: Vec::new(),
    };
    finish(&archiver, session, pending, opts)
}
