//! What a prune found and did, and what it still waits for.

use serde::Serialize;

use kairn_format::id::{GarbageId, SessionId};
use kairn_repository::session::registry::UnreadableSession;
use kairn_repository::snapshots::UnreadableFile;

/// A garbage list still waiting for sessions.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    /// The list.
    pub garbage: GarbageId,
    /// Packs it holds.
    pub packs: usize,
    /// The sessions it waits for.
    pub waiting_for: Vec<WaitingFor>,
}

/// A session a sweep waits for.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingFor {
    /// The session.
    pub session: SessionId,
    /// What it does, where, as which process.
    pub kind: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds since its last heartbeat, in storage time.
    pub idle_secs: i64,
    /// True when it has committed and is writing its snapshot.
    pub committing: bool,
}

/// What a prune found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Snapshots whose blobs were kept.
    pub snapshots: u64,
    /// Blobs the snapshots use.
    pub used_blobs: u64,
    /// Indexed blobs no snapshot uses (or duplicates).
    pub unused_blobs: u64,
    /// Packs stored when the mark began.
    pub packs: u64,
    /// Indexed packs with no used blob, chosen for deletion.
    pub unused_packs: u64,
    /// Packs no index listed, chosen for deletion.
    pub unindexed_packs: u64,
    /// Packs no index listed, younger than the session expiry: left for a later prune, since a
    /// running backup may still index them, or a re-run of an interrupted one adopt them.
    pub young_unindexed_packs: u64,
    /// Partly used packs whose used blobs were copied to new packs.
    pub repacked_packs: u64,
    /// Bytes of those packs.
    pub repacked_bytes: u64,
    /// Packs indexed again because a snapshot uses them.
    pub reindexed_packs: u64,
    /// Packs deleted by sweeps.
    pub deleted_packs: u64,
    /// Bytes deleted by sweeps.
    pub deleted_bytes: u64,
    /// Index files written.
    pub index_files_written: u64,
    /// Index files deleted (superseded).
    pub index_files_deleted: u64,
    /// Garbage lists swept.
    pub swept: u64,
    /// Garbage lists still waiting for sessions.
    pub pending: Vec<Pending>,
    /// Packs and index files the store's retention lock still holds: not deleted, planned for
    /// a prune after their lock ends.
    pub deferred_packs: u64,
    /// Bytes of those packs.
    pub deferred_bytes: u64,
    /// Index files left for the same reason (superseded, so unused).
    pub deferred_index_files: u64,
    /// When the last of the deferred objects may go, ms since the epoch in storage time.
    pub deferred_until: Option<i64>,
    /// Files in `tmp/` that writes staged and never finished, older than the session expiry,
    /// removed (repo-format.md §14).
    pub stale_staged_files: u64,
    /// Files in `sessions/` that cannot be read.
    pub unreadable_sessions: Vec<UnreadableSession>,
    /// Set when one of them is younger than the session expiry: it may be a live writer's, so
    /// nothing was marked or swept. When the last of them stops holding deletions back, ms
    /// since the epoch in storage time.
    pub held_back_until: Option<i64>,
    /// Garbage lists that cannot be read: skipped. Their packs are out of the index already,
    /// so a later mark chooses them again as unindexed packs.
    pub unreadable_garbage: Vec<UnreadableFile>,
}

impl PruneReport {
    /// Counts an object the store's retention lock keeps until `until`: a pack of
    /// `pack_bytes`, or an index file when that is 0.
    pub(super) fn defer(&mut self, until: i64, pack_bytes: u64) {
        if pack_bytes > 0 {
            self.deferred_packs += 1;
            self.deferred_bytes += pack_bytes;
        } else {
            self.deferred_index_files += 1;
        }
        self.deferred_until = Some(self.deferred_until.map_or(until, |u| u.max(until)));
    }
}
