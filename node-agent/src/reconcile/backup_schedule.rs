//! The BackupSchedule reconciler: when a schedule is due, create what it asks for: the
//! VolumeBackups of the selected PVCs of the cluster (by the leading agent), or, for a schedule that also
//! wants etcd or manifests, one ClusterBackup (every agent creates the same one; the name
//! makes that idempotent). Its retention is applied when those backups complete. The leading
//! agent also keeps the schedule's status (see [`crate::reconcile::schedule_status`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use crate::context::Context;
use crate::crd::{
    BackupSchedule, ClusterBackup, ClusterBackupSpec, VolumeBackup, VolumeBackupSpec,
};
use crate::reconcile::schedule_status::{compute, members_of, record};
use crate::schedule::{
    SCHEDULE_LABEL, SCHEDULED_AT_ANNOTATION, backup_name, cluster_backup_name, due,
};
use crate::selection::{LabelCache, Selectors, selected_in_cluster};

/// Writes each schedule's status from its runs, listed by the schedule's label (finished runs
/// are not in the watch caches): by the leading agent, every history interval.
pub async fn record_statuses(ctx: &Context, schedules: &[&BackupSchedule]) {
    let now = Utc::now();
    let api: Api<BackupSchedule> = Api::all(ctx.client.clone());
    for &schedule in schedules {
        let name = schedule.name_any();
        let selector = format!("{SCHEDULE_LABEL}={name}");
        let volumes = crate::history::all(Api::<VolumeBackup>::all(ctx.client.clone()), &selector);
        let clusters =
            crate::history::all(Api::<ClusterBackup>::all(ctx.client.clone()), &selector);
        let (volumes, clusters) = match (volumes.await, clusters.await) {
            (Ok(v), Ok(c)) => (v, c),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(schedule = %name, "cannot list the schedule's runs: {e}");
                continue;
            }
        };
        let members = members_of(&name, &volumes, &clusters);
        record(&api, schedule, compute(&schedule.spec, &members, now)).await;
    }
}

/// The schedules whose unfinished members (in the caches) differ from the last pass's: a run
/// started, progressed or finished, so their status is due now.
pub fn moved_on<'a>(
    ctx: &Context,
    schedules: &'a [BackupSchedule],
    backups: &[VolumeBackup],
    cluster_backups: &[ClusterBackup],
) -> Vec<&'a BackupSchedule> {
    let mut seen = ctx
        .schedule_members
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let of = |labels: &BTreeMap<String, String>| labels.get(SCHEDULE_LABEL).cloned();
    let mut now: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let phase = |p: Option<crate::crd::Phase>| format!("{:?}", p.unwrap_or_default());
    for b in backups {
        if let Some(s) = of(b.labels()) {
            let st = b.status.as_ref().map(|s| s.phase);
            now.entry(s)
                .or_default()
                .push(format!("{}/{}", b.name_any(), phase(st)));
        }
    }
    for c in cluster_backups {
        if let Some(s) = of(c.labels()) {
            let st = c.status.as_ref().map(|s| s.phase);
            now.entry(s)
                .or_default()
                .push(format!("{}/{}", c.name_any(), phase(st)));
        }
    }
    let moved = schedules
        .iter()
        .filter(|s| seen.get(&s.name_any()) != now.get(&s.name_any()))
        .collect();
    *seen = now;
    moved
}

