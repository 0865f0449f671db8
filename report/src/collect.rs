//! Reads the repository into the report: snapshots, records, and the figures `repo stats`
//! computes. [`build`] is the pure part, over what was read, so it is tested without storage.

use engine::format::record::{Record, RecordKind};
use engine::format::snapshot::Snapshot;
use engine::id::{RecordId, SnapshotId};
use engine::index::Index;
use engine::inspect::stats::Stats;
use engine::repo::Repository;

use crate::groups::cluster_backups;
use crate::model::{
    GrowthPoint, Operation, Operations, Report, RepositoryFacts, SCHEMA_VERSION, Status, Summary,
    Unreadable,
};
use crate::options::ReportOptions;
use crate::sources::sources;
use crate::text::age_secs;

/// What the report is built from: everything read from the repository.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The repository id.
    pub repository_id: String,
    /// Readable snapshots, oldest first.
    pub snapshots: Vec<(SnapshotId, Snapshot)>,
    /// Readable records, oldest first.
    pub records: Vec<(RecordId, Record)>,
    /// `repo stats`'s figures, or why there are none.
    pub stats: Result<Stats, String>,
    /// Files that could not be read.
    pub unreadable: Vec<Unreadable>,
}

/// Reads the repository and builds the report. Damaged snapshot or record files are listed in
/// the report, not fatal; the sizes and ratios then are left out, as `repo stats` refuses too.
pub fn collect(repo: &Repository, index: &Index, opts: &ReportOptions) -> engine::Result<Report> {
    let scan = engine::snapshots::scan(repo)?;
    let records = engine::records::scan(repo)?;
    let mut unreadable: Vec<Unreadable> = Vec::new();
    for (kind, files) in [("snapshot", &scan.damaged), ("record", &records.damaged)] {
        unreadable.extend(files.iter().map(|f| Unreadable {
            kind: kind.to_string(),
            name: f.name.clone(),
            reason: f.reason.clone(),
        }));
    }
    let stats = if scan.damaged.is_empty() {
        engine::inspect::stats::stats(repo, index).map_err(|e| e.to_string())
    } else {
        Err(format!(
            "{} snapshot file(s) cannot be read: sizes and ratios need every snapshot (`repo \
             repair snapshots` removes them)",
            scan.damaged.len()
        ))
    };
    let inputs = Inputs {
        repository_id: repo.config().id.to_hex(),
        snapshots: scan.snapshots,
        records: records.records,
        stats,
        unreadable,
    };
    Ok(build(inputs, opts))
}

/// The report over what was read.
pub fn build(inputs: Inputs, opts: &ReportOptions) -> Report {
    let snaps = &inputs.snapshots;
    let sources = sources(snaps, &inputs.records, opts);
    let cluster_backups = cluster_backups(snaps, opts);
    let mut summary = Summary::default();
    for s in &sources {
        *match s.status {
            Status::Ok => &mut summary.ok,
            Status::Late => &mut summary.late,
            Status::Never => &mut summary.never,
            Status::Incomplete => &mut summary.incomplete,
            Status::Unknown => &mut summary.unknown,
        } += 1;
    }
    for g in &cluster_backups {
        if g.complete {
            summary.cluster_backups_complete += 1;
        } else {
            summary.cluster_backups_incomplete += 1;
        }
    }
    let (stats, stats_error) = match inputs.stats {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e)),
    };
    Report {
        schema_version: SCHEMA_VERSION,
        generated: opts.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        program: opts.program.clone(),
        repository: RepositoryFacts {
            location: opts.location.clone(),
            id: inputs.repository_id,
            snapshots: snaps.len() as u64,
            incomplete_snapshots: snaps.iter().filter(|(_, s)| s.incomplete).count() as u64,
            stats,
            stats_error,
            growth: growth(snaps),
        },
        summary,
        sources,
        cluster_backups,
        operations: operations(&inputs.records, opts),
        unreadable: inputs.unreadable,
    }
}

/// Cumulative bytes stored, snapshot by snapshot in time order.
fn growth(snaps: &[(SnapshotId, Snapshot)]) -> Vec<GrowthPoint> {
    let mut total = 0u64;
    snaps
        .iter()
        .map(|(id, s)| {
            total = total.saturating_add(s.summary.new_bytes_stored);
            GrowthPoint {
                time: s.time.clone(),
                snapshot: id.short(),
                new_bytes_stored: s.summary.new_bytes_stored,
                cumulative_bytes: total,
            }
        })
        .collect()
}

/// The newest check, full check and prune.
fn operations(records: &[(RecordId, Record)], opts: &ReportOptions) -> Operations {
    let newest = |want: &dyn Fn(&Record) -> bool| {
        records
            .iter()
            .rev()
            .find(|(_, r)| want(r))
            .map(|(id, r)| Operation::of(id.short(), r, age_secs(&r.finished, opts.now)))
    };
    Operations {
        records: records.len() as u64,
        last_check: newest(&|r| r.kind == RecordKind::Check),
        last_read_data_check: newest(&|r| {
            r.kind == RecordKind::Check && r.check.as_ref().is_some_and(|c| c.read_data == "all")
        }),
        last_prune: newest(&|r| r.kind == RecordKind::Prune),
    }
}
