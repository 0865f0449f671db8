//! [`VolumeBackup`]: back up one PVC, on the node whose pod mounts it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{GroupRef, Hooks, Phase, Progress};

/// Back up one PVC of this namespace.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kairn.dev",
    version = "v1alpha1",
    kind = "VolumeBackup",
    namespaced,
    status = "VolumeBackupStatus",
    shortname = "vbk",
    printcolumn = r#"{"name":"PVC","type":"string","jsonPath":".spec.pvc"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.node"}"#,
    printcolumn = r#"{"name":"Snapshot","type":"string","jsonPath":".status.snapshotId"}"#,
    printcolumn = r#"{"name":"Waiting","type":"string","priority":1,"jsonPath":".status.waiting"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VolumeBackupSpec {
    /// The PVC, in this resource's namespace.
    pub pvc: String,
    /// Tags recorded in the snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Hooks, besides those the pod's annotations declare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    /// Set to stop a backup that has not finished.
    #[serde(default)]
    pub cancel: bool,
    /// The cluster backup this volume's snapshot is part of (set by a ClusterBackup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_backup: Option<GroupRef>,
    /// How long this object is kept once it finished, as a duration such as `720h` or
    /// `1h30m`; 720h (30 days, as Velero) when absent. Only the object goes: its snapshot stays
    /// until retention forgets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// What an agent reports about a [`VolumeBackup`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeBackupStatus {
    /// Where it is.
    #[serde(default)]
    pub phase: Phase,
    /// The node whose agent took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The agent process that works on it (pod uid and start time): after a restart, an agent
    /// knows the InProgress work of its former self by this, and fails or resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// How far it is.
    #[serde(default)]
    pub progress: Progress,
    /// The snapshot written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Bytes stored after deduplication and compression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_bytes_stored: Option<u64>,
    /// What went wrong (never credentials).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Why no agent has started it yet: the node holding its volume waits for the volume to be
    /// mounted (its pod has no running container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// How many times an agent started this work: more than 1 when an agent restarted while
    /// it was in flight and picked it up again.
    #[serde(default)]
    pub attempts: u32,
    /// When an agent started it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When it reached a final phase (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::common::OnError;

    #[test]
    fn a_status_round_trips_through_real_format_json() {
        let json = serde_json::json!({
            "apiVersion": "kairn.dev/v1alpha1",
            "kind": "VolumeBackup",
            "metadata": {"name": "db-1", "namespace": "shop"},
            "spec": {"pvc": "data-db-0", "hooks": {"pre": [{"command": ["sync"], "onError": "Continue"}]}},
            "status": {"phase": "InProgress", "progress": {"bytesDone": 10, "filesDone": 1}}
        });
        let vb: VolumeBackup = serde_json::from_value(json).unwrap();
        assert_eq!(vb.spec.pvc, "data-db-0");
        let hook = &vb.spec.hooks.as_ref().unwrap().pre[0];
        assert_eq!(
            (hook.timeout_seconds, hook.on_error),
            (30, OnError::Continue)
        );
        let status = vb.status.unwrap();
        assert_eq!(status.phase, Phase::InProgress);
        assert!(!status.phase.is_final());
        assert_eq!(status.progress.bytes_done, 10);
    }
}
