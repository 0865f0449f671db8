//! [`ClusterBackup`]: one point in time of the cluster: the volume snapshots, an etcd snapshot
//! and the resource manifests, grouped under the resource's name.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{EtcdSpec, Hooks, ImagesSpec, Phase, yes};

/// Back up the cluster at one point in time: the volumes the selectors pick (each node's
/// agent backs up its own), one etcd snapshot and one manifests export, all recorded under
/// the group id `metadata.name`.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kairn.dev",
    version = "v1alpha1",
    kind = "ClusterBackup",
    status = "ClusterBackupStatus",
    shortname = "cbk",
    printcolumn = r#"{"name":"Series","type":"string","jsonPath":".spec.series"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Volumes","type":"integer","jsonPath":".status.volumes.completed"}"#,
    printcolumn = r#"{"name":"Etcd","type":"string","jsonPath":".status.etcd.phase"}"#,
    printcolumn = r#"{"name":"Manifests","type":"string","jsonPath":".status.manifests.phase"}"#,
    printcolumn = r#"{"name":"Images","type":"string","jsonPath":".status.images.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterBackupSpec {
    /// The series for retention (the schedule's name); the resource's name when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub series: String,
    /// Back up the volumes the selectors pick.
    #[serde(default = "yes")]
    pub volumes: bool,
    /// Namespaces whose labels match; every namespace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    /// PVCs whose labels match; every PVC of the chosen namespaces when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    /// Hooks for every volume backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    /// Take an etcd snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdSpec>,
    /// Export the resource manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<crate::export::ExportFilter>,
    /// Store the container images the chosen namespaces run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesSpec>,
    /// Tags recorded in every snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// How long this object is kept once it finished, as a duration such as `720h` or
    /// `1h30m`; 720h (30 days, as Velero) when absent. Only the object goes: its snapshot stays
    /// until retention forgets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// One part of a cluster backup: the etcd snapshot, the manifests or the images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartStatus {
    /// Where it is.
    #[serde(default)]
    pub phase: Phase,
    /// The agent instance that took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Its node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The snapshot written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// What happened, in a line or a few: the error, or what was left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

/// The volumes of a cluster backup, counted from their VolumeBackups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumesStatus {
    /// VolumeBackups created.
    #[serde(default)]
    pub total: u32,
    /// Of them, Completed.
    #[serde(default)]
    pub completed: u32,
    /// Of them, PartiallyFailed, Failed or Canceled.
    #[serde(default)]
    pub failed: u32,
}

/// Which parts of a [`ClusterBackup`] succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterBackupStatus {
    /// `Completed` when every part did, `PartiallyFailed` when some did, `Failed` when none.
    #[serde(default)]
    pub phase: Phase,
    /// The volumes.
    #[serde(default)]
    pub volumes: VolumesStatus,
    /// The etcd snapshot, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<PartStatus>,
    /// The manifests, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<PartStatus>,
    /// The images, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<PartStatus>,
    /// When it started and ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}
