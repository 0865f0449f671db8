//! The one reader of a file's content: its extents in order, holes as zeros, data blobs read
//! with a bounded read-ahead and each checked against its id (by the read path) and against
//! the length its tree records. `dump`, `dump` as tar, and `copy` read files through it.

use std::collections::VecDeque;
use std::io::Read;

use rayon::prelude::*;

use kairn_format::error::{Error, Result};
use kairn_format::id::BlobKind;
use kairn_format::tree::Extent;

use super::read_blob;
use crate::index::Index;
use crate::repo::Repository;

/// Data blobs read at once: enough to overlap the latency of object storage, bounded so that
/// a file in flight holds a few MiB however large it is.
const READ_AHEAD_BYTES: u64 = 4 << 20;

/// A file's bytes, as a [`Read`].
pub struct ContentReader<'a> {
    repo: &'a Repository,
    index: &'a Index,
    /// Extents not read yet.
    pending: &'a [Extent],
    /// Extents read ahead, in order: a blob's bytes, or the length of a hole.
    ready: VecDeque<Chunk>,
    current: Vec<u8>,
    pos: usize,
    zeros_left: u64,
    /// Why reading stopped: the engine error behind the I/O error a caller sees.
    failure: Option<Error>,
}

enum Chunk {
    Data(Vec<u8>),
    Hole(u64),
}

impl<'a> ContentReader<'a> {
    /// A reader over `content`, the extents of one file (or a run of them).
    pub fn new(repo: &'a Repository, index: &'a Index, content: &'a [Extent]) -> Self {
        Self {
            repo,
            index,
            pending: content,
            ready: VecDeque::new(),
            current: Vec::new(),
            pos: 0,
            zeros_left: 0,
            failure: None,
        }
    }

    /// The engine error behind a failed read, once.
    pub fn take_failure(&mut self) -> Option<Error> {
        self.failure.take()
    }

    fn read_ahead(&mut self) -> Result<()> {
        let mut take = 0;
        let mut bytes = 0;
        while take < self.pending.len() && (take == 0 || bytes < READ_AHEAD_BYTES) {
            if let Extent::Data { len, .. } = self.pending[take] {
                bytes += u64::from(len);
            }
            take += 1;
        }
        let (batch, rest) = self.pending.split_at(take);
        self.pending = rest;
        let (repo, index) = (self.repo, self.index);
        let chunks = batch
            .par_iter()
            .map(|e| match *e {
                Extent::Hole { len } => Ok(Chunk::Hole(len)),
                Extent::Data { .. } => read_extent(repo, index, e).map(Chunk::Data),
            })
            .collect::<Result<Vec<_>>>()?;
        self.ready.extend(chunks);
        Ok(())
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos < self.current.len() {
                let n = out.len().min(self.current.len() - self.pos);
                out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.zeros_left > 0 {
                let n = out
                    .len()
                    .min(usize::try_from(self.zeros_left).unwrap_or(usize::MAX));
                out[..n].fill(0);
                self.zeros_left -= n as u64;
                return Ok(n);
            }
            match self.ready.pop_front() {
                Some(Chunk::Data(bytes)) => {
                    self.current = bytes;
                    self.pos = 0;
                    continue;
                }
                Some(Chunk::Hole(len)) => {
                    self.zeros_left = len;
                    continue;
                }
                None => {}
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
        return Err(Error::internal("a hole read as data"));
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
