//! Kairn's node agent: runs on every node (a DaemonSet), finds the pod volumes mounted there,
//! and carries out the VolumeBackup and VolumeRestore resources that concern them, and its
//! share of each ClusterBackup (volumes, an etcd snapshot, the resource manifests).
//!
//! Layers: [`volume_path`] and [`decide`] are pure; [`job`] runs the engine; [`resolve`],
//! [`status`], [`events`], [`work`], [`cluster`], [`export`] and [`agent`] talk to the
//! Kubernetes API; [`http`] serves metrics and health.

pub mod agent;
pub mod cluster;
pub mod crd;
pub mod decide;
pub mod events;
pub mod export;
pub mod freeze;
pub mod hooks;
pub mod http;
pub mod job;
pub mod metrics;
pub mod resolve;
pub mod schedule;
pub mod status;
pub mod volume_path;
pub mod work;
