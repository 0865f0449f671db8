//! The NamespaceRestore reconciler, run by the leading agent only. Each pass moves a restore
//! through its stages ([`RestoreStage`]), recording each in the status before the next:
//! configuration and PVCs applied; each PVC filled by a VolumeRestore (which any agent carries
//! out, through a mount pod since nothing mounts the new PVC); then the workloads. So no
//! workload is created before every volume it may mount holds its data, and an agent that
//! takes over the lead goes on from the recorded stage.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use crate::apply::{Applier, Outcome};
use crate::context::Context;
use crate::crd::{
    ClusterBackup, NamespaceRestore, NamespaceRestoreSpec, NamespaceRestoreStatus, Phase,
    RestoreStage, RestoreTarget, VolumeProgress, VolumeRestore, VolumeRestoreSpec,
};
use crate::events::EventKind;
use crate::restore_plan::{BackupGroup, Plan, PlannedVolume};
use crate::status::{self, now};

/// The label on the VolumeRestores a NamespaceRestore creates.
pub const NAMESPACE_RESTORE_LABEL: &str = "kairn.dev/namespace-restore";
/// At most this many failures are listed in the status.
const MAX_FAILURES: usize = 50;

/// Moves every unfinished NamespaceRestore on, when this agent leads.
pub async fn reconcile_all(
    ctx: &Arc<Context>,
    restores: &[NamespaceRestore],
    volume_restores: &[VolumeRestore],
) {
    if !ctx.leads() {
        return;
    }
    for nsr in restores {
        let status = nsr.status.clone().unwrap_or_default();
        if status.phase.is_final() {
            continue;
        }
        let result = match status.stage {
            RestoreStage::Pending => start(ctx, nsr).await,
            RestoreStage::Configuration => configure(ctx, nsr, status).await,
            RestoreStage::Volumes => follow_volumes(ctx, nsr, status, volume_restores).await,
            RestoreStage::Workloads => finish(ctx, nsr, status).await,
            RestoreStage::Done => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(restore = %nsr.name_any(), "namespace restore: {e}");
        }
    }
}

fn api(ctx: &Context) -> Api<NamespaceRestore> {
    Api::all(ctx.client.clone())
}

/// Resolves the cluster backup and plans; records the choice, or fails with the reason.
async fn start(ctx: &Arc<Context>, nsr: &NamespaceRestore) -> Result<(), kube::Error> {
    // The ClusterBackups that did not complete, finished ones included (not in the caches).
    let cluster_backups: Api<ClusterBackup> = Api::all(ctx.client.clone());
    let cluster_backups = crate::history::all(cluster_backups, "").await?;
    let not_complete: BTreeSet<String> = cluster_backups
        .iter()
        .filter(|cb| cb.status.as_ref().map(|s| s.phase) != Some(Phase::Completed))
        .map(|cb| cb.name_any())
        .collect();
    let rv = nsr.resource_version();
    let mut st = NamespaceRestoreStatus {
        started: Some(now()),
        ..Default::default()
    };
    match load(ctx, nsr.spec.clone(), not_complete, true).await {
        Err(why) => {
            st.phase = Phase::Failed;
            st.stage = RestoreStage::Done;
            st.finished = Some(now());
            st.messages = vec![why.clone()];
            status::patch(&api(ctx), &nsr.name_any(), rv.as_deref(), &st).await?;
            event(ctx, nsr, EventKind::Warning, "RestoreFailed", &why).await;
        }
        Ok((group, plan)) => {
            st.phase = Phase::InProgress;
            st.stage = RestoreStage::Configuration;
            st.cluster_backup = Some(group.id.clone());
            st.manifests_snapshot = group.manifests.clone();
            st.messages = plan.left_out.clone();
            if nsr.spec.etcd {
                st.messages.push(etcd_note(&group));
            }
            status::patch(&api(ctx), &nsr.name_any(), rv.as_deref(), &st).await?;
            let note = format!(
                "restoring cluster backup {}: {} objects before the volumes, {} volumes, {} after",
                group.id,
                plan.configuration.len(),
                plan.volumes.len(),
                plan.workloads.len()
            );
            event(ctx, nsr, EventKind::Normal, "RestoreStarted", &note).await;
        }
    }
    Ok(())
}

fn etcd_note(group: &BackupGroup) -> String {
    match &group.etcd {
        Some(id) => format!(
            "etcd snapshot {id} is not restored by a NamespaceRestore: it replaces the whole \
             cluster's state; an operator restores it (README, \"Restoring etcd\")"
        ),
        None => format!("cluster backup {} has no etcd snapshot", group.id),
    }
}

/// Applies the configuration and PVCs, then starts a VolumeRestore per PVC.
async fn configure(
    ctx: &Arc<Context>,
    nsr: &NamespaceRestore,
    mut st: NamespaceRestoreStatus,
) -> Result<(), kube::Error> {
    let Some((_, plan)) = reload(ctx, nsr, &mut st).await? else {
        return Ok(());
    };
    let mut applier = Applier::new(
        ctx.client.clone(),
        nsr.spec.existing_resource_policy,
        &nsr.name_any(),
    );
    let pvcs = apply_all(&mut applier, &plan.configuration, &mut st).await;
    st.volumes = Vec::new();
    for volume in &plan.volumes {
        let key = (volume.namespace.clone(), volume.pvc.clone());
        let progress = if pvcs.skipped.contains(&key) {
            not_restored(volume, Phase::Canceled, SKIPPED_PVC)
        } else if pvcs.failed.contains(&key) {
            not_restored(
                volume,
                Phase::Failed,
                "its PVC could not be applied (status.failures)",
            )
        } else {
            start_volume(ctx, nsr, volume).await?
        };
        st.volumes.push(progress);
    }
    st.stage = RestoreStage::Volumes;
    status::patch(
        &api(ctx),
        &nsr.name_any(),
        nsr.resource_version().as_deref(),
        &st,
    )
    .await
}

