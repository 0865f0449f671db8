//! Running one claimed VolumeBackup or VolumeRestore: find its volume, run the engine on a
//! blocking thread while its progress is written to the status, then record the outcome in the
//! status, the metrics and an Event on the PVC.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use engine::format::snapshot::{Source, SourceKind};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::agent::Agent;
use crate::crd::{RestoreTarget, VolumeBackup, VolumeRestore};
use crate::events::{EventKind, publish};
use crate::job::{self, BackupRequest, JobProgress, RestoreRequest};
use crate::metrics::PvcLabels;
use crate::resolve::{LocatedClaim, locate_claim, pod_mounting};
use crate::status;
use crate::volume_path::VolumeMode;

/// The directory, inside a restored volume, where the agent leaves one empty file per finished
/// VolumeRestore, named after it: an init container waits for it before the application starts
/// (deploy/examples/restore-wait.yaml), then removes the directory.
pub const RESTORE_MARKER_DIR: &str = ".kairn-restored";

/// A resource whose work the agent runs.
pub trait Work:
    Resource<DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Runs the claimed work and records its outcome.
    fn execute(
        &self,
        agent: &Arc<Agent>,
        api: &Api<Self>,
        progress: Arc<JobProgress>,
    ) -> impl Future<Output = ()> + Send;
}

/// Runs `f` on a blocking thread, writing `progress` to the status every progress interval.
async fn with_progress<K, T>(
    agent: &Agent,
    api: &Api<K>,
    name: &str,
    progress: &Arc<JobProgress>,
    f: impl FnOnce() -> T + Send + 'static,
) -> T
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
    T: Send + 'static,
{
    let mut task = tokio::task::spawn_blocking(f);
    let mut tick = tokio::time::interval(agent.config.progress_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            joined = &mut task => {
                return joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            }
            _ = tick.tick() => {
                let total = progress.total.load(Ordering::Relaxed);
                let st = json!({"progress": {
                    "bytesDone": progress.bytes.load(Ordering::Relaxed),
                    "bytesTotal": (total > 0).then_some(total),
                    "filesDone": progress.files.load(Ordering::Relaxed),
                }});
                if let Err(e) = status::patch(api, name, None, st).await {
                    tracing::debug!(resource = name, "cannot write progress: {e}");
                }
            }
        }
    }
}

/// This node's pods.
async fn pods_here(agent: &Agent) -> Result<Vec<Pod>, kube::Error> {
    let api: Api<Pod> = Api::all(agent.client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={}", agent.config.node));
    Ok(api.list(&lp).await?.items)
}

/// Finds a PVC's files on this node.
async fn claim_here(agent: &Agent, ns: &str, pvc: &str) -> Result<LocatedClaim, String> {
    let pods = pods_here(agent)
        .await
        .map_err(|e| format!("Kubernetes API: {e}"))?;
    let user = pod_mounting(&pods, ns, pvc)
        .ok_or_else(|| format!("no pod on node {} mounts PVC {ns}/{pvc}", agent.config.node))?;
    let located = locate_claim(&agent.client, &agent.kubelet, user, ns, pvc)
        .await
        .map_err(|e| e.to_string())?;
    Ok(located)
}

/// Records a failure, or a cancel; a job stopped because the agent shuts down records nothing,
/// so the next instance picks it up.
async fn settle_error<K>(
    agent: &Agent,
    api: &Api<K>,
    name: &str,
    kind: &'static str,
    e: String,
    canceled: bool,
) -> bool
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    if canceled && agent.shutting_down() {
        tracing::info!(
            kind,
            resource = name,
            "stopped for shutdown; the next agent resumes it"
        );
        return false;
    }
    let (phase, outcome) = if canceled {
        ("Canceled", "canceled")
    } else {
        ("Failed", "failed")
    };
    tracing::warn!(kind, resource = name, "{phase}: {e}");
    let st = json!({"phase": phase, "errors": [e], "finished": status::now()});
    status::patch_final(api, name, st).await;
    agent.metrics.finished(kind, outcome);
    true
}

