//! A source file's data, read blob by blob with a bounded read-ahead and verified, as the
//! [`std::io::Read`] the destination's chunker consumes.

use std::collections::VecDeque;
use std::io::Read;

use rayon::prelude::*;

use kairn_format::error::{Error, Result};
use kairn_format::id::BlobKind;
use kairn_format::tree::Extent;
use kairn_repository::index::Index;
use kairn_repository::read::read_blob;
use kairn_repository::repo::Repository;

/// Source blobs read at once: enough to overlap the latency of object storage, bounded so
/// that a file in flight holds a few MiB however large it is.
const READ_AHEAD_BYTES: u64 = 4 << 20;

/// The bytes of a run of data extents, read from the source and verified blob by blob.
pub(super) struct RegionReader<'a> {
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

impl<'a> RegionReader<'a> {
    pub(super) fn new(repo: &'a Repository, index: &'a Index, region: &'a [Extent]) -> Self {
        Self {
            repo,
            index,
            pending: region,
            ready: VecDeque::new(),
            current: Vec::new(),
            pos: 0,
            failure: None,
        }
    }

    /// The engine error behind a failed read, once.
    pub(super) fn take_failure(&mut self) -> Option<Error> {
        self.failure.take()
    }

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
