//! Choosing manifests for output and putting them in an order `kubectl apply` accepts:
//! definitions before what they define, namespaces before what lives in them, what is
//! referenced before what refers to it, admission webhooks last (a webhook whose service is
//! not running yet would block everything after it). Pure, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::normalize::group_kind;

/// Built-in `(group, kind)`s in apply order; anything else built in comes after them, custom
/// resources after that, admission webhooks last.
const ORDER: &[(&str, &str)] = &[
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("", "Namespace"),
    ("storage.k8s.io", "StorageClass"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("", "PersistentVolume"),
    ("", "ResourceQuota"),
    ("", "LimitRange"),
    ("", "ServiceAccount"),
    ("", "Secret"),
    ("", "ConfigMap"),
    ("", "PersistentVolumeClaim"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("", "Service"),
    ("", "Endpoints"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("policy", "PodDisruptionBudget"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("", "ReplicationController"),
    ("batch", "CronJob"),
    ("batch", "Job"),
    ("", "Pod"),
    ("networking.k8s.io", "Ingress"),
    ("autoscaling", "HorizontalPodAutoscaler"),
];

const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "node.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "certificates.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "events.k8s.io",
    "resource.k8s.io",
];

/// Where a kind sorts in apply order (objects of one rank then by namespace, kind and name):
/// lower ranks are applied first.
pub fn rank(group: &str, kind: &str) -> usize {
    if let Some(i) = ORDER.iter().position(|(g, k)| *g == group && *k == kind) {
        return i;
    }
    if group == "admissionregistration.k8s.io" {
        ORDER.len() + 2
    } else if BUILT_IN_GROUPS.contains(&group) {
        ORDER.len()
    } else {
        ORDER.len() + 1
    }
}

/// Which manifests to print and how.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only objects in these namespaces, the Namespace objects themselves, and the
    /// definitions of the custom resources among them (all when empty; cluster-scoped objects
    /// are then all included).
    pub namespaces: Vec<String>,
    /// Only these kinds (case-insensitive `Kind`, or `kind.group`), plus the definitions and
    /// namespaces they need; all when empty.
    pub kinds: Vec<String>,
    /// Leave out Secrets.
    pub exclude_secrets: bool,
    /// Rename namespaces: `old → new`.
    pub namespace_map: BTreeMap<String, String>,
}

fn kind_matches(wanted: &[String], group: &str, kind: &str) -> bool {
    wanted.is_empty()
        || wanted.iter().any(|w| {
            let w = w.to_ascii_lowercase();
            let kind = kind.to_ascii_lowercase();
            w == kind || (!group.is_empty() && w == format!("{kind}.{group}"))
        })
}

/// The objects `sel` chooses, renamed and in apply order.
pub fn select_and_order(objects: Vec<Value>, sel: &Selection) -> Vec<Value> {
    let namespace_of = |o: &Value| o["metadata"]["namespace"].as_str().map(String::from);
    let name_of = |o: &Value| {
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let in_scope = |o: &Value| -> bool {
        let (group, kind) = group_kind(o);
        if sel.exclude_secrets && group.is_empty() && kind == "Secret" {
            return false;
        }
        if !kind_matches(&sel.kinds, &group, &kind) {
            return false;
        }
        match namespace_of(o) {
            Some(ns) => sel.namespaces.is_empty() || sel.namespaces.contains(&ns),
            None => sel.namespaces.is_empty(),
        }
    };
    let chosen: Vec<&Value> = objects.iter().filter(|o| in_scope(o)).collect();
    // What the chosen objects need: their namespaces, and the definitions of their kinds.
    let needed_namespaces: BTreeSet<String> =
        chosen.iter().filter_map(|o| namespace_of(o)).collect();
    // A definition is needed by the objects of the kind it defines, whatever their group
    // (`gateway.networking.k8s.io` is a CRD too); built-in kinds have none.
    let needed_crds: BTreeSet<String> = chosen
        .iter()
        .map(|o| group_kind(o))
        .map(|(g, k)| format!("{g}/{k}"))
        .collect();
    let needed = |o: &Value| -> bool {
        let (group, kind) = group_kind(o);
        match (group.as_str(), kind.as_str()) {
            ("", "Namespace") => needed_namespaces.contains(&name_of(o)),
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                let g = o["spec"]["group"].as_str().unwrap_or_default();
                let k = o["spec"]["names"]["kind"].as_str().unwrap_or_default();
                needed_crds.contains(&format!("{g}/{k}"))
            }
            _ => false,
        }
    };
    let mut out: Vec<Value> = objects
        .iter()
        .filter(|o| in_scope(o) || needed(o))
        .cloned()
        .collect();
    for o in &mut out {
        rename_namespaces(o, &sel.namespace_map);
    }
    out.sort_by_cached_key(|o| {
        let (group, kind) = group_kind(o);
        (
            rank(&group, &kind),
            namespace_of(o).unwrap_or_default(),
            group,
            kind,
            name_of(o),
        )
    });
    out
}

/// Moves an object to its new namespace, along with what names the namespace inside it: a
/// Namespace's own name and the subjects of role bindings.
fn rename_namespaces(obj: &mut Value, map: &BTreeMap<String, String>) {
    if map.is_empty() {
        return;
    }
    let (group, kind) = group_kind(obj);
    let rename = |v: &mut Value| {
        if let Some(new) = v.as_str().and_then(|old| map.get(old)) {
            *v = Value::String(new.clone());
        }
    };
    let meta = &mut obj["metadata"];
    if meta.get("namespace").is_some() {
        rename(&mut meta["namespace"]);
    }
    if group.is_empty() && kind == "Namespace" {
        rename(&mut meta["name"]);
    }
    if group == "rbac.authorization.k8s.io"
        && kind.ends_with("Binding")
        && let Some(subjects) = obj["subjects"].as_array_mut()
    {
        for s in subjects {
            if s.get("namespace").is_some() {
                rename(&mut s["namespace"]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(api: &str, kind: &str, ns: Option<&str>, name: &str) -> Value {
        let mut o = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}});
        if let Some(ns) = ns {
            o["metadata"]["namespace"] = json!(ns);
        }
        o
    }

    fn crd(group: &str, kind: &str) -> Value {
        let mut o = obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            &format!("{}s.{group}", kind.to_lowercase()),
        );
        o["spec"] = json!({"group": group, "names": {"kind": kind}});
        o
    }

    fn names(v: &[Value]) -> Vec<String> {
        v.iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    fn cluster() -> Vec<Value> {
        vec![
            obj("apps/v1", "Deployment", Some("shop"), "web"),
            obj("v1", "Service", Some("shop"), "web"),
            obj("example.com/v1", "Widget", Some("shop"), "w1"),
            obj("v1", "Secret", Some("shop"), "db"),
            obj("v1", "ConfigMap", Some("other"), "x"),
            obj(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                None,
                "hook",
            ),
            obj(
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                None,
                "reader",
            ),
            obj("v1", "Namespace", None, "other"),
            obj("v1", "Namespace", None, "shop"),
            crd("example.com", "Widget"),
            crd("other.io", "Gadget"),
        ]
    }

    #[test]
    fn definitions_and_namespaces_come_first_webhooks_last() {
        let all = select_and_order(cluster(), &Selection::default());
        assert_eq!(
            names(&all),
            [
                "CustomResourceDefinition/gadgets.other.io",
                "CustomResourceDefinition/widgets.example.com",
                "Namespace/other",
                "Namespace/shop",
                "ClusterRole/reader",
                "Secret/db",
                "ConfigMap/x",
                "Service/web",
                "Deployment/web",
                "Widget/w1",
                "ValidatingWebhookConfiguration/hook",
            ]
        );
    }

    #[test]
    fn a_namespace_brings_its_namespace_object_and_the_definitions_it_needs() {
        let sel = Selection {
            namespaces: vec!["shop".into()],
            exclude_secrets: true,
            ..Default::default()
        };
        assert_eq!(
            names(&select_and_order(cluster(), &sel)),
            [
                "CustomResourceDefinition/widgets.example.com",
                "Namespace/shop",
                "Service/web",
                "Deployment/web",
                "Widget/w1",
            ]
        );
    }

    #[test]
    fn kinds_filter_case_insensitively_and_by_group() {
        let sel = Selection {
            kinds: vec!["deployment".into(), "widget.example.com".into()],
            ..Default::default()
        };
        assert_eq!(
            names(&select_and_order(cluster(), &sel)),
            [
                "CustomResourceDefinition/widgets.example.com",
                "Namespace/shop",
                "Deployment/web",
                "Widget/w1",
            ]
        );
    }

    #[test]
    fn namespaces_are_renamed_everywhere_they_are_named() {
        let mut binding = obj(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some("shop"),
            "b",
        );
        binding["subjects"] =
            json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "shop"}]);
        let objects = vec![binding, obj("v1", "Namespace", None, "shop")];
        let sel = Selection {
            namespace_map: [("shop".to_string(), "shop-copy".to_string())].into(),
            ..Default::default()
        };
        let out = select_and_order(objects, &sel);
        assert_eq!(out[0]["metadata"]["name"], "shop-copy");
        assert_eq!(out[1]["metadata"]["namespace"], "shop-copy");
        assert_eq!(out[1]["subjects"][0]["namespace"], "shop-copy");
    }
}
