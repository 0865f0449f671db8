//! A session's fence (`fences/<session id>`): created exclusively, once, by the writer that
//! commits or by the prune that expires it (repo-format.md §14.1).

use kairn_format::error::{ErrorKind, Result};
use kairn_format::id::SessionId;
use kairn_format::repofile::RepoFile;
use kairn_format::session::{Fence, Outcome};

use crate::files::Files;

/// Tries to create `session`'s fence with `outcome`. True when this call created it.
pub fn create(files: &Files, session: SessionId, outcome: Outcome) -> Result<bool> {
    let bytes = files.seal(&Fence { session, outcome })?;
    match files
        .backend()
        .create_exclusive(Fence::KIND, &session.to_hex(), bytes)
    {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The outcome recorded in a session's fence, `None` when it has none. A fence that cannot be
/// read whole counts as a commit: the cautious reading, since a commit blocks deletion.
pub fn outcome(files: &Files, session: SessionId) -> Result<Option<Outcome>> {
    Ok(read(files, session)?.map(|decoded| decoded.unwrap_or(Outcome::Commit)))
}

/// Whether the fence that exists is this writer's own commit, read strictly (a fence that does
/// not decode is not ours): it is, when a retried create's first attempt had landed.
pub(super) fn is_own_commit(files: &Files, session: SessionId) -> Result<bool> {
    Ok(read(files, session)? == Some(Some(Outcome::Commit)))
}

/// A session's fence: `None` when there is none, `Some(None)` when it does not decode as this
/// session's fence; each caller decides what such a fence means for it.
fn read(files: &Files, session: SessionId) -> Result<Option<Option<Outcome>>> {
    let name = session.to_hex();
    let bytes = match files.backend().read(Fence::KIND, &name) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(
        files
            .open::<Fence>(&name, &bytes)
            .ok()
            .filter(|f| f.session == session)
            .map(|f| f.outcome),
    ))
}
