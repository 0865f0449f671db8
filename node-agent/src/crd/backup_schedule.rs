//! [`BackupSchedule`]: VolumeBackups on a cron schedule for the PVCs a selector picks, or a
//! ClusterBackup when it also asks for etcd or manifests, and retention.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{EtcdSpec, Hooks, yes};

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
    /// How long what each run creates is kept once finished, as a duration such as `720h` or
    /// `1h30m`; 720h (30 days, as Velero) when absent. Only the object goes: its snapshot stays
    /// until retention forgets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
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
