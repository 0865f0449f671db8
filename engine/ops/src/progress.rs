//! Progress reporting. The engine never prints: it tells a [`Progress`] what happens, and each
//! binary decides how to show it (a terminal bar, a resource status, nothing).

use std::path::Path;

/// Receives progress events. Every method has a do-nothing default.
pub trait Progress: Send + Sync {
    /// A phase begins, with the amount of work when known.
    fn start(&self, _phase: &str, _total_bytes: Option<u64>) {}
    /// Bytes of the current phase were processed.
    fn bytes(&self, _n: u64) {}
    /// A file of the current phase was finished.
    fn file_done(&self, _path: &Path) {}
    /// A file-system backup (or dry run) begins reading a file: new, or changed since the parent.
    fn file_started(&self, _path: &Path) {}
    /// A file-system backup (or dry run) is done with a file, of `size` bytes: what it was
    /// against the parent snapshot. Every file gets one, unchanged ones too.
    fn file_status(&self, _path: &Path, _change: crate::backup::options::FileChange, _size: u64) {}
    /// Something went wrong with one item, and the operation goes on.
    fn warning(&self, _path: &Path, _message: &str) {}
    /// The current phase ended.
    fn finish(&self) {}
    /// Asked between files and between chunk batches of a backup, and between packs of a
    /// restore: `true` ends the operation with [`crate::ErrorKind::Canceled`]. A backup stopped
    /// this way publishes no snapshot; the packs it stored are adopted by the next backup.
    fn should_stop(&self) -> bool {
        false
    }
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
