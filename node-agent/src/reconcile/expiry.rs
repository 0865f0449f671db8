//! Deletes the finished objects whose `spec.ttl` has passed (see [`crate::ttl`]). Every agent
//! does it for every object, as for schedules: deleting is idempotent, and an object another
//! agent removed first is simply gone (404).

use chrono::Utc;
use kube::api::{Api, DeleteParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::crd::{ClusterBackup, NamespaceRestore, VolumeBackup, VolumeRestore};
use crate::ttl::expired;

/// Deletes what has expired among the listed objects.
pub async fn expire_all(ctx: &Context, listed: Listed<'_>) {
    let now = Utc::now();
    let client = &ctx.client;
    for vb in listed.backups {
        let finished = vb.status.as_ref().and_then(|s| s.finished.as_deref());
        if expired(finished, vb.spec.ttl.as_deref(), now) {
            let ns = vb.namespace().unwrap_or_default();
            delete(Api::<VolumeBackup>::namespaced(client.clone(), &ns), vb).await;
        }
    }
    for vr in listed.restores {
        let finished = vr.status.as_ref().and_then(|s| s.finished.as_deref());
        if expired(finished, vr.spec.ttl.as_deref(), now) {
            let ns = vr.namespace().unwrap_or_default();
            delete(Api::<VolumeRestore>::namespaced(client.clone(), &ns), vr).await;
        }
    }
    for cb in listed.cluster_backups {
        let finished = cb.status.as_ref().and_then(|s| s.finished.as_deref());
        if expired(finished, cb.spec.ttl.as_deref(), now) {
            delete(Api::<ClusterBackup>::all(client.clone()), cb).await;
        }
    }
    for nsr in listed.namespace_restores {
        let finished = nsr.status.as_ref().and_then(|s| s.finished.as_deref());
        if expired(finished, nsr.spec.ttl.as_deref(), now) {
            delete(Api::<NamespaceRestore>::all(client.clone()), nsr).await;
        }
    }
}

/// The objects whose TTL may have passed.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    pub backups: &'a [VolumeBackup],
    pub restores: &'a [VolumeRestore],
    pub cluster_backups: &'a [ClusterBackup],
    pub namespace_restores: &'a [NamespaceRestore],
}

async fn delete<K>(api: Api<K>, obj: &K)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.name_any();
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            tracing::info!(kind = K::kind(&()).as_ref(), resource = %name, "expired: deleted (its snapshot stays)")
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(resource = %name, "cannot delete an expired object: {e}"),
    }
}
