//! [`VolumeRestore`]: restore a snapshot into a PVC or a path, and who may ask for which.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Phase, Progress};

impl VolumeRestore {
    /// The namespace of the target PVC.
    pub fn target_namespace(&self) -> String {
        self.spec
            .target_namespace
            .clone()
            .or_else(|| self.metadata.namespace.clone())
            .unwrap_or_default()
    }

    /// The source namespace: `sourceNamespace`, or this resource's own.
    pub fn source_namespace(&self) -> String {
        self.spec
            .source_namespace
            .clone()
            .or_else(|| self.metadata.namespace.clone())
            .unwrap_or_default()
    }

    /// Why the agents refuse this restore, if they do. Whoever may create a VolumeRestore in a
    /// namespace may restore that namespace's own backups into that namespace's PVCs; reading
    /// another namespace's backups, writing into another namespace, or writing to a path on a
    /// node takes a VolumeRestore in `admin_namespace` (the agent's own), which only cluster
    /// administrators can create.
    pub fn refusal(&self, admin_namespace: &str) -> Option<String> {
        let own = self.metadata.namespace.as_deref().unwrap_or_default();
        if own == admin_namespace {
            return None;
        }
        if matches!(self.spec.target, RestoreTarget::Path(_)) {
            return Some(format!(
                "a restore to a path on a node must be created in namespace {admin_namespace}"
            ));
        }
        if self.source_namespace() != own || self.target_namespace() != own {
            return Some(format!(
                "a restore across namespaces must be created in namespace {admin_namespace}"
            ));
        }
        None
    }
}

/// Where a restore writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RestoreTarget {
    /// A PVC of this resource's namespace (which may differ from the source's).
    Pvc(String),
    /// A directory on the node of the agent that takes it.
    Path(String),
}

/// Restore a snapshot.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kairn.dev",
    version = "v1alpha1",
    kind = "VolumeRestore",
    namespaced,
    status = "VolumeRestoreStatus",
    shortname = "vrs",
    printcolumn = r#"{"name":"Snapshot","type":"string","jsonPath":".spec.snapshot"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.target.pvc"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.node"}"#,
    printcolumn = r#"{"name":"Waiting","type":"string","priority":1,"jsonPath":".status.waiting"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRestoreSpec {
    /// The snapshot id (or a unique prefix of it), or `latest`.
    pub snapshot: String,
    /// With `latest`: the namespace/PVC whose latest snapshot is meant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// With `latest`: the PVC whose latest snapshot is meant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_pvc: Option<String>,
    /// Where to write.
    pub target: RestoreTarget,
    /// For a `path` target: the node whose agent restores (a path names a place on one node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// For a `pvc` target: the PVC's namespace, when not this resource's own. Only honoured for
    /// resources in the agent's own namespace (see [`VolumeRestore::refusal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// Set to stop a restore that has not finished.
    #[serde(default)]
    pub cancel: bool,
    /// How long this object is kept once it finished, as a duration such as `720h` or
    /// `1h30m`; 720h (30 days, as Velero) when absent. Only the object goes: its snapshot stays
    /// until retention forgets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// What an agent reports about a [`VolumeRestore`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRestoreStatus {
    /// Where it is.
    #[serde(default)]
    pub phase: Phase,
    /// The node whose agent took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The agent process that works on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// How far it is.
    #[serde(default)]
    pub progress: Progress,
    /// The snapshot restored (the full id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Files that were already in place with the right content.
    #[serde(default)]
    pub files_unchanged: u64,
    /// What went wrong.
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

    fn restore(ns: &str, spec: serde_json::Value) -> VolumeRestore {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kairn.dev/v1alpha1", "kind": "VolumeRestore",
            "metadata": {"name": "r", "namespace": ns}, "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn only_the_admin_namespace_may_restore_across_namespaces_or_to_a_path() {
        let admin = "kairn-system";
        let own =
            serde_json::json!({"snapshot": "latest", "sourcePvc": "db", "target": {"pvc": "db"}});
        assert_eq!(restore("shop", own.clone()).refusal(admin), None);
        let mut cross = own.clone();
        cross["sourceNamespace"] = "bank".into();
        assert!(restore("shop", cross.clone()).refusal(admin).is_some());
        assert_eq!(restore(admin, cross).refusal(admin), None);
        let mut into_other = own.clone();
        into_other["targetNamespace"] = "bank".into();
        assert!(restore("shop", into_other).refusal(admin).is_some());
        let path =
            serde_json::json!({"snapshot": "abcd", "target": {"path": "/etc"}, "node": "n1"});
        assert!(restore("shop", path.clone()).refusal(admin).is_some());
        assert_eq!(restore(admin, path).refusal(admin), None);
    }
}
