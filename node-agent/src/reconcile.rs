//! One reconciler per resource, each a set of free functions over the shared
//! [`crate::context::Context`], called in turn by the loop (`controller.rs`, which depends
//! on these modules, never the other way):
//!
//! - [`volume_backup`] for VolumeBackup and [`volume_restore`] for VolumeRestore, which share
//!   [`work`] (claim, progress, failure).
//! - [`backup_schedule`] for BackupSchedule.
//! - [`cluster_backup`] for ClusterBackup, whose etcd and manifests jobs are in
//!   [`cluster_parts`].
//! - [`namespace_restore`] for NamespaceRestore, run by the leading agent.
//! - [`mount_pods`]: a pod that mounts a PVC no running pod mounts, for the two above.
//! - [`repo_sync`]: the leading agent shows the repository's backups as synced objects.
//! - [`retention`]: a schedule's retention, after a backup completed.
//! - [`volume_series`]: the leading agent's cluster-wide metrics (last successes from the
//!   repository, the PVCs schedules select, the repository's size).

pub mod backup_schedule;
pub mod cluster_backup;
pub mod cluster_parts;
pub mod expiry;
pub mod mount_pods;
pub mod namespace_restore;
pub mod repo_sync;
pub mod retention;
pub mod schedule_status;
pub mod volume_backup;
pub mod volume_restore;
pub mod volume_series;
pub mod work;
