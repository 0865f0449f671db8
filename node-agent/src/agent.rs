//! The reconcile loop: every resync interval, list this node's pods and every VolumeBackup and
//! VolumeRestore, decide what to do with each ([`crate::decide`]), and start, stop or settle
//! work. Jobs run on blocking threads, at most `max_concurrent` at once on this node.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::crd::{BackupSchedule, RestoreTarget, VolumeBackup, VolumeRestore};
use crate::decide::{Action, Claim, Me, decide};
use crate::job::{JobProgress, RepoAccess};
use crate::metrics::Metrics;
use crate::resolve::pod_mounting;
use crate::status;
use crate::volume_path::KubeletPods;

/// How the agent is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This node's name (the downward API's `spec.nodeName`).
    pub node: String,
    /// This process's instance id: differs after every restart.
    pub instance: String,
    /// The kubelet's `pods` directory, as mounted into the agent.
    pub kubelet_pods: PathBuf,
    /// The cluster's name, recorded in snapshots.
    pub cluster: Option<String>,
    /// The most backups and restores running at once on this node.
    pub max_concurrent: usize,
    /// The most attempts a resource gets across agent restarts.
    pub max_attempts: u32,
    /// How often to reconcile.
    pub resync: Duration,
    /// How often a running job's progress is written to its status.
    pub progress_interval: Duration,
    /// The agent's own namespace: only VolumeRestores there may cross namespaces or target a
    /// path on a node.
    pub admin_namespace: String,
    /// The longest a volume's filesystem stays frozen (`hooks.fsfreeze`) before the watchdog
    /// thaws it.
    pub freeze_limit: Duration,
}

