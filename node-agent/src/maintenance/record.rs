//! The records the maintenance workload leaves in the repository after each check and prune
//! (repo-format.md §13.1), as `repo check` and `repo prune` do, so the restore-readiness
//! report (`repo report`, `kubectl kairn report`) shows when the cluster's repository was last
//! checked and pruned. Storing one is best effort: a warning, never the step's outcome.

use chrono::{DateTime, Utc};
use engine::check::{CheckOptions, CheckReport, Subset};
use engine::format::record::{CheckRecord, PruneRecord, Record, RecordKind, RecordOutcome};
use engine::prune::PruneReport;
use engine::repo::Repository;

fn program() -> String {
    format!("kairn-maintenance {}", env!("CARGO_PKG_VERSION"))
}

fn outcome<T>(
    result: &engine::Result<T>,
    problems: impl Fn(&T) -> Option<String>,
) -> (RecordOutcome, String) {
    match result {
        Ok(r) => match problems(r) {
            Some(message) => (RecordOutcome::Problems, message),
            None => (RecordOutcome::Ok, String::new()),
        },
        Err(e) => (RecordOutcome::Failed, e.to_string()),
    }
}

/// The record of a check that started at `started`.
pub fn check(
    started: DateTime<Utc>,
    opts: &CheckOptions,
    result: &engine::Result<CheckReport>,
) -> Record {
    let (o, message) = outcome(result, |r| {
        (!r.problems.is_empty()).then(|| format!("{} problem(s) found", r.problems.len()))
    });
    let mut rec = engine::records::new_record(RecordKind::Check, started, o, message, program());
    let read_data = match (opts.read_data, opts.subset) {
        (true, _) => "all".to_string(),
        (false, None) => "none".to_string(),
        (false, Some(Subset::Group { n, m })) => format!("{n}/{m}"),
        (false, Some(Subset::Percent(p))) => format!("{p}%"),
        (false, Some(Subset::Bytes(b))) => format!("{b} bytes"),
    };
    let r = result.as_ref().ok();
    rec.check = Some(CheckRecord {
        read_data,
        snapshots: r.map_or(0, |r| r.snapshots),
        packs_read: r.map_or(0, |r| r.packs_read),
        blobs_verified: r.map_or(0, |r| r.blobs_verified),
        problems: r.map_or(0, |r| r.problems.len() as u64),
    });
    rec
}

/// The record of a prune that started at `started`.
pub fn prune(started: DateTime<Utc>, result: &engine::Result<PruneReport>) -> Record {
    let (o, message) = outcome(result, |r| {
        r.held_back_until.is_some().then(|| {
            "deleted nothing: an unreadable session file may be a running writer's".to_string()
        })
    });
    let mut rec = engine::records::new_record(RecordKind::Prune, started, o, message, program());
    if let Ok(r) = result {
        rec.prune = Some(PruneRecord {
            deleted_packs: r.deleted_packs,
            deleted_bytes: r.deleted_bytes,
            pending_packs: r.pending.iter().map(|p| p.packs as u64).sum(),
            snapshots: r.snapshots,
        });
    }
    rec
}

/// Stores `record`; logs a warning when it cannot.
pub fn store(repo: &Repository, record: Record) {
    if let Err(e) = engine::records::save(repo, &record) {
        tracing::warn!("could not store the record of this {:?}: {e}", record.kind);
    }
}
