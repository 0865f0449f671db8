//! Executing a restore plan: each pack is read once (in coalesced ranges), each blob is
//! decrypted and verified once, then written to every place it goes with positioned writes.
//! The work is split into ranges of packs (a range of a pack is at most `MAX_READ` bytes and
//! `MAX_BLOBS` blobs), which run on every core: one huge file, many small files in one pack
//! and many packs all spread the same way.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;

use super::at::{Dirs, why_no_dir};
use super::create::TARGET_FULL;
use super::fs::open_file;
use super::meta::apply_fd;
use super::plan::{BlobNeed, FileJob, PackWork, Plan};
use super::report::Outcome;
use crate::progress::Progress;

use kairn_format::error::{ErrorKind, Result};
use kairn_format::id::BlobKind;
use kairn_repository::read::pack::{BlobAt, PackSpan};
use kairn_repository::repo::Repository;

/// Blobs closer than this are read in one request.
const COALESCE_GAP: u64 = 256 * 1024;
/// Files a worker keeps open at once: a segment of tiny files targets thousands of them, and the
/// descriptor limit may be as low as 1,024 for the whole process.
const MAX_OPEN_FILES: usize = 64;
/// No single read is larger than this.
const MAX_READ: u64 = 64 << 20;
/// Blobs per range: a pack of small files is spread over several cores.
const MAX_BLOBS: usize = 512;

/// Writes every blob into the temporaries of its files. Fails only when canceled; a full
/// target fails the files it could not complete, and those not written yet, without trying.
///
/// With `meta` (no verification to come, which must read before times are set; the value
/// says whether to restore owners), the write that completes a file also applies its
/// metadata through the descriptor it wrote with: placing it is then only a rename, which
/// saves an open, a stat and a close per file.
pub(crate) fn execute(
    repo: &Repository,
    dirs: &Dirs<'_>,
    plan: &Plan,
    outcome: &Outcome,
    meta: Option<bool>,
    progress: &dyn Progress,
) -> Result<()> {
    let mut remaining = vec![0u32; plan.files.len()];
    for need in plan.packs.iter().flat_map(|w| &w.blobs) {
        for t in &need.targets {
            remaining[t.file as usize] += 1;
        }
    }
    let filling = Filling {
        dirs,
        first_file: plan.first_file,
        files: &plan.files,
        outcome,
        remaining: remaining.into_iter().map(AtomicU32::new).collect(),
        meta,
    };
    let units: Vec<(&PackWork, &[BlobNeed])> = plan
        .packs
        .iter()
        .flat_map(|work| {
            segments(&work.blobs)
                .into_iter()
                .map(move |seg| (work, seg))
        })
        .collect();
    units
        .into_par_iter()
        .try_for_each_init(HashMap::new, |open_files, (work, seg)| {
            restore_range(repo, &filling, work, seg, open_files, progress)
        })
}

struct Filling<'a> {
    dirs: &'a Dirs<'a>,
    first_file: usize,
    files: &'a [FileJob],
    outcome: &'a Outcome,
    /// Placements not yet written, per file.
    remaining: Vec<AtomicU32>,
    meta: Option<bool>,
}

impl Filling<'_> {
    fn fail(&self, file: usize, message: String) {
        self.outcome.fail(file, message);
    }

    fn failed(&self, file: usize) -> bool {
        self.outcome.failed(file)
    }

    /// Counts a placement of file `file` written through `fd`; the one that completes the file
    /// applies its metadata (see [`execute`]). Every other write to it returned before its own
    /// count, so none comes after.
    fn wrote(&self, file: u32, fd: std::os::fd::BorrowedFd<'_>) -> bool {
        let Some(owner) = self.meta else {
            return false;
        };
        if self.remaining[file as usize].fetch_sub(1, Ordering::AcqRel) != 1 {
            return false;
        }
        let problems = apply_fd(fd, &self.files[file as usize].node, owner);
        self.outcome.meta_applied(file as usize, problems);
        true
    }

    /// Opens file `i`'s temporary through its directory's handle.
    fn open(&self, i: u32) -> std::result::Result<File, String> {
        let (dir, _) = self
            .dirs
            .parent(&self.files[i as usize].rel)
            .map_err(|e| why_no_dir(&e))?;
        let temp = self.dirs.target().temp_name(self.first_file + i as usize);
        open_file(dir.as_fd(), &temp, true).map_err(|e| format!("cannot open for writing: {e}"))
    }
}

