//! The VolumeBackup reconciler: start the backup of a PVC this node's pods mount, run it (the
//! hooks, an fsfreeze, the engine), then record the outcome in the status, the metrics and an
//! Event on the PVC, and apply the schedule's retention.

use std::sync::Arc;

use engine::format::snapshot::{Source, SourceKind};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;

use super::mount_pods::{self, Target};
use super::retention;
use super::work::{Work, act, claim_here, settle_error, wait_for_mount, with_progress};
use crate::context::Context;
use crate::crd::{Hooks, Phase, VolumeBackup};
use crate::decide::Claim;
use crate::events::{EventKind, PvcEvent, publish};
use crate::freeze::FreezeGuard;
use crate::freeze_record::FreezeOwner;
use crate::freeze_state::StateDir;
use crate::job::{self, BackupDone, BackupRequest, JobProgress};
use crate::jobs::JobKey;
use crate::metrics::PvcLabels;
use crate::mount_pod::Owner;
use crate::patch::{Field, ProgressPatch, VolumeStatusPatch};
use crate::resolve::pod_mounting;
use crate::status;
use crate::volume_path::VolumeMode;

/// Decides for one VolumeBackup and acts; true when it waits for a free slot.
pub async fn reconcile(ctx: &Arc<Context>, vb: &VolumeBackup, pods: &[Pod]) -> bool {
    let ns = vb.namespace().unwrap_or_default();
    let uid = vb.uid().unwrap_or_default();
    let user = pod_mounting(pods, &ns, &vb.spec.pvc, &uid);
    let here = user.is_some();
    let s = vb.status.clone().unwrap_or_default();
    let api: Api<VolumeBackup> = Api::namespaced(ctx.client.clone(), &ns);
    let why = match user {
        Some(u) => u.not_started,
        None if s.phase == Phase::New && !vb.spec.cancel => {
            let name = vb.name_any();
            let target = Target {
                owner: Owner {
                    kind: "VolumeBackup",
                    namespace: &ns,
                    name: &name,
                    uid: &uid,
                },
                namespace: &ns,
                pvc: &vb.spec.pvc,
                read_only: true,
            };
            mount_pods::ensure(ctx, &target).await
        }
        None => None,
    };
    if wait_for_mount(&api, vb, s.phase, s.waiting.as_deref(), why.as_deref()).await {
        return false;
    }
    let claim = Claim {
        phase: s.phase,
        claimant_lost: ctx.node_lost(s.node.as_deref()),
        node: s.node,
        agent: s.agent,
        attempts: s.attempts,
    };
    let work = Work {
        api: &api,
        obj: vb,
        key: JobKey::Backup(uid),
        claim,
        cancel: vb.spec.cancel,
        here,
        mount_ns: Some(ns.clone()),
    };
    act(ctx, work, execute).await
}

/// One claimed backup, while it runs.
struct Run {
    ctx: Arc<Context>,
    api: Api<VolumeBackup>,
    vb: VolumeBackup,
    name: String,
    labels: PvcLabels,
}

impl Run {
    fn ns(&self) -> &str {
        &self.labels.namespace
    }

    fn pvc(&self) -> &str {
        &self.labels.pvc
    }

    /// Records a failure before the backup could start.
    async fn fail(&self, why: String) {
        self.ctx.metrics.errors.get_or_create(&self.labels).inc();
        settle_error(&self.ctx, &self.api, &self.name, "backup", why, false).await;
    }

    async fn event(&self, kind: EventKind, reason: &str, note: &str) {
        let event = PvcEvent {
            namespace: self.ns(),
            pvc: self.pvc(),
            kind,
            reason,
            action: "Backup",
            note,
        };
        publish(&self.ctx.client, &self.ctx.config.instance, event).await;
    }
}

