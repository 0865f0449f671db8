//! Measures the index's resident memory per blob: builds an index of N synthetic blobs (default
//! 10 million) and reports the growth of VmRSS, the peak growth while building (VmHWM: what a
//! command pays at start-up), and the entry vector's own size.
//!
//! `cargo run --release -p kairn-benches --bin index-memory -- 10000000`

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let (file, ids) = kairn_benches::synthetic_index(n);
    let before = rss_kib();
    // The high-water mark so far is the synthetic input's; reset it to measure the build's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let start = std::time::Instant::now();
    let index = engine::index::Index::from_files([&file]);
    let built = start.elapsed();
    let peak = status_kib("VmHWM:");
    drop(file);
    let after = rss_kib();
    let start = std::time::Instant::now();
    let mut found = 0usize;
    for id in ids.iter().step_by(10) {
        found += usize::from(index.contains(id));
    }
    let lookups = ids.len().div_ceil(10);
    let per_lookup = start.elapsed().as_nanos() as f64 / lookups as f64;
    assert_eq!(found, lookups);
    println!(
        "blobs {n}: entries {:.1} B/blob; RSS growth {:.1} B/blob (the input file is freed before the \
         second reading); peak growth while building {:.1} B/blob; build {:.2} s; lookup \
         {per_lookup:.0} ns",
        index.entry_bytes() as f64 / n as f64,
        (after.saturating_sub(before)) as f64 * 1024.0 / n as f64,
        (peak.saturating_sub(before)) as f64 * 1024.0 / n as f64,
        built.as_secs_f64(),
    );
}
