//! How to prune: the options a caller chooses.

use std::time::Duration;

/// How to prune.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Repack partly used packs until at most this share (percent) of the stored bytes is
    /// unused.
    pub max_unused_percent: f64,
    /// Repack at most this many bytes of packs in one run.
    pub max_repack_bytes: Option<u64>,
    /// A session with no heartbeat for this long, in storage time, is expired.
    pub expiry: Duration,
    /// Wait for the sessions that block a sweep (up to twice the expiry, long enough for any
    /// dead writer to expire) instead of leaving it to a later prune.
    pub wait: bool,
    /// How often to look again while waiting.
    pub poll: Duration,
    /// Decide and report, change nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused_percent: 5.0,
            max_repack_bytes: None,
            expiry: kairn_repository::session::DEFAULT_EXPIRY,
            wait: false,
            poll: Duration::from_secs(10),
            dry_run: false,
        }
    }
}
