//! The ClusterBackup reconciler: for each cluster backup not yet final, create the
//! VolumeBackups of the selected PVCs this node's pods mount, claim the etcd or manifests
//! part when this agent should take it (the job itself is in [`super::cluster_parts`]), and
//! otherwise count the volumes and settle the whole once every part is final. The rules are
//! in [`crate::cluster_plan`].

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};

use super::{cluster_parts, retention};
use crate::cluster_plan::{
    CONTROL_PLANE_LABEL, NO_ETCD_AGENT, Part, count_volumes, created_at, group_of, settled_phase,
    should_claim, unclaimed_limit,
};
use crate::context::Context;
use crate::crd::{ClusterBackup, EtcdSpec, PartStatus, Phase, VolumeBackup, VolumeBackupSpec};
use crate::patch::{ClusterStatusPatch, PartPatch};
use crate::selection::{LabelCache, Selectors, selected_in_cluster};
use crate::status;

/// One pass over the ClusterBackups that are not final, each with its members, listed by
/// their label (finished members are not in the watch caches).
pub async fn reconcile_all(ctx: &Arc<Context>, cluster_backups: &[ClusterBackup]) {
    let api: Api<ClusterBackup> = Api::all(ctx.client.clone());
    let mut labels = LabelCache::default();
    for cb in cluster_backups {
        if cb.status.as_ref().is_some_and(|s| s.phase.is_final()) {
            continue;
        }
        let selector = format!(
            "{}={}",
            crate::schedule::CLUSTER_BACKUP_LABEL,
            crate::schedule::label_value(&cb.name_any())
        );
        let members: Api<VolumeBackup> = Api::all(ctx.client.clone());
        let members = match crate::history::all(members, &selector).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(cluster_backup = %cb.name_any(), "cannot list its volume backups: {e}");
                continue;
            }
        };
        reconcile(ctx, &api, cb, &members, &mut labels).await;
    }
}

/// One ClusterBackup that is not final.
async fn reconcile(
    ctx: &Arc<Context>,
    api: &Api<ClusterBackup>,
    cb: &ClusterBackup,
    backups: &[VolumeBackup],
    labels: &mut LabelCache,
) {
    let st = cb.status.clone().unwrap_or_default();
    // The leading agent creates every selected PVC's member, mounted or not, and settles the
    // whole: so no member is missing when it completes.
    let leads = ctx.leads();
    if cb.spec.volumes && leads {
        let selectors = Selectors {
            namespaces: cb.spec.namespace_selector.as_ref(),
            pvcs: cb.spec.pvc_selector.as_ref(),
        };
        let chosen = match selected_in_cluster(&ctx.client, selectors, labels).await {
            Ok(chosen) => chosen,
            Err(e) => {
                tracing::warn!(cluster_backup = %cb.name_any(), "cannot list the PVCs: {e}");
                return;
            }
        };
        let mut created = false;
        for (ns, pvc) in chosen {
            let name = crate::schedule::backup_name(&group_of(cb).id, &pvc, created_at(cb));
            if !super::backup_schedule::exists(backups, &ns, &name) {
                created |= create_member(ctx, cb, &ns, &pvc).await;
            }
        }
        // `backups` was listed before: settle on the next pass, which counts them.
        if created {
            return;
        }
    }
    let (node, instance) = (&ctx.config.node, &ctx.config.instance);
    let uid = cb.uid().unwrap_or_default();
    let running = |part: Part| ctx.jobs.contains(&cluster_parts::key(part, &uid));
    if let Some(etcd) = &cb.spec.etcd
        && should_claim(st.etcd.as_ref(), node, instance, running(Part::Etcd))
        && may_take_etcd(ctx, etcd).await
        && claim(ctx, api, cb, Part::Etcd).await
    {
        cluster_parts::spawn(ctx, cb, Part::Etcd);
        return;
    }
    if cb.spec.manifests.is_some()
        && should_claim(
            st.manifests.as_ref(),
            node,
            instance,
            running(Part::Manifests),
        )
        && claim(ctx, api, cb, Part::Manifests).await
    {
        cluster_parts::spawn(ctx, cb, Part::Manifests);
        return;
    }
    if cb.spec.images.is_some()
        && should_claim(st.images.as_ref(), node, instance, running(Part::Images))
        && claim(ctx, api, cb, Part::Images).await
    {
        cluster_parts::spawn(ctx, cb, Part::Images);
        return;
    }
    if leads {
        settle(ctx, api, cb, backups).await;
    }
}

