//! Snapshots: one backup's root tree and what describes it. JSON inside a sealed file (type 2).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};

/// What kind of source a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A file tree read from a filesystem.
    #[default]
    Filesystem,
    /// One stream read from standard input.
    Stdin,
    /// A raw block device or image.
    BlockDevice,
    /// An etcd snapshot stream.
    Etcd,
    /// A set of Kubernetes resource manifests.
    Manifests,
    /// Container images, as an OCI image layout.
    Images,
}

/// Where the data came from: the host, and for Kubernetes volumes their identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Source {
    /// The kind of source.
    pub kind: SourceKind,
    /// Kubernetes cluster name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Namespace of the PVC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// PersistentVolumeClaim name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvc: Option<String>,
    /// PersistentVolume name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pv: Option<String>,
    /// Node the volume was read on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Pod that mounted the volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

/// A cluster backup: the volume snapshots, the etcd snapshot and the manifests taken for one
/// request or schedule run. Retention keeps or drops a group whole.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Group {
    /// Unique per request or run, like `nightly-20261123-020000`.
    pub id: String,
    /// What produces such groups (a schedule's name): retention decides each series' groups as
    /// one sequence, the way it decides each source's snapshots.
    #[serde(default)]
    pub series: String,
}

impl Group {
    /// Checks the id and series: 1 to 253 characters of `A-Z a-z 0-9 . _ : -` (a Kubernetes
    /// name fits), the series possibly empty.
    pub fn validate(&self) -> Result<()> {
        let ok = |s: &str, empty_ok: bool| {
            (empty_ok || !s.is_empty())
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        };
        if !ok(&self.id, false) {
            return Err(Error::invalid(format!(
                "cluster backup id {:?} must be 1 to 253 of A-Z a-z 0-9 . _ : -",
                self.id
            )));
        }
        if !ok(&self.series, true) {
            return Err(Error::invalid(format!(
                "cluster backup series {:?} must be up to 253 of A-Z a-z 0-9 . _ : -",
                self.series
            )));
        }
        Ok(())
    }
}

/// What a backup did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Files seen for the first time.
    pub files_new: u64,
    /// Files whose metadata changed since the parent, re-read.
    pub files_changed: u64,
    /// Files unchanged since the parent, not read.
    pub files_unmodified: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks, devices, FIFOs and sockets.
    pub others: u64,
    /// Logical bytes of all files in the snapshot.
    pub total_bytes: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// New data blobs stored.
    pub data_blobs_new: u64,
    /// New tree blobs stored.
    pub tree_blobs_new: u64,
    /// Plaintext bytes of the new blobs.
    pub new_bytes_raw: u64,
    /// Bytes added to the repository after deduplication, compression and encryption.
    pub new_bytes_stored: u64,
    /// When the backup started, RFC 3339.
    pub started: String,
    /// When it ended, RFC 3339.
    pub finished: String,
    /// Wall time in seconds.
    pub duration_secs: f64,
    /// Number of warnings (unreadable files, files changed while read).
    pub warnings: u64,
    /// The first warnings, for `repo snapshots --json` and `repo cat snapshot`.
    pub warning_samples: Vec<String>,
}

/// A snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup started, RFC 3339 with nanoseconds.
    pub time: String,
    /// Host name.
    pub host: String,
    /// User that ran the backup.
    pub username: String,
    /// The paths given to the backup, absolute.
    pub paths: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Root tree.
    pub tree: BlobId,
    /// The snapshot used for change detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    /// For a snapshot written by `repo copy`: the snapshot copied, or the one that snapshot was
    /// itself copied from, so a chain of copies keeps the first id. Copies are re-sealed under
    /// other keys and get other ids; this is what recognises them across repositories (with
    /// the summary's counts, which tell a rewrite apart). `repo tag` and `repo rewrite` set it
    /// to the snapshot they replaced (kept when that one had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<SnapshotId>,
    /// Source identity.
    #[serde(default)]
    pub source: Source,
    /// The cluster backup this snapshot is part of, with the others taken for the same request
    /// or schedule run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    /// True when some files could not be read or changed while read; see the summary.
    #[serde(default)]
    pub incomplete: bool,
    /// Statistics.
    #[serde(default)]
    pub summary: Summary,
    /// The program that wrote the snapshot.
    #[serde(default)]
    pub program: String,
}

impl Snapshot {
    /// JSON bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        crate::codec::to_json(self, "snapshot")
    }

    /// Parses JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt("snapshot does not decode").with_source(e))
    }

    /// The time as a parsed timestamp.
    pub fn datetime(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.time)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| Error::corrupt(format!("snapshot time {:?}", self.time)).with_source(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    /// A snapshot as written before `original` existed.
    const OLD: &str = concat!(
        r#"{"time":"2024-01-01T00:00:00.000000000Z","host":"h","username":"u","paths":["/data"],"#,
        r#""tags":[],"tree":"0000000000000000000000000000000000000000000000000000000000000000","#,
        r#""source":{"kind":"filesystem"},"incomplete":false,"summary":{"files_new":0,"#,
        r#""files_changed":0,"files_unmodified":0,"dirs":0,"others":0,"total_bytes":0,"#,
        r#""bytes_read":0,"data_blobs_new":0,"tree_blobs_new":0,"new_bytes_raw":0,"#,
        r#""new_bytes_stored":0,"started":"","finished":"","duration_secs":0.0,"warnings":0,"#,
        r#""warning_samples":[]},"program":""}"#,
    );

    #[test]
    fn original_is_optional_and_absent_when_none() {
        let mut snap = Snapshot::decode(OLD.as_bytes()).unwrap();
        assert_eq!(snap.original, None);
        assert_eq!(
            snap.encode().unwrap(),
            OLD.as_bytes(),
            "written as before the field existed"
        );
        snap.original = Some(SnapshotId(Id([7; 32])));
        assert_eq!(Snapshot::decode(&snap.encode().unwrap()).unwrap(), snap);
    }
}
