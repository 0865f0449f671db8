//! The later stages of a namespace restore (following the volumes, then the workloads), and
//! what every stage shares: planning from the repository, ending, Events.

use std::collections::BTreeSet;
use std::sync::Arc;

use engine::format::snapshot::Snapshot;
use engine::snapshots::{GroupMatch, SnapshotFilter};
use kube::api::Api;
use kube::{Resource, ResourceExt};

use super::{MAX_FAILURES, api, apply_all};
use crate::apply::Applier;
use crate::context::Context;
use crate::crd::{
    NamespaceRestore, NamespaceRestoreSpec, NamespaceRestoreStatus, Phase, RestoreStage,
    VolumeProgress, VolumeRestore,
};
use crate::events::{CLUSTER_EVENTS_NAMESPACE, EventKind, Happened, Reporter};
use crate::restore_plan::{BackupGroup, Plan, choose, groups, plan};
use crate::status::{self, now};

/// Reads the repository (on a blocking thread): the cluster backup `spec` names, and the plan.
/// With `spec.images`, the workloads are pointed at the images' new registry, and with `push`
/// (the first load) the images are pushed there first: a push that fails fails the restore
/// before anything is applied.
pub(super) async fn load(
    ctx: &Arc<Context>,
    spec: NamespaceRestoreSpec,
    not_complete: BTreeSet<String>,
    push: bool,
) -> Result<(BackupGroup, Plan), String> {
    let credentials = match &spec.images {
        Some(images) if push => super::restore_images::credentials(ctx, images).await?,
        _ => Default::default(),
    };
    let access = ctx.access.clone();
    let work = move || -> Result<(BackupGroup, Plan), String> {
        let fail = |e: engine::Error| format!("cannot read the repository: {e}");
        let repo = access.open().map_err(fail)?;
        let filter = SnapshotFilter {
            group: Some(GroupMatch::Any),
            ..Default::default()
        };
        let snapshots: Vec<(String, Snapshot)> = engine::snapshots::list(&repo, &filter)
            .map_err(fail)?
            .into_iter()
            .map(|(id, s)| (id.to_hex(), s))
            .collect();
        let all = groups(&snapshots);
        let group = choose(&all, &spec, &not_complete)?.clone();
        let manifests = group.manifests.as_deref().unwrap_or_default();
        let (_, snap) = snapshots
            .iter()
            .find(|(id, _)| id == manifests)
            .ok_or_else(|| format!("manifests snapshot {manifests} is gone"))?;
        let index = engine::index::Index::load(&repo).map_err(fail)?;
        let mut objects = engine::manifests::read_manifests(&repo, &index, snap).map_err(fail)?;
        let mut notes = Vec::new();
        if let Some(images) = &spec.images {
            let found = super::restore_images::Found {
                repo: &repo,
                index: &index,
                snapshots: &snapshots,
                group: &group,
            };
            notes = found.push_and_rewrite(images, credentials, push, &mut objects)?;
        }
        let mut plan = plan(objects, &group, &spec);
        plan.left_out.extend(notes);
        Ok((group, plan))
    };
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(format!("the repository read stopped: {e}")))
}

/// Follows the VolumeRestores (unfinished ones from the cache, finished ones read from the
/// API); once every one is final, moves to the workloads, or ends when one failed: no
/// workload starts on a volume that lacks its data.
pub(super) async fn follow_volumes(
    ctx: &Arc<Context>,
    nsr: &NamespaceRestore,
    mut st: NamespaceRestoreStatus,
    volume_restores: &[VolumeRestore],
) -> Result<(), kube::Error> {
    let before = st.clone();
    let admin = ctx.config.admin_namespace.as_str();
    let restores: Api<VolumeRestore> = Api::namespaced(ctx.client.clone(), admin);
    for volume in &mut st.volumes {
        let Some(name) = volume.volume_restore.clone() else {
            continue;
        };
        if volume.phase.is_final() {
            continue;
        }
        let cached = volume_restores
            .iter()
            .find(|vr| vr.name_any() == name && vr.namespace().as_deref() == Some(admin));
        let found = match cached {
            Some(vr) => Some(vr.clone()),
            None => restores.get_opt(&name).await?,
        };
        update_volume(volume, found.as_ref());
    }
    let failed: Vec<String> = st
        .volumes
        .iter()
        .filter(|v| {
            v.volume_restore.is_some()
                && matches!(
                    v.phase,
                    Phase::Failed | Phase::Canceled | Phase::PartiallyFailed
                )
        })
        .map(|v| format!("{}/{}", v.namespace, v.pvc))
        .collect();
    let all_final = st.volumes.iter().all(|v| v.phase.is_final());
    if all_final && !failed.is_empty() {
        let why = format!(
            "volume restore failed for {}: the workloads were not applied, so none starts on a \
             volume without its data; fix the cause and create a new NamespaceRestore",
            failed.join(", ")
        );
        return end(ctx, nsr, &mut st, Phase::PartiallyFailed, why).await;
    }
    if all_final {
        st.stage = RestoreStage::Workloads;
        let note = format!(
            "{} volumes restored; applying the workloads",
            st.volumes.len()
        );
        event(ctx, nsr, EventKind::Normal, "VolumesRestored", &note).await;
    }
    if st != before {
        status::patch(
            &api(ctx),
            &nsr.name_any(),
            nsr.resource_version().as_deref(),
            &st,
        )
        .await?;
    }
    Ok(())
}

