//! Which PVCs a selector picks, across the cluster: shared by the schedules and the cluster
//! backups, with namespaces and PVCs listed once per pass. Every bound PVC counts, mounted or
//! not: a scaled-down StatefulSet's volume is still backed up (through a mount pod).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::schedule::matches;

/// The cluster's namespaces and PVCs, listed at most once per pass however many schedules and
/// cluster backups select from them.
#[derive(Default)]
pub struct LabelCache {
    /// Every namespace's labels and every bound PVC's, listed once per pass.
    cluster: Option<ClusterClaims>,
}

/// The namespaces and bound PVCs of the cluster, with their labels.
#[derive(Debug, Clone, Default)]
pub struct ClusterClaims {
    /// Namespace name to labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// (namespace, PVC) to labels, bound PVCs only: an unbound claim holds no data yet.
    pub pvcs: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// (namespace, PVC) to its creation time (Unix seconds), for the bound PVCs.
    pub created: BTreeMap<(String, String), i64>,
}

impl ClusterClaims {
    /// The PVCs the selectors pick.
    pub fn select(&self, selectors: Selectors<'_>) -> Vec<(String, String)> {
        self.pvcs
            .iter()
            .filter(|((ns, _), labels)| {
                self.namespaces
                    .get(ns)
                    .is_some_and(|n| matches(selectors.namespaces, n))
                    && matches(selectors.pvcs, labels)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }
}

/// Every PVC of the cluster the selectors pick (namespaces and PVCs listed once per pass).
pub async fn selected_in_cluster(
    client: &Client,
    selectors: Selectors<'_>,
    cache: &mut LabelCache,
) -> kube::Result<Vec<(String, String)>> {
    Ok(claims(client, cache).await?.select(selectors))
}

/// The cluster's namespaces and bound PVCs, listed at the first call of a pass.
pub async fn claims<'a>(
    client: &Client,
    cache: &'a mut LabelCache,
) -> kube::Result<&'a ClusterClaims> {
    if cache.cluster.is_none() {
        cache.cluster = Some(list_claims(client).await?);
    }
    Ok(cache.cluster.get_or_insert_default())
}

async fn list_claims(client: &Client) -> kube::Result<ClusterClaims> {
    let params = kube::api::ListParams::default();
    let namespaces = Api::<Namespace>::all(client.clone()).list(&params).await?;
    let claims = Api::<PersistentVolumeClaim>::all(client.clone())
        .list(&params)
        .await?;
    let bound = |c: &PersistentVolumeClaim| {
        c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    };
    let mut out = ClusterClaims {
        namespaces: namespaces
            .items
            .into_iter()
            .map(|n| (n.name_any(), n.metadata.labels.unwrap_or_default()))
            .collect(),
        ..Default::default()
    };
    for c in claims.items.into_iter().filter(bound) {
        let key = (c.namespace().unwrap_or_default(), c.name_any());
        if let Some(t) = &c.metadata.creation_timestamp {
            out.created.insert(key.clone(), t.0.as_second());
        }
        out.pvcs.insert(key, c.metadata.labels.unwrap_or_default());
    }
    Ok(out)
}

/// The PVCs a selector pair picks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selectors<'a> {
    /// Namespaces whose labels match; every namespace when absent.
    pub namespaces: Option<&'a LabelSelector>,
    /// PVCs whose labels match; every PVC when absent.
    pub pvcs: Option<&'a LabelSelector>,
}
