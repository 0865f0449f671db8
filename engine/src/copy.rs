//! `copy`: snapshots from one repository into another that has other keys and chunk sizes.
//!
//! Blob ids are keyed and chunk boundaries come from a keyed gear table (repo-format.md §3, §8),
//! so no blob of the source means anything in the destination. Every file's content is read
//! from the source blob by blob, verified as every read is, and cut again with the
//! destination's chunker; the chunks go through a [`BlobSaver`], which stores only what the
//! destination does not hold yet. Each data region between holes is chunked as one input, as a
//! backup does (§12), so holes stay holes and the same file backed up straight into the
//! destination yields the same chunks. Trees are rewritten with the new content lists and
//! subtree ids; every other field of every node (names, modes, owners, times, inode, device and
//! link count, xattrs, symlink targets, device numbers) is kept as it is. Memory per file is
//! the chunker's buffer plus a bounded read-ahead of source blobs, never the whole file.
//!
//! The new snapshot keeps every field of the source snapshot (time, host, user, paths, tags,
//! source identity, completeness, the summary of the original backup and the program that
//! wrote it) but its root tree and its parent. The parent names a source snapshot; it becomes
//! that snapshot's copy in the destination when there is one, and is dropped otherwise.
//!
//! **Recognising a snapshot already copied.** A snapshot has no field naming the snapshot it
//! was copied from, and adding one is a format change (§13); tree ids cannot be compared across
//! repositories. A copy is therefore recognised by what it keeps and no two backups share: the
//! start time to the nanosecond, host, user, sorted paths and tags, and source identity. This
//! also holds through chains of copies (A to B to C). Its limits: a snapshot whose tags were
//! changed on one side after the copy is copied again; and two source snapshots of equal
//! identity (only `repair snapshots --keep-original` of a snapshot already tagged `repaired`
//! makes them) are copied once, the second being reported as skipped.
//!
//! Each snapshot is published on its own: its packs and index are flushed, the session is
//! committed and the snapshot written before the next one is read, so an interrupted copy
//! keeps what it finished and a second run copies only the rest. Within a run, trees (by
//! source tree id) and file contents (by source content list) are rewritten once, so what
//! successive snapshots share is read once; the memo is bounded, and forgets when full.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use crate::blobs::{load_tree, read_blob, tree_blob};
use crate::error::{Error, ErrorKind, Result};
use crate::format::blob::BlobKind;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Extent, Node, NodeKind, Tree};
use crate::id::{BlobId, SnapshotId};
use crate::index::Index;
use crate::packer::BlobSaver;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::snapshots::SnapshotFilter;

/// Which snapshots to copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// The source snapshots passing this filter, when `ids` is empty.
    pub filter: SnapshotFilter,
    /// Exactly these source snapshots; the filter is then not applied.
    pub ids: Vec<SnapshotId>,
    /// Only decide what would be copied: read no data, write nothing.
    pub dry_run: bool,
}

/// A snapshot that was copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopiedSnapshot {
    /// The snapshot in the source.
    pub source: SnapshotId,
    /// Its copy in the destination; `None` in a dry run.
    pub copy: Option<SnapshotId>,
}

/// A snapshot that was not copied because the destination already has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedSnapshot {
    /// The snapshot in the source.
    pub source: SnapshotId,
    /// The destination snapshot it matches (in a dry run, possibly the source snapshot of equal
    /// identity that would be copied first).
    pub existing: SnapshotId,
}

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots copied, oldest first.
    pub copied: Vec<CopiedSnapshot>,
    /// Snapshots already in the destination.
    pub skipped: Vec<SkippedSnapshot>,
    /// True when nothing was read or written.
    pub dry_run: bool,
    /// Files whose content was read and chunked again (each distinct content once per run).
    pub files_read: u64,
    /// Bytes of file content read from the source.
    pub bytes_read: u64,
    /// Chunks the destination did not have, stored.
    pub data_blobs_new: u64,
    /// Their bytes, before compression.
    pub data_bytes_new: u64,
    /// Chunks the destination already had (or got earlier in this run), not stored again.
    pub data_blobs_deduplicated: u64,
    /// Their bytes.
    pub data_bytes_deduplicated: u64,
    /// Trees stored.
    pub tree_blobs_new: u64,
    /// Bytes added to the destination: packs and index files.
    pub bytes_stored: u64,
}

