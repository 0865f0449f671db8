//! Reading one regular file into chunks: sparse regions as holes, and a check that the file did
//! not change while it was read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::unistd::{Whence, lseek};
use rayon::prelude::*;

use super::shrinking::ShrinkingReader;
use super::store::Store;
use crate::progress::Progress;
use kairn_format::error::Error;
use kairn_format::id::BlobKind;
use kairn_format::tree::Extent;
use kairn_repository::repo::Repository;

/// What reading a file produced.
pub struct FileContent {
    /// The content.
    pub extents: Vec<Extent>,
    /// Bytes of content (data and holes).
    pub size: u64,
    /// Bytes actually read.
    pub bytes_read: u64,
    /// Metadata taken when the file was opened.
    pub meta: std::fs::Metadata,
    /// True when the file kept changing while read; the content is what was read last.
    pub changed_while_read: bool,
}

/// Why a file could not be read. `Source` problems become warnings; `Repository` ones are fatal.
pub enum ReadFailure {
    /// The source file could not be read.
    Source(std::io::Error),
    /// Storing what was read failed.
    Repository(Error),
}

const ATTEMPTS: usize = 3;

/// Reads and stores a file's content.
pub fn read_file(
    repo: &Repository,
    saver: &Store<'_>,
    path: &Path,
    progress: &dyn Progress,
) -> std::result::Result<FileContent, ReadFailure> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let file = open_no_follow(path).map_err(ReadFailure::Source)?;
        let before = file.metadata().map_err(ReadFailure::Source)?;
        if !before.is_file() {
            return Err(ReadFailure::Source(std::io::Error::other(
                "no longer a regular file",
            )));
        }
        let (extents, size, bytes_read) = store_content(repo, saver, &file, &before, progress)?;
        let after = file.metadata().map_err(ReadFailure::Source)?;
        let stable = before.len() == after.len()
            && before.mtime() == after.mtime()
            && before.mtime_nsec() == after.mtime_nsec()
            && before.ctime() == after.ctime()
            && before.ctime_nsec() == after.ctime_nsec()
            && (size == after.len() || (after.len() == 0 && is_pseudo_file(&file)));
        let content = FileContent {
            extents,
            size,
            bytes_read,
            meta: before,
            changed_while_read: !stable,
        };
        if stable {
            return Ok(content);
        }
        last = Some(content);
    }
    last.ok_or_else(|| ReadFailure::Source(std::io::Error::other("file could not be read")))
}

/// Files of procfs and sysfs report a size of 0 and yet have content: their size is what was
/// read, and a read that finds more than the reported size is not a change.
fn is_pseudo_file(file: &File) -> bool {
    use nix::sys::statfs::{PROC_SUPER_MAGIC, SYSFS_MAGIC, fstatfs};
    fstatfs(file).is_ok_and(|s| {
        let kind = s.filesystem_type();
        kind == PROC_SUPER_MAGIC || kind == SYSFS_MAGIC
    })
}

fn open_no_follow(path: &Path) -> std::io::Result<File> {
    let open = |flags| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
    };
    match open(nix::libc::O_NOFOLLOW | nix::libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => open(nix::libc::O_NOFOLLOW),
        other => other,
    }
}

/// The data regions of a file as `(offset, length)`; `None` when the file has no holes or the
/// filesystem cannot say, in which case it is read whole.
fn data_regions(file: &File, meta: &std::fs::Metadata) -> Option<Vec<(u64, u64)>> {
    let size = meta.len();
    if size == 0 || meta.blocks() * 512 >= size {
        return None;
    }
    let mut regions = Vec::new();
    let mut pos: i64 = 0;
    let end = i64::try_from(size).ok()?;
    while pos < end {
        let data = match lseek(file, pos, Whence::SeekData) {
            Ok(d) => d,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(_) => return None,
        };
        let hole = lseek(file, data, Whence::SeekHole).ok()?.min(end);
        if hole > data {
            regions.push((data as u64, (hole - data) as u64));
        }
        pos = hole;
    }
    Some(regions)
}

type Stored = (Vec<Extent>, u64, u64);

fn store_content(
    repo: &Repository,
    saver: &Store<'_>,
    mut file: &File,
    meta: &std::fs::Metadata,
    progress: &dyn Progress,
) -> std::result::Result<Stored, ReadFailure> {
    let mut extents = Vec::new();
    let mut bytes_read = 0u64;
    let mut size = 0u64;
    let chunk_region = |reader: &mut dyn Read,
                        extents: &mut Vec<Extent>|
     -> std::result::Result<u64, ReadFailure> {
        let result = repo.chunker().for_each_batch(reader, |batch| {
            if progress.should_stop() {
                return Err(kairn_format::error::Error::canceled());
            }
            // Ids, compression and sealing of one batch run on every core; extents stay in order.
            let ids = batch
                .par_iter()
                .map(|chunk| {
                    let (id, _) = saver.save(BlobKind::Data, chunk)?;
                    progress.bytes(chunk.len() as u64);
                    Ok(id)
                })
                .collect::<kairn_format::error::Result<Vec<_>>>()?;
            extents.extend(batch.iter().zip(ids).map(|(chunk, id)| Extent::Data {
                id,
                len: chunk.len() as u32,
            }));
            Ok(())
        });
        match result {
            Err(io) => Err(ReadFailure::Source(io)),
            Ok(Err(e)) => Err(ReadFailure::Repository(e)),
            Ok(Ok(n)) => Ok(n),
        }
    };
    match data_regions(file, meta) {
        None => {
            // data_regions may have moved the offset before giving up.
            file.seek(SeekFrom::Start(0)).map_err(ReadFailure::Source)?;
            let n = chunk_region(&mut ShrinkingReader::new(file), &mut extents)?;
            bytes_read += n;
            size += n;
        }
        Some(regions) => {
            for (offset, len) in regions {
                if offset > size {
                    extents.push(Extent::Hole { len: offset - size });
                    size = offset;
                }
                file.seek(SeekFrom::Start(offset))
                    .map_err(ReadFailure::Source)?;
                let n = chunk_region(&mut ShrinkingReader::new(file.take(len)), &mut extents)?;
                bytes_read += n;
                size += n;
                if n < len {
                    break; // the file shrank; the stability check will notice
                }
            }
            if size < meta.len() {
                extents.push(Extent::Hole {
                    len: meta.len() - size,
                });
                size = meta.len();
            }
        }
    }
    Ok((extents, size, bytes_read))
}