/// Creates the VolumeBackup of one selected PVC; true when it is new.
async fn create_member(ctx: &Context, cb: &ClusterBackup, ns: &str, pvc: &str) -> bool {
    let group = group_of(cb);
    let mut tags = cb.spec.tags.clone();
    tags.push(format!("cluster-backup:{}", group.id));
    let name = crate::schedule::backup_name(&group.id, pvc, created_at(cb));
    let id = group.id.clone();
    let spec = VolumeBackupSpec {
        pvc: pvc.to_string(),
        tags,
        hooks: cb.spec.hooks.clone(),
        cancel: false,
        cluster_backup: Some(group),
        ttl: cb.spec.ttl.clone(),
    };
    let mut vb = VolumeBackup::new(&name, spec);
    vb.metadata.namespace = Some(ns.to_string());
    vb.metadata.labels = Some(
        [(
            crate::schedule::CLUSTER_BACKUP_LABEL.to_string(),
            crate::schedule::label_value(&cb.name_any()),
        )]
        .into(),
    );
    // A namespaced object may have a cluster-scoped owner: deleting the ClusterBackup lets the
    // garbage collector remove its members (never their snapshots).
    vb.metadata.owner_references = cb.controller_owner_ref(&()).map(|mut r| {
        r.block_owner_deletion = None;
        vec![r]
    });
    let api: Api<VolumeBackup> = Api::namespaced(ctx.client.clone(), ns);
    match api.create(&PostParams::default(), &vb).await {
        Ok(_) => {
            tracing::info!(cluster_backup = %id, namespace = ns, pvc, "created a volume backup");
            true
        }
        Err(kube::Error::Api(s)) if s.code == 409 => false,
        Err(e) => {
            tracing::warn!(cluster_backup = %id, namespace = ns, pvc, "cannot create the volume backup: {e}");
            false
        }
    }
}

/// Whether this node may take the etcd snapshot.
async fn may_take_etcd(ctx: &Context, etcd: &EtcdSpec) -> bool {
    if !etcd.control_plane_only {
        return true;
    }
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    match nodes.get(&ctx.config.node).await {
        Ok(n) => n.labels().contains_key(CONTROL_PLANE_LABEL),
        Err(e) => {
            tracing::debug!(node = %ctx.config.node, "cannot read this node: {e}");
            false
        }
    }
}

/// Claims a part with a conditional status write; false when another agent was first.
async fn claim(ctx: &Context, api: &Api<ClusterBackup>, cb: &ClusterBackup, part: Part) -> bool {
    let claimed = PartPatch {
        phase: Phase::InProgress,
        agent: Some(ctx.config.instance.clone()),
        node: Some(ctx.config.node.clone()),
        snapshot_id: None,
        messages: Vec::new(),
    };
    let started = cb.status.as_ref().and_then(|s| s.started.as_ref());
    let patch = ClusterStatusPatch {
        phase: Some(Phase::InProgress),
        started: started.is_none().then(status::now),
        ..cluster_parts::part_patch(part, claimed)
    };
    match status::patch(
        api,
        &cb.name_any(),
        cb.resource_version().as_deref(),
        &patch,
    )
    .await
    {
        Ok(()) => true,
        Err(e) => {
            if !status::is_conflict(&e) {
                tracing::warn!(cluster_backup = %cb.name_any(), "cannot claim the {} part: {e}", part.field());
            }
            false
        }
    }
}

/// Counts the volumes, and records the final phase once every part is final.
async fn settle(
    ctx: &Context,
    api: &Api<ClusterBackup>,
    cb: &ClusterBackup,
    backups: &[VolumeBackup],
) {
    let name = cb.name_any();
    let (volumes, all_final) = count_volumes(&name, backups);
    // Every agent must have had its chance to create its volumes' backups.
    let age = chrono::Utc::now() - created_at(cb);
    let grace = ctx.config.grace();
    let volumes_settled = !cb.spec.volumes || (all_final && age > grace);
    let old = cb.status.clone().unwrap_or_default();
    let mut st = old.clone();
    st.volumes = volumes.clone();
    // No agent can take the etcd part (no agent on a control-plane node, as on managed
    // clusters): say so instead of waiting forever.
    let unclaimed = cb.spec.etcd.is_some() && st.etcd.is_none() && age > unclaimed_limit(grace);
    if unclaimed {
        st.etcd = Some(PartStatus {
            phase: Phase::Failed,
            messages: vec![NO_ETCD_AGENT.into()],
            ..Default::default()
        });
    }
    let phase = settled_phase(
        &st,
        cb.spec.etcd.is_some(),
        cb.spec.manifests.is_some(),
        cb.spec.images.is_some(),
        volumes_settled,
    );
    if phase.is_none() && !unclaimed && old.volumes == volumes && old.phase != Phase::New {
        return;
    }
    let patch = ClusterStatusPatch {
        volumes: Some(volumes),
        etcd: if unclaimed {
            st.etcd.map(PartPatch::from)
        } else {
            None
        },
        phase: Some(phase.unwrap_or(Phase::InProgress)),
        finished: phase.map(|_| status::now()),
        started: old.started.is_none().then(status::now),
        ..Default::default()
    };
    match status::patch(api, &name, cb.resource_version().as_deref(), &patch).await {
        // Only a complete run may make retention forget earlier ones: a run whose database
        // volume failed must not push out the last run that holds it.
        Ok(()) if phase == Some(Phase::Completed) => {
            if let Some(schedule) = cb.labels().get(crate::schedule::SCHEDULE_LABEL) {
                retention::apply(ctx, schedule, None).await;
            }
        }
        Ok(()) => {}
        Err(e) if status::is_conflict(&e) => {}
        Err(e) => tracing::warn!(cluster_backup = %name, "cannot record the status: {e}"),
    }
}
