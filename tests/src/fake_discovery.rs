//! API discovery for the **fake** API server ([`crate::fake_kube`]): `/api`, `/apis`,
//! `/api/v1` and `/apis/<group>/<version>` answer with `APIVersions`, `APIGroupList` and
//! `APIResourceList` documents in the format a real kube-apiserver (1.33) serves, for the
//! resources registered here: a realistic built-in set (with subresources and resources that
//! cannot be listed, as real discovery has them) plus whatever a test adds.

use serde_json::{Value, json};

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One resource in discovery.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    /// API group, `""` for core.
    pub group: String,
    /// Version, like `v1`.
    pub version: String,
    /// Plural resource name, or `pods/exec` for a subresource.
    pub plural: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Verbs.
    pub verbs: Vec<String>,
}

impl ResourceDef {
    /// A listable resource with every verb.
    pub fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
            verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn with_verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = verbs.iter().map(|v| v.to_string()).collect();
        self
    }

    /// `/api/v1` or `/apis/<group>/<version>`: the prefix of its collections.
    pub fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

/// What a cluster of 1.33 serves, in part: enough kinds, groups and oddities (subresources,
/// create-only resources, two versions of one group) to exercise a discovery client.
pub fn built_in() -> Vec<ResourceDef> {
    let r = ResourceDef::new;
    vec![
        r("", "v1", "bindings", "Binding", true).with_verbs(&["create"]),
        r("", "v1", "componentstatuses", "ComponentStatus", false).with_verbs(&["get", "list"]),
        r("", "v1", "configmaps", "ConfigMap", true),
        r("", "v1", "endpoints", "Endpoints", true),
        r("", "v1", "events", "Event", true),
        r("", "v1", "namespaces", "Namespace", false),
        r("", "v1", "namespaces/status", "Namespace", false)
            .with_verbs(&["get", "patch", "update"]),
        r("", "v1", "nodes", "Node", false),
        r(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
        ),
        r("", "v1", "persistentvolumes", "PersistentVolume", false),
        r("", "v1", "pods", "Pod", true),
        r("", "v1", "pods/exec", "PodExecOptions", true).with_verbs(&["create", "get"]),
        r("", "v1", "pods/log", "Pod", true).with_verbs(&["get"]),
        r("", "v1", "secrets", "Secret", true),
        r("", "v1", "serviceaccounts", "ServiceAccount", true),
        r("", "v1", "serviceaccounts/token", "TokenRequest", true).with_verbs(&["create"]),
        r("", "v1", "services", "Service", true),
        r("apps", "v1", "deployments", "Deployment", true),
        r("apps", "v1", "deployments/scale", "Scale", true).with_verbs(&["get", "patch", "update"]),
        r("apps", "v1", "replicasets", "ReplicaSet", true),
        r("apps", "v1", "statefulsets", "StatefulSet", true),
        r("apps", "v1", "daemonsets", "DaemonSet", true),
        r("batch", "v1", "cronjobs", "CronJob", true),
        r("batch", "v1", "jobs", "Job", true),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
        ),
        r("rbac.authorization.k8s.io", "v1", "roles", "Role", true),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
        ),
        r("coordination.k8s.io", "v1", "leases", "Lease", true),
        r("events.k8s.io", "v1", "events", "Event", true),
        r(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            "StorageClass",
            false,
        ),
        r(
            "authentication.k8s.io",
            "v1",
            "tokenreviews",
            "TokenReview",
            false,
        )
        .with_verbs(&["create"]),
        r(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        ),
        r(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            true,
        ),
        r(
            "autoscaling",
            "v1",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            true,
        ),
        r(
            "kairn.dev",
            "v1alpha1",
            "volumebackups",
            "VolumeBackup",
            true,
        ),
        r(
            "kairn.dev",
            "v1alpha1",
            "volumebackups/status",
            "VolumeBackup",
            true,
        )
        .with_verbs(&["get", "patch", "update"]),
        r(
            "kairn.dev",
            "v1alpha1",
            "volumerestores",
            "VolumeRestore",
            true,
        ),
        r(
            "kairn.dev",
            "v1alpha1",
            "backupschedules",
            "BackupSchedule",
            false,
        ),
        r(
            "kairn.dev",
            "v1alpha1",
            "clusterbackups",
            "ClusterBackup",
            false,
        ),
        r(
            "kairn.dev",
            "v1alpha1",
            "clusterbackups/status",
            "ClusterBackup",
            false,
        )
        .with_verbs(&["get", "patch", "update"]),
    ]
}

/// The preferred version of a group: the first one registered (`autoscaling/v2` above).
fn versions(defs: &[ResourceDef], group: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in defs.iter().filter(|d| d.group == group) {
        if !out.contains(&d.version) {
            out.push(d.version.clone());
        }
    }
    out
}

fn resource_list(defs: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = defs
        .iter()
        .filter(|d| d.group == group && d.version == version)
        .map(|d| {
            let singular = if d.plural.contains('/') {
                String::new()
            } else {
                d.kind.to_ascii_lowercase()
            };
            json!({"name": d.plural, "singularName": singular, "namespaced": d.namespaced,
                   "kind": d.kind, "verbs": d.verbs})
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": group_version, "resources": resources}))
}

/// The discovery document at `path`, or `None` when `path` is not a discovery path.
pub fn respond(defs: &[ResourceDef], path: &str) -> Option<Value> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api"] => Some(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}]})),
        ["apis"] => {
            let mut names: Vec<&str> = Vec::new();
            for d in defs.iter().filter(|d| !d.group.is_empty()) {
                if !names.contains(&d.group.as_str()) {
                    names.push(&d.group);
                }
            }
            let groups: Vec<Value> = names
                .iter()
                .map(|g| {
                    let vs: Vec<Value> = versions(defs, g)
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                        .collect();
                    json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
                })
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ["api", v] => resource_list(defs, "", v),
        ["apis", g, v] => resource_list(defs, g, v),
        _ => None,
    }
}
