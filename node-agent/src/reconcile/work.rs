//! What the VolumeBackup and VolumeRestore reconcilers share: carrying out the decision for
//! one resource (claim and start a job, stop it, record a cancel, give up), finding a PVC's
//! files on this node, writing a running job's progress, and recording a failure.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::crd::Phase;
use crate::decide::{Action, Claim, decide};
use crate::job::JobProgress;
use crate::jobs::JobKey;
use crate::patch::VolumeStatusPatch;
use crate::resolve::{LocatedClaim, locate_claim, pod_mounting};
use crate::status;
use crate::volume_path::VolumeMode;

/// One VolumeBackup or VolumeRestore, as the decision sees it.
pub struct Work<'a, K> {
    /// Its namespace's API.
    pub api: &'a Api<K>,
    /// The resource.
    pub obj: &'a K,
    /// The key its job runs under.
    pub key: JobKey,
    /// Its status, as far as the decision goes.
    pub claim: Claim,
    /// `spec.cancel`.
    pub cancel: bool,
    /// True when this node holds its volume.
    pub here: bool,
    /// The namespace of its PVC, where a mount pod of it would be (`None`: a path target).
    pub mount_ns: Option<String>,
}

/// Carries out the decision for one resource, starting `execute` on a claimed one; returns
/// true when it waits for a free slot.
pub async fn act<K, F, Fut>(ctx: &Arc<Context>, work: Work<'_, K>, execute: F) -> bool
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    K: Send + Sync + 'static,
    F: FnOnce(Arc<Context>, Api<K>, K, Arc<JobProgress>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Work {
        api,
        obj,
        key,
        claim,
        cancel,
        here,
        mount_ns,
    } = work;
    let name = obj.name_any();
    let uid = obj.uid().unwrap_or_default();
    let rv = obj.resource_version();
    let running = ctx.jobs.get(&key);
    match decide(&claim, cancel, here, running.is_some(), &ctx.config.me()) {
        Action::Leave => {}
        Action::Stop => {
            if let Some(p) = running {
                tracing::info!(kind = key.kind(), resource = %name, "cancel requested: stopping");
                p.stop.store(true, Ordering::Relaxed);
            }
        }
        Action::MarkCanceled => {
            let st = VolumeStatusPatch::canceled(status::now());
            if let Err(e) = status::patch(api, &name, rv.as_deref(), &st).await
                && !status::is_conflict(&e)
            {
                tracing::warn!(resource = %name, "cannot record the cancel: {e}");
            }
            remove_mount_pod(ctx, mount_ns.as_deref(), &uid).await;
        }
        Action::GiveUp => {
            let why = format!(
                "interrupted {} times (the agent on {} restarted while it ran); giving up",
                claim.attempts, ctx.config.node
            );
            record_failure(ctx, api, &name, rv.as_deref(), key.kind(), why).await;
            remove_mount_pod(ctx, mount_ns.as_deref(), &uid).await;
        }
        Action::NodeLost => {
            let why = format!(
                "node lost: the agent on node {} stopped renewing its Lease while this ran, and \
                 no node that can reach the volume took it over",
                claim.node.as_deref().unwrap_or("?")
            );
            record_failure(ctx, api, &name, rv.as_deref(), key.kind(), why).await;
            remove_mount_pod(ctx, mount_ns.as_deref(), &uid).await;
        }
        Action::Start { attempt } => {
            if ctx.jobs.count() >= ctx.config.max_concurrent {
                return true;
            }
            let (node, instance) = (&ctx.config.node, &ctx.config.instance);
            let st = VolumeStatusPatch::claim(node, instance, attempt, status::now());
            match status::patch(api, &name, rv.as_deref(), &st).await {
                Ok(()) => {}
                Err(e) if status::is_conflict(&e) => return false,
                Err(e) => {
                    tracing::warn!(resource = %name, "cannot claim: {e}");
                    return false;
                }
            }
            tracing::info!(kind = key.kind(), resource = %name, attempt, "started");
            let progress = Arc::new(JobProgress::default());
            ctx.jobs.insert(key.clone(), progress.clone());
            ctx.count_in_flight();
            let job = execute(ctx.clone(), api.clone(), obj.clone(), progress);
            let ctx = ctx.clone();
            tokio::spawn(async move {
                job.await;
                // Stopped for a shutdown, the work stays InProgress for the next agent, which
                // needs the volume mounted still.
                if !ctx.shutting_down() {
                    remove_mount_pod(&ctx, mount_ns.as_deref(), &uid).await;
                }
                ctx.jobs.remove(&key);
                ctx.count_in_flight();
            });
        }
    }
    false
}

/// Deletes the mount pod of a resource that ended, if it had one.
async fn remove_mount_pod(ctx: &Context, ns: Option<&str>, uid: &str) {
    if let Some(ns) = ns {
        super::mount_pods::remove(ctx, ns, uid).await;
    }
}

/// Records `Failed` with `why` on a resource no job of this agent runs, conditional on the
/// version read, so that of several agents deciding the same only one records it.
async fn record_failure<K>(
    ctx: &Context,
    api: &Api<K>,
    name: &str,
    rv: Option<&str>,
    kind: &'static str,
    why: String,
) where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    tracing::warn!(kind, resource = %name, "{why}");
    let st = VolumeStatusPatch::ended(Phase::Failed, why, status::now());
    match status::patch(api, name, rv, &st).await {
        Ok(()) => ctx.metrics.finished(kind, "failed"),
        Err(e) if status::is_conflict(&e) => {}
        Err(e) => tracing::warn!(resource = %name, "cannot record the failure: {e}"),
    }
}

