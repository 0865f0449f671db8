//! The status patches the agent writes, as types: JSON merge patches of the `status`
//! subresource, built from the CRD's own types ([`Phase`], [`VolumesStatus`]). In a merge
//! patch a missing field is left as it is and `null` removes it, so every field is optional,
//! and the few the agent clears on purpose are a [`Field`], which can say `null`.

use serde::{Serialize, Serializer};

use crate::crd::{PartStatus, Phase, VolumesStatus};
use crate::job::JobProgress;

/// A field of a merge patch: left alone, removed (`null`), or set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Field<T> {
    /// Not in the patch: the stored value stays.
    #[default]
    Keep,
    /// `null`: the stored value is removed.
    Clear,
    /// The new value.
    Set(T),
}

impl<T> Field<T> {
    /// True when the field is left out of the patch.
    pub fn is_keep(&self) -> bool {
        matches!(self, Self::Keep)
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // Skipped by `skip_serializing_if`; `null` would remove the field.
            Self::Keep | Self::Clear => s.serialize_none(),
            Self::Set(v) => v.serialize(s),
        }
    }
}

/// How far a job is, as a patch: `bytesTotal` is removed while it is not known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressPatch {
    /// Bytes read or written so far.
    pub bytes_done: u64,
    /// Bytes in all.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub bytes_total: Field<u64>,
    /// Files done so far.
    pub files_done: u64,
}

impl ProgressPatch {
    /// A running job's progress (`bytesTotal` removed while unknown).
    pub fn of(progress: &JobProgress) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let total = progress.total.load(Relaxed);
        Self {
            bytes_done: progress.bytes.load(Relaxed),
            bytes_total: if total > 0 {
                Field::Set(total)
            } else {
                Field::Clear
            },
            files_done: progress.files.load(Relaxed),
        }
    }

    /// A finished job's progress.
    pub fn done(bytes_done: u64, bytes_total: u64, files_done: u64) -> Self {
        Self {
            bytes_done,
            bytes_total: Field::Set(bytes_total),
            files_done,
        }
    }
}

/// A patch of a VolumeBackup's or a VolumeRestore's status (their fields share names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStatusPatch {
    /// The phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The node that claims it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The agent instance that claims it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The attempt started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// When the attempt started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// How far it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressPatch>,
    /// The snapshot written or restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// A backup's bytes stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_bytes_stored: Option<u64>,
    /// A restore's files already in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_unchanged: Option<u64>,
    /// What went wrong (an empty list is written as such).
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub errors: Field<Vec<String>>,
    /// When it reached a final phase.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub finished: Field<String>,
    /// Why no agent has started it yet.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub waiting: Field<String>,
}

impl VolumeStatusPatch {
    /// Not started, and why.
    pub fn waiting(why: String) -> Self {
        Self {
            waiting: Field::Set(why),
            ..Default::default()
        }
    }

    /// The conditional claim of attempt `attempt`: a new start, the last outcome cleared.
    pub fn claim(node: &str, instance: &str, attempt: u32, now: String) -> Self {
        Self {
            phase: Some(Phase::InProgress),
            node: Some(node.to_string()),
            agent: Some(instance.to_string()),
            attempts: Some(attempt),
            started: Some(now),
            progress: Some(ProgressPatch::default()),
            errors: Field::Clear,
            finished: Field::Clear,
            waiting: Field::Clear,
            ..Default::default()
        }
    }

    /// A running job's progress.
    pub fn progress(progress: &JobProgress) -> Self {
        Self {
            progress: Some(ProgressPatch::of(progress)),
            ..Default::default()
        }
    }

    /// An end without a snapshot: `Failed` or `Canceled`, with why.
    pub fn ended(phase: Phase, why: String, now: String) -> Self {
        Self {
            phase: Some(phase),
            errors: Field::Set(vec![why]),
            finished: Field::Set(now),
            ..Default::default()
        }
    }

    /// `Canceled` before any job ran it.
    pub fn canceled(now: String) -> Self {
        Self {
            phase: Some(Phase::Canceled),
            finished: Field::Set(now),
            ..Default::default()
        }
    }
}

/// One part of a cluster backup, as a patch: `messages` is always written, so a new claim
/// or outcome replaces the previous one's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartPatch {
    /// Where it is.
    pub phase: Phase,
    /// The agent instance that took it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Its node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The snapshot written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// What happened.
    pub messages: Vec<String>,
}

