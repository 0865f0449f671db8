//! Deletes the finished objects whose `spec.ttl` has passed (see [`crate::ttl`]): the leading
//! agent, every history interval, reads each kind page by page (finished objects are not in
//! the watch caches). Deleting is idempotent: an object someone removed first is simply gone
//! (404). Objects synced from the repository are views, and never expire.

use chrono::{DateTime, Utc};
use kube::api::{Api, DeleteParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::crd::{ClusterBackup, NamespaceRestore, VolumeBackup, VolumeRestore};
use crate::repo_sync::is_synced;
use crate::ttl::expired;

/// Deletes what has expired, of every kind.
pub async fn sweep(ctx: &Context) {
    let now = Utc::now();
    let client = &ctx.client;
    let api_in = |ns: &str| Api::<VolumeBackup>::namespaced(client.clone(), ns);
    sweep_kind(Api::all(client.clone()), api_in, now, |o| {
        let finished = o.status.as_ref().and_then(|s| s.finished.clone());
        (finished, o.spec.ttl.clone())
    })
    .await;
    let api_in = |ns: &str| Api::<VolumeRestore>::namespaced(client.clone(), ns);
    sweep_kind(Api::all(client.clone()), api_in, now, |o| {
        let finished = o.status.as_ref().and_then(|s| s.finished.clone());
        (finished, o.spec.ttl.clone())
    })
    .await;
    let api_in = |_: &str| Api::<ClusterBackup>::all(client.clone());
    sweep_kind(Api::all(client.clone()), api_in, now, |o| {
        let finished = o.status.as_ref().and_then(|s| s.finished.clone());
        (finished, o.spec.ttl.clone())
    })
    .await;
    let api_in = |_: &str| Api::<NamespaceRestore>::all(client.clone());
    sweep_kind(Api::all(client.clone()), api_in, now, |o| {
        let finished = o.status.as_ref().and_then(|s| s.finished.clone());
        (finished, o.spec.ttl.clone())
    })
    .await;
}

/// Deletes the expired objects `api` lists; `times` gives an object's finish time and TTL,
/// `api_in` the API of the namespace it is in.
async fn sweep_kind<K>(
    api: Api<K>,
    api_in: impl Fn(&str) -> Api<K>,
    now: DateTime<Utc>,
    times: fn(&K) -> (Option<String>, Option<String>),
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut doomed = Vec::new();
    let listed = crate::history::each_page(&api, "", |page| {
        for o in page {
            let (finished, ttl) = times(&o);
            if !is_synced(o.meta()) && expired(finished.as_deref(), ttl.as_deref(), now) {
                doomed.push((o.namespace(), o.name_any()));
            }
        }
    })
    .await;
    if let Err(e) = listed {
        tracing::warn!(kind = K::kind(&()).as_ref(), "cannot list for expiry: {e}");
    }
    for (ns, name) in doomed {
        let api: Api<K> = match &ns {
            Some(ns) => api_in(ns),
            None => api.clone(),
        };
        delete(&api, &name).await;
    }
}

async fn delete<K>(api: &Api<K>, name: &str)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            tracing::info!(kind = K::kind(&()).as_ref(), resource = %name, "expired: deleted (its snapshot stays)")
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(resource = %name, "cannot delete an expired object: {e}"),
    }
}
