//! An open run: its verified header in memory, its pages read and verified on demand.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::{BlobId, IndexId, PackId};

use super::header::Header;
use super::layout::{
    BLOCK, PAGE, PER_BLOCK, PER_PAGE, RECORD, TAG, TRAILER, block_tag, fence_of, record_id,
    record_numbers, records_in_block, records_in_page,
};
use crate::index::location::{BlobLocation, location};

/// An open run.
pub struct Run {
    file: File,
    /// Where it is kept, so that a damaged run can be deleted; `None` when already unlinked.
    path: Option<PathBuf>,
    key: [u8; 32],
    header: Header,
    damaged: AtomicBool,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Run({} blobs, {:?})", self.header.blobs, self.path)
    }
}

fn corrupt(path: &Path, what: &str) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!("index run {}: {what}", path.display()),
    )
}

impl Run {
    /// Opens and verifies a run's header; its pages are verified as they are read.
    pub fn open(path: &Path, key: [u8; 32], kept: Option<PathBuf>) -> Result<Self> {
        let file = File::open(path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        let read = |at: u64, len: usize| -> Result<Vec<u8>> {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, at)
                .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
            Ok(buf)
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?
            .len();
        if len < TRAILER as u64 {
            return Err(corrupt(path, "shorter than its trailer"));
        }
        let trailer = read(len - TRAILER as u64, TRAILER)?;
        let header_len = Header::length_in(&trailer)?;
        let pages_len = (len - TRAILER as u64)
            .checked_sub(header_len)
            .ok_or_else(|| corrupt(path, "header longer than the file"))?;
        let mut section = std::io::BufReader::with_capacity(1 << 20, &file);
        std::io::Seek::seek(&mut section, std::io::SeekFrom::Start(pages_len))
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let header = Header::read(&key, section, header_len, &trailer)?;
        if header.blobs.div_ceil(PER_PAGE as u64) * PAGE as u64 != pages_len {
            return Err(corrupt(path, "page count does not match its blob count"));
        }
        Ok(Self {
            file,
            path: kept,
            key,
            header,
            damaged: AtomicBool::new(false),
        })
    }

    /// The packs its records name, by position; the caller keeps them.
    pub fn take_packs(&mut self) -> Vec<(PackId, u64)> {
        std::mem::take(&mut self.header.packs)
    }

    /// The index files it was built from.
    pub fn files(&self) -> &[IndexId] {
        &self.header.files
    }

    /// Where it is kept, unless already unlinked.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Records it holds.
    pub fn blobs(&self) -> u64 {
        self.header.blobs
    }

    /// Bytes it holds in memory.
    pub fn bytes(&self) -> usize {
        self.header.bytes()
    }

    /// An error when a page failed to verify since the run was opened.
    pub fn intact(&self) -> Result<()> {
        if self.damaged.load(Ordering::Relaxed) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "the local index cache was damaged while in use; it is deleted, run again",
            ));
        }
        Ok(())
    }

    /// Reads page `number` into `buf`; the records it holds, or `None` (and the run is marked
    /// damaged) when it cannot be read.
    fn read_page(&self, number: u64, buf: &mut [u8; PAGE]) -> Option<usize> {
        if self.file.read_exact_at(buf, number * PAGE as u64).is_err() {
            self.mark_damaged();
            return None;
        }
        Some(records_in_page(self.header.blobs, number))
    }

    /// The records of block `block` of page `number` (read into `buf`, holding `records`),
    /// once its tag verifies; `None` (and the run is marked damaged) when it does not.
    fn block<'b>(
        &self,
        number: u64,
        buf: &'b [u8; PAGE],
        records: usize,
        block: usize,
    ) -> Option<&'b [u8]> {
        let bytes = &buf[block * BLOCK..(block + 1) * BLOCK];
        let held = &bytes[..records_in_block(records, block) * RECORD];
        let tag = block_tag(&self.key, &self.header.nonce, number, block, held);
        if tag[..] != bytes[BLOCK - TAG..] {
            self.mark_damaged();
            return None;
        }
        Some(held)
    }

    fn mark_damaged(&self) {
        self.damaged.store(true, Ordering::Relaxed);
        if let Some(p) = &self.path {
            let _ = fs::remove_file(p);
        }
    }

    /// Where a blob is, when the run holds it.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        if !self.header.may_hold(id) {
            return None;
        }
        let prefix = fence_of(id);
        let fences = &self.header.fences;
        // Pages whose first id is at or below this one; ids sharing an 8-byte prefix may run
        // across pages, so walk back while the fence equals the prefix.
        let mut page = fences.partition_point(|&f| f <= prefix);
        let mut buf = [0u8; PAGE];
        while page > 0 {
            page -= 1;
            let records = self.read_page(page as u64, &mut buf)?;
            // The block is chosen by its first id before it is verified: a damaged first id
            // can only send the search to a block that then fails to verify or lacks the id,
            // and "not stored" costs a second copy, never a wrong location.
            let blocks = records.div_ceil(PER_BLOCK);
            let first = |b: usize| &buf[b * BLOCK..b * BLOCK + 32];
            let b = (1..blocks)
                .rev()
                .find(|&b| first(b) <= &id.0.0[..])
                .unwrap_or(0);
            let held = self.block(page as u64, &buf, records, b)?;
            if let Some(r) = search(held, id) {
                let [pack_kind, offset, length, raw] = record_numbers(r);
                return Some(location(pack_kind, offset, length, raw));
            }
            if fences[page] != prefix {
                break;
            }
        }
        None
    }

    /// Every record in id order. A page with a block that does not verify is left out, and
    /// [`Self::intact`] then fails.
    pub fn iter(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        let pages = self.header.fences.len() as u64;
        (0..pages).flat_map(move |n| self.page_records(n))
    }

    fn page_records(&self, number: u64) -> Vec<(BlobId, BlobLocation)> {
        let mut buf = [0u8; PAGE];
        let Some(records) = self.read_page(number, &mut buf) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(records);
        for b in 0..records.div_ceil(PER_BLOCK) {
            let Some(held) = self.block(number, &buf, records, b) else {
                return Vec::new();
            };
            out.extend(held.chunks_exact(RECORD).map(|r| {
                let [pk, off, len, raw] = record_numbers(r);
                (record_id(r), location(pk, off, len, raw))
            }));
        }
        out
    }
}

