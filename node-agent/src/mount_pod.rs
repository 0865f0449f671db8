//! Mount pods, the pure part: a VolumeBackup or VolumeRestore whose PVC no live pod mounts gets a
//! short-lived pod that only mounts it, so the kubelet attaches and mounts the volume and the
//! agent of that node reads or writes it through the kubelet's directory as for any pod.
//!
//! Its name is derived from the owner's uid, so any number of agents may try to create it and
//! only one succeeds (the others get AlreadyExists); the same name finds it again for deletion.
//! Nothing here does I/O: `reconcile/mount_pods.rs` talks to the API.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, Pod, ResourceRequirements, Toleration,
};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use serde_json::json;

/// The label every object Kairn creates carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kairn");
/// The label giving the owner's uid (a name may exceed a label value's 63 characters).
pub const OWNER_UID_LABEL: &str = "kairn.dev/owner-uid";
/// The label giving the owner's kind (`VolumeBackup` or `VolumeRestore`).
pub const OWNER_KIND_LABEL: &str = "kairn.dev/owner-kind";
/// The annotation giving the owner as `namespace/name`.
pub const OWNER_ANNOTATION: &str = "kairn.dev/owner";
/// The first argument that makes the node-agent binary a mount pod's process: it only waits
/// for SIGTERM.
pub const PAUSE_ARG: &str = "mount-pod";
/// Where the volume appears inside the mount pod (nothing reads it there).
const MOUNT_PATH: &str = "/volume";

/// How mount pods are made (the agent's settings).
#[derive(Debug, Clone, Default)]
pub struct MountPodSettings {
    /// The image: the agent's own, whose binary has the pause mode.
    pub image: String,
    /// Requests and limits of its one container.
    pub resources: Option<ResourceRequirements>,
    /// Tolerations, for volumes on tainted nodes.
    pub tolerations: Vec<Toleration>,
    /// The priority class, if any.
    pub priority_class: Option<String>,
}

/// Who a mount pod is for.
#[derive(Debug, Clone)]
pub struct Owner<'a> {
    /// `VolumeBackup` or `VolumeRestore`.
    pub kind: &'a str,
    /// The owner's namespace (a restore's may differ from its PVC's).
    pub namespace: &'a str,
    /// The owner's name.
    pub name: &'a str,
    /// The owner's uid.
    pub uid: &'a str,
}

/// The mount pod's name for an owner: deterministic, so concurrent creates conflict.
pub fn pod_name(owner_uid: &str) -> String {
    format!("kairn-mount-{owner_uid}")
}

/// The owner uid a pod is a mount pod for, when it is one.
pub fn owner_uid(pod: &Pod) -> Option<&str> {
    let labels = pod.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY.0).map(String::as_str) != Some(MANAGED_BY.1) {
        return None;
    }
    labels.get(OWNER_UID_LABEL).map(String::as_str)
}

/// The node a ReadWriteOnce volume is attached to: the mount pod must go there, since the
/// volume cannot be attached anywhere else meanwhile.
pub fn attached_node(pv: &str, attachments: &[VolumeAttachment]) -> Option<String> {
    attachments
        .iter()
        .filter(|a| a.spec.source.persistent_volume_name.as_deref() == Some(pv))
        .find(|a| a.status.as_ref().is_some_and(|s| s.attached))
        .map(|a| a.spec.node_name.clone())
}

/// True when a volume may be mounted on one node at a time.
pub fn single_node(claim: &PersistentVolumeClaim) -> bool {
    let modes = claim.spec.as_ref().and_then(|s| s.access_modes.as_ref());
    modes.is_some_and(|m| {
        m.iter()
            .all(|m| m == "ReadWriteOnce" || m == "ReadWriteOncePod")
    })
}

/// Where a mount pod must run, as a pod's `affinity`: the node a single-node volume is
/// attached to, else the PV's own node affinity (a local volume), else anywhere.
pub fn placement(
    claim: &PersistentVolumeClaim,
    pv: Option<&PersistentVolume>,
    attached: Option<&str>,
) -> Option<serde_json::Value> {
    if let Some(node) = attached.filter(|_| single_node(claim)) {
        // matchFields on the node's name, as DaemonSets pin pods: hostname labels may differ.
        return Some(
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}),
        );
    }
    let required = pv?
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?;
    Some(json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}))
}

