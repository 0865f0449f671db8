//! Measures the index's resident memory and lookup speed at N synthetic blobs (default 10
//! million), both as the loader builds it for a large repository (spilled to a run on disk,
//! the default here) and held wholly in memory (`--memory`, the layout below the bound).
//!
//! Reports the process's RSS growth and peak (VmHWM) while building, the time to build and
//! to reopen the cached run, and lookups per second of stored ids and of new ones (what a
//! backup asks for each chunk).
//!
//! `cargo run --release -p kairn-benches --bin index-memory -- 100000000 [--memory] [--dir D]`

use std::time::Instant;

use engine::crypto::MasterKeys;
use engine::id::BlobId;
use engine::index::{Index, IndexBuilder, SpillTo};
use kairn_benches::SyntheticIndex;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Args {
    blobs: usize,
    memory: bool,
    dir: std::path::PathBuf,
}

fn args() -> Args {
    let mut out = Args {
        blobs: 10_000_000,
        memory: false,
        dir: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--memory" => out.memory = true,
            "--dir" => out.dir = it.next().map(Into::into).unwrap_or(out.dir),
            n => out.blobs = n.parse().unwrap_or(out.blobs),
        }
    }
    out
}

/// Lookups per second of `ids`.
fn rate(index: &Index, ids: &[BlobId], expect: bool) -> f64 {
    let start = Instant::now();
    let found = ids.iter().filter(|id| index.contains(id)).count();
    let secs = start.elapsed().as_secs_f64();
    if expect {
        assert_eq!(found, ids.len(), "every stored id is found");
    }
    ids.len() as f64 / secs
}

fn main() {
    let args = args();
    let keys = MasterKeys::generate();
    let dir = args
        .dir
        .join(format!("kairn-index-memory-{}", std::process::id()));
    let spill = (!args.memory).then(|| SpillTo {
        dir: dir.clone(),
        key: keys.local_cache_key(),
        at: engine::index::DEFAULT_BLOBS_IN_MEMORY,
        keep: true,
    });
    // About 100,000 sampled ids, whatever N is.
    let mut synthetic = SyntheticIndex::new(args.blobs, (args.blobs / 100_000).max(1));
    let before = status_kib("VmRSS:");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let start = Instant::now();
    let mut builder = IndexBuilder::spilling(spill);
    while let Some(file) = synthetic.next_file(100) {
        builder.add_file(&file);
    }
    let index = match builder.finish_loaded() {
        Ok(index) => index,
        Err(e) => {
            eprintln!("index-memory: {e}");
            std::process::exit(1);
        }
    };
    let built = start.elapsed();
    let peak = status_kib("VmHWM:");
    let after = status_kib("VmRSS:");
    let stored = std::mem::take(&mut synthetic.sample);
    let new: Vec<BlobId> = (0..stored.len()).map(|_| synthetic.random_id()).collect();
    let (hit, miss) = (rate(&index, &stored, true), rate(&index, &new, false));
    let per_blob = |kib: u64| kib.saturating_sub(before) as f64 * 1024.0 / args.blobs as f64;
    println!(
        "blobs {}: {}; build {:.1} s; RSS growth {:.1} MiB ({:.2} B/blob), peak growth while \
         building {:.1} MiB ({:.2} B/blob); index memory {:.2} B/blob; lookups: stored {:.0}/s, \
         new {:.0}/s",
        args.blobs,
        if index.spilled() {
            "spilled to a run"
        } else {
            "in memory"
        },
        built.as_secs_f64(),
        mib(after.saturating_sub(before)),
        per_blob(after),
        mib(peak.saturating_sub(before)),
        per_blob(peak),
        index.entry_bytes() as f64 / args.blobs as f64,
        hit,
        miss,
    );
    drop(index);
    if !args.memory {
        reopen(&dir, &keys);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a later operation pays: finding and opening the cached run.
fn reopen(dir: &std::path::Path, keys: &MasterKeys) {
    let run_bytes: u64 = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    // The synthetic run names no index files, so any stored set covers it.
    let run = engine::index::run::find_cached(dir, keys.local_cache_key(), &Default::default());
    assert!(run.is_some(), "the run is found again");
    let opened = start.elapsed();
    println!(
        "run file {:.0} MiB; reopened in {:.2} s holding {:.1} MiB",
        run_bytes as f64 / (1 << 20) as f64,
        opened.as_secs_f64(),
        mib(status_kib("VmRSS:").saturating_sub(before)),
    );
    drop(run);
}
