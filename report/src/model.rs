//! The report as plain data: what `repo report --json` prints and what the page shows. Every
//! figure is computed once, here, so the JSON and the page cannot disagree.

use serde::Serialize;

use engine::format::record::{CheckRecord, PruneRecord, Record, RecordOutcome};
use engine::inspect::stats::Stats;

/// The version of this JSON shape; raised when a field changes meaning or goes away (new
/// fields may appear without it).
pub const SCHEMA_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When the report was made, RFC 3339 UTC.
    pub generated: String,
    /// The program that made it.
    pub program: String,
    /// The repository as a whole.
    pub repository: RepositoryFacts,
    /// How many sources are in each state, and the cluster backups that are whole.
    pub summary: Summary,
    /// One entry per backed-up source (a Kubernetes volume, a host's paths, etcd, manifests),
    /// and per expected volume never backed up.
    pub sources: Vec<SourceFacts>,
    /// One entry per cluster backup, oldest first.
    pub cluster_backups: Vec<ClusterBackupFacts>,
    /// The newest records of checks and prunes.
    pub operations: Operations,
    /// Snapshot and record files that could not be read: reported, never believed.
    pub unreadable: Vec<Unreadable>,
}

/// Counts for the verdict at the top of the page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Sources in each state.
    pub ok: u64,
    /// Older than their expected interval.
    pub late: u64,
    /// Expected, never backed up.
    pub never: u64,
    /// The newest snapshot is incomplete.
    pub incomplete: u64,
    /// No expected interval known.
    pub unknown: u64,
    /// Cluster backups with every part, each complete.
    pub cluster_backups_complete: u64,
    /// Cluster backups with a part missing or incomplete.
    pub cluster_backups_incomplete: u64,
}

/// The repository as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryFacts {
    /// Where it is, as given.
    pub location: String,
    /// Its id (config).
    pub id: String,
    /// Readable snapshots.
    pub snapshots: u64,
    /// Of which incomplete.
    pub incomplete_snapshots: u64,
    /// Sizes and ratios as `repo stats` computes them; absent when they could not be computed
    /// (then `stats_error` says why).
    pub stats: Option<Stats>,
    /// Why there are no stats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_error: Option<String>,
    /// Bytes stored, cumulated over the snapshots by time: the repository's growth (before
    /// prunes, which the snapshots do not record).
    pub growth: Vec<GrowthPoint>,
}

/// One step of the repository's growth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrowthPoint {
    /// The snapshot's time, RFC 3339.
    pub time: String,
    /// Its short id.
    pub snapshot: String,
    /// Bytes it added.
    pub new_bytes_stored: u64,
    /// Bytes added by it and every snapshot before it.
    pub cumulative_bytes: u64,
}

/// Where a source stands against its expected interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The newest snapshot is complete and younger than the expected interval.
    Ok,
    /// The newest snapshot is older than the expected interval.
    Late,
    /// Expected, and no snapshot at all.
    Never,
    /// The newest snapshot is in time but incomplete (some files could not be read).
    Incomplete,
    /// No expected interval is known for it.
    Unknown,
}

impl Status {
    /// A word for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Late => "late",
            Self::Never => "never backed up",
            Self::Incomplete => "incomplete",
            Self::Unknown => "no schedule known",
        }
    }
}

/// One source: a Kubernetes volume, a host's set of paths, etcd or manifests.
#[derive(Debug, Clone, Serialize)]
pub struct SourceFacts {
    /// The key retention groups by (`engine::retention::group_key`).
    pub key: String,
    /// How people name it: `namespace/pvc`, `host:/paths`, `etcd`.
    pub label: String,
    /// `volume`, `files`, `stdin`, `block-device`, `etcd` or `manifests`.
    pub kind: String,
    /// Kubernetes cluster, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Namespace, for a volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// PVC, for a volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvc: Option<String>,
    /// Host of the newest snapshot.
    pub host: String,
    /// Paths of the newest snapshot.
    pub paths: Vec<String>,
    /// Schedules that took its snapshots (tags `schedule:NAME`).
    pub schedules: Vec<String>,
    /// Readable snapshots.
    pub snapshots: u64,
    /// Of which incomplete.
    pub incomplete_snapshots: u64,
    /// The newest snapshot.
    pub last: Option<SnapshotFacts>,
    /// The newest complete snapshot, when the newest is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_complete: Option<SnapshotFacts>,
    /// The most time that may pass between two snapshots (the RPO), in seconds.
    pub expected_interval_secs: Option<u64>,
    /// Where that interval comes from: `schedule NAME`, `volume`, or `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_from: Option<String>,
    /// Where the source stands.
    pub status: Status,
    /// Its snapshots over time, oldest first (at most the newest `history_limit`).
    pub history: Vec<HistoryPoint>,
    /// The newest verified restore of one of its snapshots.
    pub last_verified_restore: Option<VerifiedRestore>,
}

