//! Every session as an observer sees it: a prune deciding whom to wait for, and
//! `repair sessions` listing and removing the sessions of writers known dead.

use serde::Serialize;

use kairn_format::FileKind;
use kairn_format::error::{ErrorKind, Result};
use kairn_format::id::{HeartbeatId, SessionId};
use kairn_format::session::{Heartbeat, Outcome};

use super::fence;
use crate::files::Files;

/// A session as seen by an observer.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// The session.
    pub session: SessionId,
    /// Its newest heartbeat.
    pub latest: Heartbeat,
    /// Storage time of its newest heartbeat, ms since the epoch.
    pub last_beat_ms: i64,
    /// Its heartbeat files.
    pub files: Vec<HeartbeatId>,
    /// Its fence, if any.
    pub fence: Option<Outcome>,
}

/// Every session that has a heartbeat. A heartbeat deleted while listing is skipped.
pub fn list_sessions(files: &Files) -> Result<Vec<SessionView>> {
    let mut by_session: std::collections::BTreeMap<SessionId, SessionView> = Default::default();
    for id in files.list::<Heartbeat>()? {
        let beat = match files.load::<Heartbeat>(&id) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let modified = match files.backend().modified(FileKind::Session, &id.to_hex()) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let view = by_session
            .entry(beat.session)
            .or_insert_with(|| SessionView {
                session: beat.session,
                latest: beat.clone(),
                last_beat_ms: modified,
                files: Vec::new(),
                fence: None,
            });
        view.files.push(id);
        // Newest by sequence number: storage times may tie (S3 keeps whole seconds).
        view.last_beat_ms = view.last_beat_ms.max(modified);
        if beat.seq >= view.latest.seq {
            view.latest = beat;
        }
    }
    let mut out: Vec<SessionView> = by_session.into_values().collect();
    for v in &mut out {
        v.fence = fence::outcome(files, v.session)?;
    }
    Ok(out)
}

/// Deletes a session's heartbeats and its fence: `repair sessions`, for a writer known dead.
pub fn remove_session(files: &Files, session: SessionId) -> Result<bool> {
    let mut found = false;
    for view in list_sessions(files)?
        .into_iter()
        .filter(|v| v.session == session)
    {
        for f in view.files {
            files.backend().delete(FileKind::Session, &f.to_hex())?;
            found = true;
        }
    }
    if fence::outcome(files, session)?.is_some() {
        files.backend().delete(FileKind::Fence, &session.to_hex())?;
        found = true;
    }
    Ok(found)
}
