//! The sessions a prune deals with (repo-format.md §14.1): which ones a garbage list still
//! waits for, expiring the stale ones, and removing the heartbeats and fences of those that
//! have ended.

use std::collections::{HashMap, HashSet};

use kairn_format::FileKind;
use kairn_format::error::Result;
use kairn_format::id::SessionId;
use kairn_format::session::Outcome;
use kairn_repository::repo::Repository;
use kairn_repository::session::Session;
use kairn_repository::session::fence;
use kairn_repository::session::registry::{SessionView, list_sessions, scan_sessions};

use super::options::PruneOptions;
use super::report::{PruneReport, WaitingFor};

/// True when a session file that cannot be read is younger than the session expiry (storage
/// time): it may be a live writer's heartbeat, and a writer no garbage list names is one no
/// sweep waits for, so nothing may be marked or swept (repo-format.md §14.1). An older one is
/// reported and ignored: a live writer stores a readable heartbeat every sixth of the expiry,
/// and one that stored none for a whole expiry publishes nothing more (`check_alive`).
pub(super) fn held_back(
    repo: &Repository,
    session: &Session,
    opts: &PruneOptions,
    report: &mut PruneReport,
) -> Result<bool> {
    let unreadable = scan_sessions(repo.files())?.unreadable;
    if unreadable.is_empty() {
        return Ok(false);
    }
    let now = session.storage_now()?;
    let expiry_ms = i64::try_from(opts.expiry.as_millis()).unwrap_or(i64::MAX);
    report.held_back_until = unreadable
        .iter()
        .map(|u| u.stored_ms.saturating_add(expiry_ms))
        .filter(|until| *until > now)
        .max();
    report.unreadable_sessions = unreadable;
    Ok(report.held_back_until.is_some())
}

/// Whether session `s`, named by a garbage list, still blocks its sweep; expires it when stale.
pub(super) fn blocking(
    repo: &Repository,
    opts: &PruneOptions,
    sessions: &HashMap<SessionId, SessionView>,
    s: SessionId,
    now: i64,
) -> Result<Option<WaitingFor>> {
    let Some(view) = sessions.get(&s).filter(|v| !v.latest.ended) else {
        return Ok(None); // no heartbeat, or its last one says so: it ended
    };
    let idle_ms = now - view.last_beat_ms;
    let expiry_ms = i64::try_from(opts.expiry.as_millis()).unwrap_or(i64::MAX);
    let outcome = match view.fence {
        Some(o) => Some(o),
        None if idle_ms > expiry_ms && !opts.dry_run => {
            if fence::create(repo.files(), s, Outcome::Expire)? {
                Some(Outcome::Expire)
            } else {
                fence::outcome(repo.files(), s)?
            }
        }
        None => None,
    };
    if outcome == Some(Outcome::Expire) {
        return Ok(None);
    }
    Ok(Some(WaitingFor {
        session: s,
        kind: view.latest.kind.clone(),
        host: view.latest.host.clone(),
        pid: view.latest.pid,
        idle_secs: idle_ms / 1000,
        committing: outcome == Some(Outcome::Commit),
    }))
}

/// Fences of committed sessions that have ended (no heartbeat) are no longer needed. Fences
/// are listed before heartbeats: a committed session deletes its heartbeats only after writing
/// its snapshot. Fences that expired a session stay: the expired writer may still wake up, and
/// its fence is what stops it from committing.
pub(super) fn remove_finished_fences(repo: &Repository) -> Result<()> {
    remove_ended_sessions(repo)?;
    let fences = repo.backend().list(FileKind::Fence)?;
    if fences.is_empty() {
        return Ok(());
    }
    let live: HashSet<SessionId> = list_sessions(repo.files())?
        .into_iter()
        .map(|v| v.session)
        .collect();
    for (name, _) in fences {
        let Ok(id) = name.parse::<SessionId>() else {
            continue;
        };
        if !live.contains(&id) && fence::outcome(repo.files(), id)? == Some(Outcome::Commit) {
            repo.backend().delete(FileKind::Fence, &name)?;
        }
    }
    Ok(())
}

/// Heartbeats of sessions whose last heartbeat says they ended (writers in append-only mode
/// leave them; repo-format.md §14.1).
pub(super) fn remove_ended_sessions(repo: &Repository) -> Result<()> {
    for view in list_sessions(repo.files())?
        .into_iter()
        .filter(|v| v.latest.ended)
    {
        for f in view.files {
            repo.backend().delete(FileKind::Session, &f.to_hex())?;
        }
    }
    Ok(())
}
