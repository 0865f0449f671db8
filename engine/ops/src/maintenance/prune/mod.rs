//! `prune`: deletes packs no snapshot uses and repacks partly used ones, safely beside running
//! writers. Deletion is two-phase (repo-format.md §14.1): a *mark* rewrites the index without
//! the chosen packs and records them, with the sessions then live, in a garbage list; a *sweep*
//! deletes them once those sessions have ended, after checking again what the snapshots use.
//!
//! The mark computes a plan first (`plan.rs`, pure data), then carries it out (`mark.rs`);
//! `sweep.rs` runs the sweeps, `sessions.rs` tells which sessions still block one, `load.rs`
//! reads what both decide from, and `repack.rs` copies the used blobs of partly used packs.

mod load;
mod mark;
mod options;
mod plan;
mod repack;
mod report;
mod sessions;
mod sweep;

pub use options::PruneOptions;
pub use report::{Pending, PruneReport, WaitingFor};

use crate::progress::Progress;
use kairn_format::error::Result;
use kairn_repository::repo::Repository;
use kairn_repository::session::Session;

/// Prunes. The repository must have a session of its own (`Repository::begin_session`): its
/// heartbeats give the storage's time and keep other prunes from sweeping under it.
pub fn prune(
    repo: &Repository,
    session: &Session,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    if !opts.dry_run {
        repo.refuse_append_only("prune")?;
    }
    let own = session.id();
    let mut report = PruneReport::default();
    if !opts.dry_run {
        // First, since it needs no space: on a full disk, the writes that follow may need it.
        report.stale_staged_files = repo.backend().remove_stale_staged(opts.expiry)?;
    }
    sweep::sweep_all(repo, session, opts, own, &mut report, progress)?;
    if report.held_back_until.is_some() {
        return Ok(report);
    }
    if !opts.dry_run {
        sessions::remove_ended_sessions(repo)?;
    }
    let marked = mark::mark(repo, session, opts, own, &mut report, progress)?;
    if marked.is_some() || !report.pending.is_empty() {
        let deadline = std::time::Instant::now() + opts.expiry * 2;
        loop {
            sweep::sweep_all(repo, session, opts, own, &mut report, progress)?;
            if report.pending.is_empty() || !opts.wait || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(opts.poll);
        }
    }
    Ok(report)
}
