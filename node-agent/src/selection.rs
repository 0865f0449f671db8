//! Which PVCs a selector picks among those this node's pods mount: shared by the schedules
//! and the cluster backups, with the labels of namespaces and PVCs read once per pass.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::schedule::matches;

/// Namespace and PVC labels read during one pass, so each object is read once however many
/// schedules and cluster backups select from it.
#[derive(Default)]
pub struct LabelCache {
    namespaces: HashMap<String, Option<BTreeMap<String, String>>>,
    pvcs: HashMap<(String, String), Option<BTreeMap<String, String>>>,
}

/// The PVCs a selector pair picks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selectors<'a> {
    /// Namespaces whose labels match; every namespace when absent.
    pub namespaces: Option<&'a LabelSelector>,
    /// PVCs whose labels match; every PVC when absent.
    pub pvcs: Option<&'a LabelSelector>,
}

/// The claims (namespace, PVC) mounted by live pods (not Succeeded, Failed or terminating).
fn mounted_claims(pods: &[Pod]) -> BTreeSet<(String, String)> {
    let mut claims = BTreeSet::new();
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed"))
            || pod.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(c) = &v.persistent_volume_claim {
                claims.insert((ns.clone(), c.claim_name.clone()));
            }
        }
    }
    claims
}

/// The PVCs mounted by this node's running pods that the selectors pick.
pub async fn selected_pvcs(
    client: &Client,
    pods: &[Pod],
    selectors: Selectors<'_>,
    cache: &mut LabelCache,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (ns, pvc) in mounted_claims(pods) {
        if !cache.namespaces.contains_key(&ns) {
            let api: Api<Namespace> = Api::all(client.clone());
            let labels = match api.get(&ns).await {
                Ok(n) => Some(n.metadata.labels.unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(namespace = %ns, "cannot read the namespace: {e}");
                    None
                }
            };
            cache.namespaces.insert(ns.clone(), labels);
        }
        let Some(Some(ns_labels)) = cache.namespaces.get(&ns) else {
            continue;
        };
        if !matches(selectors.namespaces, ns_labels) {
            continue;
        }
        let key = (ns.clone(), pvc.clone());
        if !cache.pvcs.contains_key(&key) {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
            let labels = match api.get(&pvc).await {
                Ok(c) => Some(c.metadata.labels.unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(namespace = %ns, pvc = %pvc, "cannot read the PVC: {e}");
                    None
                }
            };
            cache.pvcs.insert(key.clone(), labels);
        }
        let Some(Some(labels)) = cache.pvcs.get(&key) else {
            continue;
        };
        if matches(selectors.pvcs, labels) {
            out.push((ns, pvc));
        }
    }
    out
}