/// Copies snapshots of `src` into `dst`, which must be in a writer session (the caller begins
/// it before loading `dst_index`, and ends it).
pub fn copy(
    src: &Repository,
    src_index: &Index,
    dst: &Repository,
    dst_index: &Index,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let all = src.load_snapshots()?;
    let identities: HashMap<SnapshotId, Identity> =
        all.iter().map(|(id, s)| (*id, Identity::of(s))).collect();
    let chosen = choose(all, opts)?;
    let mut present: HashMap<Identity, SnapshotId> = dst
        .load_snapshots()?
        .into_iter()
        .map(|(id, s)| (Identity::of(&s), id))
        .collect();
    let mut report = CopyReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let saver = BlobSaver::new(dst, dst_index);
    let rewriter = Rewriter {
        src,
        src_index,
        dst,
        saver: &saver,
        progress,
        trees: Memo::new(TREE_MEMO_WEIGHT),
        files: Memo::new(FILE_MEMO_WEIGHT),
        counts: Counts::default(),
    };
    progress.start("copy", None);
    for (id, snap) in chosen {
        let identity = Identity::of(&snap);
        if let Some(existing) = present.get(&identity) {
            report.skipped.push(SkippedSnapshot {
                source: id,
                existing: *existing,
            });
            continue;
        }
        if opts.dry_run {
            present.insert(identity, id);
            report.copied.push(CopiedSnapshot {
                source: id,
                copy: None,
            });
            continue;
        }
        let root = rewriter
            .tree(snap.tree, Path::new("/"))
            .map_err(|e| e.with_context("snapshot", id.short()))?;
        // Ordering: packs, then index (flush), then the snapshot.
        saver.flush()?;
        let parent = snap
            .parent
            .and_then(|p| identities.get(&p))
            .and_then(|i| present.get(i))
            .copied();
        let copy = Snapshot {
            tree: root,
            parent,
            ..snap
        };
        dst.commit_session()?;
        let new_id = dst.save_file(&copy)?;
        present.insert(identity, new_id);
        report.copied.push(CopiedSnapshot {
            source: id,
            copy: Some(new_id),
        });
    }
    progress.finish();
    let c = &rewriter.counts;
    report.files_read = c.files.load(Ordering::Relaxed);
    report.bytes_read = c.bytes_read.load(Ordering::Relaxed);
    report.data_blobs_new = c.new_blobs.load(Ordering::Relaxed);
    report.data_bytes_new = c.new_bytes.load(Ordering::Relaxed);
    report.data_blobs_deduplicated = c.dedup_blobs.load(Ordering::Relaxed);
    report.data_bytes_deduplicated = c.dedup_bytes.load(Ordering::Relaxed);
    report.tree_blobs_new = saver.stats.tree_blobs.load(Ordering::Relaxed);
    report.bytes_stored = saver.stats.stored_bytes.load(Ordering::Relaxed);
    Ok(report)
}

/// The snapshots to consider, oldest first.
fn choose(
    all: Vec<(SnapshotId, Snapshot)>,
    opts: &CopyOptions,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    if opts.ids.is_empty() {
        return Ok(all
            .into_iter()
            .filter(|(_, s)| opts.filter.matches(s))
            .collect());
    }
    if let Some(missing) = opts
        .ids
        .iter()
        .find(|id| !all.iter().any(|(a, _)| a == *id))
    {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("the source repository has no snapshot {}", missing.short()),
        ));
    }
    Ok(all
        .into_iter()
        .filter(|(id, _)| opts.ids.contains(id))
        .collect())
}

/// What a copy keeps of a snapshot and no two backups share; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    time: String,
    host: String,
    username: String,
    paths: Vec<String>,
    tags: Vec<String>,
    source: String,
}

