//! The allocator's one setting, for the binaries to make first in `main`. It is the only unsafe
//! code in the workspace (the lint is `deny`, not `forbid`, for it).

/// Fixes glibc's mmap threshold at 16 MiB. By default glibc raises it to the size of each large
/// buffer freed (up to 32 MiB); after the first freed pack buffer (25 MiB reserved), every
/// buffer below that came from per-thread arenas that keep freed pages: a backup of a million
/// small files held 149 MiB that way, 98 MiB with 16 MiB fixed. Lower is worse the other way:
/// at 1 MiB every decoded blob and pack range was mapped and faulted in afresh, and a restore
/// of the PostgreSQL data took 1.15 s of wall time against 0.7 s (BENCHMARKS.md, "Memory").
/// Call it first in `main`, before any thread starts; `MALLOC_MMAP_THRESHOLD_` overrides it.
#[allow(unsafe_code)]
pub fn fix_mmap_threshold() {
    // A threshold the user set (glibc's own tunable) stands.
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt sets one allocator parameter and touches no Rust memory; it runs before
    // any other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 16 << 20);
    }
}
