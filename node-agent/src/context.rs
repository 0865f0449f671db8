//! What every reconciler is given: the API clients, the settings, the repository, the
//! metrics, the running jobs, and the health the HTTP endpoints report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use kube::Client;

use crate::config::AgentConfig;
use crate::job::RepoAccess;
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::volume_path::KubeletPods;

/// The reconcilers' shared context.
pub struct Context {
    /// The Kubernetes API.
    pub client: Client,
    /// For resource exports: no built-in retries (see [`crate::export::export_client`]).
    pub export_client: Client,
    /// The settings.
    pub config: AgentConfig,
    /// The repository.
    pub access: RepoAccess,
    /// The metrics served on `/metrics`.
    pub metrics: Metrics,
    /// The jobs running now.
    pub jobs: Jobs,
    /// Whether the loop turns and reaches the API, and whether the agent shuts down.
    pub health: Health,
    /// The agents' Leases, as last read: which nodes are lost.
    pub leases: crate::node_lease::NodeLeases,
    /// When this agent last synced resources from the repository.
    pub last_repo_sync: std::sync::Mutex<Option<std::time::Instant>>,
    /// When this agent last swept the finished objects (expiry, schedule statuses).
    pub last_history: std::sync::Mutex<Option<std::time::Instant>>,
    /// Each schedule's unfinished runs' members, as last seen: when they change, a run moved
    /// on, and the schedule's status is written at once rather than at the next sweep.
    pub schedule_members: std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>>,
    /// The leading agent's cluster-wide series: when last read, and each schedule's interval.
    pub series: crate::volume_series::SeriesState,
    /// Each schedule's newest run this agent created in full.
    runs: std::sync::Mutex<std::collections::BTreeMap<String, chrono::DateTime<chrono::Utc>>>,
}

impl Context {
    /// A new context.
    pub fn new(
        client: Client,
        export_client: Client,
        config: AgentConfig,
        access: RepoAccess,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            export_client,
            config,
            access,
            metrics: Metrics::new(),
            jobs: Jobs::default(),
            health: Health::default(),
            leases: Default::default(),
            last_repo_sync: Default::default(),
            last_history: Default::default(),
            schedule_members: Default::default(),
            series: Default::default(),
            runs: Default::default(),
        })
    }

    /// True when work claimed by `node` was claimed by another node whose agent's Lease has
    /// expired.
    pub fn node_lost(&self, node: Option<&str>) -> bool {
        node.is_some_and(|n| n != self.config.node && self.leases.lost(n, chrono::Utc::now()))
    }

    /// True when this agent creates what schedules and cluster backups select, for the whole
    /// cluster: its node leads ([`crate::node_lease::NodeLeases::leader`]), or no Lease could be
    /// read (then every agent does, and the names keep it idempotent).
    pub fn leads(&self) -> bool {
        match self.leases.leader(chrono::Utc::now()) {
            Some(node) => node == self.config.node,
            None => true,
        }
    }

    /// The newest run of `schedule` this agent created in full, if any.
    pub fn created_run(&self, schedule: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.get(schedule).copied()
    }

    /// Remembers that run `t` of `schedule` was created in full.
    pub fn remember_run(&self, schedule: &str, t: chrono::DateTime<chrono::Utc>) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.insert(schedule.to_string(), t);
    }

    /// True, and the time noted, when `every` has passed since `last` (or it never ran).
    pub fn due(
        last: &std::sync::Mutex<Option<std::time::Instant>>,
        every: std::time::Duration,
    ) -> bool {
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < every) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        true
    }

    /// The kubelet's pod directories.
    pub fn kubelet(&self) -> KubeletPods {
        KubeletPods::new(self.config.kubelet_pods.clone())
    }

    /// True once a reconcile has reached the API server, and recently.
    pub fn is_ready(&self) -> bool {
        self.health.ready.load(Ordering::Relaxed) && self.is_alive()
    }

    /// True while the reconcile loop keeps turning.
    pub fn is_alive(&self) -> bool {
        let last = self.health.last_tick.load(Ordering::Relaxed);
        let limit = 3 * self.config.resync.as_secs() as i64 + 30;
        last == 0 || chrono::Utc::now().timestamp() - last <= limit
    }

    /// True once the agent is shutting down: stopped jobs then record nothing.
    pub fn shutting_down(&self) -> bool {
        self.health.shutdown.load(Ordering::Relaxed)
    }

    /// Sets the in-flight gauge from the running jobs.
    pub fn count_in_flight(&self) {
        self.metrics.in_flight.set(self.jobs.count() as i64);
    }
}

impl crate::http::Probes for Context {
    fn metrics_text(&self) -> Result<String, std::fmt::Error> {
        // As /readyz would answer now: a stuck loop shows here too.
        self.metrics.ready.set(i64::from(self.is_ready()));
        self.metrics.encode()
    }
    fn is_alive(&self) -> bool {
        Context::is_alive(self)
    }
    fn is_ready(&self) -> bool {
        Context::is_ready(self)
    }
}

/// The loop's health, and the shutdown switch.
#[derive(Debug, Default)]
pub struct Health {
    /// The last reconcile reached the API server.
    pub ready: AtomicBool,
    /// Unix time the last reconcile began (0: none yet).
    pub last_tick: AtomicI64,
    /// The agent is shutting down.
    pub shutdown: AtomicBool,
}