/// Re-plans from the recorded cluster backup; fails the restore when that is no longer possible.
async fn reload(
    ctx: &Arc<Context>,
    nsr: &NamespaceRestore,
    st: &mut NamespaceRestoreStatus,
) -> Result<Option<(BackupGroup, Plan)>, kube::Error> {
    let spec = NamespaceRestoreSpec {
        cluster_backup: st.cluster_backup.clone(),
        series: None,
        ..nsr.spec.clone()
    };
    match load(ctx, spec, BTreeSet::new(), false).await {
        Ok(found) => Ok(Some(found)),
        Err(why) => {
            end(ctx, nsr, st, Phase::Failed, why).await?;
            Ok(None)
        }
    }
}

/// The PVCs (namespace, name) that were not applied.
#[derive(Debug, Default)]
struct PvcOutcomes {
    /// They existed (policy Skip).
    skipped: BTreeSet<(String, String)>,
    /// The API server refused them.
    failed: BTreeSet<(String, String)>,
}

/// Applies `objects` in order, counting; says which PVCs were not applied.
async fn apply_all(
    applier: &mut Applier,
    objects: &[Value],
    st: &mut NamespaceRestoreStatus,
) -> PvcOutcomes {
    let mut pvcs = PvcOutcomes::default();
    for obj in objects {
        let meta = &obj["metadata"];
        let ns = meta["namespace"].as_str().unwrap_or_default().to_string();
        let name = meta["name"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let what = if ns.is_empty() {
            format!("{kind} {name}")
        } else {
            format!("{kind} {ns}/{name}")
        };
        match applier.apply(obj).await {
            Outcome::Applied => st.objects.applied += 1,
            Outcome::Skipped(why) => {
                st.objects.skipped += 1;
                push_failure(st, format!("{what}: skipped: {why}"));
                if kind == "PersistentVolumeClaim" {
                    pvcs.skipped.insert((ns, name));
                }
            }
            Outcome::Failed(why) => {
                st.objects.failed += 1;
                push_failure(st, format!("{what}: {why}"));
                if kind == "PersistentVolumeClaim" {
                    pvcs.failed.insert((ns, name));
                }
            }
        }
    }
    pvcs
}

fn push_failure(st: &mut NamespaceRestoreStatus, text: String) {
    if st.failures.len() < MAX_FAILURES {
        st.failures.push(status::error_list(&[text], 1).remove(0));
    }
}

const SKIPPED_PVC: &str = "the PVC existed: its data is left alone (existingResourcePolicy: Skip)";

/// A volume no VolumeRestore fills, with the phase and reason to show.
fn not_restored(volume: &PlannedVolume, phase: Phase, why: &str) -> VolumeProgress {
    VolumeProgress {
        namespace: volume.namespace.clone(),
        pvc: volume.pvc.clone(),
        snapshot: volume.snapshot.clone(),
        phase,
        message: Some(why.into()),
        ..Default::default()
    }
}

/// The VolumeRestore filling `volume`: at most 63 characters, as the mount pod's label
/// carries it.
pub fn volume_restore_name(restore: &str, volume: &PlannedVolume) -> String {
    let key = format!("{}/{}", volume.namespace, volume.pvc);
    let hash = blake3::hash(key.as_bytes()).to_hex();
    let mut prefix: String = restore.chars().take(63 - 9).collect();
    while prefix.ends_with(['-', '.']) {
        prefix.pop();
    }
    format!("{prefix}-{}", &hash[..8])
}

async fn start_volume(
    ctx: &Context,
    nsr: &NamespaceRestore,
    volume: &PlannedVolume,
) -> Result<VolumeProgress, kube::Error> {
    let name = volume_restore_name(&nsr.name_any(), volume);
    let spec = VolumeRestoreSpec {
        snapshot: volume.snapshot.clone(),
        source_namespace: None,
        source_pvc: None,
        target: RestoreTarget::Pvc(volume.pvc.clone()),
        node: None,
        target_namespace: Some(volume.namespace.clone()),
        cancel: false,
        ttl: nsr.spec.ttl.clone(),
    };
    let mut vr = VolumeRestore::new(&name, spec);
    vr.metadata.namespace = Some(ctx.config.admin_namespace.clone());
    let restore = nsr.name_any();
    if restore.len() <= 63 {
        vr.metadata.labels = Some([(NAMESPACE_RESTORE_LABEL.to_string(), restore)].into());
    }
    vr.metadata.owner_references = nsr.controller_owner_ref(&()).map(|mut r| {
        r.block_owner_deletion = None;
        vec![r]
    });
    let api: Api<VolumeRestore> = Api::namespaced(ctx.client.clone(), &ctx.config.admin_namespace);
    match api.create(&PostParams::default(), &vr).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    Ok(VolumeProgress {
        namespace: volume.namespace.clone(),
        pvc: volume.pvc.clone(),
        snapshot: volume.snapshot.clone(),
        volume_restore: Some(name),
        ..Default::default()
    })
}

#[path = "namespace_restore_images.rs"]
mod restore_images;
#[path = "namespace_restore_stages.rs"]
mod stages;
use stages::{end, event, finish, follow_volumes, load};
