//! Writer sessions' two stored types (repo-format.md §14.1): the heartbeat a writer renews, and
//! the fence that decides once whether it committed or a prune expired it.

use serde::{Deserialize, Serialize};

use crate::id::SessionId;

/// One heartbeat of a session (sealed file type 4, JSON), `sessions/<hash>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The session.
    pub session: SessionId,
    /// 0 for the first heartbeat, then counting up.
    pub seq: u64,
    /// What the writer does: `backup`, `prune`, `forget`.
    pub kind: String,
    /// The writer's host.
    pub host: String,
    /// The writer's process id.
    pub pid: u32,
    /// When the session began by the writer's clock; for people, never compared.
    pub started: String,
    /// The writer has ended: written last, instead of deleting its heartbeats, by a writer in
    /// append-only mode. A prune removes such a session's files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ended: bool,
}

/// Who created a session's fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The session committed: it is writing its snapshot.
    Commit,
    /// A prune expired the session: it may never commit.
    Expire,
}

/// A session's fence (sealed file type 5, JSON), `fences/<session id>`: created exclusively,
/// by the writer (commit) or by a prune (expire), whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    /// The session it decides; a fence naming another session is not this session's.
    pub session: SessionId,
    /// What was decided.
    pub outcome: Outcome,
}
