//! Backup of content that does not come from a file tree (Kubernetes manifests fetched from
//! the API server, image blobs streamed from a registry): the same chunking, deduplication and
//! write ordering as a file-system backup, with the tree built from the given paths.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::excludes::Filters;
use super::options::{BackupOptions, BackupOutcome};
use super::publish::{Pending, finish};
use super::store::Store;
use super::walk::Archiver;
use crate::progress::Progress;
use kairn_format::error::{Error, Result};
use kairn_format::id::BlobId;
use kairn_format::id::BlobKind;
use kairn_format::snapshot::{Source, SourceKind};
use kairn_format::tree::{Extent, Node, NodeKind, Timestamp, Tree, validate_name};
use kairn_repository::index::Index;
use kairn_repository::repo::Repository;
use kairn_repository::save::BlobSaver;
use kairn_repository::session::Session;

/// A file to store: where it goes below the snapshot's root, and what it holds.
#[derive(Debug, Clone)]
pub struct MemoryFile {
    /// Path components below the root, each a valid file name.
    pub path: Vec<String>,
    /// Content.
    pub content: FileData,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch. A stable time (the object's creation)
    /// keeps unchanged directories' tree blobs identical across backups.
    pub mtime: i64,
}

/// What a [`MemoryFile`] holds.
#[derive(Debug, Clone)]
pub enum FileData {
    /// Bytes in memory, chunked and stored when the tree is built.
    Bytes(Vec<u8>),
    /// Content streamed in already by [`MemoryBackup::store`].
    Stored(StoredData),
    /// Content taken unchanged from an earlier snapshot (checked by [`MemoryBackup::reuse`]).
    Reused(StoredData),
}

/// Content stored in the repository: its size and the blobs that hold it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredData {
    /// Size in bytes.
    pub size: u64,
    /// The data blobs and holes.
    pub extents: Vec<Extent>,
}

enum Entry {
    File(usize),
    Dir(BTreeMap<String, Entry>),
}

/// A backup of content that does not come from a file tree: streams and bytes are stored
/// first ([`MemoryBackup::store`]), then [`MemoryBackup::finish`] builds the tree and writes
/// the snapshot, with the same chunking, deduplication and write ordering as any backup.
pub struct MemoryBackup<'a> {
    archiver: Archiver<'a>,
    session: &'a Session,
    started: chrono::DateTime<chrono::Utc>,
    clock: Instant,
}

impl<'a> MemoryBackup<'a> {
    /// Starts a backup; `total` is the number of bytes expected, when known.
    pub fn start(
        repo: &'a Repository,
        session: &'a Session,
        index: &'a Index,
        total: Option<u64>,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        let store = Store::Repository(Box::new(BlobSaver::new(repo, session, index)?));
        let archiver = Archiver::new(repo, store, index, Filters::none(), false, progress)?;
        progress.start("backup", total);
        Ok(Self {
            archiver,
            session,
            started: chrono::Utc::now(),
            clock: Instant::now(),
        })
    }

    /// Chunks and stores what `reader` gives until its end. A read error is
    /// [`kairn_format::error::ErrorKind::Io`] with the reader's error as its source; what was
    /// stored before it is only packs (adopted by the next backup, or pruned).
    pub fn store(&self, reader: &mut dyn Read) -> Result<StoredData> {
        let mut extents = Vec::new();
        let archiver = &self.archiver;
        let result = archiver.repo.chunker().for_each_chunk(reader, |chunk| {
            if archiver.progress.should_stop() {
                return Err(Error::canceled());
            }
            let (id, _) = archiver.saver.save(BlobKind::Data, chunk)?;
            extents.push(Extent::Data {
                id,
                len: chunk.len() as u32,
            });
            archiver.progress.bytes(chunk.len() as u64);
            Ok(())
        });
        match result {
            Err(e) => Err(Error::io("cannot read the content to store", e)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(size)) => Ok(StoredData { size, extents }),
        }
    }

    /// `data` as [`FileData::Reused`] when every blob it names is in the repository (an
    /// earlier snapshot's content may have been pruned since), else `None`.
    pub fn reuse(&self, data: &StoredData) -> Option<FileData> {
        let all_stored = data.extents.iter().all(|e| match e {
            Extent::Data { id, .. } => self.archiver.saver.known(id),
            Extent::Hole { .. } => true,
        });
        all_stored.then(|| FileData::Reused(data.clone()))
    }

    /// Builds the tree of `files` (directories made as needed, mode 0755, the newest mtime
    /// below them) and writes the snapshot. `opts.source.kind` says what they are.
    pub fn finish(self, files: &[MemoryFile], opts: &BackupOptions) -> Result<BackupOutcome> {
        if let Some(group) = &opts.group {
            group.validate()?;
        }
        let mut root = BTreeMap::new();
        for (i, file) in files.iter().enumerate() {
            insert(&mut root, &file.path, i)?;
        }
        let writer = Writer {
            archiver: &self.archiver,
            files,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            user: kairn_repository::sysinfo::username(),
        };
        let (root_id, _) = writer.save_dir(&root)?;
        self.archiver.progress.finish();
        let host = opts
            .host
            .clone()
            .unwrap_or_else(kairn_repository::sysinfo::hostname);
        let source = Source {
            kind: match opts.source.kind {
                SourceKind::Filesystem => SourceKind::Manifests,
                kind => kind,
            },
            ..opts.source.clone()
        };
        let pending = Pending {
            root: root_id,
            started: self.started,
            clock: self.clock,
            host,
            paths: vec!["/".into()],
            source,
            parent: None,
            skipped_snapshots: Vec::new(),
        };
        finish(&self.archiver, self.session, pending, opts)
    }
}

