//! Kairn's node agent: runs on every node (a DaemonSet), finds the pod volumes mounted there,
//! and carries out the VolumeBackup and VolumeRestore resources that concern them, and its
//! share of each ClusterBackup (volumes, an etcd snapshot, the resource manifests).
//!
//! The module map:
//! - Resources: [`crd`], one file per custom resource (`crd/`), and [`patch`], the status
//!   patches the agent writes, as types.
//! - Pure parts (no I/O, unit-tested): [`decide`] (what to do with a backup or restore),
//!   [`restore_plan`] (what a namespace restore applies, in which order), [`repo_sync`]
//!   (which backups of the repository the cluster should show),
//!   [`cluster_plan`] (the rules of a cluster backup), [`schedule`] (cron, selectors, names),
//!   [`volume_path`] (the kubelet's directories), [`jobs`] (the running jobs).
//! - The engine and the node: [`job`] runs backups and restores, [`freeze`] fsfreezes a
//!   volume, recording each freeze ([`freeze_record`], [`freeze_state`]) so that
//!   [`freeze_recovery`] thaws at start-up what a killed agent left frozen.
//! - The Kubernetes API: [`resolve`] (a PVC to its files), [`mount_pod`] (the pod that mounts
//!   a PVC no running pod mounts), [`selection`] (the PVCs a selector
//!   picks), [`status`] (status writes), [`events`], [`hooks`] (exec in a pod), [`export`]
//!   (the resource manifests), [`apply`] (server-side apply of restored objects).
//! - The reconcilers, one per resource, as free functions over a shared [`context::Context`]:
//!   [`reconcile`] (`reconcile/`: volume_backup, volume_restore, backup_schedule,
//!   cluster_backup), called in turn by the loop in [`controller`], which reads the
//!   resources from watch [`caches`].
//! - The process: [`settings`] (command line, repository access, logging), [`config`],
//!   [`metrics`] (with [`exposition`]: optional gauges, process metrics, the classic text
//!   format; and [`volume_series`], pure: the leading agent's per-PVC series from the
//!   repository's snapshots and the schedules), and [`http`] (metrics and health); `main.rs`
//!   only wires them together.
//! - The second binary, `kairn-maintenance` (`bin/kairn-maintenance.rs`): [`maintenance`],
//!   which applies schedules' retention and prunes with the full key the agents do not hold.

pub mod apply;
pub mod caches;
pub mod cluster_plan;
pub mod config;
pub mod context;
pub mod controller;
pub mod crd;
pub mod decide;
pub mod events;
pub mod export;
pub mod exposition;
pub mod freeze;
pub mod freeze_record;
pub mod freeze_recovery;
pub mod freeze_state;
pub mod history;
pub mod hooks;
pub mod http;
pub mod images;
pub mod job;
pub mod jobs;
pub mod maintenance;
pub mod metrics;
pub mod mount_pod;
pub mod mounted;
pub mod node_lease;
pub mod patch;
pub mod reconcile;
pub mod repo_sync;
pub mod resolve;
pub mod restore_plan;
pub mod schedule;
pub mod selection;
pub mod settings;
pub mod status;
pub mod ttl;
pub mod volume_path;
pub mod volume_series;