/// A job's key: its kind and the resource's uid.
pub type JobKey = (&'static str, String);

/// The agent's shared state.
pub struct Agent {
    pub(crate) client: Client,
    /// For resource exports: no built-in retries (see [`crate::export::export_client`]).
    pub(crate) export_client: Client,
    pub(crate) config: AgentConfig,
    pub(crate) kubelet: KubeletPods,
    pub(crate) access: RepoAccess,
    /// The metrics served on `/metrics`.
    pub metrics: Arc<Metrics>,
    pub(crate) running: Mutex<HashMap<JobKey, Arc<JobProgress>>>,
    ready: AtomicBool,
    shutdown: AtomicBool,
    last_tick: AtomicI64,
}

impl Agent {
    /// A new agent.
    pub fn new(
        client: Client,
        export_client: Client,
        config: AgentConfig,
        access: RepoAccess,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            export_client,
            kubelet: KubeletPods::new(config.kubelet_pods.clone()),
            config,
            access,
            metrics: Arc::new(Metrics::new()),
            running: Mutex::default(),
            ready: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            last_tick: AtomicI64::new(0),
        })
    }

    /// True once a reconcile has reached the API server, and recently.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.is_alive()
    }

    /// True while the reconcile loop keeps turning.
    pub fn is_alive(&self) -> bool {
        let last = self.last_tick.load(Ordering::Relaxed);
        let limit = 3 * self.config.resync.as_secs() as i64 + 30;
        last == 0 || chrono::Utc::now().timestamp() - last <= limit
    }

    /// True once the agent is shutting down: stopped jobs then record nothing.
    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    pub(crate) fn me(&self) -> Me<'_> {
        Me {
            node: &self.config.node,
            instance: &self.config.instance,
            max_attempts: self.config.max_attempts,
        }
    }

    pub(crate) fn running_jobs(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }

    fn running_job(&self, key: &JobKey) -> Option<Arc<JobProgress>> {
        self.running.lock().ok()?.get(key).cloned()
    }

    /// Reconciles until `shutdown` is set.
    pub async fn run(self: Arc<Self>, shutdown: Arc<AtomicBool>) {
        while !shutdown.load(Ordering::Relaxed) {
            self.last_tick
                .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
            match self.clone().reconcile().await {
                Ok(()) => self.ready.store(true, Ordering::Relaxed),
                Err(e) => {
                    self.ready.store(false, Ordering::Relaxed);
                    tracing::warn!("reconcile failed: {e}");
                }
            }
            let mut slept = Duration::ZERO;
            while slept < self.config.resync && !shutdown.load(Ordering::Relaxed) {
                let step = Duration::from_millis(100);
                tokio::time::sleep(step).await;
                slept += step;
            }
        }
    }

    /// Asks every running job to stop, and waits up to `grace` for them. Their resources stay
    /// `InProgress`, to be picked up by the next instance of the agent.
    pub async fn stop_all(&self, grace: Duration) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Ok(running) = self.running.lock() {
            for p in running.values() {
                p.stop.store(true, Ordering::Relaxed);
            }
        }
        let start = std::time::Instant::now();
        while self.running_jobs() > 0 && start.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One pass over this node's pods and every backup and restore resource.
    pub async fn reconcile(self: Arc<Self>) -> Result<(), kube::Error> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let on_node = ListParams::default().fields(&format!("spec.nodeName={}", self.config.node));
        let pods = pods.list(&on_node).await?.items;
        let backups: Api<VolumeBackup> = Api::all(self.client.clone());
        let backups = backups.list(&ListParams::default()).await?.items;
        self.reconcile_cluster_backups(&pods, &backups).await?;
        let restores: Api<VolumeRestore> = Api::all(self.client.clone());
        let restores = restores.list(&ListParams::default()).await?.items;

        let mut waiting = 0;
        for vb in backups {
            let ns = vb.namespace().unwrap_or_default();
            let here = pod_mounting(&pods, &ns, &vb.spec.pvc).is_some();
            let s = vb.status.clone().unwrap_or_default();
            let claim = Claim {
                phase: s.phase,
                node: s.node,
                agent: s.agent,
                attempts: s.attempts,
            };
            let api: Api<VolumeBackup> = Api::namespaced(self.client.clone(), &ns);
            waiting += self
                .act(
                    &api,
                    &vb,
                    ("backup", vb.uid().unwrap_or_default()),
                    &claim,
                    vb.spec.cancel,
                    here,
                )
                .await;
        }
        for vr in restores {
            let ns = vr.namespace().unwrap_or_default();
            let s = vr.status.clone().unwrap_or_default();
            if s.phase == crate::crd::Phase::New
                && let Some(why) = vr.refusal(&self.config.admin_namespace)
            {
                let api: Api<VolumeRestore> = Api::namespaced(self.client.clone(), &ns);
                let st = json!({"phase": "Failed", "errors": [why], "finished": status::now()});
                if let Err(e) =
                    status::patch(&api, &vr.name_any(), vr.resource_version().as_deref(), st).await
                    && !status::is_conflict(&e)
                {
                    tracing::warn!(resource = %vr.name_any(), "cannot record the refusal: {e}");
                }
                continue;
            }
            let here = match &vr.spec.target {
                RestoreTarget::Pvc(pvc) => {
                    pod_mounting(&pods, &vr.target_namespace(), pvc).is_some()
                }
                RestoreTarget::Path(_) => vr.spec.node.as_deref() == Some(&self.config.node),
            };
            let claim = Claim {
                phase: s.phase,
                node: s.node,
                agent: s.agent,
                attempts: s.attempts,
            };
            let api: Api<VolumeRestore> = Api::namespaced(self.client.clone(), &ns);
            waiting += self
                .act(
                    &api,
                    &vr,
                    ("restore", vr.uid().unwrap_or_default()),
                    &claim,
                    vr.spec.cancel,
                    here,
                )
                .await;
        }
        let schedules: Api<BackupSchedule> = Api::all(self.client.clone());
        let schedules = schedules.list(&ListParams::default()).await?.items;
        if !schedules.is_empty() {
            self.run_schedules(&pods, &schedules).await;
        }
        self.metrics.queue_length.set(waiting);
        self.metrics.in_flight.set(self.running_jobs() as i64);
        Ok(())
    }

    /// Creates what due schedules ask for: the VolumeBackups of this node's selected PVCs, or,
    /// for a schedule that also wants etcd or manifests, one ClusterBackup (every agent
    /// creates the same one; the name makes that idempotent).
    async fn run_schedules(&self, pods: &[Pod], schedules: &[BackupSchedule]) {
        let now = chrono::Utc::now();
        let resync = chrono::Duration::from_std(self.config.resync * 3).unwrap_or_default();
        let window = resync.max(chrono::Duration::minutes(10));
        let mut labels = crate::cluster::LabelCache::default();
        for schedule in schedules.iter().filter(|s| !s.spec.paused) {
            let name = schedule.name_any();
            let t = match crate::schedule::due(&schedule.spec.schedule, now, window) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(schedule = %name, "{e}");
                    continue;
                }
            };
            if schedule.spec.etcd.is_some() || schedule.spec.manifests.is_some() {
                self.create_cluster_backup(schedule, t).await;
                continue;
            }
            let chosen = self
                .selected_pvcs(
                    pods,
                    schedule.spec.namespace_selector.as_ref(),
                    schedule.spec.pvc_selector.as_ref(),
                    &mut labels,
                )
                .await;
            for (ns, pvc) in &chosen {
                self.create_scheduled(schedule, ns, pvc, t).await;
            }
        }
    }

    async fn create_scheduled(
        &self,
        schedule: &BackupSchedule,
        ns: &str,
        pvc: &str,
        t: chrono::DateTime<chrono::Utc>,
    ) {
        let name = schedule.name_any();
        let backup: VolumeBackup = match serde_json::from_value(json!({
            "apiVersion": "kairn.dev/v1alpha1",
            "kind": "VolumeBackup",
            "metadata": {
                "name": crate::schedule::backup_name(&name, pvc, t),
                "namespace": ns,
                "labels": {crate::schedule::SCHEDULE_LABEL: name},
            },
            "spec": {
                "pvc": pvc,
                "tags": [format!("schedule:{name}")],
                "hooks": schedule.spec.hooks,
            },
        })) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(schedule = %name, "cannot build a VolumeBackup: {e}");
                return;
            }
        };
        let api: Api<VolumeBackup> = Api::namespaced(self.client.clone(), ns);
        match api.create(&kube::api::PostParams::default(), &backup).await {
            Ok(_) => tracing::info!(schedule = %name, namespace = ns, pvc, "scheduled a backup"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                tracing::warn!(schedule = %name, namespace = ns, pvc, "cannot create the scheduled backup: {e}")
            }
        }
    }

    /// Carries out the decision for one resource; returns 1 when it waits for a free slot.
    async fn act<K>(
        self: &Arc<Self>,
        api: &Api<K>,
        obj: &K,
        key: JobKey,
        claim: &Claim,
        cancel: bool,
        here: bool,
    ) -> i64
    where
        K: crate::work::Work,
    {
        let name = obj.name_any();
        let running = self.running_job(&key);
        match decide(claim, cancel, here, running.is_some(), &self.me()) {
            Action::Leave => 0,
            Action::Stop => {
                if let Some(p) = running {
                    tracing::info!(kind = key.0, resource = %name, "cancel requested: stopping");
                    p.stop.store(true, Ordering::Relaxed);
                }
                0
            }
            Action::MarkCanceled => {
                let rv = obj.resource_version();
                let st = json!({"phase": "Canceled", "finished": status::now()});
                if let Err(e) = status::patch(api, &name, rv.as_deref(), st).await
                    && !status::is_conflict(&e)
                {
                    tracing::warn!(resource = %name, "cannot record the cancel: {e}");
                }
                0
            }
            Action::GiveUp => {
                let why = format!(
                    "interrupted {} times (the agent on {} restarted while it ran); giving up",
                    claim.attempts, self.config.node
                );
                tracing::warn!(kind = key.0, resource = %name, "{why}");
                let st = json!({"phase": "Failed", "errors": [why], "finished": status::now()});
                let rv = obj.resource_version();
                if let Err(e) = status::patch(api, &name, rv.as_deref(), st).await
                    && !status::is_conflict(&e)
                {
                    tracing::warn!(resource = %name, "cannot record the failure: {e}");
                }
                self.metrics.finished(key.0, "failed");
                0
            }
            Action::Start { attempt } => {
                if self.running_jobs() >= self.config.max_concurrent {
                    return 1;
                }
                let st = json!({
                    "phase": "InProgress",
                    "node": self.config.node,
                    "agent": self.config.instance,
                    "attempts": attempt,
                    "started": status::now(),
                    "finished": null,
                    "errors": null,
                    "progress": {"bytesDone": 0, "filesDone": 0},
                });
                let rv = obj.resource_version();
                match status::patch(api, &name, rv.as_deref(), st).await {
                    Ok(()) => {}
                    Err(e) if status::is_conflict(&e) => return 0,
                    Err(e) => {
                        tracing::warn!(resource = %name, "cannot claim: {e}");
                        return 0;
                    }
                }
                tracing::info!(kind = key.0, resource = %name, attempt, "started");
                let progress = Arc::new(JobProgress::default());
                if let Ok(mut r) = self.running.lock() {
                    r.insert(key.clone(), progress.clone());
                }
                self.metrics.in_flight.set(self.running_jobs() as i64);
                let agent = self.clone();
                let obj = obj.clone();
                let api = api.clone();
                tokio::spawn(async move {
                    obj.execute(&agent, &api, progress).await;
                    if let Ok(mut r) = agent.running.lock() {
                        r.remove(&key);
                    }
                    agent.metrics.in_flight.set(agent.running_jobs() as i64);
                });
                0
            }
        }
    }
}