/// Creates what is due. `backups` are the unfinished VolumeBackups (the watch cache); a run
/// created once is remembered, so that its finished backups are not created again, in vain,
/// on every pass of the due window.
pub async fn reconcile_all(ctx: &Context, schedules: &[BackupSchedule], backups: &[VolumeBackup]) {
    let now = Utc::now();
    let window = ctx.config.grace().max(chrono::Duration::minutes(10));
    let mut labels = LabelCache::default();
    for schedule in schedules.iter().filter(|s| !s.spec.paused) {
        // A cron expression that cannot be read is the ScheduleValid condition, not a log line
        // every resync.
        let Ok(Some(t)) = due(&schedule.spec.schedule, now, window) else {
            continue;
        };
        let name = schedule.name_any();
        if ctx.created_run(&name) == Some(t) {
            continue;
        }
        if schedule.spec.etcd.is_some()
            || schedule.spec.manifests.is_some()
            || schedule.spec.images.is_some()
        {
            if create_cluster_backup(ctx, schedule, t).await {
                ctx.remember_run(&name, t);
            }
            continue;
        }
        // One agent creates every selected PVC's backup, mounted or not; the agent of the node
        // whose pod mounts it takes it, or a mount pod is started for it.
        if !ctx.leads() {
            continue;
        }
        let selectors = Selectors {
            namespaces: schedule.spec.namespace_selector.as_ref(),
            pvcs: schedule.spec.pvc_selector.as_ref(),
        };
        let chosen = match selected_in_cluster(&ctx.client, selectors, &mut labels).await {
            Ok(chosen) => chosen,
            Err(e) => {
                tracing::warn!(schedule = %name, "cannot list the PVCs to back up: {e}");
                continue;
            }
        };
        let mut all_made = true;
        for (ns, pvc) in &chosen {
            if !exists(backups, ns, &backup_name(&name, pvc, t)) {
                all_made &= create_volume_backup(ctx, schedule, ns, pvc, t).await;
            }
        }
        if all_made {
            ctx.remember_run(&name, t);
        }
    }
}

/// True when `backups` holds `ns/name` (listed this pass: no create that can only conflict).
pub fn exists(backups: &[VolumeBackup], ns: &str, name: &str) -> bool {
    backups.iter().any(|b| {
        b.metadata.name.as_deref() == Some(name) && b.metadata.namespace.as_deref() == Some(ns)
    })
}

/// The label that ties what a schedule creates to it.
fn schedule_labels(schedule: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([(
        SCHEDULE_LABEL.to_string(),
        schedule.to_string(),
    )]))
}

/// The annotation that records the run's time on what it creates.
fn run_annotations(t: DateTime<Utc>) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([(
        SCHEDULED_AT_ANNOTATION.to_string(),
        t.to_rfc3339(),
    )]))
}

/// The VolumeBackup a schedule's run at `t` is for one PVC.
async fn create_volume_backup(
    ctx: &Context,
    schedule: &BackupSchedule,
    ns: &str,
    pvc: &str,
    t: DateTime<Utc>,
) -> bool {
    let name = schedule.name_any();
    let spec = VolumeBackupSpec {
        pvc: pvc.to_string(),
        tags: vec![format!("schedule:{name}")],
        hooks: schedule.spec.hooks.clone(),
        cancel: false,
        cluster_backup: None,
        ttl: schedule.spec.ttl.clone(),
    };
    let mut backup = VolumeBackup::new(&backup_name(&name, pvc, t), spec);
    backup.metadata.namespace = Some(ns.to_string());
    backup.metadata.labels = schedule_labels(&name);
    backup.metadata.annotations = run_annotations(t);
    let api: Api<VolumeBackup> = Api::namespaced(ctx.client.clone(), ns);
    match api.create(&PostParams::default(), &backup).await {
        Ok(_) => tracing::info!(schedule = %name, namespace = ns, pvc, "scheduled a backup"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => {
            tracing::warn!(schedule = %name, namespace = ns, pvc, "cannot create the scheduled backup: {e}");
            return false;
        }
    }
    true
}

/// The ClusterBackup a schedule's run at `t` is; true once it exists.
async fn create_cluster_backup(ctx: &Context, schedule: &BackupSchedule, t: DateTime<Utc>) -> bool {
    let name = schedule.name_any();
    let spec = &schedule.spec;
    let cb_spec = ClusterBackupSpec {
        series: name.clone(),
        volumes: spec.volumes,
        namespace_selector: spec.namespace_selector.clone(),
        pvc_selector: spec.pvc_selector.clone(),
        hooks: spec.hooks.clone(),
        etcd: spec.etcd.clone(),
        manifests: spec.manifests.clone(),
        images: spec.images.clone(),
        tags: vec![format!("schedule:{name}")],
        ttl: spec.ttl.clone(),
    };
    let mut cb = ClusterBackup::new(&cluster_backup_name(&name, t), cb_spec);
    cb.metadata.labels = schedule_labels(&name);
    cb.metadata.annotations = run_annotations(t);
    let api: Api<ClusterBackup> = Api::all(ctx.client.clone());
    match api.create(&PostParams::default(), &cb).await {
        Ok(_) => tracing::info!(schedule = %name, "scheduled a cluster backup"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => {
            tracing::warn!(schedule = %name, "cannot create the cluster backup: {e}");
            return false;
        }
    }
    true
}