impl Work for VolumeBackup {
    async fn execute(&self, agent: &Arc<Agent>, api: &Api<Self>, progress: Arc<JobProgress>) {
        let name = self.name_any();
        let ns = self.namespace().unwrap_or_default();
        let pvc = self.spec.pvc.clone();
        let labels = PvcLabels {
            namespace: ns.clone(),
            pvc: pvc.clone(),
        };
        let located = match claim_here(agent, &ns, &pvc).await {
            Ok(l) => l,
            Err(e) => {
                agent.metrics.errors.get_or_create(&labels).inc();
                settle_error(agent, api, &name, "backup", e, false).await;
                return;
            }
        };
        let req = BackupRequest {
            path: located.volume.data_path.clone(),
            source: Source {
                kind: SourceKind::Filesystem,
                cluster: agent.config.cluster.clone(),
                namespace: Some(ns.clone()),
                pvc: Some(pvc.clone()),
                pv: Some(located.pv.clone()),
                node: Some(agent.config.node.clone()),
                pod: Some(located.user.pod.clone()),
            },
            tags: self.spec.tags.clone(),
            block: located.volume.mode == VolumeMode::Block,
            group: self
                .spec
                .cluster_backup
                .as_ref()
                .map(|g| engine::format::snapshot::Group {
                    id: g.id.clone(),
                    series: g.series.clone(),
                }),
        };
        let hooks = match self.spec.hooks.clone() {
            Some(h) => h,
            None => match crate::hooks::from_annotations(&located.user.annotations) {
                Ok(h) => h.unwrap_or_default(),
                Err(e) => {
                    agent.metrics.errors.get_or_create(&labels).inc();
                    let why = format!("pod {ns}/{}: {e}", located.user.pod);
                    settle_error(agent, api, &name, "backup", why, false).await;
                    return;
                }
            },
        };
        let pod = located.user.pod.clone();
        let client = &agent.client;
        let mut hook_errors = Vec::new();
        let pre = crate::hooks::run_all(client, &ns, &pod, "pre", &hooks.pre).await;
        let result = match pre {
            Err(e) => Err(engine::Error::new(engine::ErrorKind::InvalidInput, e)),
            Ok(tolerated) => {
                hook_errors.extend(tolerated);
                let access = agent.access.clone();
                let p = progress.clone();
                let freeze = hooks.fsfreeze.then_some(agent.config.freeze_limit);
                with_progress(agent, api, &name, &progress, move || {
                    frozen_backup(&access, &req, &p, freeze)
                })
                .await
            }
        };
        // Post hooks run whenever pre hooks ran, so a quiesced application is always resumed.
        match crate::hooks::run_all(client, &ns, &pod, "post", &hooks.post).await {
            Ok(tolerated) => hook_errors.extend(tolerated),
            Err(e) => hook_errors.push(e),
        }
        match result {
            Ok(done) => {
                let s = &done.summary;
                let files = s.files_new + s.files_changed + s.files_unmodified;
                let mut problems = hook_errors.clone();
                problems.extend(done.warnings.iter().cloned());
                let partial = !problems.is_empty();
                let st = json!({
                    "phase": if partial { "PartiallyFailed" } else { "Completed" },
                    "snapshotId": done.id.to_hex(),
                    "newBytesStored": s.new_bytes_stored,
                    "progress": {"bytesDone": s.bytes_read, "bytesTotal": s.total_bytes, "filesDone": files},
                    "errors": status::error_list(&problems, 10),
                    "finished": status::now(),
                });
                status::patch_final(api, &name, st).await;
                let m = &agent.metrics;
                m.bytes_read.get_or_create(&labels).inc_by(s.bytes_read);
                m.new_bytes_stored
                    .get_or_create(&labels)
                    .inc_by(s.new_bytes_stored);
                m.files.get_or_create(&labels).set(files as i64);
                m.duration.get_or_create(&labels).set(s.duration_secs);
                if partial {
                    m.errors.get_or_create(&labels).inc();
                    m.finished("backup", "partially-failed");
                } else {
                    m.last_success
                        .get_or_create(&labels)
                        .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
                    m.finished("backup", "completed");
                }
                let note = format!(
                    "snapshot {} by {}: read {} of {} bytes, stored {} new bytes{}",
                    done.id.short(),
                    name,
                    s.bytes_read,
                    s.total_bytes,
                    s.new_bytes_stored,
                    if partial {
                        format!("; {} problem(s): {}", problems.len(), problems[0])
                    } else {
                        String::new()
                    }
                );
                let kind = if partial {
                    EventKind::Warning
                } else {
                    EventKind::Normal
                };
                let reason = if partial {
                    "BackupPartiallyFailed"
                } else {
                    "BackupCompleted"
                };
                publish(agent, &ns, &pvc, kind, reason, "Backup", &note).await;
                tracing::info!(resource = %name, snapshot = %done.id.short(), "{note}");
                self.retain(agent, &pvc).await;
            }
            Err(e) => {
                let canceled = e.kind() == engine::ErrorKind::Canceled;
                let mut why = if e.kind() == engine::ErrorKind::InvalidInput {
                    e.message().to_string()
                } else {
                    e.to_string()
                };
                for h in &hook_errors {
                    why.push_str("; ");
                    why.push_str(h);
                }
                if settle_error(agent, api, &name, "backup", why, canceled).await {
                    agent.metrics.errors.get_or_create(&labels).inc();
                    let (kind, reason) = if canceled {
                        (EventKind::Normal, "BackupCanceled")
                    } else {
                        (EventKind::Warning, "BackupFailed")
                    };
                    publish(
                        agent,
                        &ns,
                        &pvc,
                        kind,
                        reason,
                        "Backup",
                        &format!("{name}: {e}"),
                    )
                    .await;
                }
            }
        }
    }
}