/// The record of `id` among sorted records.
fn search<'r>(records: &'r [u8], id: &BlobId) -> Option<&'r [u8]> {
    let (mut lo, mut hi) = (0, records.len() / RECORD);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let record = &records[mid * RECORD..(mid + 1) * RECORD];
        match record[..32].cmp(&id.0.0[..]) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(record),
        }
    }
    None
}

/// The run in `dir` built from the most index files, all of them among `stored`. Runs that
/// name a file no longer stored, or that do not verify, are deleted; so are scratch files
/// older than an hour (a builder killed mid-way).
pub fn find_cached(
    dir: &Path,
    key: [u8; 32],
    stored: &std::collections::HashSet<IndexId>,
) -> Option<Run> {
    let entries = fs::read_dir(dir).ok()?;
    let mut best: Option<Run> = None;
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600);
            if old {
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
            continue;
        }
        if !name.ends_with(".kidx") {
            continue;
        }
        let run = match Run::open(&path, key, Some(path.clone())) {
            Ok(run) if run.files().iter().all(|f| stored.contains(f)) => run,
            _ => {
                let _ = fs::remove_file(&path);
                continue;
            }
        };
        match &best {
            Some(b) if b.files().len() >= run.files().len() => {
                let _ = fs::remove_file(&path);
            }
            _ => {
                if let Some(old) = best.replace(run).and_then(|r| r.path) {
                    let _ = fs::remove_file(old);
                }
            }
        }
    }
    best
}
