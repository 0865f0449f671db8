//! Building a run without holding the index: records are appended to 256 partition files by
//! their id's first byte, then each partition in turn is read, sorted, filtered and written
//! out as pages. Memory while building: the partition buffers (8 MiB) and one partition
//! (1/256 of the records, 48 bytes each), not the whole index.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rayon::slice::ParallelSliceMut;
use xorf::BinaryFuse8;

use super::header::Header;
use super::layout::{
    BLOCK, PAGE, PARTITIONS, PER_BLOCK, PER_PAGE, RECORD, TAG, block_tag, fence_of, filter_key,
    record_id, records_in_block,
};
use super::open::Run;
use kairn_format::error::{Error, Result};
use kairn_format::id::{IndexId, PackId};

const PARTITION_BUFFER: usize = 32 << 10;

/// Records spilled to partition files, not yet a run.
pub struct Spill {
    dir: PathBuf,
    scratch: PathBuf,
    parts: Vec<BufWriter<File>>,
    key: [u8; 32],
    nonce: [u8; 16],
}

/// How every error of writing a run begins, so a loader can tell them from the repository's.
pub const SPILL_ERROR: &str = "index spill: ";

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{SPILL_ERROR}cannot {what} {}", path.display()), e)
}

/// True when `e` came from writing a run (the local disk), not from the repository.
pub fn is_spill_error(e: &Error) -> bool {
    e.to_string().contains(SPILL_ERROR)
}

impl Spill {
    /// Starts a spill whose run will be written into `dir`.
    pub fn new(dir: &Path, key: [u8; 32]) -> Result<Self> {
        let nonce: [u8; 16] = kairn_format::crypto::random_bytes();
        let scratch = dir.join(format!("spill-{}.tmp", hex(&nonce)));
        fs::create_dir_all(&scratch).map_err(|e| io("create", &scratch, e))?;
        let parts = (0..PARTITIONS)
            .map(|p| {
                let path = scratch.join(format!("{p:02x}"));
                File::create(&path)
                    .map(|f| BufWriter::with_capacity(PARTITION_BUFFER, f))
                    .map_err(|e| io("create", &path, e))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            scratch,
            parts,
            key,
            nonce,
        })
    }

    /// Appends one record (see [`super::layout::RECORD`]).
    pub fn push(&mut self, record: &[u8; RECORD]) -> Result<()> {
        self.parts[usize::from(record[0])]
            .write_all(record)
            .map_err(|e| io("write to", &self.scratch, e))
    }

    /// Sorts every partition into pages and writes the run: to a name of its own in the
    /// directory when `keep`, else to a file that is unlinked once open.
    pub fn finish(
        mut self,
        packs: Vec<(PackId, u64)>,
        files: Vec<IndexId>,
        keep: bool,
    ) -> Result<Run> {
        for part in std::mem::take(&mut self.parts) {
            part.into_inner()
                .map_err(|e| io("flush", &self.scratch, e.into_error()))?;
        }
        let name = format!("run-{}", hex(&self.nonce));
        let tmp = self.dir.join(format!("{name}.tmp"));
        let file = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        let mut pages = Pages::new(
            BufWriter::with_capacity(1 << 20, file),
            self.key,
            self.nonce,
        );
        let mut filters = Vec::with_capacity(PARTITIONS);
        for p in 0..PARTITIONS {
            let records = self.sorted_partition(p)?;
            filters.push(filter_of(&records)?);
            for r in &records {
                pages.push(r).map_err(|e| io("write", &tmp, e))?;
            }
        }
        let (out, blobs, fences) = pages.finish().map_err(|e| io("write", &tmp, e))?;
        let header = Header {
            nonce: self.nonce,
            blobs,
            packs,
            files,
            fences,
            filters,
        };
        let mut out = out;
        header
            .write(&self.key, &mut out)
            .map_err(|e| io("write", &tmp, e))?;
        drop(header); // before the run is opened, which reads its own copy
        let file = out
            .into_inner()
            .map_err(|e| io("flush", &tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io("sync", &tmp, e))?;
        drop(file);
        if !keep {
            let run = Run::open(&tmp, self.key, None);
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_dir_all(&self.scratch);
            let _ = fs::remove_dir(&self.dir);
            return run;
        }
        let path = self.dir.join(format!("{name}.kidx"));
        fs::rename(&tmp, &path).map_err(|e| io("rename", &tmp, e))?;
        Run::open(&path, self.key, Some(path.clone()))
    }

    fn sorted_partition(&self, p: usize) -> Result<Vec<[u8; RECORD]>> {
        let path = self.scratch.join(format!("{p:02x}"));
        let mut file = File::open(&path).map_err(|e| io("open", &path, e))?;
        let len = file.metadata().map_err(|e| io("stat", &path, e))?.len() as usize;
        let mut records = vec![[0u8; RECORD]; len / RECORD];
        file.read_exact(records.as_flattened_mut())
            .map_err(|e| io("read", &path, e))?;
        drop(file);
        let _ = fs::remove_file(&path);
        records.par_sort_unstable_by(|a, b| a[..32].cmp(&b[..32]));
        // A blob stored twice (two writers raced) keeps one location; either is valid.
        records.dedup_by(|a, b| a[..32] == b[..32]);
        Ok(records)
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        self.parts.clear();
        let _ = fs::remove_dir_all(&self.scratch);
    }
}

fn filter_of(records: &[[u8; RECORD]]) -> Result<Option<BinaryFuse8>> {
    if records.is_empty() {
        return Ok(None);
    }
    let mut keys: Vec<u64> = records.iter().map(|r| filter_key(&record_id(r))).collect();
    keys.sort_unstable();
    keys.dedup();
    BinaryFuse8::try_from(&keys)
        .map(Some)
        .map_err(|e| Error::internal(format!("index filter: {e}")))
}

/// Writes records into pages of tagged blocks and notes each page's fence.
struct Pages {
    out: BufWriter<File>,
    page: Vec<u8>,
    number: u64,
    blobs: u64,
    fences: Vec<u64>,
    key: [u8; 32],
    nonce: [u8; 16],
}

impl Pages {
    fn new(out: BufWriter<File>, key: [u8; 32], nonce: [u8; 16]) -> Self {
        Self {
            out,
            page: Vec::with_capacity(PAGE),
            number: 0,
            blobs: 0,
            fences: Vec::new(),
            key,
            nonce,
        }
    }

    fn push(&mut self, record: &[u8; RECORD]) -> std::io::Result<()> {
        if self.page.is_empty() {
            self.fences.push(fence_of(&record_id(record)));
        }
        self.page.extend_from_slice(record);
        self.blobs += 1;
        if self.page.len() == PER_PAGE * RECORD {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let records = self.page.len() / RECORD;
        let mut out = [0u8; PAGE];
        for (b, block) in out.chunks_exact_mut(BLOCK).enumerate() {
            let start = (b * PER_BLOCK * RECORD).min(self.page.len());
            let bytes = &self.page[start..start + records_in_block(records, b) * RECORD];
            block[..bytes.len()].copy_from_slice(bytes);
            let tag = block_tag(&self.key, &self.nonce, self.number, b, bytes);
            block[BLOCK - TAG..].copy_from_slice(&tag);
        }
        self.out.write_all(&out)?;
        self.page.clear();
        self.number += 1;
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<(BufWriter<File>, u64, Vec<u64>)> {
        if !self.page.is_empty() {
            self.flush()?;
        }
        Ok((self.out, self.blobs, self.fences))
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
