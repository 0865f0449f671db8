use super::*;
use engine::format::snapshot::{Group, Source};
use serde_json::json;

fn snap(
    time: &str,
    group: &str,
    series: &str,
    kind: SourceKind,
    pvc: Option<(&str, &str)>,
) -> Snapshot {
    serde_json::from_value::<Snapshot>(json!({
        "time": time, "host": "n1", "username": "root", "paths": ["/"],
        "tree": "00".repeat(32),
    }))
    .map(|mut s| {
        s.group = Some(Group {
            id: group.into(),
            series: series.into(),
        });
        s.source = Source {
            kind,
            namespace: pvc.map(|p| p.0.to_string()),
            pvc: pvc.map(|p| p.1.to_string()),
            ..Default::default()
        };
        s
    })
    .unwrap()
}

fn spec(v: Value) -> NamespaceRestoreSpec {
    serde_json::from_value(v).unwrap()
}

fn obj(api: &str, kind: &str, ns: Option<&str>, name: &str) -> Value {
    let mut o = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}});
    if let Some(ns) = ns {
        o["metadata"]["namespace"] = json!(ns);
    }
    o
}

fn repository() -> Vec<(String, Snapshot)> {
    let fs = SourceKind::Filesystem;
    vec![
        (
            "a1".into(),
            snap(
                "2026-11-01T02:00:00Z",
                "nightly-1",
                "nightly",
                fs,
                Some(("shop", "db")),
            ),
        ),
        (
            "a2".into(),
            snap(
                "2026-11-01T02:01:00Z",
                "nightly-1",
                "nightly",
                SourceKind::Manifests,
                None,
            ),
        ),
        (
            "b1".into(),
            snap(
                "2026-11-02T02:00:00Z",
                "nightly-2",
                "nightly",
                fs,
                Some(("shop", "db")),
            ),
        ),
        (
            "b0".into(),
            snap(
                "2026-11-02T01:59:00Z",
                "nightly-2",
                "nightly",
                fs,
                Some(("shop", "db")),
            ),
        ),
        (
            "b2".into(),
            snap(
                "2026-11-02T02:01:00Z",
                "nightly-2",
                "nightly",
                SourceKind::Manifests,
                None,
            ),
        ),
        (
            "b3".into(),
            snap(
                "2026-11-02T02:01:00Z",
                "nightly-2",
                "nightly",
                SourceKind::Etcd,
                None,
            ),
        ),
        (
            "c1".into(),
            snap(
                "2026-11-03T02:00:00Z",
                "nightly-3",
                "nightly",
                fs,
                Some(("shop", "db")),
            ),
        ),
    ]
}

#[test]
fn snapshots_group_by_cluster_backup_and_a_retried_volume_keeps_its_newest() {
    let g = groups(&repository());
    let ids: Vec<&str> = g.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["nightly-1", "nightly-2", "nightly-3"]);
    assert_eq!(g[1].volumes.len(), 1);
    assert_eq!(g[1].volumes[0].id, "b1");
    assert_eq!(g[1].manifests.as_deref(), Some("b2"));
    assert_eq!(g[1].etcd.as_deref(), Some("b3"));
}

#[test]
fn a_series_resolves_to_its_newest_complete_backup() {
    let g = groups(&repository());
    let by_series = spec(json!({"series": "nightly"}));
    // nightly-3 has no manifests: not complete.
    assert_eq!(
        choose(&g, &by_series, &BTreeSet::new()).unwrap().id,
        "nightly-2"
    );
    // The cluster says nightly-2 failed a volume: the one before.
    let failed = BTreeSet::from(["nightly-2".to_string()]);
    assert_eq!(choose(&g, &by_series, &failed).unwrap().id, "nightly-1");
    let named = spec(json!({"clusterBackup": "nightly-3"}));
    assert!(
        choose(&g, &named, &BTreeSet::new())
            .unwrap_err()
            .contains("no manifests")
    );
    let missing = spec(json!({"clusterBackup": "weekly-9"}));
    assert!(choose(&g, &missing, &BTreeSet::new()).is_err());
    let both = spec(json!({"clusterBackup": "nightly-1", "series": "nightly"}));
    assert!(
        choose(&g, &both, &BTreeSet::new())
            .unwrap_err()
            .contains("exactly one")
    );
}

fn backup_objects() -> Vec<Value> {
    let mut pvc = obj("v1", "PersistentVolumeClaim", Some("shop"), "db");
    pvc["spec"] = json!({"accessModes": ["ReadWriteOnce"]});
    vec![
        obj("apps/v1", "Deployment", Some("shop"), "web"),
        obj("v1", "Service", Some("shop"), "web"),
        obj("example.com/v1", "Widget", Some("shop"), "w"),
        obj("v1", "Secret", Some("shop"), "creds"),
        obj("v1", "ConfigMap", Some("shop"), "conf"),
        pvc,
        obj("v1", "PersistentVolume", None, "pv-1"),
        obj("v1", "Namespace", None, "shop"),
        obj("v1", "Namespace", None, "other"),
        obj("v1", "ConfigMap", Some("other"), "x"),
        obj("v1", "Pod", Some("shop"), "debug"),
    ]
}

fn names(objs: &[Value]) -> Vec<String> {
    objs.iter()
        .map(|o| {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or("-");
            format!(
                "{}/{ns}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn configuration_and_pvcs_come_before_the_volumes_and_workloads_after() {
    let g = groups(&repository());
    let s = spec(json!({"clusterBackup": "nightly-2", "namespaces": ["shop"],
        "namespaceMapping": {"shop": "shop-restored"}}));
    let p = plan(backup_objects(), &g[1], &s);
    assert_eq!(
        names(&p.configuration),
        [
            "Namespace/-/shop-restored",
            "Secret/shop-restored/creds",
            "ConfigMap/shop-restored/conf",
            "PersistentVolumeClaim/shop-restored/db"
        ]
    );
    assert_eq!(
        names(&p.workloads),
        [
            "Service/shop-restored/web",
            "Deployment/shop-restored/web",
            "Widget/shop-restored/w"
        ]
    );
    assert_eq!(
        p.volumes,
        [PlannedVolume {
            source_namespace: "shop".into(),
            namespace: "shop-restored".into(),
            pvc: "db".into(),
            snapshot: "b1".into()
        }]
    );
}

#[test]
fn kinds_and_secrets_filter_and_a_volume_without_its_pvc_is_left_out_with_a_reason() {
    let g = groups(&repository());
    let s = spec(json!({"clusterBackup": "nightly-2", "excludeSecrets": true,
        "excludeKinds": ["persistentvolumeclaim", "widget.example.com"]}));
    let p = plan(backup_objects(), &g[1], &s);
    let all = names(&p.configuration).join(" ") + &names(&p.workloads).join(" ");
    assert!(
        !all.contains("Secret") && !all.contains("Widget") && !all.contains("PersistentVolume")
    );
    assert!(all.contains("ConfigMap/other/x"), "{all}");
    assert!(p.volumes.is_empty());
    assert!(
        p.left_out
            .iter()
            .any(|m| m.starts_with("PersistentVolume pv-1")),
        "{:?}",
        p.left_out
    );
    assert!(
        p.left_out.iter().any(|m| m.contains("shop/db")),
        "{:?}",
        p.left_out
    );
    let no_volumes = spec(json!({"clusterBackup": "nightly-2", "volumes": false}));
    assert!(
        plan(backup_objects(), &g[1], &no_volumes)
            .volumes
            .is_empty()
    );
}
