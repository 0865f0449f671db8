//! A prune's pending deletions (sealed file type 6, postcard), `garbage/<hash>`
//! (repo-format.md §14.1).

use serde::{Deserialize, Serialize};

use crate::id::{PackId, SessionId};
use crate::index::IndexPack;

/// Packs a prune took out of the index, waiting for the sessions live then to end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarbageList {
    /// Packs that were indexed, with their entries (to index them again if a snapshot turns
    /// out to use them).
    pub indexed: Vec<IndexPack>,
    /// Packs that no index file listed, with their sizes.
    pub unindexed: Vec<(PackId, u64)>,
    /// Sessions that were live when the list was made; all must end before the sweep.
    pub sessions: Vec<SessionId>,
}