/// Groups a pack's needed blobs (sorted by offset) into ranges to read.
fn segments(blobs: &[BlobNeed]) -> Vec<&[BlobNeed]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=blobs.len() {
        let split = i == blobs.len() || {
            let first = u64::from(blobs[start].offset);
            let prev_end = u64::from(blobs[i - 1].offset) + u64::from(blobs[i - 1].length);
            let next = &blobs[i];
            u64::from(next.offset) > prev_end + COALESCE_GAP
                || u64::from(next.offset) + u64::from(next.length) - first > MAX_READ
                || i - start >= MAX_BLOBS
        };
        if split {
            out.push(&blobs[start..i]);
            start = i;
        }
    }
    out
}

fn restore_range(
    repo: &Repository,
    plan: &Filling<'_>,
    work: &PackWork,
    seg: &[BlobNeed],
    open_files: &mut HashMap<u32, File>,
    progress: &dyn Progress,
) -> Result<()> {
    if progress.should_stop() {
        return Err(kairn_format::error::Error::canceled());
    }
    if plan.outcome.is_full() {
        fail_all(plan, seg, TARGET_FULL);
        return Ok(());
    }
    let start = u64::from(seg[0].offset);
    let end = seg
        .iter()
        .map(|b| u64::from(b.offset) + u64::from(b.length))
        .max()
        .unwrap_or(start);
    let mut span = match PackSpan::read(repo, work.pack, start, end - start) {
        Ok(b) => b,
        Err(e) => {
            let why = match e.kind() {
                ErrorKind::NotFound => format!("pack {} is missing", work.pack.short()),
                _ => format!("pack {} cannot be read: {e}", work.pack.short()),
            };
            fail_all(plan, seg, &why);
            return Ok(());
        }
    };
    for need in seg {
        let at = BlobAt {
            kind: BlobKind::Data,
            id: need.id,
            offset: need.offset,
            length: need.length,
            raw_length: need.raw_length,
        };
        let data = match span.open(repo.keys(), &at) {
            Ok(d) => d,
            Err(e) => {
                fail_all(
                    plan,
                    std::slice::from_ref(need),
                    &format!("damaged data in pack {}: {e}", work.pack.short()),
                );
                continue;
            }
        };
        for t in &need.targets {
            write_one(plan, open_files, t.file, t.offset, &data);
            progress.bytes(data.len() as u64);
        }
    }
    Ok(())
}

/// Writes one blob at `offset` of file `file`, failing the file when it cannot be.
fn write_one(
    plan: &Filling<'_>,
    open_files: &mut HashMap<u32, File>,
    file: u32,
    offset: u64,
    data: &[u8],
) {
    if plan.failed(file as usize) {
        return;
    }
    if plan.outcome.is_full() {
        plan.fail(file as usize, TARGET_FULL.into());
        return;
    }
    if open_files.len() >= MAX_OPEN_FILES && !open_files.contains_key(&file) {
        open_files.clear();
    }
    let handle = match open_files.entry(file) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => match plan.open(file) {
            Ok(f) => v.insert(f),
            Err(message) => {
                plan.fail(file as usize, message);
                return;
            }
        },
    };
    if let Err(e) = handle.write_all_at(data, offset) {
        if kairn_format::error::is_no_space(&e) {
            plan.outcome.set_full();
        }
        plan.fail(file as usize, format!("write failed: {e}"));
    } else if plan.wrote(file, handle.as_fd()) {
        open_files.remove(&file); // complete: its descriptor is of no more use
    }
}

fn fail_all(plan: &Filling<'_>, blobs: &[BlobNeed], why: &str) {
    for need in blobs {
        for t in &need.targets {
            plan.fail(t.file as usize, why.to_string());
        }
    }
}
