//! Kubernetes manifests as a snapshot: objects as `kubectl get -o json` prints them (real
//! format, written here by hand: no API server runs in these tests) go in through
//! `repo backup --manifests`, come out as a tree (`ls`, `restore`) and as apply-ready YAML in
//! dependency order (`repo manifests`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use kairn_e2e::Cli;
use serde_json::{Value, json};

fn meta(name: &str, ns: Option<&str>, rv: u64) -> Value {
    let mut m = json!({
        "name": name, "uid": format!("uid-{name}"), "resourceVersion": rv.to_string(),
        "creationTimestamp": "2026-11-01T10:00:00Z",
        "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update"}],
    });
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    m
}

/// A small cluster, as `kubectl get ... -A -o json` lists it; `rv` moves every
/// resourceVersion, as time does on a real cluster without changing anything.
fn cluster(rv: u64) -> Value {
    let mut deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web", Some("shop"), rv),
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
        "status": {"replicas": 2, "readyReplicas": 2, "observedGeneration": rv}});
    deploy["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "3"});
    let mut owned = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("web-5d8f", Some("shop"), rv),
        "spec": {"replicas": 2}});
    owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web", "controller": true}]);
    let mut widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta("w1", Some("shop"), rv),
        "spec": {"size": 3}});
    widget["metadata"]["labels"] = json!({"team": "a"});
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("shop", None, rv), "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("other", None, rv)},
        deploy,
        owned,
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("web", Some("shop"), rv),
         "spec": {"clusterIP": "10.96.3.7", "clusterIPs": ["10.96.3.7"], "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta("db", Some("shop"), rv), "data": {"password": "aHVudGVyMg=="}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token", "metadata": meta("default-token", Some("shop"), rv), "data": {"token": "eHl6"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("kube-root-ca.crt", Some("shop"), rv), "data": {"ca.crt": "x"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("settings", Some("other"), rv), "data": {"mode": "fast"}},
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": meta("widgets.example.com", None, rv),
         "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                  "scope": "Namespaced", "versions": [{"name": "v1", "served": true, "storage": true,
                  "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}},
        widget,
    ]})
}

fn backup_manifests(cli: &Cli, objects: &Value) -> Value {
    let mut child = cli
        .cmd()
        .args(["--json", "backup", "--manifests", "-", "--cluster", "prod"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(objects.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn manifests_are_stored_as_a_tree_deduplicated_and_printed_in_apply_order() {
    let cli = Cli::init();
    let first = backup_manifests(&cli, &cluster(100));
    assert_eq!(first["stored"], 9, "{first:#}");
    let skipped: Vec<&str> = first["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["object"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        [
            "shop/apps/ReplicaSet/web-5d8f",
            "shop/core/ConfigMap/kube-root-ca.crt"
        ]
    );

    // Nothing but resourceVersions changed: no new data, only nothing.
    let second = backup_manifests(&cli, &cluster(200));
    assert_eq!(second["summary"]["data_blobs_new"], 0, "{second:#}");
    assert_eq!(second["summary"]["tree_blobs_new"], 0, "{second:#}");

    // A tree like any other.
    let id = second["snapshot"].as_str().unwrap();
    let ls = cli.ok(&["ls", &format!("{id}:/shop")]);
    for path in [
        "/shop/apps/Deployment/web.yaml",
        "/shop/core/Secret/db.yaml",
        "/shop/example.com/Widget/w1.yaml",
    ] {
        assert!(ls.contains(path), "{ls}");
    }
    let target = cli.dir.path().join("restored");
    cli.ok(&["restore", id, "--target", target.to_str().unwrap()]);
    let secret = target.join("shop/core/Secret/db.yaml");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let deploy = std::fs::read_to_string(target.join("shop/apps/Deployment/web.yaml")).unwrap();
    for gone in [
        "uid",
        "resourceVersion",
        "managedFields",
        "status",
        "creationTimestamp",
    ] {
        assert!(!deploy.contains(gone), "{gone} in {deploy}");
    }
    assert!(deploy.contains("nginx:1.27"), "{deploy}");

    // Apply-ready YAML for one namespace, renamed.
    let yaml = cli.ok(&[
        "manifests",
        "latest",
        "--namespace",
        "shop",
        "--map-namespace",
        "shop=shop-restore",
    ]);
    let docs: Vec<&str> = yaml.split("---\n").filter(|d| !d.is_empty()).collect();
    let kinds: Vec<String> = docs
        .iter()
        .map(|d| {
            let v: Value = serde_json::to_value(
                d.lines()
                    .find(|l| l.starts_with("kind: "))
                    .unwrap()
                    .trim_start_matches("kind: "),
            )
            .unwrap();
            v.as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "CustomResourceDefinition",
            "Namespace",
            "Secret",
            "Secret",
            "Service",
            "Deployment",
            "Widget"
        ]
    );
    assert!(yaml.contains("name: shop-restore"), "{yaml}");
    assert!(yaml.contains("namespace: shop-restore"), "{yaml}");
    assert!(!yaml.contains("namespace: shop\n"), "{yaml}");
    assert!(!yaml.contains("clusterIP"), "{yaml}");
    // The token Secret comes without the old cluster's token: the new one fills it in.
    assert!(
        yaml.contains("name: default-token") && !yaml.contains("eHl6"),
        "{yaml}"
    );
    assert!(
        !yaml.contains("settings"),
        "other namespaces stay out: {yaml}"
    );

    let no_secrets = cli.ok(&["manifests", id, "--exclude-secrets", "--kind", "secret"]);
    assert!(no_secrets.is_empty(), "{no_secrets}");
    let json = cli.json(&["manifests", id, "--kind", "Widget.example.com"]);
    assert_eq!(
        json.as_array().unwrap().len(),
        3,
        "CRD, namespace, widget: {json:#}"
    );
}