impl Identity {
    fn of(s: &Snapshot) -> Self {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        };
        Self {
            // Parsed, so that one instant written with another offset or precision still matches.
            time: s.datetime().map_or_else(
                |_| s.time.clone(),
                |t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ),
            host: s.host.clone(),
            username: s.username.clone(),
            paths: sorted(&s.paths),
            tags: sorted(&s.tags),
            source: serde_json::to_string(&s.source).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    files: AtomicU64,
    bytes_read: AtomicU64,
    new_blobs: AtomicU64,
    new_bytes: AtomicU64,
    dedup_blobs: AtomicU64,
    dedup_bytes: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Rewrites source trees into the destination, remembering what it did within the run.
struct Rewriter<'a> {
    src: &'a Repository,
    src_index: &'a Index,
    dst: &'a Repository,
    saver: &'a BlobSaver<'a>,
    progress: &'a dyn Progress,
    /// Source tree id to destination tree id.
    trees: Memo<BlobId, BlobId>,
    /// Digest of a source content list to the destination content list.
    files: Memo<[u8; 32], Vec<Extent>>,
    counts: Counts,
}

impl Rewriter<'_> {
    /// Stores the destination version of source tree `id` (the directory at `path`).
    fn tree(&self, id: BlobId, path: &Path) -> Result<BlobId> {
        if let Some(done) = self.trees.get(&id) {
            return Ok(done);
        }
        let tree = load_tree(self.src, self.src_index, &id)
            .map_err(|e| e.with_context("path", path.display()))?;
        // Entries in parallel, as a backup reads them: a small file costs a round trip to the
        // source storage, and a tree's files overlap their waits.
        let nodes = tree
            .nodes
            .into_par_iter()
            .map(|node| self.node(node, path))
            .collect::<Result<Vec<_>>>()?;
        // Names are unchanged, so the nodes are still in canonical order.
        let (new, bytes) = tree_blob(self.dst, &Tree { nodes })?;
        self.saver.save(BlobKind::Tree, new, &bytes)?;
        self.trees.insert(id, new, 1);
        Ok(new)
    }

    fn node(&self, mut node: Node, dir: &Path) -> Result<Node> {
        let path = dir.join(OsStr::from_bytes(&node.name));
        match &mut node.kind {
            NodeKind::Dir { subtree } => *subtree = self.tree(*subtree, &path)?,
            NodeKind::File { content, .. } => {
                *content = self
                    .content(content, &path)
                    .map_err(|e| e.with_context("path", path.display()))?;
            }
            _ => {}
        }
        Ok(node)
    }

    /// The destination content list of a file: holes as they are, each data region between
    /// them read and chunked again as one input.
    fn content(&self, content: &[Extent], path: &Path) -> Result<Vec<Extent>> {
        if content.is_empty() {
            return Ok(Vec::new());
        }
        let key = content_key(content);
        if let Some(done) = self.files.get(&key) {
            return Ok(done);
        }
        let mut out = Vec::with_capacity(content.len());
        let mut rest = content;
        while let Some(first) = rest.first() {
            let run = match first {
                Extent::Hole { .. } => 1,
                Extent::Data { .. } => rest
                    .iter()
                    .position(|e| matches!(e, Extent::Hole { .. }))
                    .unwrap_or(rest.len()),
            };
            let (region, tail) = rest.split_at(run);
            match first {
                Extent::Hole { .. } => out.push(*first),
                Extent::Data { .. } => self.region(region, &mut out)?,
            }
            rest = tail;
        }
        add(&self.counts.files, 1);
        self.progress.file_done(path);
        self.files.insert(key, out.clone(), 1 + out.len());
        Ok(out)
    }

