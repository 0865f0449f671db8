//! Content-defined chunking: FastCDC (2020) with a gear table derived from the chunker key.
//!
//! A secret 256-entry table, rather than fastcdc's public one XORed with a seed, keeps chunk
//! boundaries (and so chunk sizes) from revealing which known content a repository holds.
//! [`Chunker::cut`] is pure; [`Chunker::for_each_chunk`] drives it over any `Read`.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Chunk size bounds, stored in the repository config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// No chunk except a file's last is smaller.
    pub min_size: u32,
    /// The expected chunk size.
    pub avg_size: u32,
    /// No chunk is larger.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self {
            min_size: 512 * 1024,
            avg_size: 1024 * 1024,
            max_size: 8 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds fastcdc accepts: even sizes, 64 B ≤ min ≤ 1 MiB, 256 B ≤ avg ≤ 4 MiB,
    /// 1 KiB ≤ max ≤ 16 MiB, and min ≤ avg ≤ max.
    pub fn validate(&self) -> Result<()> {
        let Self {
            min_size: min,
            avg_size: avg,
            max_size: max,
        } = *self;
        let ok = min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0
            && (64..=1 << 20).contains(&min)
            && (256..=4 << 20).contains(&avg)
            && (1024..=16 << 20).contains(&max)
            && min <= avg
            && avg <= max;
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "invalid chunker sizes min={min} avg={avg} max={max}: need even sizes, \
                 64 B..1 MiB, 256 B..4 MiB, 1 KiB..16 MiB and min <= avg <= max"
            )))
        }
    }
}

/// Normalization level 1, fastcdc's default.
const NORMALIZATION: fastcdc::v2020::Normalization = fastcdc::v2020::Normalization::Level1;

