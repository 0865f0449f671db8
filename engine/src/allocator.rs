//! The allocator's one setting, for the binaries to make first in `main`. It is the only unsafe
//! code in the workspace (the lint is `deny`, not `forbid`, for it).

/// Fixes glibc's mmap threshold at 1 MiB. By default glibc raises it to the size of each large
/// buffer freed (up to 32 MiB); after the first freed pack buffer, every buffer below that size
/// came from per-thread arenas that keep freed pages. A backup of a million small files held
/// 149 MiB that way and 97 MiB with the threshold fixed, and ran faster (BENCHMARKS.md,
/// "Memory"). Call it first in `main`, before any thread starts.
#[allow(unsafe_code)]
pub fn fix_mmap_threshold() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt sets one allocator parameter and touches no Rust memory; it runs before
    // any other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