/// Stores `files` as one snapshot whose root holds them at their paths.
pub fn backup_memory(
    repo: &Repository,
    session: &Session,
    index: &Index,
    files: &[MemoryFile],
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    let total = files
        .iter()
        .map(|f| match &f.content {
            FileData::Bytes(b) => b.len() as u64,
            FileData::Stored(d) | FileData::Reused(d) => d.size,
        })
        .sum();
    MemoryBackup::start(repo, session, index, Some(total), progress)?.finish(files, opts)
}

fn insert(dir: &mut BTreeMap<String, Entry>, path: &[String], index: usize) -> Result<()> {
    let Some((name, rest)) = path.split_first() else {
        return Err(Error::invalid("a file to store has an empty path"));
    };
    validate_name(name.as_bytes())
        .map_err(|_| Error::invalid(format!("{name:?} is not a valid file name")))?;
    if rest.is_empty() {
        if dir.insert(name.clone(), Entry::File(index)).is_some() {
            return Err(Error::invalid(format!("{} is given twice", path.join("/"))));
        }
        return Ok(());
    }
    match dir
        .entry(name.clone())
        .or_insert_with(|| Entry::Dir(BTreeMap::new()))
    {
        Entry::Dir(sub) => insert(sub, rest, index),
        Entry::File(_) => Err(Error::invalid(format!(
            "{name} is both a file and a directory"
        ))),
    }
}

struct Writer<'a> {
    archiver: &'a Archiver<'a>,
    files: &'a [MemoryFile],
    uid: u32,
    gid: u32,
    user: String,
}

impl Writer<'_> {
    fn node(&self, name: &str, kind: NodeKind, mode: u32, mtime: i64) -> Node {
        let time = Timestamp {
            secs: mtime,
            nanos: 0,
        };
        Node {
            name: name.as_bytes().to_vec(),
            kind,
            mode,
            uid: self.uid,
            gid: self.gid,
            user: self.user.clone(),
            group: String::new(),
            mtime: time,
            atime: time,
            ctime: time,
            inode: 0,
            device: 0,
            links: 1,
            xattrs: Vec::new(),
        }
    }

    /// Stores a directory's tree; returns its id and newest mtime.
    fn save_dir(&self, dir: &BTreeMap<String, Entry>) -> Result<(BlobId, i64)> {
        let mut nodes = Vec::with_capacity(dir.len());
        let mut newest = 0;
        for (name, entry) in dir {
            if self.archiver.progress.should_stop() {
                return Err(Error::canceled());
            }
            let node = match entry {
                Entry::File(i) => {
                    let file = &self.files[*i];
                    let (size, content) = match &file.content {
                        FileData::Bytes(bytes) => {
                            self.count_file(bytes.len() as u64, false);
                            (bytes.len() as u64, self.save_content(bytes)?)
                        }
                        FileData::Stored(data) => {
                            self.count_file(data.size, false);
                            (data.size, data.extents.clone())
                        }
                        FileData::Reused(data) => {
                            self.count_file(data.size, true);
                            (data.size, data.extents.clone())
                        }
                    };
                    newest = newest.max(file.mtime);
                    self.node(
                        name,
                        NodeKind::File { size, content },
                        file.mode,
                        file.mtime,
                    )
                }
                Entry::Dir(sub) => {
                    let (subtree, mtime) = self.save_dir(sub)?;
                    self.archiver.counters.dirs.fetch_add(1, Ordering::Relaxed);
                    newest = newest.max(mtime);
                    self.node(name, NodeKind::Dir { subtree }, 0o755, mtime)
                }
            };
            nodes.push(node);
        }
        Ok((self.archiver.save_tree(Tree { nodes })?, newest))
    }

    fn count_file(&self, size: u64, unchanged: bool) {
        let c = &self.archiver.counters;
        if unchanged {
            c.files_unmodified.fetch_add(1, Ordering::Relaxed);
        } else {
            c.files_new.fetch_add(1, Ordering::Relaxed);
            c.bytes_read.fetch_add(size, Ordering::Relaxed);
        }
        c.total_bytes.fetch_add(size, Ordering::Relaxed);
    }

    fn save_content(&self, bytes: &[u8]) -> Result<Vec<Extent>> {
        let mut content = Vec::new();
        let repo = self.archiver.repo;
        let result = repo.chunker().for_each_chunk(&mut &bytes[..], |chunk| {
            let (id, _) = self.archiver.saver.save(BlobKind::Data, chunk)?;
            content.push(Extent::Data {
                id,
                len: chunk.len() as u32,
            });
            self.archiver.progress.bytes(chunk.len() as u64);
            Ok(())
        });
        match result {
            Err(e) => Err(Error::io("cannot chunk a file held in memory", e)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) => Ok(content),
        }
    }
}