/// The mount pod for `owner`, mounting claim `pvc` of `namespace` (read-only for a backup).
pub fn pod(
    settings: &MountPodSettings,
    owner: &Owner<'_>,
    namespace: &str,
    claim: &PersistentVolumeClaim,
    read_only: bool,
    affinity: Option<serde_json::Value>,
) -> serde_json::Value {
    let pvc = claim.metadata.name.as_deref().unwrap_or_default();
    let block = claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref()) == Some("Block");
    let mut labels = BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (OWNER_UID_LABEL.to_string(), owner.uid.to_string()),
        (OWNER_KIND_LABEL.to_string(), owner.kind.to_string()),
    ]);
    // kairn.dev/volumebackup=NAME, for `kubectl get pods -l`, when the name fits a label.
    if owner.name.len() <= 63 {
        let key = format!("kairn.dev/{}", owner.kind.to_lowercase());
        labels.insert(key, owner.name.to_string());
    }
    let mut container = json!({
        "name": "mount",
        "image": settings.image,
        "command": ["/usr/local/bin/node-agent", PAUSE_ARG],
        "securityContext": {"runAsUser": 65534, "runAsNonRoot": true,
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]}},
    });
    if block {
        container["volumeDevices"] = json!([{"name": "data", "devicePath": MOUNT_PATH}]);
    } else {
        container["volumeMounts"] =
            json!([{"name": "data", "mountPath": MOUNT_PATH, "readOnly": read_only}]);
    }
    if let Some(r) = &settings.resources {
        container["resources"] = json!(r);
    }
    let mut spec = json!({
        "containers": [container],
        "volumes": [{"name": "data",
                     "persistentVolumeClaim": {"claimName": pvc, "readOnly": read_only}}],
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 5,
        // It talks to nothing: no token, no service variables. No fsGroup either, which
        // would make the kubelet change the owner of every file in the volume.
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "tolerations": settings.tolerations,
    });
    if let Some(pc) = &settings.priority_class {
        spec["priorityClassName"] = json!(pc);
    }
    if let Some(a) = affinity {
        spec["affinity"] = a;
    }
    let mut metadata = json!({
        "name": pod_name(owner.uid),
        "namespace": namespace,
        "labels": labels,
        "annotations": {OWNER_ANNOTATION: format!("{}/{}", owner.namespace, owner.name)},
    });
    // An owner reference across namespaces counts as a missing owner, and the garbage
    // collector would delete the pod at once: a restore from the admin namespace into another
    // relies on the agents' sweep alone.
    if owner.namespace == namespace {
        metadata["ownerReferences"] = json!([{
            "apiVersion": "kairn.dev/v1alpha1", "kind": owner.kind, "name": owner.name,
            "uid": owner.uid, "controller": true, "blockOwnerDeletion": false}]);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// Why a pod that mounts the claim is not on a node yet: `Some` when the scheduler said it
/// cannot place it (PodScheduled=False, reason Unschedulable), with the scheduler's message.
pub fn unschedulable(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    (c.reason.as_deref() == Some("Unschedulable")).then(|| {
        c.message
            .clone()
            .unwrap_or_else(|| "no reason given".into())
    })
}

/// The live pods (not finished, not being deleted) of a namespace's list that mount `pvc` for
/// the work of uid `work`: applications' pods, and the work's own mount pod.
pub fn users<'a>(pods: &'a [Pod], pvc: &str, work: &str) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| owner_uid(p).is_none_or(|owner| owner == work))
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .filter(|p| {
            let volumes = p.spec.as_ref().and_then(|s| s.volumes.as_ref());
            volumes.into_iter().flatten().any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == pvc)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn claim(modes: &[&str], mode: &str) -> PersistentVolumeClaim {
        from(json!({"metadata": {"name": "db", "namespace": "shop"},
            "spec": {"accessModes": modes, "volumeMode": mode, "volumeName": "pv-1"}}))
    }

    const OWNER: Owner<'static> = Owner {
        kind: "VolumeBackup",
        namespace: "shop",
        name: "db-nightly",
        uid: "u-1",
    };

    #[test]
    fn a_backups_mount_pod_mounts_read_only_and_points_at_its_owner() {
        let settings = MountPodSettings {
            image: "img".into(),
            priority_class: Some("low".into()),
            tolerations: vec![from(json!({"operator": "Exists"}))],
            ..Default::default()
        };
        let p: Pod = from(pod(
            &settings,
            &OWNER,
            "shop",
            &claim(&["ReadWriteOnce"], "Filesystem"),
            true,
            None,
        ));
        assert_eq!(p.metadata.name.as_deref(), Some("kairn-mount-u-1"));
        assert_eq!(owner_uid(&p), Some("u-1"));
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["kairn.dev/volumebackup"], "db-nightly");
        assert_eq!(p.metadata.owner_references.as_ref().unwrap()[0].uid, "u-1");
        let spec = p.spec.unwrap();
        let volume = &spec.volumes.as_ref().unwrap()[0];
        let source = volume.persistent_volume_claim.as_ref().unwrap();
        assert_eq!(
            (source.claim_name.as_str(), source.read_only),
            ("db", Some(true))
        );
        let c = &spec.containers[0];
        assert_eq!(c.command.as_ref().unwrap()[1], PAUSE_ARG);
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].read_only, Some(true));
        assert_eq!(spec.priority_class_name.as_deref(), Some("low"));
        assert_eq!(spec.tolerations.unwrap().len(), 1);
        assert!(
            spec.security_context.is_none(),
            "an fsGroup would chown the volume"
        );
    }

    #[test]
    fn a_restore_across_namespaces_has_no_owner_reference_and_a_block_claim_a_device() {
        let owner = Owner {
            kind: "VolumeRestore",
            namespace: "kairn-system",
            ..OWNER
        };
        let settings = MountPodSettings::default();
        let p: Pod = from(pod(
            &settings,
            &owner,
            "shop",
            &claim(&["ReadWriteOnce"], "Block"),
            false,
            None,
        ));
        assert!(p.metadata.owner_references.is_none());
        let c = &p.spec.unwrap().containers[0];
        assert!(c.volume_mounts.is_none());
        assert_eq!(c.volume_devices.as_ref().unwrap()[0].name, "data");
    }

    #[test]
    fn a_single_node_volume_goes_where_it_is_attached_a_local_one_to_its_node() {
        let attachments: Vec<VolumeAttachment> = vec![
            from(
                json!({"metadata": {"name": "a"}, "spec": {"attacher": "x", "nodeName": "n1",
                "source": {"persistentVolumeName": "pv-1"}}, "status": {"attached": false}}),
            ),
            from(
                json!({"metadata": {"name": "b"}, "spec": {"attacher": "x", "nodeName": "n2",
                "source": {"persistentVolumeName": "pv-1"}}, "status": {"attached": true}}),
            ),
        ];
        assert_eq!(attached_node("pv-1", &attachments).as_deref(), Some("n2"));
        assert_eq!(attached_node("pv-2", &attachments), None);
        let rwo = claim(&["ReadWriteOnce"], "Filesystem");
        let pinned = placement(&rwo, None, Some("n2")).unwrap();
        let term = &pinned["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(
            term["nodeSelectorTerms"][0]["matchFields"][0]["values"][0],
            "n2"
        );
        // A volume many nodes may mount goes anywhere.
        assert!(placement(&claim(&["ReadWriteMany"], "Filesystem"), None, Some("n2")).is_none());
        let local: PersistentVolume = from(json!({"metadata": {"name": "pv-1"}, "spec": {
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n3"]}]}]}}}}));
        let there = placement(&rwo, Some(&local), None).unwrap();
        let term = &there["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(
            term["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0],
            "n3"
        );
    }

    #[test]
    fn users_are_live_pods_and_only_this_works_own_mount_pod() {
        let mk = |name: &str, phase: &str, owner: Option<&str>| -> Pod {
            let mut labels = json!({});
            if let Some(o) = owner {
                labels = json!({"app.kubernetes.io/managed-by": "kairn", OWNER_UID_LABEL: o});
            }
            from(json!({"metadata": {"name": name, "labels": labels},
                "spec": {"containers": [], "volumes": [
                    {"name": "d", "persistentVolumeClaim": {"claimName": "db"}}]},
                "status": {"phase": phase}}))
        };
        let pods = vec![
            mk("done", "Succeeded", None),
            mk("app", "Running", None),
            mk("other-work", "Running", Some("u-2")),
            mk("mine", "Pending", Some("u-1")),
        ];
        let names: Vec<_> = users(&pods, "db", "u-1")
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["app", "mine"]);
        assert!(users(&pods, "logs", "u-1").is_empty());
        let stuck: Pod = from(json!({"metadata": {"name": "x"}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available"}]}}));
        assert_eq!(
            unschedulable(&stuck).as_deref(),
            Some("0/3 nodes are available")
        );
        assert_eq!(unschedulable(&pods[1]), None);
    }
}
