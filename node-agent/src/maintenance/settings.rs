//! The maintenance workload's settings, from its command line and environment (its
//! Deployment sets them): the repository as the agent reaches it, and the cadence.

use std::time::Duration;

use clap::Parser;

use crate::settings::RepoArgs;

/// Kairn's maintenance workload: applies the BackupSchedules' retention and prunes the
/// repository, with the full key the node agents do not hold.
#[derive(Debug, Parser)]
#[command(name = "kairn-maintenance", version)]
pub struct MaintenanceArgs {
    /// The repository and how to reach it (a full key: retention and prune delete).
    #[command(flatten)]
    pub repository: RepoArgs,
    /// Seconds between passes (each applies every schedule's retention).
    #[arg(
        long,
        env = "KAIRN_MAINTENANCE_INTERVAL_SECONDS",
        default_value_t = 3600.0
    )]
    pub interval_seconds: f64,
    /// Seconds between prunes when no pass forgot anything (a pass that forgets prunes).
    #[arg(long, env = "KAIRN_PRUNE_INTERVAL_SECONDS", default_value_t = 86_400.0)]
    pub prune_interval_seconds: f64,
    /// Seconds between checks of the repository's structure (`repo check`); a process's first
    /// pass checks.
    #[arg(long, env = "KAIRN_CHECK_INTERVAL_SECONDS", default_value_t = 86_400.0)]
    pub check_interval_seconds: f64,
    /// With each check, also read and verify this subset of the packs, as `repo check
    /// --read-data-subset` takes it: N/M, P% or a size such as 500M. None by default.
    #[arg(long, env = "KAIRN_CHECK_READ_DATA_SUBSET")]
    pub check_read_data_subset: Option<engine::check::Subset>,
    /// Repack partly used packs until at most this percent of the stored bytes is unused.
    #[arg(long, env = "KAIRN_PRUNE_MAX_UNUSED_PERCENT", default_value_t = 5.0)]
    pub max_unused_percent: f64,
    /// Address of the metrics and health endpoints.
    #[arg(long, env = "KAIRN_LISTEN", default_value = "0.0.0.0:8085")]
    pub listen: String,
    /// Log as plain text instead of JSON lines.
    #[arg(long, env = "KAIRN_LOG_TEXT")]
    pub log_text: bool,
}

/// How the maintenance workload is set up.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// This process, for the Events it reports: the pod's name and the start time.
    pub instance: String,
    /// Time between passes.
    pub interval: Duration,
    /// The longest time between prunes.
    pub prune_interval: Duration,
    /// Time between checks.
    pub check_interval: Duration,
    /// The packs each check also reads, if any.
    pub check_subset: Option<engine::check::Subset>,
    /// Prune's repack threshold, percent.
    pub max_unused_percent: f64,
}

impl MaintenanceArgs {
    /// The configuration, with every setting brought within its bounds.
    pub fn config(&self) -> MaintenanceConfig {
        let pod = std::env::var("POD_NAME").unwrap_or_else(|_| "kairn-maintenance".into());
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        MaintenanceConfig {
            instance: format!("{pod}-{started:x}"),
            interval: Duration::from_secs_f64(self.interval_seconds.max(0.1)),
            prune_interval: Duration::from_secs_f64(self.prune_interval_seconds.max(0.1)),
            check_interval: Duration::from_secs_f64(self.check_interval_seconds.max(0.1)),
            check_subset: self.check_read_data_subset,
            max_unused_percent: self.max_unused_percent.clamp(0.0, 100.0),
        }
    }
}