    /// Reads a run of data extents from the source and stores it chunked for the destination.
    fn region(&self, region: &[Extent], out: &mut Vec<Extent>) -> Result<()> {
        let expected: u64 = region.iter().map(Extent::len).sum();
        let mut reader = RegionReader {
            repo: self.src,
            index: self.src_index,
            pending: region,
            ready: VecDeque::new(),
            current: Vec::new(),
            pos: 0,
            failure: None,
        };
        let result = self.dst.chunker().for_each_batch(&mut reader, |batch| {
            // Ids, compression and sealing of one batch run on every core; extents stay in order.
            let ids = batch
                .par_iter()
                .map(|chunk| {
                    let id = self.dst.keys().data_id(chunk);
                    let len = chunk.len() as u64;
                    if self.saver.save(BlobKind::Data, id, chunk)? {
                        add(&self.counts.new_blobs, 1);
                        add(&self.counts.new_bytes, len);
                    } else {
                        add(&self.counts.dedup_blobs, 1);
                        add(&self.counts.dedup_bytes, len);
                    }
                    self.progress.bytes(len);
                    Ok(id)
                })
                .collect::<Result<Vec<_>>>()?;
            out.extend(batch.iter().zip(ids).map(|(chunk, id)| Extent::Data {
                id,
                len: chunk.len() as u32,
            }));
            Ok(())
        });
        let read = match result {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
            Err(io) => {
                return Err(reader.failure.take().unwrap_or_else(|| {
                    Error::internal("reading source content failed").with_source(io)
                }));
            }
        };
        add(&self.counts.bytes_read, read);
        if read != expected {
            return Err(Error::corrupt(format!(
                "a data region of {expected} bytes read as {read}"
            )));
        }
        Ok(())
    }
}

/// Memo entries (trees) and entries plus extents (files) kept before a memo starts over: about
/// 40 MiB each, whatever the size of the repository.
const TREE_MEMO_WEIGHT: usize = 512 << 10;
const FILE_MEMO_WEIGHT: usize = 512 << 10;

/// A map that forgets everything once it holds `max` weight, bounding memory over millions of
/// files at the cost of rewriting some twice (which stores nothing twice: the saver dedups).
struct Memo<K, V> {
    map: Mutex<(HashMap<K, V>, usize)>,
    max: usize,
}

impl<K: std::hash::Hash + Eq, V: Clone> Memo<K, V> {
    fn new(max: usize) -> Self {
        Self {
            map: Mutex::new((HashMap::new(), 0)),
            max,
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        lock(&self.map).0.get(key).cloned()
    }

    fn insert(&self, key: K, value: V, weight: usize) {
        let mut guard = lock(&self.map);
        let (map, held) = &mut *guard;
        if *held + weight > self.max {
            map.clear();
            *held = 0;
        }
        map.insert(key, value);
        *held += weight;
    }
}

/// A digest of a content list: the memo key, 32 bytes however long the list.
fn content_key(content: &[Extent]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for e in content {
        match *e {
            Extent::Data { id, len } => {
                h.update(&[0]);
                h.update(&id.0.0);
                h.update(&len.to_le_bytes());
            }
            Extent::Hole { len } => {
                h.update(&[1]);
                h.update(&len.to_le_bytes());
            }
        }
    }
    *h.finalize().as_bytes()
}

/// Source blobs read at once: enough to overlap the latency of object storage, bounded so
/// that a file in flight holds a few MiB however large it is.
const READ_AHEAD_BYTES: u64 = 4 << 20;

/// The bytes of a run of data extents, read from the source and verified blob by blob.
struct RegionReader<'a> {
    repo: &'a Repository,
    index: &'a Index,
    /// Extents not read yet.
    pending: &'a [Extent],
    /// Blobs read ahead, in order.
    ready: VecDeque<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    /// Why reading stopped: the engine error behind the I/O error the chunker sees.
    failure: Option<Error>,
}

impl RegionReader<'_> {
    fn read_ahead(&mut self) -> Result<()> {
        let mut take = 0;
        let mut bytes = 0;
        while take < self.pending.len() && (take == 0 || bytes < READ_AHEAD_BYTES) {
            bytes += self.pending[take].len();
            take += 1;
        }
        let (batch, rest) = self.pending.split_at(take);
        self.pending = rest;
        let (repo, index) = (self.repo, self.index);
        let blobs = batch
            .par_iter()
            .map(|e| read_extent(repo, index, e))
            .collect::<Result<Vec<_>>>()?;
        self.ready.extend(blobs);
        Ok(())
    }
}

