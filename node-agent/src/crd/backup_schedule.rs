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
    printcolumn = r#"{"name":"Paused","type":"boolean","jsonPath":".spec.paused"}"#,
    printcolumn = r#"{"name":"Last","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Outcome","type":"string","jsonPath":".status.lastOutcome"}"#,
    printcolumn = r#"{"name":"Last Success","type":"date","jsonPath":".status.lastSuccessfulTime"}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextScheduleTime"}"#
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
    /// Also store the container images the chosen namespaces run: each run is then a
    /// ClusterBackup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<crate::crd::ImagesSpec>,
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

/// What the schedule has done, and will do: the same on every agent, computed from the
/// objects its runs created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleStatus {
    /// The time of its newest run (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// The time of its newest run whose every backup completed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// When it runs next (RFC 3339); absent while paused or when the schedule is not valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<String>,
    /// How its newest run went: `InProgress` until each of its backups finished, then
    /// `Completed`, `PartiallyFailed` (some failed) or `Failed` (all failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<super::Phase>,
    /// How many backups its newest run created.
    #[serde(default)]
    pub last_run_backups: u32,
    /// `ScheduleValid`: `False`, with the parser's message, for a cron expression that cannot
    /// be read (the schedule then never runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ScheduleCondition>,
}

/// A condition of a schedule, in the shape Kubernetes conditions have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleCondition {
    /// `ScheduleValid`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// One CamelCase word.
    pub reason: String,
    /// For people.
    #[serde(default)]
    pub message: String,
}