/// One snapshot, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotFacts {
    /// Full id.
    pub id: String,
    /// The first 8 hex digits.
    pub short_id: String,
    /// When the backup started, RFC 3339 UTC.
    pub time: String,
    /// Seconds from then to the report (never negative).
    pub age_secs: u64,
    /// Logical bytes of its files.
    pub total_bytes: u64,
    /// Bytes it added to the repository.
    pub new_bytes_stored: u64,
    /// Some files could not be read, or kept changing.
    pub incomplete: bool,
    /// Its warnings.
    pub warnings: u64,
    /// The cluster backup it is part of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// One point of a source's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryPoint {
    /// RFC 3339.
    pub time: String,
    /// Short id.
    pub snapshot: String,
    /// Bytes it added to the repository.
    pub new_bytes_stored: u64,
    /// Logical bytes of its files.
    pub total_bytes: u64,
    /// Incomplete.
    pub incomplete: bool,
}

/// A verified restore, from its record.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedRestore {
    /// The record's short id.
    pub record: String,
    /// The snapshot restored (short id).
    pub snapshot: String,
    /// When the restore ended.
    pub finished: String,
    /// Seconds since.
    pub age_secs: u64,
    /// How it ended.
    pub outcome: RecordOutcome,
    /// What went wrong, if anything.
    pub message: String,
    /// The part restored (`/` for all).
    pub path: String,
    /// Include or exclude patterns left files out.
    pub filtered: bool,
    /// Files restored.
    pub files: u64,
    /// Bytes restored.
    pub bytes: u64,
    /// Files re-read and found equal.
    pub verified: u64,
    /// Files that failed.
    pub errors: u64,
    /// Where it ran.
    pub host: String,
}

/// A part of a cluster backup.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// `volume`, `etcd`, `manifests`, `files`, ...
    pub part: String,
    /// The source's label.
    pub label: String,
    /// The snapshot.
    pub snapshot: SnapshotFacts,
}

/// One cluster backup.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterBackupFacts {
    /// Its id.
    pub id: String,
    /// Its series (schedule), possibly empty.
    pub series: String,
    /// Its earliest snapshot's time.
    pub time: String,
    /// Its snapshots.
    pub members: Vec<Member>,
    /// Volume snapshots (not etcd, not manifests).
    pub volumes: u64,
    /// etcd snapshots.
    pub etcd: u64,
    /// Manifests snapshots.
    pub manifests: u64,
    /// Logical bytes of all members.
    pub total_bytes: u64,
    /// True when nothing below is wrong.
    pub complete: bool,
    /// What is missing or incomplete, one line each.
    pub problems: Vec<String>,
}

/// The newest records of maintenance.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Operations {
    /// Readable records of any kind.
    pub records: u64,
    /// The newest check.
    pub last_check: Option<Operation>,
    /// The newest check that read every pack (`--read-data`).
    pub last_read_data_check: Option<Operation>,
    /// The newest prune.
    pub last_prune: Option<Operation>,
}

/// One record of a check or prune.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    /// The record's short id.
    pub record: String,
    /// Seconds since it finished.
    pub age_secs: u64,
    /// When it started.
    pub started: String,
    /// When it finished.
    pub finished: String,
    /// How it ended.
    pub outcome: RecordOutcome,
    /// What went wrong, if anything.
    pub message: String,
    /// Where it ran.
    pub host: String,
    /// A check's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckRecord>,
    /// A prune's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneRecord>,
}

impl Operation {
    /// The report's view of a record.
    pub fn of(short_id: String, record: &Record, age_secs: u64) -> Self {
        Self {
            record: short_id,
            age_secs,
            started: record.started.clone(),
            finished: record.finished.clone(),
            outcome: record.outcome,
            message: record.message.clone(),
            host: record.host.clone(),
            check: record.check.clone(),
            prune: record.prune.clone(),
        }
    }
}

/// A file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// `snapshot` or `record`.
    pub kind: String,
    /// Its name in storage.
    pub name: String,
    /// Why.
    pub reason: String,
}
