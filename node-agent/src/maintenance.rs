//! The maintenance workload (`kairn-maintenance`, a Deployment of one replica): it holds the
//! repository's full key, which the node agents no longer need, and does what deletes:
//! applying the BackupSchedules' retention, and prune. The agents hold an append-only key
//! and a storage credential that cannot delete, so a compromised node can add to the
//! repository but not destroy it.
//!
//! - [`plan`]: pure: which schedules, which PVCs, whether a cluster schedule's runs are
//!   settled, whether to prune.
//! - [`cycle`]: the loop and its passes: the API, the engine, the Events.
//! - [`state`], [`settings`], [`metrics`]: the process; `bin/kairn-maintenance.rs` wires them.

pub mod cycle;
pub mod metrics;
pub mod plan;
pub mod record;
pub mod settings;
pub mod state;
