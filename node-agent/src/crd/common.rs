//! What several resources share: the phase of a piece of work, its progress, hooks, the
//! group of a cluster backup, and where etcd is.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The container images a cluster backup stores beside its volumes: those its namespaces'
/// pods run (by the digest each container runs, from `status.containerStatuses[].imageID`),
/// and those of workloads scaled to zero (by their templates' references).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagesSpec {
    /// Log in to registries with the pods' `imagePullSecrets`. The agent reads those Secrets
    /// only when this is set, and needs the chart's `images.pullSecrets` permission for it.
    #[serde(default)]
    pub pull_secrets: bool,
    /// Of multi-platform images, keep only this platform (`linux/amd64`); every one when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Registries (`host[:port]`) reached over plain HTTP. Loopback ones always are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insecure_registries: Vec<String>,
}

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

/// Serde's default for the fields that are true unless set.
pub(crate) fn yes() -> bool {
    true
}
