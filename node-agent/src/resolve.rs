//! From a PVC to its files on this node: the pod on this node that mounts the claim (from the
//! agent's list of its node's pods), the PV bound to the claim (from the API), then the
//! kubelet's directory for that pod and PV.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Api;

use crate::volume_path::{DiscoveryError, KubeletPods, PodVolume};

/// Why a PVC cannot be found on this node.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The API request failed.
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// The claim is not bound to a volume yet.
    #[error("PVC {0} is not bound to a PersistentVolume")]
    Unbound(String),
    /// The kubelet's directory does not hold the volume.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
}

/// The pod of this node that mounts a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimUser {
    /// The pod's name.
    pub pod: String,
    /// The pod's uid: its directory under the kubelet's `pods/`.
    pub uid: String,
    /// The pod's annotations (hooks may be declared there).
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Why its volumes may not be mounted yet; `None` once a container of it runs.
    pub not_started: Option<String>,
}

/// The first live pod (not Succeeded or Failed) in `namespace` that mounts claim `pvc` for the
/// work of uid `work`: a mount pod serves its own work only, since it is deleted when that
/// work ends, whatever else still reads through it.
pub fn pod_mounting(pods: &[Pod], namespace: &str, pvc: &str, work: &str) -> Option<ClaimUser> {
    pods.iter().find_map(|pod| {
        let meta = &pod.metadata;
        if meta.namespace.as_deref() != Some(namespace) || meta.deletion_timestamp.is_some() {
            return None;
        }
        if crate::mount_pod::owner_uid(pod).is_some_and(|owner| owner != work) {
            return None;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return None;
        }
        let mounts = pod.spec.as_ref()?.volumes.as_ref()?.iter().any(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == pvc)
        });
        mounts.then(|| ClaimUser {
            pod: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            not_started: crate::mounted::pod_not_started(pod),
        })
    })
}

/// A PVC located on this node.
#[derive(Debug, Clone)]
pub struct LocatedClaim {
    /// The pod that mounts it.
    pub user: ClaimUser,
    /// The bound PV's name.
    pub pv: String,
    /// Where its files (or device) are.
    pub volume: PodVolume,
}

/// Looks up the PV bound to `pvc` and finds its directory under the pod that mounts it.
pub async fn locate_claim(
    client: &kube::Client,
    kubelet: &KubeletPods,
    user: ClaimUser,
    namespace: &str,
    pvc: &str,
) -> Result<LocatedClaim, ResolveError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let claim = claims.get(pvc).await?;
    let pv = claim
        .spec
        .and_then(|s| s.volume_name)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ResolveError::Unbound(format!("{namespace}/{pvc}")))?;
    // Reading the PV confirms it exists and is bound to this claim, not a stale name.
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let bound = volumes.get(&pv).await?;
    let claim_ref = bound.spec.and_then(|s| s.claim_ref);
    if claim_ref
        .is_none_or(|r| r.namespace.as_deref() != Some(namespace) || r.name.as_deref() != Some(pvc))
    {
        return Err(ResolveError::Unbound(format!("{namespace}/{pvc}")));
    }
    let volume = kubelet.volume(&user.uid, &pv)?;
    Ok(LocatedClaim { user, pv, volume })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn pod(ns: &str, name: &str, claim: &str, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{name}")},
            "spec": {"containers": [{"name": "c"}], "volumes": [
                {"name": "cfg", "configMap": {"name": "x"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": claim}},
            ]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn the_live_pod_in_the_claims_namespace_is_chosen() {
        let pods = vec![
            pod("other", "a", "db", "Running"),
            pod("shop", "b", "db", "Succeeded"),
            pod("shop", "c", "logs", "Running"),
            pod("shop", "d", "db", "Pending"),
        ];
        let user = pod_mounting(&pods, "shop", "db", "w").unwrap();
        assert_eq!(user.pod, "d");
        assert_eq!(user.uid, "uid-d");
        assert!(pod_mounting(&pods, "shop", "missing", "w").is_none());
    }
}