impl From<PartStatus> for PartPatch {
    fn from(p: PartStatus) -> Self {
        Self {
            phase: p.phase,
            agent: p.agent,
            node: p.node,
            snapshot_id: p.snapshot_id,
            messages: p.messages,
        }
    }
}

/// A patch of a ClusterBackup's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatusPatch {
    /// The phase of the whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The volumes, counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<VolumesStatus>,
    /// The etcd part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<PartPatch>,
    /// The manifests part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifests: Option<PartPatch>,
    /// The images part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<PartPatch>,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

#[cfg(test)]
mod tests {
    //! Each patch against the JSON literal the agent wrote before it had these types.
    use super::*;
    use serde_json::{Value, json};

    fn value(p: &impl Serialize) -> Value {
        serde_json::to_value(p).unwrap()
    }

    #[test]
    fn a_claim_clears_the_last_outcome_with_nulls() {
        let p = VolumeStatusPatch::claim("n1", "a1", 2, "T".into());
        let old = json!({
            "phase": "InProgress", "node": "n1", "agent": "a1", "attempts": 2, "started": "T",
            "finished": null, "errors": null, "waiting": null,
            "progress": {"bytesDone": 0, "filesDone": 0},
        });
        assert_eq!(value(&p), old);
    }

    #[test]
    fn progress_removes_an_unknown_total() {
        let jp = JobProgress::default();
        jp.bytes.store(5, std::sync::atomic::Ordering::Relaxed);
        let old = json!({"progress": {"bytesDone": 5, "bytesTotal": null, "filesDone": 0}});
        assert_eq!(value(&VolumeStatusPatch::progress(&jp)), old);
        jp.total.store(9, std::sync::atomic::Ordering::Relaxed);
        let old = json!({"progress": {"bytesDone": 5, "bytesTotal": 9, "filesDone": 0}});
        assert_eq!(value(&VolumeStatusPatch::progress(&jp)), old);
    }

    #[test]
    fn ends_and_cancels() {
        let p = VolumeStatusPatch::ended(Phase::Failed, "why".into(), "T".into());
        let old = json!({"phase": "Failed", "errors": ["why"], "finished": "T"});
        assert_eq!(value(&p), old);
        let old = json!({"phase": "Canceled", "finished": "T"});
        assert_eq!(value(&VolumeStatusPatch::canceled("T".into())), old);
    }

    #[test]
    fn an_empty_error_list_is_written() {
        let p = VolumeStatusPatch {
            phase: Some(Phase::Completed),
            snapshot_id: Some("ab".into()),
            files_unchanged: Some(3),
            progress: Some(ProgressPatch::done(7, 7, 1)),
            errors: Field::Set(vec![]),
            finished: Field::Set("T".into()),
            ..Default::default()
        };
        let old = json!({
            "phase": "Completed", "snapshotId": "ab", "filesUnchanged": 3,
            "progress": {"bytesDone": 7, "bytesTotal": 7, "filesDone": 1},
            "errors": [], "finished": "T",
        });
        assert_eq!(value(&p), old);
    }

    #[test]
    fn cluster_parts_always_write_their_messages() {
        let claim = ClusterStatusPatch {
            etcd: Some(PartPatch {
                phase: Phase::InProgress,
                agent: Some("a1".into()),
                node: Some("n1".into()),
                ..Default::default()
            }),
            phase: Some(Phase::InProgress),
            ..Default::default()
        };
        let old = json!({
            "etcd": {"phase": "InProgress", "agent": "a1", "node": "n1", "messages": []},
            "phase": "InProgress",
        });
        assert_eq!(value(&claim), old);
        let unclaimed = PartStatus {
            phase: Phase::Failed,
            messages: vec!["none".into()],
            ..Default::default()
        };
        let settle = ClusterStatusPatch {
            volumes: Some(VolumesStatus::default()),
            etcd: Some(unclaimed.clone().into()),
            phase: Some(Phase::Failed),
            finished: Some("T".into()),
            ..Default::default()
        };
        let old = json!({
            "volumes": {"total": 0, "completed": 0, "failed": 0},
            "etcd": json!(Some(unclaimed)), "phase": "Failed", "finished": "T",
        });
        assert_eq!(value(&settle), old);
    }
}
