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
    let mut ids = Vec::with_capacity(n);
    let mut packs = Vec::with_capacity(n / 1000 + 1);
    let mut x = 0x0123_4567_89AB_CDEFu64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for p in 0..n.div_ceil(1000) {
        let mut blobs = Vec::with_capacity(1000);
        for i in 0..1000.min(n - p * 1000) {
            let mut raw = [0u8; 32];
            for chunk in raw.chunks_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes());
            }
            let id = BlobId(Id(raw));
            ids.push(id);
            blobs.push(PackEntry {
                kind: BlobKind::Data,
                id,
                offset: i as u32 * 1000,
                length: 1000,
                raw_length: 2000,
            });
        }
        let mut pid = [0u8; 32];
        pid[..8].copy_from_slice(&(p as u64).to_le_bytes());
        packs.push(IndexPack {
            id: PackId(Id(pid)),
            size: 1_000_000,
            blobs,
        });
    }
    (
        IndexFile {
            supersedes: Vec::new(),
            packs,
        },
        ids,
    )
}
