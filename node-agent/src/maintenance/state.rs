//! What the maintenance loop and its HTTP endpoints share: the API client, the repository,
//! the settings, the metrics and the health.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::Client;

use super::metrics::MaintenanceMetrics;
use super::settings::MaintenanceConfig;
use crate::context::Health;
use crate::job::RepoAccess;

/// The maintenance workload's shared state.
pub struct Maintenance {
    /// The Kubernetes API.
    pub client: Client,
    /// The repository, with the full key.
    pub access: RepoAccess,
    /// The settings.
    pub config: MaintenanceConfig,
    /// The metrics served on `/metrics`.
    pub metrics: MaintenanceMetrics,
    /// Whether the loop turns and reaches the API, and whether the process shuts down.
    pub health: Health,
    /// A pass is running: a prune of a large repository may take longer than any bound a
    /// liveness probe could set, and killing it would only start it over.
    pub busy: AtomicBool,
}

impl Maintenance {
    /// A new state.
    pub fn new(client: Client, access: RepoAccess, config: MaintenanceConfig) -> Arc<Self> {
        let metrics = MaintenanceMetrics::new();
        metrics
            .check_interval
            .set(config.check_interval.as_secs_f64());
        metrics
            .prune_interval
            .set(config.prune_interval.as_secs_f64());
        Arc::new(Self {
            client,
            access,
            config,
            metrics,
            health: Health::default(),
            busy: AtomicBool::new(false),
        })
    }

    /// True once the process is shutting down.
    pub fn shutting_down(&self) -> bool {
        self.health.shutdown.load(Ordering::Relaxed)
    }

    /// Records that the loop turns.
    pub fn tick(&self) {
        self.health
            .last_tick
            .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
    }
}

impl crate::http::Probes for Maintenance {
    fn metrics_text(&self) -> Result<String, std::fmt::Error> {
        self.metrics.encode()
    }

    fn is_alive(&self) -> bool {
        let last = self.health.last_tick.load(Ordering::Relaxed);
        let limit = 2 * self.config.interval.as_secs() as i64 + 60;
        self.busy.load(Ordering::Relaxed)
            || last == 0
            || chrono::Utc::now().timestamp() - last <= limit
    }

    fn is_ready(&self) -> bool {
        self.health.ready.load(Ordering::Relaxed) && self.is_alive()
    }
}
