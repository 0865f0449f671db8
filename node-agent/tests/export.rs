//! Resource export through API discovery, against a **real** kube-apiserver (tests/src/
//! control_plane.rs): its discovery documents, paged lists, and list items without apiVersion
//! and kind. The export runs under a ServiceAccount bound to `deploy/rbac-manifests.yaml` (list
//! only), through `kubectl proxy`, which plays the fault-injecting proxy: it refuses one
//! resource's list (`--reject-paths`), as a broken aggregated API's or a webhook's would fail.
//! An aggregated API whose service does not exist is a real APIService.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};

use kairn_e2e::agent::{deploy_file, kubeconfig_yaml};
use kairn_e2e::control_plane::{self, ControlPlane};
use node_agent::export::{ExportFilter, export};
use serde_json::{Value, json};

fn create(plane: &ControlPlane, obj: &Value) {
    let out = plane.kubectl_with_stdin(&["create", "-f", "-"], Some(&obj.to_string()));
    assert!(
        out.status.success(),
        "create {obj}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn crd(group: &str, kind: &str, plural: &str) -> Value {
    let mut metadata = json!({"name": format!("{plural}.{group}")});
    if group.ends_with(".k8s.io") {
        // The server protects *.k8s.io groups: a CRD there must say it is approved or not.
        metadata["annotations"] =
            json!({"api-approved.kubernetes.io": "unapproved, a test's stand-in"});
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(),
                           "listKind": format!("{kind}List")},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                   "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

fn populate(plane: &ControlPlane) {
    for ns in ["shop", "other"] {
        plane.kubectl_ok(&["create", "namespace", ns]);
    }
    let items: Vec<Value> = (0..1203)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": format!("cm-{i:04}"), "namespace": "shop",
                                "labels": {"app": if i % 2 == 0 { "web" } else { "db" }}},
                   "data": {"i": i.to_string()}})
        })
        .collect();
    create(
        plane,
        &json!({"apiVersion": "v1", "kind": "List", "items": items}),
    );
    create(
        plane,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other", "labels": {"app": "web"}}}),
    );
    create(
        plane,
        &json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "db", "namespace": "shop"}, "data": {"p": "eA=="}}),
    );
    create(
        plane,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}}),
    );
    create(
        plane,
        &json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "shop"},
        "involvedObject": {"kind": "ConfigMap", "name": "x", "namespace": "shop"}, "reason": "Test"}),
    );
    create(
        plane,
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}}),
    );
    create(plane, &crd("example.com", "Widget", "widgets"));
    create(
        plane,
        &crd("gateway.networking.k8s.io", "HTTPRoute", "httproutes"),
    );
    create(plane, &crd("broken.example.com", "Thing", "things"));
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    ]);
    create(
        plane,
        &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "shop"}, "spec": {"size": 3}}),
    );
    create(
        plane,
        &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}}}),
    );
    create(
        plane,
        &json!({"apiVersion": "broken.example.com/v1", "kind": "Thing", "metadata": {"name": "t", "namespace": "shop"}}),
    );
    // An aggregated API whose service is not there: its group is listed, its discovery fails.
    create(
        plane,
        &json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta2.custom.metrics.k8s.io"},
        "spec": {"group": "custom.metrics.k8s.io", "version": "v1beta2",
                 "service": {"name": "missing", "namespace": "default"},
                 "insecureSkipTLSVerify": true, "groupPriorityMinimum": 100,
                 "versionPriority": 100}}),
    );
}

