//! The index as built and queried: entries in memory, on top of a run on disk or not.

use std::collections::HashMap;

use super::location::{BlobLocation, SpillTo, pack_kind};
use super::memory::{Entries, Wide};
use super::run::Run;
use super::run::build::Spill;
use kairn_format::error::{Error, Result};
use kairn_format::id::{BlobId, IndexId, PackId};
use kairn_format::index::IndexFile;

/// Entries collected between writes to the partitions once a builder spills.
const SPILL_BATCH: usize = 65_536;

/// Collects index entries, then sorts them once into an [`Index`].
#[derive(Debug, Default)]
pub struct IndexBuilder {
    packs: Vec<(PackId, u64)>,
    pack_pos: HashMap<PackId, u32>,
    entries: Vec<Wide>,
    files: Vec<IndexId>,
    spill_to: Option<SpillTo>,
    spill: Option<Spill>,
    /// A run loaded from the cache; the entries are what is new since it was built.
    run: Option<Run>,
    /// On top of a run, more new entries than the bound: the run must be built again.
    overflowed: bool,
    failed: Option<Error>,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spill")
    }
}

impl IndexBuilder {
    /// A builder that spills to a run past the bound, when one is given.
    pub fn spilling(spill_to: Option<SpillTo>) -> Self {
        Self {
            spill_to,
            ..Self::default()
        }
    }

    /// A builder on top of a run: what it adds is held in memory, up to the bound.
    pub fn on_run(mut run: Run, spill_to: Option<SpillTo>) -> Self {
        let packs = run.take_packs();
        let pack_pos = (0..packs.len() as u32)
            .map(|p| (packs[p as usize].0, p))
            .collect();
        Self {
            packs,
            pack_pos,
            files: run.files().to_vec(),
            spill_to,
            run: Some(run),
            ..Self::default()
        }
    }

    /// Adds every pack of an index file.
    pub fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            let pos = match self.pack_pos.get(&pack.id) {
                Some(&pos) => pos,
                None => {
                    let pos = self.packs.len() as u32;
                    self.packs.push((pack.id, pack.size));
                    self.pack_pos.insert(pack.id, pos);
                    pos
                }
            };
            self.entries.reserve(pack.blobs.len());
            for b in &pack.blobs {
                let pk = pack_kind(pos, b.kind);
                self.entries
                    .push(Wide::new(&b.id, pk, b.offset, b.length, b.raw_length));
            }
        }
        self.bound_memory();
    }

    fn bound_memory(&mut self) {
        let Some(to) = &self.spill_to else { return };
        // Once spilling, entries pass through in small batches: the bound is then held by
        // nothing but the batch.
        let at = if self.spill.is_some() {
            SPILL_BATCH.min(to.at)
        } else {
            to.at
        };
        if self.entries.len() <= at || self.failed.is_some() {
            return;
        }
        if self.run.is_some() {
            self.overflowed = true;
            self.entries = Vec::new();
            return;
        }
        if let Err(e) = self.spill_entries() {
            self.failed = Some(e);
        }
    }

    fn spill_entries(&mut self) -> Result<()> {
        let Some(to) = &self.spill_to else {
            return Ok(());
        };
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => self.spill.insert(Spill::new(&to.dir, to.key)?),
        };
        for w in &self.entries {
            spill.push(&w.record())?;
        }
        // Released, not kept: the first spill empties a buffer as large as the bound.
        self.entries = Vec::new();
        Ok(())
    }

    /// Records that an index file was read.
    pub fn add_file_id(&mut self, id: IndexId) {
        self.files.push(id);
    }

    /// True when, on top of a run, more was added than the bound allows.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Sorts by id; a blob stored in several packs keeps its first location. Holds everything
    /// in memory: for builders that do not spill.
    pub fn finish(self) -> Index {
        Index {
            packs: self.packs,
            mem: Entries::sort(self.entries, true),
            run: self.run,
            files: self.files,
        }
    }

    /// Finishes a loaded index: spilled entries become a run; of a blob stored in several
    /// packs, any one location is kept.
    pub fn finish_loaded(mut self) -> Result<Index> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.files.sort_unstable();
        self.files.dedup();
        if self.spill.is_some() {
            self.spill_entries()?;
        }
        let keep = self.spill_to.as_ref().is_some_and(|t| t.keep);
        let mut run = self.run.take();
        let mut packs = std::mem::take(&mut self.packs);
        if let Some(spill) = self.spill.take() {
            let mut built = spill.finish(packs, self.files.clone(), keep)?;
            packs = built.take_packs();
            run = Some(built);
        }
        Ok(Index {
            packs,
            mem: Entries::sort(std::mem::take(&mut self.entries), false),
            run,
            files: std::mem::take(&mut self.files),
        })
    }
}

/// All blobs of the repository, by id.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<(PackId, u64)>,
    /// Entries held in memory: all of them, or those newer than the run.
    mem: Entries,
    run: Option<Run>,
    files: Vec<IndexId>,
}

impl Index {
    /// Builds an index from index files already in memory.
    pub fn from_files<'a>(files: impl IntoIterator<Item = &'a IndexFile>) -> Self {
        let mut builder = IndexBuilder::default();
        for f in files {
            builder.add_file(f);
        }
        builder.finish()
    }

    /// Where a blob is.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.mem
            .get(id)
            .or_else(|| self.run.as_ref().and_then(|r| r.get(id)))
    }

    /// True when the blob is stored.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.get(id).is_some()
    }

    /// The pack at a position, with its size.
    pub fn pack(&self, pos: u32) -> (PackId, u64) {
        self.packs[pos as usize]
    }

    /// Every pack with its size.
    pub fn packs(&self) -> &[(PackId, u64)] {
        &self.packs
    }

    /// Number of blobs (a blob indexed both in the run and since counts twice).
    pub fn len(&self) -> usize {
        self.mem.len() + self.run.as_ref().map_or(0, |r| r.blobs() as usize)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every blob and where it is, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        let run = self.run.iter().flat_map(|r| r.iter());
        merge(self.mem.iter().peekable(), run.peekable())
    }

    /// An error when part of the on-disk run failed to verify while in use (lookups then
    /// answered "not stored", and [`Self::iter`] stopped short).
    pub fn intact(&self) -> Result<()> {
        self.run.as_ref().map_or(Ok(()), Run::intact)
    }

    /// True when the index spilled to a run on disk.
    pub fn spilled(&self) -> bool {
        self.run.is_some()
    }

    /// The index files this index was loaded from.
    pub fn files(&self) -> &[IndexId] {
        &self.files
    }

    /// Bytes of memory held for blob entries, the bucket table and the run's filters and
    /// fences (for the benchmarks' bytes-per-blob figure).
    pub fn entry_bytes(&self) -> usize {
        self.mem.bytes() + self.run.as_ref().map_or(0, Run::bytes)
    }
}

/// Two id-ordered streams as one; of an id in both, the first stream's.
fn merge<'a>(
    mut a: std::iter::Peekable<impl Iterator<Item = (BlobId, BlobLocation)> + 'a>,
    mut b: std::iter::Peekable<impl Iterator<Item = (BlobId, BlobLocation)> + 'a>,
) -> impl Iterator<Item = (BlobId, BlobLocation)> + 'a {
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.0 < x.0 => b.next(),
        (Some(x), Some(y)) if y.0 == x.0 => {
            b.next();
            a.next()
        }
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}