fn update_volume(volume: &mut VolumeProgress, vr: Option<&VolumeRestore>) {
    let Some(vr) = vr else {
        volume.phase = Phase::Failed;
        volume.message = Some("its VolumeRestore was deleted".into());
        return;
    };
    let Some(s) = &vr.status else { return };
    volume.phase = s.phase;
    volume.bytes_done = s.progress.bytes_done;
    volume.bytes_total = s.progress.bytes_total;
    volume.message = s.errors.first().cloned().or_else(|| s.waiting.clone());
}

/// Applies the workloads and everything else, and ends.
pub(super) async fn finish(
    ctx: &Arc<Context>,
    nsr: &NamespaceRestore,
    mut st: NamespaceRestoreStatus,
) -> Result<(), kube::Error> {
    let Some((_, plan)) = super::reload(ctx, nsr, &mut st).await? else {
        return Ok(());
    };
    let mut applier = Applier::new(
        ctx.client.clone(),
        nsr.spec.existing_resource_policy,
        &nsr.name_any(),
    );
    apply_all(&mut applier, &plan.workloads, &mut st).await;
    let (phase, why) = if st.objects.failed == 0 {
        let why = format!(
            "{} objects applied, {} skipped, {} volumes restored",
            st.objects.applied,
            st.objects.skipped,
            st.volumes.len()
        );
        (Phase::Completed, why)
    } else {
        let shown = st.failures.len().min(MAX_FAILURES);
        let why = format!(
            "{} objects failed (the first {shown} are listed in status.failures)",
            st.objects.failed
        );
        (Phase::PartiallyFailed, why)
    };
    end(ctx, nsr, &mut st, phase, why).await
}

/// Records a final phase, with `why` as the last message and an Event.
pub(super) async fn end(
    ctx: &Arc<Context>,
    nsr: &NamespaceRestore,
    st: &mut NamespaceRestoreStatus,
    phase: Phase,
    why: String,
) -> Result<(), kube::Error> {
    st.phase = phase;
    st.stage = RestoreStage::Done;
    st.finished = Some(now());
    st.messages.push(why.clone());
    status::patch(
        &api(ctx),
        &nsr.name_any(),
        nsr.resource_version().as_deref(),
        st,
    )
    .await?;
    let (kind, reason) = match phase {
        Phase::Completed => (EventKind::Normal, "RestoreCompleted"),
        Phase::PartiallyFailed => (EventKind::Warning, "RestorePartiallyFailed"),
        _ => (EventKind::Warning, "RestoreFailed"),
    };
    event(ctx, nsr, kind, reason, &why).await;
    Ok(())
}

/// An Event about the NamespaceRestore.
pub(super) async fn event(
    ctx: &Context,
    nsr: &NamespaceRestore,
    kind: EventKind,
    reason: &str,
    note: &str,
) {
    let reporter = Reporter {
        controller: "kairn.dev/node-agent",
        instance: &ctx.config.instance,
    };
    let what = Happened {
        kind,
        reason,
        action: "Restore",
        note,
    };
    let reference = nsr.object_ref(&());
    crate::events::publish_about(
        &ctx.client,
        reporter,
        CLUSTER_EVENTS_NAMESPACE,
        reference,
        what,
    )
    .await;
}