/// Runs `f` on a blocking thread, writing `progress` to the status every progress interval.
pub async fn with_progress<K, T>(
    ctx: &Context,
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
    let mut tick = tokio::time::interval(ctx.config.progress_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            joined = &mut task => {
                return joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            }
            _ = tick.tick() => {
                let st = VolumeStatusPatch::progress(progress);
                if let Err(e) = status::patch(api, name, None, &st).await {
                    tracing::debug!(resource = name, "cannot write progress: {e}");
                }
            }
        }
    }
}

/// Records why a new resource whose volume is on this node waits (its pod has not started, so
/// its volumes may not be mounted), once per reason; true when it waits.
pub async fn wait_for_mount<K>(
    api: &Api<K>,
    obj: &K,
    phase: Phase,
    current: Option<&str>,
    why: Option<&str>,
) -> bool
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let (Some(why), Phase::New) = (why, phase) else {
        return false;
    };
    if current != Some(why) {
        let st = VolumeStatusPatch::waiting(why.to_string());
        let name = obj.name_any();
        if let Err(e) = status::patch(api, &name, obj.resource_version().as_deref(), &st).await
            && !status::is_conflict(&e)
        {
            tracing::warn!(resource = %name, "cannot record why it waits: {e}");
        }
    }
    true
}

/// This node's pods.
pub async fn pods_here(ctx: &Context) -> Result<Vec<Pod>, kube::Error> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={}", ctx.config.node));
    Ok(api.list(&lp).await?.items)
}

/// Finds a PVC's files on this node, for the work of uid `work`.
pub async fn claim_here(
    ctx: &Context,
    ns: &str,
    pvc: &str,
    work: &str,
) -> Result<LocatedClaim, String> {
    let pods = pods_here(ctx)
        .await
        .map_err(|e| format!("Kubernetes API: {e}"))?;
    let user = pod_mounting(&pods, ns, pvc, work)
        .ok_or_else(|| format!("no pod on node {} mounts PVC {ns}/{pvc}", ctx.config.node))?;
    if let Some(why) = &user.not_started {
        return Err(format!("PVC {ns}/{pvc} is not mounted: {why}"));
    }
    let located = locate_claim(&ctx.client, &ctx.kubelet(), user, ns, pvc)
        .await
        .map_err(|e| e.to_string())?;
    let data = &located.volume.data_path;
    if located.volume.mode == VolumeMode::Filesystem && !crate::mounted::is_mount_point(data) {
        return Err(format!(
            "PVC {ns}/{pvc} is not mounted on node {}: {} is not a mount point (the volume's \
             driver has not mounted it, or it is gone); the node's own filesystem is never read \
             or written in its place",
            ctx.config.node,
            data.display()
        ));
    }
    Ok(located)
}

/// Records a failure, or a cancel; a job stopped because the agent shuts down records nothing,
/// so the next instance picks it up. True when something was recorded.
pub async fn settle_error<K>(
    ctx: &Context,
    api: &Api<K>,
    name: &str,
    kind: &'static str,
    e: String,
    canceled: bool,
) -> bool
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    if canceled && ctx.shutting_down() {
        tracing::info!(
            kind,
            resource = name,
            "stopped for shutdown; the next agent resumes it"
        );
        return false;
    }
    let (phase, outcome) = if canceled {
        (Phase::Canceled, "canceled")
    } else {
        (Phase::Failed, "failed")
    };
    tracing::warn!(kind, resource = name, "{phase:?}: {e}");
    let st = VolumeStatusPatch::ended(phase, e, status::now());
    status::patch_final(api, name, &st).await;
    ctx.metrics.finished(kind, outcome);
    true
}
