//! Mount pods, the API part ([`crate::mount_pod`] builds them): start one for a new
//! VolumeBackup or VolumeRestore whose PVC no live pod mounts, say in its status why it waits,
//! and delete mount pods whose owner is finished or gone.
//!
//! Every agent looks at a new resource whose PVC its node does not hold; the pod's name comes
//! from the owner's uid, so only one create succeeds. Once the pod is on a node, that node's
//! agent takes the work as for any pod, and the others say nothing more.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::context::Context;
use crate::crd::{VolumeBackup, VolumeRestore};
use crate::mount_pod::{self, MANAGED_BY, OWNER_ANNOTATION, OWNER_KIND_LABEL, OWNER_UID_LABEL};

/// A new resource whose PVC no pod of this node mounts.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The resource.
    pub owner: mount_pod::Owner<'a>,
    /// The PVC's namespace.
    pub namespace: &'a str,
    /// The PVC.
    pub pvc: &'a str,
    /// True for a backup: the volume is mounted read-only.
    pub read_only: bool,
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Why the resource waits, after starting a mount pod if none mounts its PVC; `None` when a pod
/// on some node mounts it (that node's agent answers for it) or the API could not be asked
/// (logged; the next resync asks again).
pub async fn ensure(ctx: &Context, t: &Target<'_>) -> Option<String> {
    let (ns, pvc) = (t.namespace, t.pvc);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let listed = match pods.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            tracing::warn!(namespace = ns, "cannot list pods: {e}");
            return None;
        }
    };
    let users = mount_pod::users(&listed, pvc, t.owner.uid);
    let on_node = |p: &&Pod| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
    if users.iter().any(on_node) {
        return None;
    }
    if let Some(p) = users.first() {
        let what = match mount_pod::owner_uid(p) {
            Some(_) => "mount pod",
            None => "pod",
        };
        let name = p.name_any();
        return Some(match mount_pod::unschedulable(p) {
            Some(why) => {
                format!("{what} {name}, which mounts PVC {ns}/{pvc}, cannot be scheduled: {why}")
            }
            None => format!("{what} {name}, which mounts PVC {ns}/{pvc}, waits to be scheduled"),
        });
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let claim = match claims.get(pvc).await {
        Ok(c) => c,
        Err(e) if is_status(&e, 404) => return Some(format!("PVC {ns}/{pvc} not found")),
        Err(e) => {
            tracing::warn!(namespace = ns, pvc, "cannot read the PVC: {e}");
            return None;
        }
    };
    let pv = claim.spec.as_ref().and_then(|s| s.volume_name.clone());
    let pv = pv.filter(|n| !n.is_empty());
    let Some(pv) = pv else {
        let phase = claim.status.as_ref().and_then(|s| s.phase.clone());
        let phase = phase.unwrap_or_else(|| "Pending".into());
        let unbound = format!("PVC {ns}/{pvc} is not bound to a PersistentVolume ({phase})");
        if t.read_only {
            return Some(format!("{unbound}: there is nothing to back up yet"));
        }
        // A claim of a WaitForFirstConsumer class is bound once a pod using it is scheduled:
        // the mount pod is that pod.
        return Some(match create(ctx, t, &claim, None).await {
            Ok(name) => format!("{unbound}; started mount pod {name}, which binds it"),
            Err(e) => e,
        });
    };
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let volume = volumes.get_opt(&pv).await.ok().flatten();
    let attached = if mount_pod::single_node(&claim) {
        attached_node(ctx, &pv).await
    } else {
        None
    };
    let affinity = mount_pod::placement(&claim, volume.as_ref(), attached.as_deref());
    Some(match create(ctx, t, &claim, affinity).await {
        Ok(name) => match attached {
            Some(node) => format!(
                "no running pod mounts PVC {ns}/{pvc}: started mount pod {name} on node {node}, \
                 where the volume is attached"
            ),
            None => format!("no running pod mounts PVC {ns}/{pvc}: started mount pod {name}"),
        },
        Err(e) => e,
    })
}

/// The node a volume is attached to, from the VolumeAttachments.
async fn attached_node(ctx: &Context, pv: &str) -> Option<String> {
    let api: Api<VolumeAttachment> = Api::all(ctx.client.clone());
    match api.list(&ListParams::default()).await {
        Ok(l) => mount_pod::attached_node(pv, &l.items),
        Err(e) => {
            tracing::warn!(pv, "cannot list VolumeAttachments: {e}");
            None
        }
    }
}

