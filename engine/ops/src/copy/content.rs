//! A file's content, rewritten: holes kept as they are, each data region between them read from
//! the source and cut again by the destination's chunker as one input, as a backup would cut it.

use std::path::Path;

use rayon::prelude::*;

use super::rewrite::{Rewriter, add};
use kairn_format::error::{Error, Result};
use kairn_format::id::BlobKind;
use kairn_format::tree::Extent;
use kairn_repository::read::content::ContentReader;

impl Rewriter<'_> {
    /// The destination content list of a file: holes as they are, each data region between
    /// them read and chunked again as one input.
    pub(super) fn content(&self, content: &[Extent], path: &Path) -> Result<Vec<Extent>> {
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
        let mut reader = ContentReader::new(self.src, self.src_index, region);
        let result = self.dst.chunker().for_each_batch(&mut reader, |batch| {
            // Ids, compression and sealing of one batch run on every core; extents stay in order.
            let ids = batch
                .par_iter()
                .map(|chunk| {
                    let len = chunk.len() as u64;
                    let (id, new) = self.saver.save(BlobKind::Data, chunk)?;
                    if new {
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
                return Err(reader.take_failure().unwrap_or_else(|| {
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
