//! The VolumeRestore reconciler: refuse what the resource's namespace may not ask for, start
//! the restore of a PVC this node's pods mount (or of a path on this node), run it, then
//! record the outcome in the status, the metrics and an Event on the PVC, and leave the
//! marker an init container waits for.

use std::path::PathBuf;
use std::sync::Arc;

use engine::format::snapshot::Source;
use engine::id::SnapshotId;
use engine::restore::RestoreReport;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;

use super::mount_pods::{self, Target};
use super::work::{Work, act, claim_here, settle_error, wait_for_mount, with_progress};
use crate::context::Context;
use crate::crd::{Phase, RestoreTarget, VolumeRestore};
use crate::decide::Claim;
use crate::events::{EventKind, PvcEvent, publish};
use crate::job::{self, JobProgress, RestoreRequest};
use crate::jobs::JobKey;
use crate::mount_pod::Owner;
use crate::patch::{Field, ProgressPatch, VolumeStatusPatch};
use crate::resolve::pod_mounting;
use crate::status;

/// The directory, inside a restored volume, where the agent leaves one empty file per finished
/// VolumeRestore, named after it: an init container waits for it before the application starts
/// (deploy/examples/restore-wait.yaml), then removes the directory.
pub const RESTORE_MARKER_DIR: &str = ".kairn-restored";

/// Decides for one VolumeRestore and acts; true when it waits for a free slot.
pub async fn reconcile(ctx: &Arc<Context>, vr: &VolumeRestore, pods: &[Pod]) -> bool {
    let ns = vr.namespace().unwrap_or_default();
    let api: Api<VolumeRestore> = Api::namespaced(ctx.client.clone(), &ns);
    let s = vr.status.clone().unwrap_or_default();
    if s.phase == Phase::New
        && let Some(why) = vr.refusal(&ctx.config.admin_namespace)
    {
        let st = VolumeStatusPatch::ended(Phase::Failed, why, status::now());
        if let Err(e) =
            status::patch(&api, &vr.name_any(), vr.resource_version().as_deref(), &st).await
            && !status::is_conflict(&e)
        {
            tracing::warn!(resource = %vr.name_any(), "cannot record the refusal: {e}");
        }
        return false;
    }
    let uid = vr.uid().unwrap_or_default();
    let target_ns = vr.target_namespace();
    let here = match &vr.spec.target {
        RestoreTarget::Pvc(pvc) => {
            let user = pod_mounting(pods, &target_ns, pvc, &uid);
            let here = user.is_some();
            let why = match user {
                Some(u) => u.not_started,
                None if s.phase == Phase::New && !vr.spec.cancel => {
                    let (own_ns, name) = (vr.namespace().unwrap_or_default(), vr.name_any());
                    let target = Target {
                        owner: Owner {
                            kind: "VolumeRestore",
                            namespace: &own_ns,
                            name: &name,
                            uid: &uid,
                        },
                        namespace: &target_ns,
                        pvc,
                        read_only: false,
                    };
                    mount_pods::ensure(ctx, &target).await
                }
                None => None,
            };
            if wait_for_mount(&api, vr, s.phase, s.waiting.as_deref(), why.as_deref()).await {
                return false;
            }
            here
        }
        RestoreTarget::Path(_) => vr.spec.node.as_deref() == Some(&ctx.config.node),
    };
    let claim = Claim {
        phase: s.phase,
        claimant_lost: ctx.node_lost(s.node.as_deref()),
        node: s.node,
        agent: s.agent,
        attempts: s.attempts,
    };
    let work = Work {
        api: &api,
        obj: vr,
        key: JobKey::Restore(uid),
        claim,
        cancel: vr.spec.cancel,
        here,
        mount_ns: matches!(vr.spec.target, RestoreTarget::Pvc(_)).then_some(target_ns),
    };
    act(ctx, work, execute).await
}

/// One claimed restore, while it runs.
struct Run {
    ctx: Arc<Context>,
    api: Api<VolumeRestore>,
    name: String,
    /// The target PVC's namespace, where events go.
    ns: String,
    target: PathBuf,
    target_pvc: Option<String>,
}

impl Run {
    /// An Event on the target PVC, when the target is one.
    async fn event(&self, kind: EventKind, reason: &str, note: &str) {
        if let Some(pvc) = &self.target_pvc {
            let event = PvcEvent {
                namespace: &self.ns,
                pvc,
                kind,
                reason,
                action: "Restore",
                note,
            };
            publish(&self.ctx.client, &self.ctx.config.instance, event).await;
        }
    }
}

