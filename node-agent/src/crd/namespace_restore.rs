//! [`NamespaceRestore`]: one or more namespaces of a cluster backup back in one step, in an
//! order that starts no workload on an empty volume.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Phase, yes};

/// Restore namespaces (or everything) of a cluster backup: configuration and PVCs first, then
/// each PVC filled from its snapshot, then the workloads and the rest. Cluster-scoped: it
/// creates objects of any kind, so only cluster administrators create it.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kairn.dev",
    version = "v1alpha1",
    kind = "NamespaceRestore",
    status = "NamespaceRestoreStatus",
    shortname = "nsr",
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".status.clusterBackup"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Stage","type":"string","jsonPath":".status.stage"}"#,
    printcolumn = r#"{"name":"Applied","type":"integer","jsonPath":".status.objects.applied"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.objects.failed"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRestoreSpec {
    /// The cluster backup: a ClusterBackup's name, which is its group id in the repository
    /// (the object itself need not exist any more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_backup: Option<String>,
    /// Instead of `clusterBackup`: the newest complete cluster backup of this series (a
    /// schedule's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// The namespaces to restore; every one in the backup, with the cluster-scoped objects,
    /// when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Restore namespace OLD as NEW: in objects, Namespace names and role binding subjects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_mapping: BTreeMap<String, String>,
    /// Only these kinds (`Deployment`, or `widget.example.com`), with the namespaces and
    /// definitions they need; all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_kinds: Vec<String>,
    /// Never these kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_kinds: Vec<String>,
    /// Leave Secrets out.
    #[serde(default)]
    pub exclude_secrets: bool,
    /// What happens to an object that already exists.
    #[serde(default)]
    pub existing_resource_policy: ExistingResourcePolicy,
    /// Fill the restored PVCs from their snapshots.
    #[serde(default = "yes")]
    pub volumes: bool,
    /// Asks about the etcd snapshot: it is never restored by this resource (it replaces the
    /// whole cluster); the status then names it and points to the operator's procedure.
    #[serde(default)]
    pub etcd: bool,
    /// Push the cluster backup's images to another registry first, and point the restored
    /// workloads at them there, by digest: the namespace then runs without its old registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<RestoreImages>,
    /// How long this object is kept once it finished (`720h` when absent). Only the object
    /// goes; what it restored stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Where a namespace restore pushes its images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreImages {
    /// `host[:port][/prefix]`: each image keeps its repository path below the prefix.
    pub push_to: String,
    /// A Secret in the agents' namespace whose `.dockerconfigjson` logs in to that registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Registries reached over plain HTTP. Loopback ones always are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insecure_registries: Vec<String>,
}

/// What to do with an object that already exists in the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExistingResourcePolicy {
    /// Leave it as it is, and its volume's data too; it counts as skipped.
    #[default]
    Skip,
    /// Server-side apply the backed-up fields over it (taking them from other field
    /// managers), and restore its volume's data into it.
    Update,
}

/// Where a namespace restore is. The stages run in this order; each is recorded before the
/// next begins, so an agent that takes over goes on where the last one stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestoreStage {
    /// Not started.
    #[default]
    Pending,
    /// Namespaces, definitions, configuration, RBAC and PVCs are being applied.
    Configuration,
    /// The PVCs are being filled from their snapshots.
    Volumes,
    /// The workloads, services and everything else are being applied.
    Workloads,
    /// Nothing more will happen.
    Done,
}

/// Objects applied, skipped and failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCounts {
    /// Created or updated by server-side apply.
    pub applied: u32,
    /// Left alone: they existed (policy Skip).
    pub skipped: u32,
    /// Refused by the API server, or of a kind it does not serve.
    pub failed: u32,
}

/// One PVC filled from its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeProgress {
    /// The PVC's namespace (after mapping).
    pub namespace: String,
    /// The PVC.
    pub pvc: String,
    /// The snapshot restored into it.
    pub snapshot: String,
    /// The VolumeRestore doing it (in the agents' namespace); none when skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_restore: Option<String>,
    /// Its phase.
    #[serde(default)]
    pub phase: Phase,
    /// Bytes written so far, and in all when known.
    #[serde(default)]
    pub bytes_done: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// Why it waits, failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What the leading agent reports about a [`NamespaceRestore`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRestoreStatus {
    /// `Completed` when every object and volume was restored, `PartiallyFailed` when some
    /// failed, `Failed` when the restore could not start.
    #[serde(default)]
    pub phase: Phase,
    /// The stage it is in.
    #[serde(default)]
    pub stage: RestoreStage,
    /// The cluster backup restored (resolved from `series` when that was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_backup: Option<String>,
    /// Its manifests snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests_snapshot: Option<String>,
    /// Objects applied, skipped, failed, over all stages.
    #[serde(default)]
    pub objects: ObjectCounts,
    /// Each volume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeProgress>,
    /// Objects that failed or were skipped, with the reason (the first 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// What else the operator should know: objects left out by rule, the etcd snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    /// When it started and ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}