/// `kubectl proxy` on a free port, as the manifests exporter's ServiceAccount, refusing the
/// list of `things.broken.example.com`.
struct Proxy {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn start(plane: &ControlPlane) -> Self {
        plane.kubectl_ok(&["create", "namespace", "exporter"]);
        plane.kubectl_ok(&["create", "serviceaccount", "exporter", "-n", "exporter"]);
        let yaml = std::fs::read_to_string(deploy_file("rbac-manifests.yaml"))
            .unwrap()
            .replace(
                "name: kairn-node-agent\n    namespace: kairn-system",
                "name: exporter\n    namespace: exporter",
            );
        let out = plane.kubectl_with_stdin(&["apply", "-f", "-"], Some(&yaml));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = plane.service_account_token("exporter", "exporter");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("exporter.kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(&plane.server, &plane.ca, &token),
        )
        .unwrap();
        let port = kairn_e2e::s3::free_port();
        let child = Command::new(control_plane::assets().join("kubectl"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "proxy",
                "--address",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args(["--reject-paths", "^/apis/broken.example.com/v1/.*things"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed().as_secs() < 30,
                "kubectl proxy did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(objects: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn real_apiserver_export_walks_discovery_pages_lists_and_reports_what_fails() {
    let plane = control_plane::shared();
    populate(plane);
    let proxy = Proxy::start(plane);
    let config = kube::Config::new(proxy.url.parse().unwrap());
    let client = node_agent::export::export_client(config).unwrap();
    let all = export(&client, &ExportFilter::default()).await.unwrap();
    println!("warnings: {:#?}", all.warnings);
    assert_eq!(all.warnings.len(), 2, "{:?}", all.warnings);
    assert!(
        all.warnings[0].contains("custom.metrics.k8s.io/v1beta2"),
        "{:?}",
        all.warnings
    );
    assert!(
        all.warnings[1].contains("things.broken.example.com"),
        "{:?}",
        all.warnings
    );
    // Paged: 1203 + 1 config maps arrive, each typed from discovery.
    let cms: Vec<&Value> = all
        .objects
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .filter(|o| matches!(o["metadata"]["namespace"].as_str(), Some("shop" | "other")))
        .collect();
    assert_eq!(cms.len(), 1204);
    assert!(cms.iter().all(|o| o["apiVersion"] == "v1"));
    let names_all = names(&all.objects);
    for want in [
        "ClusterRole reader",
        "Deployment web",
        "Widget w1",
        "Secret db",
        "Namespace shop",
        "CustomResourceDefinition widgets.example.com",
    ] {
        assert!(names_all.contains(&want.to_string()), "{want} missing");
    }
    assert!(
        !names_all.iter().any(|n| n.starts_with("Event ")),
        "events are not exported"
    );

    // One namespace, some kinds, a label selector, no secrets.
    let filter = ExportFilter {
        namespaces: vec!["shop".into()],
        kinds: vec![
            "configmaps".into(),
            "widget.example.com".into(),
            "Secret".into(),
        ],
        label_selector: Some("app=web".into()),
        exclude_secrets: true,
        include_status: false,
    };
    let some = export(&client, &filter).await.unwrap();
    let got = names(&some.objects);
    assert_eq!(
        got.iter().filter(|n| n.starts_with("ConfigMap ")).count(),
        602
    );
    assert!(!got.contains(&"ConfigMap x".to_string()), "other namespace");
    assert!(!got.iter().any(|n| n.starts_with("Secret ")));
    assert!(!got.contains(&"Deployment web".to_string()));
    assert!(!got.contains(&"ClusterRole reader".to_string()));
    // The selector leaves the widget out (it has no labels), so its CRD is not needed; the
    // namespace object is.
    assert!(got.contains(&"Namespace shop".to_string()));
    assert!(!got.contains(&"Namespace other".to_string()));
    assert!(
        !got.iter()
            .any(|n| n.starts_with("CustomResourceDefinition "))
    );

    // A kind filter alone still brings the definition (a *.k8s.io group too) and the namespace.
    let routes = export(
        &client,
        &ExportFilter {
            kinds: vec!["httproutes".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        names(&routes.objects),
        [
            "CustomResourceDefinition httproutes.gateway.networking.k8s.io",
            "HTTPRoute web",
            "Namespace shop"
        ]
    );

    let widgets = export(
        &client,
        &ExportFilter {
            namespaces: vec!["shop".into()],
            kinds: vec!["Widget".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        names(&widgets.objects),
        [
            "CustomResourceDefinition widgets.example.com",
            "Namespace shop",
            "Widget w1"
        ]
    );
}