/// Runs a claimed backup and records its outcome.
async fn execute(
    ctx: Arc<Context>,
    api: Api<VolumeBackup>,
    vb: VolumeBackup,
    progress: Arc<JobProgress>,
) {
    let labels = PvcLabels {
        namespace: vb.namespace().unwrap_or_default(),
        pvc: vb.spec.pvc.clone(),
    };
    let uid = vb.uid().unwrap_or_default();
    // At 0 from the start, so that a failure is an increase a rule can see.
    let _ = ctx.metrics.errors.get_or_create(&labels);
    let run = Run {
        name: vb.name_any(),
        ctx,
        api,
        vb,
        labels,
    };
    let located = match claim_here(&run.ctx, run.ns(), run.pvc(), &uid).await {
        Ok(l) => l,
        Err(e) => return run.fail(e).await,
    };
    let req = BackupRequest {
        path: located.volume.data_path.clone(),
        source: Source {
            kind: SourceKind::Filesystem,
            cluster: run.ctx.config.cluster.clone(),
            namespace: Some(run.ns().to_string()),
            pvc: Some(run.pvc().to_string()),
            pv: Some(located.pv.clone()),
            node: Some(run.ctx.config.node.clone()),
            pod: Some(located.user.pod.clone()),
        },
        tags: run.vb.spec.tags.clone(),
        block: located.volume.mode == VolumeMode::Block,
        group: run
            .vb
            .spec
            .cluster_backup
            .as_ref()
            .map(|g| engine::format::snapshot::Group {
                id: g.id.clone(),
                series: g.series.clone(),
            }),
    };
    let hooks = match run.vb.spec.hooks.clone() {
        Some(h) => h,
        None => match crate::hooks::from_annotations(&located.user.annotations) {
            Ok(h) => h.unwrap_or_default(),
            Err(e) => {
                let why = format!("pod {}/{}: {e}", run.ns(), located.user.pod);
                return run.fail(why).await;
            }
        },
    };
    let (result, hook_errors) = back_up(&run, &located.user.pod, &hooks, req, &progress).await;
    match result {
        Ok(done) => completed(&run, &done, hook_errors).await,
        Err(e) => failed(&run, &e, &hook_errors).await,
    }
}

/// The hooks around the backup: pre hooks, the backup (frozen if asked), then post hooks,
/// which run whenever pre hooks ran, so a quiesced application is always resumed. Returns the
/// outcome and the hook failures tolerated.
async fn back_up(
    run: &Run,
    pod: &str,
    hooks: &Hooks,
    req: BackupRequest,
    progress: &Arc<JobProgress>,
) -> (engine::Result<BackupDone>, Vec<String>) {
    let client = &run.ctx.client;
    let ns = run.ns();
    let mut hook_errors = Vec::new();
    let pre = crate::hooks::run_all(client, ns, pod, "pre", &hooks.pre).await;
    let result = match pre {
        Err(e) => Err(engine::Error::new(engine::ErrorKind::InvalidInput, e)),
        Ok(tolerated) => {
            hook_errors.extend(tolerated);
            let access = run.ctx.access.clone();
            let p = progress.clone();
            let freeze = hooks.fsfreeze.then(|| FreezeTerms {
                limit: run.ctx.config.freeze_limit,
                state: run.ctx.config.state_dir.clone(),
                owner: FreezeOwner {
                    instance: run.ctx.config.instance.clone(),
                    namespace: Some(run.ns().to_string()),
                    pvc: Some(run.pvc().to_string()),
                    backup: Some(run.name.clone()),
                },
            });
            with_progress(&run.ctx, &run.api, &run.name, progress, move || {
                frozen_backup(&access, &req, &p, freeze)
            })
            .await
        }
    };
    match crate::hooks::run_all(client, ns, pod, "post", &hooks.post).await {
        Ok(tolerated) => hook_errors.extend(tolerated),
        Err(e) => hook_errors.push(e),
    }
    (result, hook_errors)
}