impl VolumeBackup {
    /// After a scheduled backup: forget what the schedule's retention no longer keeps.
    async fn retain(&self, agent: &Arc<Agent>, pvc: &str) {
        let Some(schedule) = self.labels().get(crate::schedule::SCHEDULE_LABEL).cloned() else {
            return;
        };
        let api: Api<crate::crd::BackupSchedule> = Api::all(agent.client.clone());
        let Some(r) = (match api.get(&schedule).await {
            Ok(s) => s.spec.retention,
            Err(e) => {
                tracing::warn!(schedule, "cannot read the schedule for its retention: {e}");
                return;
            }
        }) else {
            return;
        };
        let policy = r.policy();
        if policy.is_empty() {
            return;
        }
        let access = agent.access.clone();
        let (tag, stored_as) = (format!("schedule:{schedule}"), pvc.to_string());
        match tokio::task::spawn_blocking(move || {
            job::apply_retention(&access, &tag, Some(&stored_as), policy)
        })
        .await
        {
            Ok(Ok(n)) => tracing::info!(schedule, pvc, forgotten = n, "retention applied"),
            Ok(Err(e)) => tracing::warn!(schedule, pvc, "cannot apply retention: {e}"),
            Err(e) => tracing::warn!(schedule, pvc, "retention task failed: {e}"),
        }
    }
}

