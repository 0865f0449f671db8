//! Every session as an observer sees it: a prune deciding whom to wait for, and
//! `repair sessions` listing and removing the sessions of writers known dead.

use serde::Serialize;

use kairn_format::FileKind;
use kairn_format::error::{ErrorKind, Result};
use kairn_format::id::{HeartbeatId, Id, SessionId};
use kairn_format::session::{Heartbeat, Outcome};

use super::fence;
use crate::files::Files;
use crate::unreadable::UnreadableFile;

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

/// A file in `sessions/` that cannot be read: damaged, junk, or not named by an id. Whose
/// session it is cannot be told, so a prune treats it as a live writer's until it is older
/// than the session expiry (repo-format.md §14.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableSession {
    /// The file and why it cannot be read.
    pub file: UnreadableFile,
    /// Its storage time, ms since the epoch.
    pub stored_ms: i64,
}

/// Every session, and the session files that cannot be read.
#[derive(Debug, Clone, Default)]
pub struct SessionScan {
    /// The sessions that have a readable heartbeat.
    pub sessions: Vec<SessionView>,
    /// Session files that cannot be read.
    pub unreadable: Vec<UnreadableSession>,
}

/// Every session that has a readable heartbeat; unreadable session files are left out (a
/// prune asks [`scan_sessions`] for them first).
pub fn list_sessions(files: &Files) -> Result<Vec<SessionView>> {
    scan_sessions(files).map(|s| s.sessions)
}

/// Every session, and the files in `sessions/` that cannot be read. A heartbeat deleted while
/// listing is skipped.
pub fn scan_sessions(files: &Files) -> Result<SessionScan> {
    let mut by_session: std::collections::BTreeMap<SessionId, SessionView> = Default::default();
    let mut unreadable = Vec::new();
    for (name, _) in files.backend().list(FileKind::Session)? {
        let modified = match files.backend().modified(FileKind::Session, &name) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let beat = match Id::from_hex(&name).map(HeartbeatId::from) {
            Err(_) => Err("its name is not a heartbeat id".to_string()),
            Ok(id) => match files.load::<Heartbeat>(&id) {
                Ok(b) => Ok((id, b)),
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) if e.kind() == ErrorKind::Corrupt => Err(e.to_string()),
                Err(e) => return Err(e),
            },
        };
        let (id, beat) = match beat {
            Ok(b) => b,
            Err(reason) => {
                unreadable.push(UnreadableSession {
                    file: UnreadableFile { name, reason },
                    stored_ms: modified,
                });
                continue;
            }
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
    let mut sessions: Vec<SessionView> = by_session.into_values().collect();
    for v in &mut sessions {
        v.fence = fence::outcome(files, v.session)?;
    }
    Ok(SessionScan {
        sessions,
        unreadable,
    })
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
