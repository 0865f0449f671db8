//! The custom resources the agents act on, under the group `kairn.dev`. The CRD manifests in
//! `deploy/crds.yaml` are generated from these types (a test keeps them in step).
//!
//! - [`VolumeBackup`]: back up one PVC, on the node whose pod mounts it.
//! - [`VolumeRestore`]: restore a snapshot into a PVC or a path.
//! - [`BackupSchedule`]: create VolumeBackups on a cron schedule for the PVCs a selector picks,
//!   or a ClusterBackup when it also asks for etcd or manifests, and apply retention.
//! - [`ClusterBackup`]: one point in time of the cluster: the volume snapshots, an etcd
//!   snapshot and the resource manifests, grouped under the resource's name.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every Kairn resource.
pub const GROUP: &str = "kairn.dev";

/// Where a backup or restore is in its life. `Completed`, `PartiallyFailed`, `Failed` and
/// `Canceled` are final.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Accepted, not started.
    #[default]
    New,
    /// An agent is working on it.
    InProgress,
    /// Done; the snapshot (or restored data) is in place.
    Completed,
    /// Done, but some files could not be read (backup) or written (restore); `errors` names
    /// them. A backup's snapshot holds every other file.
    PartiallyFailed,
    /// Stopped by an error, which `errors` gives.
    Failed,
    /// Stopped on request.
    Canceled,
}

impl Phase {
    /// True once nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::PartiallyFailed | Self::Failed | Self::Canceled
        )
    }
}

/// How far a running backup or restore is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Bytes read (backup) or written (restore) so far.
    pub bytes_done: u64,
    /// Bytes in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// Files done so far.
    pub files_done: u64,
}

/// What to do when a hook fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnError {
    /// Fail the backup.
    #[default]
    Fail,
    /// Go on with the backup, and record the failure.
    Continue,
}

/// A command run in the application's container through the exec API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecHook {
    /// The container; the pod's first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The command and its arguments (no shell unless you run one).
    pub command: Vec<String>,
    /// Seconds before the command is abandoned as failed.
    #[serde(default = "default_hook_timeout")]
    pub timeout_seconds: u32,
    /// What a failure (or timeout) does.
    #[serde(default)]
    pub on_error: OnError,
}

fn default_hook_timeout() -> u32 {
    30
}

/// Consistency around a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    /// Run before the volume is read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<ExecHook>,
    /// Run after the volume was read, whatever happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<ExecHook>,
    /// Freeze the volume's filesystem (FIFREEZE) while it is read, when it is its own
    /// block-backed filesystem; the thaw is guaranteed by a guard and a watchdog.
    #[serde(default)]
    pub fsfreeze: bool,
}

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
    printcolumn = r#"{"name":"Snapshot","type":"string","jsonPath":".status.snapshotId"}"#,
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
}

/// A cluster backup's identity, as its snapshots record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupRef {
    /// The group id: the ClusterBackup's name.
    pub id: String,
    /// The series: the schedule's name, or the ClusterBackup's own.
    #[serde(default)]
    pub series: String,
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
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
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

/// How many snapshots of each PVC to keep (the rules of `repo forget`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// The newest N.
    #[serde(default)]
    pub keep_last: u32,
    /// The newest of each of the last N hours that have one.
    #[serde(default)]
    pub keep_hourly: u32,
    /// … days.
    #[serde(default)]
    pub keep_daily: u32,
    /// … weeks.
    #[serde(default)]
    pub keep_weekly: u32,
    /// … months.
    #[serde(default)]
    pub keep_monthly: u32,
    /// … years.
    #[serde(default)]
    pub keep_yearly: u32,
}

impl Retention {
    /// The engine's form of the policy.
    pub fn policy(&self) -> engine::retention::RetentionPolicy {
        engine::retention::RetentionPolicy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            ..Default::default()
        }
    }
}

/// Back up the PVCs a selector picks, on a schedule.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kairn.dev",
    version = "v1alpha1",
    kind = "BackupSchedule",
    status = "BackupScheduleStatus",
    shortname = "bsch",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Last","type":"date","jsonPath":".status.lastScheduled"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleSpec {
    /// A cron expression (five fields, UTC), such as `0 */6 * * *`.
    pub schedule: String,
    /// Namespaces whose labels match; every namespace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    /// PVCs whose labels match; every PVC of the chosen namespaces when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    /// Which snapshots to keep after each run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Hooks for every backup the schedule creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    /// Create no backups while set.
    #[serde(default)]
    pub paused: bool,
    /// Also take an etcd snapshot: each run is then a ClusterBackup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdSpec>,
    /// Also export the resource manifests: each run is then a ClusterBackup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<crate::export::ExportFilter>,
    /// Back up the selected volumes (with `etcd` or `manifests`, set false for cluster state
    /// alone).
    #[serde(default = "yes")]
    pub volumes: bool,
}

fn yes() -> bool {
    true
}

/// Where etcd is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSpec {
    /// Client URLs, tried in order: the control-plane nodes' addresses
    /// (`https://10.0.0.10:2379`; kubeadm's etcd listens on the node IP and on 127.0.0.1, and
    /// 127.0.0.1 inside the agent's pod is the pod itself).
    pub endpoints: Vec<String>,
    /// A Secret in the agent's namespace with `ca.crt`, `tls.crt` and `tls.key` (kubeadm:
    /// `/etc/kubernetes/pki/etcd/{ca.crt,healthcheck-client.crt,healthcheck-client.key}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<String>,
    /// Only an agent on a node labelled `node-role.kubernetes.io/control-plane` takes it.
    #[serde(default = "yes")]
    pub control_plane_only: bool,
}

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
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Volumes","type":"integer","jsonPath":".status.volumes.completed"}"#,
    printcolumn = r#"{"name":"Etcd","type":"string","jsonPath":".status.etcd.phase"}"#,
    printcolumn = r#"{"name":"Manifests","type":"string","jsonPath":".status.manifests.phase"}"#,
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
    /// Tags recorded in every snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// One part of a cluster backup: the etcd snapshot or the manifests.
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
    /// When it started and ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

/// What the schedule has done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleStatus {
    /// When backups were last created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled: Option<String>,
    /// How many VolumeBackups that run created.
    #[serde(default)]
    pub last_created: u32,
}

/// The CRD manifests of every resource, as one YAML stream (`deploy/crds.yaml`).
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let mut out = String::from(
        "# Generated from node-agent/src/crd.rs by `KAIRN_BLESS=1 cargo test -p kairn-node-agent crds`;\n# do not edit.\n",
    );
    for crd in [
        VolumeBackup::crd(),
        VolumeRestore::crd(),
        BackupSchedule::crd(),
        ClusterBackup::crd(),
    ] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

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

    #[test]
    fn crds_in_deploy_match_the_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds.yaml");
        let generated = crds_yaml().unwrap();
        if std::env::var_os("KAIRN_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "deploy/crds.yaml is out of date: run KAIRN_BLESS=1 cargo test -p kairn-node-agent crds"
        );
    }

    #[test]
    fn names_scope_and_status_subresource() {
        let backup = VolumeBackup::crd();
        assert_eq!(backup.spec.group, GROUP);
        assert_eq!(backup.spec.names.plural, "volumebackups");
        assert_eq!(backup.spec.scope, "Namespaced");
        assert!(
            backup.spec.versions[0]
                .subresources
                .as_ref()
                .unwrap()
                .status
                .is_some()
        );
        assert_eq!(BackupSchedule::crd().spec.scope, "Cluster");
    }

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