impl Read for RegionReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos < self.current.len() {
                let n = out.len().min(self.current.len() - self.pos);
                out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if let Some(next) = self.ready.pop_front() {
                self.current = next;
                self.pos = 0;
                continue;
            }
            if self.pending.is_empty() {
                return Ok(0);
            }
            if let Err(e) = self.read_ahead() {
                let message = e.to_string();
                self.failure = Some(e);
                return Err(std::io::Error::other(message));
            }
        }
    }
}

/// One data extent's bytes, verified against its id (by [`read_blob`]) and its length.
fn read_extent(repo: &Repository, index: &Index, extent: &Extent) -> Result<Vec<u8>> {
    let Extent::Data { id, len } = *extent else {
        return Err(Error::internal("a hole inside a data region"));
    };
    let blob = read_blob(repo, index, BlobKind::Data, &id)?;
    if blob.len() != len as usize {
        return Err(Error::corrupt(format!(
            "data blob {} holds {} bytes, but its tree says {len}",
            id.short(),
            blob.len()
        )));
    }
    Ok(blob)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::OpendalBackend;
    use crate::chunker::ChunkerParams;
    use crate::crypto::KdfParams;
    use crate::format::tree::{Timestamp, Xattr};
    use crate::progress::NoProgress;
    use crate::repo::InitOptions;

    fn repo(min: u32, avg: u32, max: u32) -> Repository {
        let backend = Arc::new(OpendalBackend::memory().unwrap());
        let opts = InitOptions {
            chunk_sizes: ChunkerParams {
                min_size: min,
                avg_size: avg,
                max_size: max,
            },
            pack_size: 1 << 20,
            kdf: KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..Default::default()
        };
        Repository::init(backend, b"pw", &opts).unwrap()
    }

    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn node(name: &str, kind: NodeKind) -> Node {
        Node {
            name: name.as_bytes().to_vec(),
            kind,
            mode: 0o640,
            uid: 7,
            gid: 8,
            user: "u".into(),
            group: "g".into(),
            mtime: Timestamp {
                secs: 1_700_000_000,
                nanos: 5,
            },
            atime: Timestamp {
                secs: 1_700_000_001,
                nanos: 6,
            },
            ctime: Timestamp {
                secs: 1_700_000_002,
                nanos: 7,
            },
            inode: 42,
            device: 9,
            links: 1,
            xattrs: vec![Xattr {
                name: b"user.k".to_vec(),
                value: b"v".to_vec(),
            }],
        }
    }

    /// Chunks `data` into the source and returns its extents.
    fn store(repo: &Repository, saver: &BlobSaver<'_>, data: &[u8]) -> Vec<Extent> {
        let mut out = Vec::new();
        repo.chunker()
            .for_each_chunk(data, |c| {
                let id = repo.keys().data_id(c);
                saver.save(BlobKind::Data, id, c)?;
                out.push(Extent::Data {
                    id,
                    len: c.len() as u32,
                });
                Ok(())
            })
            .unwrap()
            .unwrap();
        out
    }

    fn save_tree(repo: &Repository, saver: &BlobSaver<'_>, mut nodes: Vec<Node>) -> BlobId {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let (id, bytes) = tree_blob(repo, &Tree { nodes }).unwrap();
        saver.save(BlobKind::Tree, id, &bytes).unwrap();
        id
    }

    /// A snapshot holding a sparse file, a large file, a symlink and a directory shared twice.
    fn source_snapshot(
        repo: &Repository,
        big: &[u8],
        time: &str,
        parent: Option<SnapshotId>,
    ) -> SnapshotId {
        let index = Index::load(repo).unwrap();
        let saver = BlobSaver::new(repo, &index);
        let mut sparse = vec![Extent::Hole { len: 1000 }];
        sparse.extend(store(repo, &saver, &noise(3, 50_000)));
        sparse.push(Extent::Hole { len: 7 });
        sparse.extend(store(repo, &saver, &noise(4, 30_000)));
        let big_content = store(repo, &saver, big);
        let shared = save_tree(
            repo,
            &saver,
            vec![node(
                "f",
                NodeKind::File {
                    size: 20_000,
                    content: store(repo, &saver, &noise(5, 20_000)),
                },
            )],
        );
        let root = save_tree(
            repo,
            &saver,
            vec![
                node(
                    "sparse",
                    NodeKind::File {
                        size: 81_007,
                        content: sparse,
                    },
                ),
                node(
                    "big",
                    NodeKind::File {
                        size: big.len() as u64,
                        content: big_content,
                    },
                ),
                node(
                    "empty",
                    NodeKind::File {
                        size: 0,
                        content: Vec::new(),
                    },
                ),
                node(
                    "link",
                    NodeKind::Symlink {
                        target: b"big".to_vec(),
                    },
                ),
                node("a", NodeKind::Dir { subtree: shared }),
                node("b", NodeKind::Dir { subtree: shared }),
            ],
        );
        saver.flush().unwrap();
        let snap = Snapshot {
            time: time.into(),
            host: "h".into(),
            username: "u".into(),
            paths: vec!["/data".into()],
            tags: vec!["t".into()],
            tree: root,
            parent,
            source: Default::default(),
            incomplete: false,
            summary: Default::default(),
            program: "kairn test".into(),
        };
        repo.save_file(&snap).unwrap()
    }

    /// A file's bytes, holes as zeros.
    fn read_all(repo: &Repository, index: &Index, content: &[Extent]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in content {
            match *e {
                Extent::Data { id, .. } => {
                    out.extend(read_blob(repo, index, BlobKind::Data, &id).unwrap())
                }
                Extent::Hole { len } => out.resize(out.len() + len as usize, 0),
            }
        }
        out
    }

    /// Compares two trees node by node: content by bytes, holes by place, the rest as is.
    fn assert_same_tree(a: (&Repository, &Index, BlobId), b: (&Repository, &Index, BlobId)) {
        let ta = load_tree(a.0, a.1, &a.2).unwrap();
        let tb = load_tree(b.0, b.1, &b.2).unwrap();
        assert_eq!(ta.nodes.len(), tb.nodes.len());
        for (na, nb) in ta.nodes.iter().zip(&tb.nodes) {
            let mut plain_a = na.clone();
            let mut plain_b = nb.clone();
            match (&na.kind, &nb.kind) {
                (
                    NodeKind::File {
                        size: sa,
                        content: ca,
                    },
                    NodeKind::File {
                        size: sb,
                        content: cb,
                    },
                ) => {
                    assert_eq!(sa, sb);
                    assert_eq!(read_all(a.0, a.1, ca), read_all(b.0, b.1, cb));
                    let holes = |c: &[Extent]| {
                        let mut at = 0;
                        let mut out = Vec::new();
                        for e in c {
                            if let Extent::Hole { len } = e {
                                out.push((at, *len));
                            }
                            at += e.len();
                        }
                        out
                    };
                    assert_eq!(holes(ca), holes(cb));
                    plain_a.kind = NodeKind::Fifo;
                    plain_b.kind = NodeKind::Fifo;
                }
                (NodeKind::Dir { subtree: sa }, NodeKind::Dir { subtree: sb }) => {
                    assert_same_tree((a.0, a.1, *sa), (b.0, b.1, *sb));
                    plain_a.kind = NodeKind::Fifo;
                    plain_b.kind = NodeKind::Fifo;
                }
                _ => {}
            }
            assert_eq!(plain_a, plain_b);
        }
    }

    #[test]
    fn copies_rechunked_with_everything_else_kept_and_only_once() {
        let src = repo(256, 1024, 4096);
        let dst = repo(512, 2048, 8192);
        let big = noise(1, 300_000);
        let first = source_snapshot(&src, &big, "2024-01-01T00:00:00.000000001Z", None);
        let mut changed = big.clone();
        changed.extend(noise(2, 5_000));
        let second = source_snapshot(
            &src,
            &changed,
            "2024-01-02T00:00:00.000000002Z",
            Some(first),
        );
        let src_index = Index::load(&src).unwrap();
        let opts = CopyOptions::default();

        let dry = copy(
            &src,
            &src_index,
            &dst,
            &Index::load(&dst).unwrap(),
            &CopyOptions {
                dry_run: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
        assert_eq!(dry.copied.len(), 2);
        assert!(
            dst.load_snapshots().unwrap().is_empty(),
            "a dry run writes nothing"
        );

        let report = copy(
            &src,
            &src_index,
            &dst,
            &Index::load(&dst).unwrap(),
            &opts,
            &NoProgress,
        )
        .unwrap();
        let sources: Vec<SnapshotId> = report.copied.iter().map(|c| c.source).collect();
        assert_eq!(sources, [first, second], "oldest first");
        assert!(report.skipped.is_empty());
        // Sparse, big, the shared directory's file, and the changed big file: the unchanged
        // files of the second snapshot are not read again. (The first snapshot's two copies of
        // one directory are rewritten in parallel, so both may miss the memo.)
        assert!((4..=5).contains(&report.files_read), "{report:?}");
        // The second snapshot's big file shares all but its end with the first.
        assert!(report.data_bytes_deduplicated > 250_000, "{report:?}");

        let dst_index = Index::load(&dst).unwrap();
        let copies: HashMap<SnapshotId, Snapshot> =
            dst.load_snapshots().unwrap().into_iter().collect();
        for pair in &report.copied {
            let original = src.load_file::<Snapshot>(&pair.source).unwrap();
            let copy = &copies[&pair.copy.unwrap()];
            assert_eq!(
                (
                    &copy.time,
                    &copy.host,
                    &copy.paths,
                    &copy.tags,
                    &copy.program
                ),
                (
                    &original.time,
                    &original.host,
                    &original.paths,
                    &original.tags,
                    &original.program
                )
            );
            assert_same_tree(
                (&src, &src_index, original.tree),
                (&dst, &dst_index, copy.tree),
            );
        }
        assert_eq!(
            copies[&report.copied[1].copy.unwrap()].parent,
            report.copied[0].copy,
            "the parent is the parent's copy"
        );
        // The big file is cut exactly as a backup straight into the destination would cut it.
        let root = load_tree(
            &dst,
            &dst_index,
            &copies[&report.copied[0].copy.unwrap()].tree,
        )
        .unwrap();
        let mut direct = Vec::new();
        dst.chunker()
            .for_each_chunk(big.as_slice(), |c| {
                direct.push(Extent::Data {
                    id: dst.keys().data_id(c),
                    len: c.len() as u32,
                });
                Ok(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(
            root.find(b"big").unwrap().kind,
            NodeKind::File {
                size: big.len() as u64,
                content: direct
            }
        );

        let again = copy(&src, &src_index, &dst, &dst_index, &opts, &NoProgress).unwrap();
        assert!(again.copied.is_empty());
        assert_eq!(again.skipped.len(), 2);
        assert_eq!(again.bytes_read, 0);
    }

    #[test]
    fn a_missing_source_blob_fails_the_copy_naming_the_file_and_publishes_nothing() {
        let src = repo(256, 1024, 4096);
        let dst = repo(512, 2048, 8192);
        source_snapshot(&src, &noise(1, 100_000), "2024-01-01T00:00:00Z", None);
        // An index that lacks the data blobs: every file read fails as a missing blob would.
        let mut builder = crate::index::IndexBuilder::default();
        for (_, file) in crate::index::load_live_files(&src).unwrap().live {
            let mut file = file;
            for pack in &mut file.packs {
                pack.blobs.retain(|b| b.kind == BlobKind::Tree);
            }
            builder.add_file(&file);
        }
        let crippled = builder.finish();
        let err = copy(
            &src,
            &crippled,
            &dst,
            &Index::load(&dst).unwrap(),
            &CopyOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("path: /"), "{err}");
        assert!(dst.load_snapshots().unwrap().is_empty());
    }

    #[test]
    fn a_full_memo_starts_over() {
        let memo = Memo::new(3);
        memo.insert(1, 'a', 2);
        memo.insert(2, 'b', 1);
        assert_eq!((memo.get(&1), memo.get(&2)), (Some('a'), Some('b')));
        memo.insert(3, 'c', 1);
        assert_eq!((memo.get(&1), memo.get(&3)), (None, Some('c')));
    }
}
