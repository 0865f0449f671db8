//! What a check, a prune or a verified restore did: sealed file type 7 holding JSON, stored as
//! `records/<hash>` (repo-format.md §13.1). The restore-readiness report shows the newest of
//! each; nothing else reads them, and no decision of the engine depends on them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::snapshot::Source;

/// Which operation a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// `repo check`.
    Check,
    /// `repo prune` (or `forget --prune`).
    Prune,
    /// `repo restore --verify`.
    RestoreVerify,
    /// A kind written by a newer version: listed, never taken for one of the above.
    #[serde(other)]
    Other,
}

/// How the operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordOutcome {
    /// It finished and found nothing wrong.
    Ok,
    /// It finished and found problems (a check's findings, files a restore could not write or
    /// verify).
    Problems,
    /// It stopped with an error.
    Failed,
    /// An outcome written by a newer version.
    #[serde(other)]
    Other,
}

/// What a check looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckRecord {
    /// `none` (structure only), `all` (`--read-data`), or the subset read
    /// (`--read-data-subset`, as given).
    pub read_data: String,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Packs read.
    pub packs_read: u64,
    /// Blobs decrypted and verified.
    pub blobs_verified: u64,
    /// Problems found.
    pub problems: u64,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PruneRecord {
    /// Packs deleted.
    pub deleted_packs: u64,
    /// Bytes those packs held: the space freed.
    pub deleted_bytes: u64,
    /// Packs taken out of the index, left for a later prune to delete.
    pub pending_packs: u64,
    /// Snapshots whose data was kept.
    pub snapshots: u64,
}

/// What a verified restore restored and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    /// The snapshot restored.
    pub snapshot: SnapshotId,
    /// Its time, host, paths and source, so the record still names the volume once the
    /// snapshot is forgotten.
    #[serde(default)]
    pub snapshot_time: String,
    /// Host of the snapshot.
    #[serde(default)]
    pub host: String,
    /// Paths of the snapshot.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Source of the snapshot.
    #[serde(default)]
    pub source: Source,
    /// The part restored: `/` for the whole snapshot.
    #[serde(default)]
    pub path: String,
    /// True when include or exclude patterns left files out.
    #[serde(default)]
    pub filtered: bool,
    /// Files restored.
    #[serde(default)]
    pub files: u64,
    /// Bytes restored.
    #[serde(default)]
    pub bytes: u64,
    /// Files re-read and found equal to the snapshot.
    #[serde(default)]
    pub verified: u64,
    /// Files that could not be restored or verified.
    #[serde(default)]
    pub errors: u64,
}

/// One record. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The operation.
    pub kind: RecordKind,
    /// When it started, RFC 3339 UTC.
    pub started: String,
    /// When it ended, RFC 3339 UTC.
    pub finished: String,
    /// Where it ran.
    #[serde(default)]
    pub host: String,
    /// Who ran it.
    #[serde(default)]
    pub username: String,
    /// `kairn <version>`.
    #[serde(default)]
    pub program: String,
    /// How it ended.
    pub outcome: RecordOutcome,
    /// The error, or what the problems were, in a line; empty when it went well.
    #[serde(default)]
    pub message: String,
    /// A check's figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckRecord>,
    /// A prune's figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneRecord>,
    /// A verified restore's figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreRecord>,
}

impl Record {
    /// JSON bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        crate::codec::to_json(self, "record")
    }

    /// Parses JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt("record does not decode").with_source(e))
    }

    /// When the operation ended, parsed.
    pub fn finished_at(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.finished)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| Error::corrupt(format!("record time {:?}", self.finished)).with_source(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    fn record() -> Record {
        Record {
            kind: RecordKind::RestoreVerify,
            started: "2026-01-01T00:00:00Z".into(),
            finished: "2026-01-01T00:01:00Z".into(),
            host: "h".into(),
            username: "u".into(),
            program: "kairn 0.1.0".into(),
            outcome: RecordOutcome::Ok,
            message: String::new(),
            check: None,
            prune: None,
            restore: Some(RestoreRecord {
                snapshot: SnapshotId(Id([3; 32])),
                snapshot_time: "2025-12-31T00:00:00Z".into(),
                host: "h".into(),
                paths: vec!["/db".into()],
                source: Source::default(),
                path: "/".into(),
                filtered: false,
                files: 2,
                bytes: 10,
                verified: 2,
                errors: 0,
            }),
        }
    }

    #[test]
    fn round_trips_and_leaves_out_absent_parts() {
        let r = record();
        let bytes = r.encode().unwrap();
        assert_eq!(Record::decode(&bytes).unwrap(), r);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains(r#""kind":"restore-verify""#), "{text}");
        assert!(!text.contains("\"check\""), "{text}");
    }

    #[test]
    fn newer_kinds_and_outcomes_are_not_taken_for_known_ones() {
        let text = r#"{"kind":"scrub","started":"","finished":"","outcome":"partial","x":1}"#;
        let r = Record::decode(text.as_bytes()).unwrap();
        assert_eq!(r.kind, RecordKind::Other);
        assert_eq!(r.outcome, RecordOutcome::Other);
        assert!(
            Record::decode(b"{}").is_err(),
            "kind and times are required"
        );
    }
}