/// Creates the mount pod (or finds it created by another agent); its name, or why not.
async fn create(
    ctx: &Context,
    t: &Target<'_>,
    claim: &PersistentVolumeClaim,
    affinity: Option<serde_json::Value>,
) -> Result<String, String> {
    let settings = &ctx.config.mount_pod;
    let spec = mount_pod::pod(
        settings,
        &t.owner,
        t.namespace,
        claim,
        t.read_only,
        affinity,
    );
    let name = mount_pod::pod_name(t.owner.uid);
    let pod: Pod = serde_json::from_value(spec).map_err(|e| format!("mount pod {name}: {e}"))?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), t.namespace);
    match pods.create(&PostParams::default(), &pod).await {
        Ok(_) => {
            tracing::info!(namespace = t.namespace, pvc = t.pvc, pod = %name, owner = t.owner.name,
                "no running pod mounts the PVC: started a mount pod");
            Ok(name)
        }
        Err(e) if is_status(&e, 409) => Ok(name),
        Err(e) => Err(format!(
            "no running pod mounts PVC {}/{}, and mount pod {name} cannot be created: {e}",
            t.namespace, t.pvc
        )),
    }
}

/// Deletes the mount pod of owner `uid` in `namespace`, if there is one.
pub async fn remove(ctx: &Context, namespace: &str, uid: &str) {
    let name = mount_pod::pod_name(uid);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    match pods.delete(&name, &DeleteParams::default()).await {
        Ok(_) => tracing::info!(namespace, pod = %name, "deleted the mount pod"),
        Err(e) if is_status(&e, 404) => {}
        Err(e) => tracing::warn!(namespace, pod = %name, "cannot delete the mount pod: {e}"),
    }
}

/// The state of a mount pod's owner.
enum OwnerState {
    /// Not finished: the pod is still needed.
    Live,
    /// Finished, or gone.
    Done,
}

/// The owner's state from the listed resources, or, for an owner not listed (created since,
/// or deleted), from the API.
async fn owner_state(
    ctx: &Context,
    pod: &Pod,
    uid: &str,
    backups: &[VolumeBackup],
    restores: &[VolumeRestore],
) -> OwnerState {
    let phase = |s: Option<crate::crd::Phase>| match s {
        Some(p) if p.is_final() => OwnerState::Done,
        _ => OwnerState::Live,
    };
    if let Some(vb) = backups.iter().find(|b| b.uid().as_deref() == Some(uid)) {
        return phase(vb.status.as_ref().map(|s| s.phase));
    }
    if let Some(vr) = restores.iter().find(|r| r.uid().as_deref() == Some(uid)) {
        return phase(vr.status.as_ref().map(|s| s.phase));
    }
    let annotations = pod.annotations();
    let Some((ns, name)) = annotations
        .get(OWNER_ANNOTATION)
        .and_then(|o| o.split_once('/'))
    else {
        return OwnerState::Done;
    };
    let kind = pod.labels().get(OWNER_KIND_LABEL).cloned();
    let found = match kind.as_deref() {
        Some("VolumeRestore") => Api::<VolumeRestore>::namespaced(ctx.client.clone(), ns)
            .get_opt(name)
            .await
            .map(|r| r.map(|r| (r.uid(), r.status.map(|s| s.phase)))),
        _ => Api::<VolumeBackup>::namespaced(ctx.client.clone(), ns)
            .get_opt(name)
            .await
            .map(|b| b.map(|b| (b.uid(), b.status.map(|s| s.phase)))),
    };
    match found {
        Ok(Some((owner, p))) if owner.as_deref() == Some(uid) => phase(p),
        Ok(_) => OwnerState::Done,
        // Not known: keep it, the next pass asks again.
        Err(_) => OwnerState::Live,
    }
}

/// Deletes the mount pods among `pods` whose owner is finished or gone.
pub async fn sweep(
    ctx: &Context,
    pods: &[Pod],
    backups: &[VolumeBackup],
    restores: &[VolumeRestore],
) {
    for pod in pods {
        let Some(uid) = mount_pod::owner_uid(pod) else {
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let OwnerState::Done = owner_state(ctx, pod, uid, backups, restores).await {
            remove(ctx, &pod.namespace().unwrap_or_default(), uid).await;
        }
    }
}

/// At start-up: deletes the mount pods anywhere in the cluster whose owner finished or went
/// while no agent looked (an agent killed between a job's end and the pod's deletion, or a
/// pod never scheduled, so on no node's list).
pub async fn sweep_cluster(ctx: &Context) -> Result<(), kube::Error> {
    let selector = format!("{}={},{OWNER_UID_LABEL}", MANAGED_BY.0, MANAGED_BY.1);
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let pods = pods.list(&ListParams::default().labels(&selector)).await?;
    if pods.items.is_empty() {
        return Ok(());
    }
    let backups: Api<VolumeBackup> = Api::all(ctx.client.clone());
    let backups = backups.list(&ListParams::default()).await?.items;
    let restores: Api<VolumeRestore> = Api::all(ctx.client.clone());
    let restores = restores.list(&ListParams::default()).await?.items;
    sweep(ctx, &pods.items, &backups, &restores).await;
    Ok(())
}
