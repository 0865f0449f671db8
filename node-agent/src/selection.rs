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
    if cache.cluster.is_none() {
        let params = kube::api::ListParams::default();
        let namespaces = Api::<Namespace>::all(client.clone()).list(&params).await?;
        let claims = Api::<PersistentVolumeClaim>::all(client.clone())
            .list(&params)
            .await?;
        let bound = |c: &PersistentVolumeClaim| {
            c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
        };
        cache.cluster = Some(ClusterClaims {
            namespaces: namespaces
                .items
                .into_iter()
                .map(|n| (n.name_any(), n.metadata.labels.unwrap_or_default()))
                .collect(),
            pvcs: claims
                .items
                .into_iter()
                .filter(bound)
                .map(|c| {
                    let key = (c.namespace().unwrap_or_default(), c.name_any());
                    (key, c.metadata.labels.unwrap_or_default())
                })
                .collect(),
        });
    }
    Ok(cache
        .cluster
        .as_ref()
        .map(|c| c.select(selectors))
        .unwrap_or_default())
}

/// The PVCs a selector pair picks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selectors<'a> {
    /// Namespaces whose labels match; every namespace when absent.
    pub namespaces: Option<&'a LabelSelector>,
    /// PVCs whose labels match; every PVC when absent.
    pub pvcs: Option<&'a LabelSelector>,
}
