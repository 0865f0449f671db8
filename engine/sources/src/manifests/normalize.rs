//! What of a Kubernetes object is worth keeping: the fields a user wrote, not those the cluster
//! fills in. Unchanged objects then serialise to the same bytes and deduplicate, and the
//! manifests apply to another cluster. Pure functions over JSON values, no I/O.

use serde_json::{Map, Value};

/// Metadata the API server sets and a new cluster would refuse or ignore.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
];

/// Annotations controllers and clients write that say nothing about the desired state.
const SERVER_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "pv.kubernetes.io/provisioned-by",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
    "endpoints.kubernetes.io/last-change-trigger-time",
];

/// `(group, kind)` of an object, from its `apiVersion` and `kind`; the core group is `""`.
pub fn group_kind(obj: &Value) -> (String, String) {
    let api = obj["apiVersion"].as_str().unwrap_or_default();
    let group = api.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
    (
        group.to_string(),
        obj["kind"].as_str().unwrap_or_default().to_string(),
    )
}

/// Why an object is not exported at all, or `None` to keep it.
pub fn skip_reason(obj: &Value) -> Option<&'static str> {
    let (group, kind) = group_kind(obj);
    let meta = &obj["metadata"];
    let controlled = meta["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == Value::Bool(true)));
    if controlled {
        return Some("its controller recreates it");
    }
    match (group.as_str(), kind.as_str()) {
        (_, "Event") => Some("events are not state"),
        ("", "Node") | ("", "ComponentStatus") | ("storage.k8s.io", "CSINode") => {
            Some("nodes belong to the cluster, not to a backup")
        }
        ("coordination.k8s.io", "Lease") => Some("leases are runtime state"),
        ("storage.k8s.io", "VolumeAttachment") => Some("attachments are runtime state"),
        ("discovery.k8s.io", "EndpointSlice")
            if !meta["labels"]["endpointslice.kubernetes.io/managed-by"].is_null() =>
        {
            Some("the endpoint slice controller recreates it")
        }
        ("", "Endpoints")
            if !meta["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"]
                .is_null() =>
        {
            Some("the endpoints controller recreates it")
        }
        ("", "ConfigMap") if meta["name"] == "kube-root-ca.crt" => {
            Some("every namespace gets it from the cluster")
        }
        _ => None,
    }
}

/// Strips what the cluster filled in; keeps `status` only when asked.
pub fn normalize(obj: &mut Value, keep_status: bool) {
    let (group, kind) = group_kind(obj);
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    if !keep_status {
        root.remove("status");
    }
    if let Some(meta) = root.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            meta.remove(*field);
        }
        prune_map(meta, "annotations", SERVER_ANNOTATIONS);
        if meta.get("labels").is_some_and(is_empty_map) {
            meta.remove("labels");
        }
    }
    // A token Secret's data is signed by the old cluster; since Kubernetes 1.24 the token
    // controller fills in a Secret a user created, but creates none itself.
    if group.is_empty()
        && kind == "Secret"
        && root.get("type").and_then(Value::as_str) == Some("kubernetes.io/service-account-token")
    {
        root.remove("data");
    }
    let spec = root.get_mut("spec").and_then(Value::as_object_mut);
    match (group.as_str(), kind.as_str(), spec) {
        // A cluster IP belongs to one cluster's service range; headless stays headless.
        ("", "Service", Some(spec))
            if spec.get("clusterIP").and_then(Value::as_str) != Some("None") =>
        {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        // Bound to a volume of the old cluster; a restore provisions a new one.
        ("", "PersistentVolumeClaim", Some(spec)) => {
            spec.remove("volumeName");
        }
        ("", "PersistentVolume", Some(spec)) => {
            if let Some(claim) = spec.get_mut("claimRef").and_then(Value::as_object_mut) {
                claim.remove("uid");
                claim.remove("resourceVersion");
            }
        }
        _ => {}
    }
}

fn is_empty_map(v: &Value) -> bool {
    v.as_object().is_some_and(Map::is_empty)
}

fn prune_map(meta: &mut Map<String, Value>, field: &str, drop: &[&str]) {
    if let Some(map) = meta.get_mut(field).and_then(Value::as_object_mut) {
        for key in drop {
            map.remove(*key);
        }
    }
    if meta.get(field).is_some_and(is_empty_map) {
        meta.remove(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_fields_go_and_user_fields_stay() {
        let mut cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "app", "namespace": "shop", "uid": "1-2-3", "resourceVersion": "42",
                "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{"manager": "kubectl"}],
                "labels": {"app": "shop"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
            },
            "data": {"k": "v"}
        });
        normalize(&mut cm, false);
        assert_eq!(
            cm,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "app", "namespace": "shop", "labels": {"app": "shop"}},
                "data": {"k": "v"}
            })
        );
    }

    #[test]
    fn status_stays_only_when_asked() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d"}, "status": {"replicas": 3}});
        let mut without = obj.clone();
        normalize(&mut without, false);
        assert!(without.get("status").is_none());
        let mut with = obj;
        normalize(&mut with, true);
        assert_eq!(with["status"]["replicas"], 3);
    }

    #[test]
    fn services_lose_their_cluster_ip_unless_headless() {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12"], "ports": [{"port": 80}]}});
        normalize(&mut svc, false);
        assert_eq!(svc["spec"], json!({"ports": [{"port": 80}]}));
        let mut headless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h"},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        normalize(&mut headless, false);
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }

    #[test]
    fn what_controllers_recreate_is_skipped() {
        let owned = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r",
            "ownerReferences": [{"kind": "Deployment", "name": "d", "controller": true}]}});
        assert!(skip_reason(&owned).is_some());
        let mut token = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t",
            "annotations": {"kubernetes.io/service-account.name": "build"}},
            "type": "kubernetes.io/service-account-token", "data": {"token": "eHl6"}});
        assert_eq!(skip_reason(&token), None);
        normalize(&mut token, false);
        assert!(
            token.get("data").is_none() && token["type"] == "kubernetes.io/service-account-token"
        );
        let event =
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}});
        assert!(skip_reason(&event).is_some());
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "type": "Opaque"});
        assert_eq!(skip_reason(&secret), None);
        assert_eq!(group_kind(&owned), ("apps".into(), "ReplicaSet".into()));
        assert_eq!(group_kind(&secret), (String::new(), "Secret".into()));
    }
}