/// A keyed FastCDC chunker.
#[derive(Clone)]
pub struct Chunker {
    params: ChunkerParams,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    /// A chunker whose gear table is BLAKE3-XOF(keyed by `key`, "kairn gear table v1"), read as
    /// 256 little-endian u64s.
    pub fn new(params: ChunkerParams, key: &[u8; 32]) -> Result<Self> {
        params.validate()?;
        let mut hasher = blake3::Hasher::new_keyed(key);
        hasher.update(b"kairn gear table v1");
        let mut raw = [0u8; 256 * 8];
        hasher.finalize_xof().fill(&mut raw);
        let mut gear = Box::new([0u64; 256]);
        let mut gear_ls = Box::new([0u64; 256]);
        for (i, word) in raw.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(word);
            gear[i] = u64::from_le_bytes(b);
            gear_ls[i] = gear[i] << 1;
        }
        let (mask_s, mask_l) =
            fastcdc::v2020::select_masks(params.avg_size as usize, NORMALIZATION);
        Ok(Self {
            params,
            gear,
            gear_ls,
            mask_s,
            mask_l,
        })
    }

    /// The size bounds.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// The length of the first chunk of `buf`. Exact only when `buf` holds at least `max_size`
    /// bytes or ends at end of input; otherwise the caller must supply more bytes first.
    pub fn cut(&self, buf: &[u8]) -> usize {
        if buf.is_empty() {
            return 0;
        }
        let (_, n) = fastcdc::v2020::cut_gear(
            buf,
            self.params.min_size as usize,
            self.params.avg_size as usize,
            self.params.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        if n == 0 { buf.len() } else { n }
    }

    /// Reads `reader` to its end and calls `f` with each chunk in order. Memory use is one buffer
    /// of at most twice `max_size` (256 KiB until a file needs more), reused across calls on
    /// the same thread. Returns the number of bytes
    /// read; a read error is returned as the outer error, an error of `f` as the inner one.
    pub fn for_each_chunk<R: Read>(
        &self,
        reader: R,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> std::io::Result<std::result::Result<u64, Error>> {
        self.for_each_batch(reader, |batch| batch.iter().try_for_each(|c| f(c)))
    }

    /// Like [`Chunker::for_each_chunk`], but hands over every chunk that is complete in the
    /// buffer at once, in order, so the caller can process them in parallel: one large file then
    /// keeps every core busy, while reading and cutting stay sequential (they are the cheap part).
    pub fn for_each_batch<R: Read>(
        &self,
        reader: R,
        f: impl FnMut(&[&[u8]]) -> Result<()>,
    ) -> std::io::Result<std::result::Result<u64, Error>> {
        CHUNK_BUFFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => self.chunk_with(&mut buf, reader, f),
            // Re-entered on this thread (a rayon worker that stole another file's work while
            // waiting on a batch): use a private buffer.
            Err(_) => self.chunk_with(&mut Vec::new(), reader, f),
        })
    }

    fn chunk_with<R: Read>(
        &self,
        buf: &mut Vec<u8>,
        mut reader: R,
        mut f: impl FnMut(&[&[u8]]) -> Result<()>,
    ) -> std::io::Result<std::result::Result<u64, Error>> {
        let max = self.params.max_size as usize;
        // The buffer grows to twice the largest chunk only when a file needs it: a thread that
        // reads small files keeps a small buffer (its pages are touched, so this is RSS).
        if buf.is_empty() {
            buf.resize(SMALL_BUFFER.min(2 * max), 0);
        }
        let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
        let mut cuts: Vec<(usize, usize)> = Vec::new();
        loop {
            let limit = buf.len().min(2 * max);
            while !eof && end < limit {
                match reader.read(&mut buf[end..limit]) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        end += n;
                        total += n as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            // Full before the end of the file: grow, so a large file is cut in batches of many
            // chunks (and a buffer always holds at least one whole chunk).
            if !eof && end == buf.len() && buf.len() < 2 * max {
                let grown = (buf.len() * 4).min(2 * max);
                buf.resize(grown, 0);
                continue;
            }
            cuts.clear();
            while end - start >= max || (eof && end > start) {
                let n = self.cut(&buf[start..end]);
                cuts.push((start, n));
                start += n;
            }
            if !cuts.is_empty() {
                let batch: Vec<&[u8]> = cuts.iter().map(|&(s, n)| &buf[s..s + n]).collect();
                if let Err(e) = f(&batch) {
                    return Ok(Err(e));
                }
            }
            if eof {
                return Ok(Ok(total));
            }
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
    }
}

/// The chunking buffer's first size: larger than most small files.
const SMALL_BUFFER: usize = 256 << 10;

thread_local! {
    /// One chunking buffer per thread, allocated once: a fresh 16 MiB zeroed buffer per file
    /// cost more than everything else together on trees of small files.
    static CHUNK_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 2048,
            avg_size: 8192,
            max_size: 32768,
        }
    }

    fn chunks(c: &Chunker, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let n = c
            .for_each_chunk(data, |ch| {
                out.push(ch.to_vec());
                Ok(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(n as usize, data.len());
        out
    }

    #[test]
    fn chunks_concatenate_to_input_and_respect_bounds() {
        let c = Chunker::new(small(), &[7; 32]).unwrap();
        let data = xorshift(1, 1_000_003);
        let parts = chunks(&c, &data);
        assert_eq!(parts.concat(), data);
        for p in &parts[..parts.len() - 1] {
            assert!(
                p.len() >= 2048 && p.len() <= 32768,
                "chunk of {} bytes",
                p.len()
            );
        }
        assert!(
            parts.len() > 60 && parts.len() < 250,
            "{} chunks",
            parts.len()
        );
    }

    #[test]
    fn batches_hold_the_same_chunks_in_order() {
        let c = Chunker::new(small(), &[7; 32]).unwrap();
        let data = xorshift(2, 700_001);
        let mut batched = Vec::new();
        let mut batches = 0;
        c.for_each_batch(&data[..], |batch| {
            batches += 1;
            batched.extend(batch.iter().map(|b| b.to_vec()));
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(batched, chunks(&c, &data));
        assert!(batches > 1 && batches < batched.len(), "{batches} batches");
    }

    /// Hands out at most 1,000 bytes per read.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(1000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_buffer_grows_without_moving_a_boundary() {
        let c = Chunker::new(ChunkerParams::default(), &[3; 32]).unwrap();
        let max = ChunkerParams::default().max_size as usize;
        let data = xorshift(5, 2 * max + 3 * SMALL_BUFFER + 17);
        let mut expected = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let n = c.cut(&data[pos..(pos + max).min(data.len())]);
            expected.push(data[pos..pos + n].to_vec());
            pos += n;
        }
        let mut got = Vec::new();
        let mut buf = Vec::new();
        c.chunk_with(&mut buf, Trickle(&data), |batch| {
            got.extend(batch.iter().map(|b| b.to_vec()));
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(got, expected);
        assert_eq!(buf.len(), 2 * max, "grown to hold a batch");
        let mut small = Vec::new();
        c.chunk_with(&mut small, &b"a small file"[..], |_| Ok(()))
            .unwrap()
            .unwrap();
        assert_eq!(
            small.len(),
            SMALL_BUFFER,
            "a small file keeps the buffer small"
        );
    }

    #[test]
    fn boundaries_depend_on_the_key() {
        let data = xorshift(2, 400_000);
        let a: Vec<usize> = chunks(&Chunker::new(small(), &[1; 32]).unwrap(), &data)
            .iter()
            .map(Vec::len)
            .collect();
        let b: Vec<usize> = chunks(&Chunker::new(small(), &[2; 32]).unwrap(), &data)
            .iter()
            .map(Vec::len)
            .collect();
        assert_ne!(a, b);
    }

    #[test]
    fn an_insertion_changes_only_nearby_chunks() {
        let c = Chunker::new(small(), &[3; 32]).unwrap();
        let data = xorshift(3, 2_000_000);
        let mut edited = data.clone();
        edited.splice(1_000_000..1_000_000, b"inserted bytes".iter().copied());
        let before: std::collections::HashSet<Vec<u8>> = chunks(&c, &data).into_iter().collect();
        let after = chunks(&c, &edited);
        let new = after.iter().filter(|ch| !before.contains(*ch)).count();
        assert!(new <= 3, "{new} new chunks of {}", after.len());
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let c = Chunker::new(small(), &[0; 32]).unwrap();
        assert!(chunks(&c, &[]).is_empty());
    }

    #[test]
    fn rejects_bad_params() {
        assert!(
            Chunker::new(
                ChunkerParams {
                    min_size: 3,
                    avg_size: 8,
                    max_size: 16
                },
                &[0; 32]
            )
            .is_err()
        );
        assert!(
            Chunker::new(
                ChunkerParams {
                    min_size: 8192,
                    avg_size: 4096,
                    max_size: 32768
                },
                &[0; 32]
            )
            .is_err()
        );
    }
}