/// Runs a claimed restore and records its outcome.
async fn execute(
    ctx: Arc<Context>,
    api: Api<VolumeRestore>,
    vr: VolumeRestore,
    progress: Arc<JobProgress>,
) {
    let name = vr.name_any();
    let ns = vr.target_namespace();
    let uid = vr.uid().unwrap_or_default();
    let (target, target_pvc): (PathBuf, Option<String>) = match &vr.spec.target {
        RestoreTarget::Path(p) => (PathBuf::from(p), None),
        RestoreTarget::Pvc(pvc) => match claim_here(&ctx, &ns, pvc, &uid).await {
            Ok(l) => (l.volume.data_path, Some(pvc.clone())),
            Err(e) => {
                settle_error(&ctx, &api, &name, "restore", e, false).await;
                return;
            }
        },
    };
    let req = RestoreRequest {
        snapshot: vr.spec.snapshot.clone(),
        source: Source {
            cluster: ctx.config.cluster.clone(),
            namespace: Some(vr.source_namespace()),
            pvc: vr.spec.source_pvc.clone().or_else(|| target_pvc.clone()),
            ..Default::default()
        },
        target: target.clone(),
        tenant: vr
            .namespace()
            .filter(|own| *own != ctx.config.admin_namespace),
    };
    let run = Run {
        ctx,
        api,
        name,
        ns,
        target,
        target_pvc,
    };
    let access = run.ctx.access.clone();
    let p = progress.clone();
    let result = with_progress(&run.ctx, &run.api, &run.name, &progress, move || {
        job::run_restore(&access, &req, &p)
    })
    .await;
    match result {
        Ok((id, report)) => completed(&run, id, &report).await,
        Err(e) => {
            let canceled = e.kind() == engine::ErrorKind::Canceled;
            if settle_error(
                &run.ctx,
                &run.api,
                &run.name,
                "restore",
                e.to_string(),
                canceled,
            )
            .await
            {
                let note = format!("{}: {e}", run.name);
                run.event(EventKind::Warning, "RestoreFailed", &note).await;
            }
        }
    }
}

/// Records a restore that ran: `Completed`, or `PartiallyFailed` with the files that failed.
async fn completed(run: &Run, id: SnapshotId, report: &RestoreReport) {
    let errors: Vec<String> = report
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.path.display(), e.message))
        .collect();
    let partial = !errors.is_empty();
    if !partial && run.target_pvc.is_some() {
        write_marker(&run.target, &run.name);
    }
    let st = VolumeStatusPatch {
        phase: Some(if partial {
            Phase::PartiallyFailed
        } else {
            Phase::Completed
        }),
        snapshot_id: Some(id.to_hex()),
        files_unchanged: Some(report.unchanged),
        progress: Some(ProgressPatch::done(
            report.bytes,
            report.bytes,
            report.files,
        )),
        errors: Field::Set(status::error_list(&errors, 10)),
        finished: Field::Set(status::now()),
        ..Default::default()
    };
    status::patch_final(&run.api, &run.name, &st).await;
    let outcome = if partial {
        "partially-failed"
    } else {
        "completed"
    };
    run.ctx.metrics.finished("restore", outcome);
    let note = format!(
        "snapshot {} restored by {}: {} files, {} bytes{}",
        id.short(),
        run.name,
        report.files,
        report.bytes,
        if partial {
            format!("; {} file(s) failed", errors.len())
        } else {
            String::new()
        }
    );
    tracing::info!(resource = %run.name, "{note}");
    let kind = if partial {
        EventKind::Warning
    } else {
        EventKind::Normal
    };
    run.event(kind, "RestoreFinished", &note).await;
}

/// Leaves the completion marker an init container waits for. The volume is the tenant's, who
/// may swap a link in at any moment: the marker goes through directory handles and follows none.
fn write_marker(target: &std::path::Path, restore: &str) {
    if !target.is_dir() {
        return; // a block device: its pod waits on the VolumeRestore's status instead
    }
    let marker = std::path::Path::new(RESTORE_MARKER_DIR).join(restore);
    if let Err(e) = engine::restore::write_file_beneath(target, &marker, b"") {
        tracing::warn!(target = %target.display(), "cannot write the restore marker: {e}");
    }
}
