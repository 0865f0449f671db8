//! Shared inputs for Kairn's benchmarks.
//!
//! `mixed_corpus` builds the "mixed real data" buffer the micro-benchmarks run on: 1 MiB
//! pieces taken in turn from shared libraries, C headers and documentation on this machine
//! (binaries, source text and compressed files), so compression ratios resemble a real volume.

use std::path::{Path, PathBuf};

use engine::format::index::{IndexFile, IndexPack};
use engine::format::pack::PackEntry;
use engine::id::BlobKind;
use engine::id::{BlobId, Id, PackId};

fn files_under(dir: &Path, limit: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
                if out.len() >= limit {
                    return out;
                }
            }
        }
    }
    out
}

/// `len` bytes of mixed real data (deterministic for a given machine image).
pub fn mixed_corpus(len: usize) -> Vec<u8> {
    let sources = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/include",
        "/usr/share/doc",
        "/usr/share/perl",
    ];
    let mut lists: Vec<std::vec::IntoIter<PathBuf>> = sources
        .iter()
        .map(|s| files_under(Path::new(s), 20_000).into_iter())
        .collect();
    let mut out = Vec::with_capacity(len);
    let mut piece = Vec::new();
    'outer: while out.len() < len {
        let mut progressed = false;
        for list in &mut lists {
            piece.clear();
            for path in list.by_ref() {
                if let Ok(bytes) = std::fs::read(&path) {
                    piece.extend_from_slice(&bytes);
                }
                if piece.len() >= 1 << 20 {
                    break;
                }
            }
            if !piece.is_empty() {
                progressed = true;
                let take = piece.len().min(len - out.len());
                out.extend_from_slice(&piece[..take]);
                if out.len() >= len {
                    break 'outer;
                }
            }
        }
        if !progressed {
            break;
        }
    }
    // On a machine without those directories, fill up with half text, half noise.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (out.len() / 4096) % 2 == 0 {
            out.extend_from_slice(format!("line {x} of some text\n").as_bytes());
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// An index file with `n` synthetic blobs in packs of 1,000, and the ids, for index benchmarks.
pub fn synthetic_index(n: usize) -> (IndexFile, Vec<BlobId>) {
    let mut synthetic = SyntheticIndex::new(n, 1);
    let mut packs = Vec::with_capacity(n.div_ceil(1000));
    while let Some(file) = synthetic.next_file(usize::MAX) {
        packs.extend(file.packs);
    }
    let file = IndexFile {
        supersedes: Vec::new(),
        packs,
    };
    (file, synthetic.sample)
}

/// Synthetic index files of `n` blobs in all, in packs of 1,000 with random ids, made one file
/// at a time so that 100 million blobs do not have to be held; every `sample_every`-th id is
/// kept for lookups.
pub struct SyntheticIndex {
    left: usize,
    pack: u64,
    x: u64,
    sample_every: usize,
    made: usize,
    /// The kept ids.
    pub sample: Vec<BlobId>,
}

impl SyntheticIndex {
    /// Makes `n` blobs, keeping every `sample_every`-th id.
    pub fn new(n: usize, sample_every: usize) -> Self {
        Self {
            left: n,
            pack: 0,
            x: 0x0123_4567_89AB_CDEF,
            sample_every: sample_every.max(1),
            made: 0,
            sample: Vec::with_capacity(n / sample_every.max(1) + 1),
        }
    }

    /// A random id (xorshift64; uniform, as keyed hashes are).
    pub fn random_id(&mut self) -> BlobId {
        let mut raw = [0u8; 32];
        for chunk in raw.chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            chunk.copy_from_slice(&self.x.to_le_bytes());
        }
        BlobId(Id(raw))
    }

    /// The next index file, of at most `max_packs` packs; `None` when all blobs are made.
    pub fn next_file(&mut self, max_packs: usize) -> Option<IndexFile> {
        let mut packs = Vec::new();
        while self.left > 0 && packs.len() < max_packs {
            let count = self.left.min(1000);
            let mut blobs = Vec::with_capacity(count);
            for i in 0..count {
                let id = self.random_id();
                if self.made.is_multiple_of(self.sample_every) {
                    self.sample.push(id);
                }
                self.made += 1;
                blobs.push(PackEntry {
                    kind: BlobKind::Data,
                    id,
                    offset: i as u32 * 1000,
                    length: 1000,
                    raw_length: 2000,
                });
            }
            let mut pid = [0u8; 32];
            pid[..8].copy_from_slice(&self.pack.to_le_bytes());
            self.pack += 1;
            packs.push(IndexPack {
                id: PackId(Id(pid)),
                size: 1_000_000,
                blobs,
            });
            self.left -= count;
        }
        (!packs.is_empty()).then_some(IndexFile {
            supersedes: Vec::new(),
            packs,
        })
    }
}
