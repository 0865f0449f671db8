//! A restore plan, one batch of it: the entries to make below the target, the blobs each file
//! needs grouped by pack, and the metadata to apply afterwards. Pure data: nothing here looks
//! at or changes the target, so whatever depends on it (is a file already in place, what stands
//! in the way) is decided when the entries are created (`create.rs`). The walk that fills
//! batches is `walk.rs`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, Ordering};

use super::report::RestoreProblem;
use crate::backup::Excludes;
use kairn_format::error::Result;
use kairn_format::id::{BlobId, PackId};
use kairn_format::tree::{Extent, Node, NodeKind, Timestamp};

pub(crate) struct Filters {
    pub include: Excludes,
    pub exclude: Excludes,
    /// Each pattern on its own, with whether it has matched an entry of the snapshot yet: a
    /// pattern that never does is reported (most often one written relative to the snapshot's
    /// root when `SNAP:PATH` makes patterns relative to PATH).
    include_each: Vec<Tracked>,
    exclude_each: Vec<Tracked>,
}

struct Tracked {
    pattern: String,
    set: Excludes,
    matched: AtomicBool,
}

impl Tracked {
    fn all(patterns: &[String]) -> Result<Vec<Self>> {
        patterns
            .iter()
            .map(|p| {
                Ok(Self {
                    pattern: p.clone(),
                    set: Excludes::new(std::slice::from_ref(p))?,
                    matched: AtomicBool::new(false),
                })
            })
            .collect()
    }

    /// Marks the patterns not marked yet that match `path`.
    fn mark(each: &[Self], path: &Path) {
        for t in each {
            if !t.matched.load(Ordering::Relaxed) && t.set.matches(path) {
                t.matched.store(true, Ordering::Relaxed);
            }
        }
    }

    fn unmatched(each: &[Self]) -> Vec<String> {
        each.iter()
            .filter(|t| !t.matched.load(Ordering::Relaxed))
            .map(|t| t.pattern.clone())
            .collect()
    }
}

impl Filters {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        Ok(Self {
            include: Excludes::new(include)?,
            exclude: Excludes::new(exclude)?,
            include_each: Tracked::all(include)?,
            exclude_each: Tracked::all(exclude)?,
        })
    }

    /// `None` when the entry at `rel` (relative to the target) is excluded; else whether it is
    /// included, itself or through its directory (`dir_included`). Records which patterns
    /// matched.
    pub fn admit(&self, rel: &Path, dir_included: bool) -> Option<bool> {
        let absolute = Path::new("/").join(rel);
        if self.exclude.matches(&absolute) {
            Tracked::mark(&self.exclude_each, &absolute);
            return None;
        }
        if dir_included {
            return Some(true);
        }
        let included = self.include.matches(&absolute);
        if included {
            Tracked::mark(&self.include_each, &absolute);
        }
        Some(included)
    }

    /// Whether the patterns select the entry at `rel` (one of the target's, for `--delete`),
    /// without counting it as a match of the snapshot.
    pub fn selects(&self, rel: &Path, dir_included: bool) -> bool {
        let absolute = Path::new("/").join(rel);
        !self.exclude.matches(&absolute) && (dir_included || self.include.matches(&absolute))
    }

    /// The include and the exclude patterns that matched no entry of the snapshot.
    pub fn unmatched(&self) -> (Vec<String>, Vec<String>) {
        (
            Tracked::unmatched(&self.include_each),
            Tracked::unmatched(&self.exclude_each),
        )
    }
}

/// The bytes of content a file's restore writes: its size without its holes.
pub(crate) fn data_bytes(node: &Node) -> u64 {
    match &node.kind {
        NodeKind::File { content, .. } => content
            .iter()
            .filter(|e| matches!(e, Extent::Data { .. }))
            .map(Extent::len)
            .sum(),
        _ => 0,
    }
}

/// A restored directory's listing, for `--delete`: the names the snapshot has there.
pub(crate) struct Listed {
    /// The directory, relative to the target.
    pub rel: PathBuf,
    pub names: HashSet<Vec<u8>>,
    /// Whether the directory itself is included (by the include patterns, or as none were given).
    pub included: bool,
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
    pub original: Original,
    pub rel: PathBuf,
    /// The inode's mtime, for `--overwrite if-newer`.
    pub mtime: Timestamp,
}

/// The first name of a hard-linked inode: the file that carries its content.
pub(crate) enum Original {
    /// Index in this batch's `Plan::files`.
    InBatch(usize),
    /// A file of an earlier batch, already in place: its number in the whole restore.
    Earlier { file: usize, rel: PathBuf },
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
    /// The number, in the whole restore, of `files[0]`: names temporaries uniquely across
    /// batches.
    pub first_file: usize,
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
    /// With `--delete`: the listing of every directory of the snapshot read in this batch.
    pub listed: Vec<Listed>,
}

impl FileJob {
    /// The size to give the file when it is created, or 0 when writing its content gives it
    /// that size anyway (it does not end in a hole): most files then need no `ftruncate`.
    pub fn size_to_set(&self) -> u64 {
        match &self.node.kind {
            NodeKind::File { size, content } => {
                let written_to_end = matches!(content.last(), Some(Extent::Data { .. }))
                    && content.iter().map(Extent::len).sum::<u64>() == *size;
                if written_to_end { 0 } else { *size }
            }
            _ => 0,
        }
    }

    /// The bytes of content to write: the file's size without its holes.
    pub fn data_bytes(&self) -> u64 {
        data_bytes(&self.node)
    }
}

impl Plan {
    /// The bytes this batch writes.
    #[cfg(test)]
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
