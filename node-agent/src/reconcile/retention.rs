//! A schedule's retention, applied after one of its backups completed: by the VolumeBackup
//! reconciler for the PVC's snapshots, by the ClusterBackup reconciler for whole runs. Only an
//! agent with a full key does this; with an append-only key (the recommended deployment) the
//! maintenance workload applies retention on its own cadence, and this is skipped.

use kube::api::Api;

use crate::context::Context;
use crate::crd::BackupSchedule;

/// Forgets the snapshots of `schedule` its retention no longer keeps: those of one PVC when
/// `pvc` names it, or whole cluster backups (the engine decides a series' cluster backups as
/// units). Failures are logged: the next run applies retention again.
pub async fn apply(ctx: &Context, schedule: &str, pvc: Option<&str>) {
    if !ctx.config.retention {
        return;
    }
    let api: Api<BackupSchedule> = Api::all(ctx.client.clone());
    let retention = match api.get(schedule).await {
        Ok(s) => s.spec.retention,
        Err(e) => {
            tracing::warn!(schedule, "cannot read the schedule for its retention: {e}");
            return;
        }
    };
    let Some(policy) = retention.map(|r| r.policy()) else {
        return;
    };
    if policy.is_empty() {
        return;
    }
    let access = ctx.access.clone();
    let tag = format!("schedule:{schedule}");
    let stored_as = pvc.map(String::from);
    match tokio::task::spawn_blocking(move || {
        crate::job::apply_retention(&access, &tag, stored_as.as_deref(), policy)
    })
    .await
    {
        Ok(Ok(n)) => tracing::info!(schedule, pvc, forgotten = n, "retention applied"),
        Ok(Err(e)) => tracing::warn!(schedule, pvc, "cannot apply retention: {e}"),
        Err(e) => tracing::warn!(schedule, pvc, "retention task failed: {e}"),
    }
}