/// Records a backup that wrote its snapshot: `Completed`, or `PartiallyFailed` with the
/// problems (hook failures and unreadable files).
async fn completed(run: &Run, done: &BackupDone, hook_errors: Vec<String>) {
    let s = &done.summary;
    let files = s.files_new + s.files_changed + s.files_unmodified;
    let mut problems = hook_errors;
    problems.extend(done.warnings.iter().cloned());
    let partial = !problems.is_empty();
    let st = VolumeStatusPatch {
        phase: Some(if partial {
            Phase::PartiallyFailed
        } else {
            Phase::Completed
        }),
        snapshot_id: Some(done.id.to_hex()),
        new_bytes_stored: Some(s.new_bytes_stored),
        progress: Some(ProgressPatch::done(s.bytes_read, s.total_bytes, files)),
        errors: Field::Set(status::error_list(&problems, 10)),
        finished: Field::Set(status::now()),
        ..Default::default()
    };
    status::patch_final(&run.api, &run.name, &st).await;
    let (m, labels) = (&run.ctx.metrics, &run.labels);
    m.bytes_read.get_or_create(labels).inc_by(s.bytes_read);
    m.new_bytes_stored
        .get_or_create(labels)
        .inc_by(s.new_bytes_stored);
    m.files.get_or_create(labels).set(files as i64);
    m.duration.get_or_create(labels).set(s.duration_secs);
    if partial {
        m.errors.get_or_create(labels).inc();
        m.finished("backup", "partially-failed");
    } else {
        m.last_success
            .get_or_create(labels)
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        m.finished("backup", "completed");
    }
    let note = format!(
        "snapshot {} by {}: read {} of {} bytes, stored {} new bytes{}",
        done.id.short(),
        run.name,
        s.bytes_read,
        s.total_bytes,
        s.new_bytes_stored,
        match problems.first() {
            Some(first) => format!("; {} problem(s): {first}", problems.len()),
            None => String::new(),
        }
    );
    let (kind, reason) = if partial {
        (EventKind::Warning, "BackupPartiallyFailed")
    } else {
        (EventKind::Normal, "BackupCompleted")
    };
    run.event(kind, reason, &note).await;
    tracing::info!(resource = %run.name, snapshot = %done.id.short(), "{note}");
    if let Some(schedule) = run.vb.labels().get(crate::schedule::SCHEDULE_LABEL) {
        retention::apply(&run.ctx, schedule, Some(run.pvc())).await;
    }
}

/// Records a backup that wrote no snapshot: `Failed`, or `Canceled`.
async fn failed(run: &Run, e: &engine::Error, hook_errors: &[String]) {
    let canceled = e.kind() == engine::ErrorKind::Canceled;
    let mut why = if e.kind() == engine::ErrorKind::InvalidInput {
        e.message().to_string()
    } else {
        e.to_string()
    };
    for h in hook_errors {
        why.push_str("; ");
        why.push_str(h);
    }
    if settle_error(&run.ctx, &run.api, &run.name, "backup", why, canceled).await {
        // A cancel is what someone asked for, not an error.
        if !canceled {
            run.ctx.metrics.errors.get_or_create(&run.labels).inc();
        }
        let (kind, reason) = if canceled {
            (EventKind::Normal, "BackupCanceled")
        } else {
            (EventKind::Warning, "BackupFailed")
        };
        run.event(kind, reason, &format!("{}: {e}", run.name)).await;
    }
}

/// How a backup's fsfreeze is taken.
struct FreezeTerms {
    limit: std::time::Duration,
    state: StateDir,
    owner: FreezeOwner,
}

/// Runs a backup, inside an fsfreeze of the volume's filesystem when `freeze` is set; the
/// guard thaws on every path out, its watchdog after the limit, and the next agent if this
/// one dies.
fn frozen_backup(
    access: &job::RepoAccess,
    req: &BackupRequest,
    progress: &JobProgress,
    freeze: Option<FreezeTerms>,
) -> engine::Result<BackupDone> {
    let guard = match freeze {
        None => None,
        Some(t) => Some(
            FreezeGuard::freeze(&req.path, t.limit, &t.state, t.owner)
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
