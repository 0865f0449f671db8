//! Resource export through API discovery, against the in-process **fake** API server
//! (tests/src/fake_kube.rs): no real API server can run on the test machines. It serves the
//! discovery documents, paged lists and list items (without apiVersion and kind for built-in
//! types) in the format kube-apiserver 1.33 does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kairn_e2e::fake_discovery::ResourceDef;
use kairn_e2e::fake_kube::FakeKube;
use node_agent::export::{ExportFilter, export};
use serde_json::{Value, json};

fn client(kube: &FakeKube) -> kube::Client {
    node_agent::export::export_client(kube::Config::new(kube.url().parse().unwrap())).unwrap()
}

fn populate(kube: &FakeKube) {
    kube.create(
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    kube.create(
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}),
    );
    for i in 0..1203 {
        kube.create(
            "/api/v1/namespaces/shop/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": format!("cm-{i:04}"), "labels": {"app": if i % 2 == 0 { "web" } else { "db" }}},
                   "data": {"i": i.to_string()}}),
        );
    }
    kube.create("/api/v1/namespaces/other/configmaps", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"app": "web"}}}));
    kube.create("/api/v1/namespaces/shop/secrets", json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "db"}, "data": {"p": "eA=="}}));
    kube.create("/apis/apps/v1/namespaces/shop/deployments", json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}}));
    kube.create(
        "/api/v1/namespaces/shop/events",
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"}}),
    );
    kube.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}}));
    // A custom resource and its definition.
    kube.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}}));
    kube.serve_resource(ResourceDef::new(
        "example.com",
        "v1",
        "widgets",
        "Widget",
        true,
    ));
    kube.create("/apis/example.com/v1/namespaces/shop/widgets", json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}));
    // An aggregated API whose service is down: its group is listed, its discovery document
    // fails; and another whose discovery works but whose list fails.
    kube.serve_resource(ResourceDef::new(
        "custom.metrics.k8s.io",
        "v1beta2",
        "pods",
        "MetricValueList",
        true,
    ));
    kube.fail_path("/apis/custom.metrics.k8s.io/v1beta2", 503);
    // A CRD under a *.k8s.io group, as Gateway API's are.
    kube.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
        "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
                 "names": {"kind": "HTTPRoute", "plural": "httproutes", "singular": "httproute", "listKind": "HTTPRouteList"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}}));
    kube.serve_resource(ResourceDef::new(
        "gateway.networking.k8s.io",
        "v1",
        "httproutes",
        "HTTPRoute",
        true,
    ));
    kube.create("/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes", json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web", "labels": {"app": "web"}}}));
    kube.serve_resource(ResourceDef::new(
        "broken.example.com",
        "v1",
        "things",
        "Thing",
        true,
    ));
    kube.fail_path("/apis/broken.example.com/v1/things", 503);
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
async fn fake_api_server_export_walks_discovery_pages_lists_and_reports_what_fails() {
    let kube = FakeKube::start();
    populate(&kube);
    let client = client(&kube);
    let all = export(&client, &ExportFilter::default()).await.unwrap();
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