impl Work for VolumeRestore {
    async fn execute(&self, agent: &Arc<Agent>, api: &Api<Self>, progress: Arc<JobProgress>) {
        let name = self.name_any();
        // Events go to the target PVC's namespace.
        let ns = self.target_namespace();
        let (target, target_pvc): (PathBuf, Option<String>) = match &self.spec.target {
            RestoreTarget::Path(p) => (PathBuf::from(p), None),
            RestoreTarget::Pvc(pvc) => match claim_here(agent, &ns, pvc).await {
                Ok(l) => (l.volume.data_path, Some(pvc.clone())),
                Err(e) => {
                    settle_error(agent, api, &name, "restore", e, false).await;
                    return;
                }
            },
        };
        let req = RestoreRequest {
            snapshot: self.spec.snapshot.clone(),
            source: Source {
                cluster: agent.config.cluster.clone(),
                namespace: Some(self.source_namespace()),
                pvc: self.spec.source_pvc.clone().or_else(|| target_pvc.clone()),
                ..Default::default()
            },
            target: target.clone(),
        };
        let access = agent.access.clone();
        let p = progress.clone();
        let result = with_progress(agent, api, &name, &progress, move || {
            job::run_restore(&access, &req, &p)
        })
        .await;
        match result {
            Ok((id, report)) => {
                let errors: Vec<String> = report
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.path.display(), e.message))
                    .collect();
                let partial = !errors.is_empty();
                if !partial && target_pvc.is_some() {
                    write_marker(&target, &name);
                }
                let st = json!({
                    "phase": if partial { "PartiallyFailed" } else { "Completed" },
                    "snapshotId": id.to_hex(),
                    "filesUnchanged": report.unchanged,
                    "progress": {"bytesDone": report.bytes, "bytesTotal": report.bytes, "filesDone": report.files},
                    "errors": status::error_list(&errors, 10),
                    "finished": status::now(),
                });
                status::patch_final(api, &name, st).await;
                agent.metrics.finished(
                    "restore",
                    if partial {
                        "partially-failed"
                    } else {
                        "completed"
                    },
                );
                let note = format!(
                    "snapshot {} restored by {}: {} files, {} bytes{}",
                    id.short(),
                    name,
                    report.files,
                    report.bytes,
                    if partial {
                        format!("; {} file(s) failed", errors.len())
                    } else {
                        String::new()
                    }
                );
                tracing::info!(resource = %name, "{note}");
                if let Some(pvc) = &target_pvc {
                    let kind = if partial {
                        EventKind::Warning
                    } else {
                        EventKind::Normal
                    };
                    publish(agent, &ns, pvc, kind, "RestoreFinished", "Restore", &note).await;
                }
            }
            Err(e) => {
                let canceled = e.kind() == engine::ErrorKind::Canceled;
                if settle_error(agent, api, &name, "restore", e.to_string(), canceled).await
                    && let Some(pvc) = &target_pvc
                {
                    publish(
                        agent,
                        &ns,
                        pvc,
                        EventKind::Warning,
                        "RestoreFailed",
                        "Restore",
                        &format!("{name}: {e}"),
                    )
                    .await;
                }
            }
        }
    }
}

/// Runs a backup, inside an fsfreeze of the volume's filesystem when `freeze_limit` is set;
/// the guard thaws on every path out, and its watchdog after the limit.
fn frozen_backup(
    access: &job::RepoAccess,
    req: &BackupRequest,
    progress: &JobProgress,
    freeze_limit: Option<std::time::Duration>,
) -> engine::Result<job::BackupDone> {
    let guard = match freeze_limit {
        None => None,
        Some(limit) => Some(
            crate::freeze::FreezeGuard::freeze(&req.path, limit)
                .map_err(|e| engine::Error::new(engine::ErrorKind::Io, e.to_string()))?,
        ),
    };
    let result = job::run_backup(access, req, progress);
    if let Some(g) = guard {
        if !g.is_frozen() {
            tracing::warn!(path = %req.path.display(), "the fsfreeze limit passed before the backup ended: later files were read unfrozen");
        }
        g.thaw()
            .map_err(|e| engine::Error::new(engine::ErrorKind::Io, e.to_string()))?;
    }
    result
}

/// Leaves the completion marker an init container waits for.
fn write_marker(target: &std::path::Path, restore: &str) {
    if !target.is_dir() {
        return; // a block device: its pod waits on the VolumeRestore's status instead
    }
    let dir = target.join(RESTORE_MARKER_DIR);
    let result =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(restore), b""));
    if let Err(e) = result {
        tracing::warn!(target = %target.display(), "cannot write the restore marker: {e}");
    }
}
