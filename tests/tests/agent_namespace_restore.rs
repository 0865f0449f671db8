//! A namespace back in one step, on the **real** kube-apiserver: a NamespaceRestore applies the
//! backed-up configuration and PVCs, fills each PVC from its snapshot through a mount pod, and
//! only then creates the workloads; in place after the namespace was deleted, and again under
//! a new name. Its own test binary: the leading agent carries out NamespaceRestores, so no
//! other test's agent may lead here.
//!
//! There is no kubelet, scheduler or controller manager: the test plays the kubelet and
//! scheduler for the mount pods, the PV controller (binding each new PVC to a new, empty
//! volume), the StatefulSet controller (its pods) and the namespace controller (emptying a
//! deleted namespace), hence the name.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kairn_e2e::agent::{Agent, Cluster, KAIRN_API, deploy_file, is_final, kairn_object};
use kairn_e2e::kubelet::{Kubelet, mount_pods};
use kairn_e2e::{assert_same, scan, write_volume};
use serde_json::{Value, json};

/// The objects compared before and after: (path under the namespace, name).
const OBJECTS: &[&str] = &[
    "api/v1/configmaps/settings",
    "api/v1/secrets/creds",
    "api/v1/services/web",
    "api/v1/persistentvolumeclaims/data-db-0",
    "api/v1/persistentvolumeclaims/data-db-1",
    "apis/apps/v1/deployments/web",
    "apis/apps/v1/statefulsets/db",
    "apis/test.kairn.dev/v1/widgets/w1",
];
/// What the restore must not create before every volume holds its data.
const WORKLOADS: &[&str] = &[
    "apis/apps/v1/deployments/web",
    "apis/apps/v1/statefulsets/db",
    "api/v1/services/web",
    "apis/test.kairn.dev/v1/widgets/w1",
];

fn path(ns: &str, object: &str) -> String {
    let (prefix, rest) = object.split_at(object.find("/v1/").unwrap() + 4);
    format!("/{prefix}namespaces/{ns}/{rest}")
}

/// An object as a user wrote it: what the cluster filled in, and the restore's label, taken out.
fn normalized(mut obj: Value) -> Value {
    engine::manifests::normalize::normalize(&mut obj, false);
    let meta = obj["metadata"].as_object_mut().unwrap();
    meta.remove("namespace");
    if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
        labels.remove("kairn.dev/restored-by");
        if labels.is_empty() {
            meta.remove("labels");
        }
    }
    obj
}

/// The objects of [`OBJECTS`] that `ns` holds, normalized.
fn objects(c: &Cluster, ns: &str) -> BTreeMap<&'static str, Value> {
    OBJECTS
        .iter()
        .filter_map(|o| Some((*o, normalized(c.get(&path(ns, o))?))))
        .collect()
}

fn set_up_shop(c: &Cluster, ns: &str) -> BTreeMap<String, tempfile::TempDir> {
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.kairn.dev"},
        "spec": {"group": "test.kairn.dev", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}}}]}});
    c.apply_new(&crd);
    c.plane.kubectl_ok(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.test.kairn.dev",
    ]);
    c.apply_new(&json!({"apiVersion": "test.kairn.dev/v1", "kind": "Widget",
        "metadata": {"name": "w1", "namespace": ns}, "spec": {"size": 3}}));
    c.apply_new(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": ns}, "data": {"mode": "fast"}}));
    c.apply_new(&json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": ns}, "stringData": {"password": "s3cret"}}));
    c.apply_new(&json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}));
    let template = |app: &str| {
        json!({"metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": app, "image": "nginx:1",
            "envFrom": [{"configMapRef": {"name": "settings"}}]}]}})
    };
    c.apply_new(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": template("web")}}));
    let claim = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}}}});
    let sts = c.apply_new(&json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": ns},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": template("db"), "volumeClaimTemplates": [claim]}}));
    // The StatefulSet controller's part: a PVC and a pod per replica, the pods its own.
    let owner = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
        "uid": sts["metadata"]["uid"], "controller": true});
    let mut disks = BTreeMap::new();
    for (i, seed) in [(0, 81), (1, 82)] {
        let mount = c.pvc_with_pod(ns, &format!("data-db-{i}"), &format!("db-{i}"), "Running");
        let disk = tempfile::tempdir().unwrap();
        write_volume(disk.path(), seed, 12);
        c.bind(disk.path(), &mount);
        let owned = json!({"metadata": {"ownerReferences": [owner]}});
        c.patch(Some(ns), &format!("pod/db-{i}"), &owned, false);
        disks.insert(format!("data-db-{i}"), disk);
    }
    disks
}

/// The namespace controller's part of `kubectl delete namespace`: everything in it deleted,
/// then the namespace finalized. The pods' and PVCs' own controllers are missing too: the pods
/// are deleted at once and the PVCs' protection finalizer removed.
fn delete_namespace(c: &Cluster, ns: &str) {
    let kubectl = |args: &[&str]| c.plane.kubectl_ok(args);
    kubectl(&[
        "delete",
        "pods",
        "--all",
        "-n",
        ns,
        "--grace-period=0",
        "--force",
    ]);
    for pvc in c.list(&format!("/api/v1/namespaces/{ns}/persistentvolumeclaims")) {
        let name = pvc["metadata"]["name"].as_str().unwrap();
        let unprotect = json!({"metadata": {"finalizers": null}});
        c.patch(Some(ns), &format!("pvc/{name}"), &unprotect, false);
    }
    let kinds = "deployments,statefulsets,services,configmaps,secrets,serviceaccounts,\
                 persistentvolumeclaims,widgets.test.kairn.dev,volumebackups.kairn.dev";
    kubectl(&["delete", kinds, "--all", "-n", ns, "--wait=false"]);
    kubectl(&["delete", "namespace", ns, "--wait=false"]);
    let mut namespace = c.get(&format!("/api/v1/namespaces/{ns}")).unwrap();
    namespace["spec"]["finalizers"] = json!([]);
    let finalize = format!("/api/v1/namespaces/{ns}/finalize");
    let args = ["replace", "--raw", &finalize, "-f", "-"];
    let out = c
        .plane
        .kubectl_with_stdin(&args, Some(&namespace.to_string()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the namespace stays", || {
        c.get(&format!("/api/v1/namespaces/{ns}")).is_none()
    });
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(90), "{what}");
        std::thread::sleep(Duration::from_millis(150));
    }
}

fn restore_status(c: &Cluster, name: &str) -> Value {
    let found = c
        .get(&format!("{KAIRN_API}/namespacerestores/{name}"))
        .unwrap();
    found["status"].clone()
}

/// Runs NamespaceRestore `name` with `spec` into namespace `target`, holding the PV controller
/// back until the restore waits on its volumes, and checks that meanwhile no workload exists.
/// Returns the final status.
fn restore(
    c: &Cluster,
    agent: &mut Agent,
    kubelet: &Kubelet,
    name: &str,
    spec: Value,
    target: &str,
) -> Value {
    kubelet.bind_claims.store(false, Ordering::Relaxed);
    c.apply_new(&kairn_object("namespacerestores", None, name, spec));
    wait_until("the restore never reached its volumes", || {
        agent.assert_running();
        restore_status(c, name)["stage"] == "Volumes"
    });
    let claims = |i| {
        path(
            target,
            &format!("api/v1/persistentvolumeclaims/data-db-{i}"),
        )
    };
    assert!(c.get(&claims(0)).is_some() && c.get(&claims(1)).is_some());
    assert!(c.get(&path(target, "api/v1/configmaps/settings")).is_some());
    // Several resyncs while the PVCs cannot be mounted: the workloads wait.
    std::thread::sleep(Duration::from_secs(2));
    let st = restore_status(c, name);
    assert_eq!(st["stage"], "Volumes", "{st:#}");
    // Each volume says why it waits.
    for v in st["volumes"].as_array().unwrap() {
        let says_why = v["message"].as_str().is_some_and(|m| m.contains("mount"));
        let vrs = c.list(&format!(
            "{KAIRN_API}/namespaces/kairn-system/volumerestores"
        ));
        assert!(says_why, "{st:#}\n{vrs:#?}\n{}", agent.logs());
    }
    for w in WORKLOADS {
        assert!(
            c.get(&path(target, w)).is_none(),
            "{w} created before the volumes: {st:#}"
        );
    }
    kubelet.bind_claims.store(true, Ordering::Relaxed);
    let start = Instant::now();
    loop {
        let st = restore_status(c, name);
        if is_final(&st) {
            return st;
        }
        agent.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "stuck: {st:#}\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every volume restore finished no later than any workload was created.
fn assert_workloads_after_volumes(c: &Cluster, target: &str, st: &Value) {
    let volumes = st["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 2, "{st:#}");
    let mut last_volume = String::new();
    for v in volumes {
        assert_eq!(v["phase"], "Completed", "{st:#}");
        let vr = v["volumeRestore"].as_str().unwrap();
        let found = c.status("kairn-system", "volumerestores", vr);
        last_volume = last_volume.max(found["finished"].as_str().unwrap().to_string());
    }
    for w in WORKLOADS {
        // The widget is left out of the mapped restore.
        let Some(obj) = c.get(&path(target, w)) else {
            continue;
        };
        let created = obj["metadata"]["creationTimestamp"].as_str().unwrap();
        assert!(
            created >= last_volume.as_str(),
            "{w} created {created}, volumes done {last_volume}"
        );
    }
}

/// Each PVC's files as backed up, scanned once: a scan reads them, which moves their atime.
type Volumes = BTreeMap<String, BTreeMap<std::path::PathBuf, kairn_e2e::Entry>>;

fn assert_volumes(kubelet: &Kubelet, target: &str, expected: &Volumes) {
    for (pvc, files) in expected {
        let restored = kubelet.disk_of(target, pvc);
        std::fs::remove_dir_all(restored.join(".kairn-restored")).unwrap();
        assert_same(files, &scan(&restored));
    }
}

#[test]
fn no_kubelet_a_namespace_is_restored_in_place_and_under_a_new_name_workloads_after_volumes() {
    let Some(c) = Cluster::new() else { return };
    for file in ["rbac-manifests.yaml", "rbac-restore.yaml"] {
        c.plane
            .kubectl_ok(&["apply", "-f", deploy_file(file).to_str().unwrap()]);
    }
    let shop = c.namespace("shop");
    let disks = set_up_shop(&c, &shop);
    let before = objects(&c, &shop);
    assert_eq!(before.len(), OBJECTS.len());
    let mut agent = c.agent(&[("KAIRN_MOUNT_POD_IMAGE", "kairn-test/node-agent:mount")]);
    let backup = format!("{shop}-backup");
    let selector = json!({"matchLabels": {"kubernetes.io/metadata.name": shop}});
    c.apply_new(&kairn_object(
        "clusterbackups",
        None,
        &backup,
        json!({"namespaceSelector": selector, "manifests": {"namespaces": [shop]}}),
    ));
    wait_until("the cluster backup never finished", || {
        agent.assert_running();
        is_final(
            &c.get(&format!("{KAIRN_API}/clusterbackups/{backup}"))
                .unwrap()["status"],
        )
    });
    let cb = c
        .get(&format!("{KAIRN_API}/clusterbackups/{backup}"))
        .unwrap();
    assert_eq!(
        cb["status"]["phase"],
        "Completed",
        "{cb:#}\n{}",
        agent.logs()
    );
    let disks: Volumes = disks
        .iter()
        .map(|(pvc, d)| (pvc.clone(), scan(d.path())))
        .collect();

    delete_namespace(&c, &shop);
    let copy = format!("{shop}-copy");
    let provisioned = tempfile::tempdir().unwrap();
    let kubelet =
        Kubelet::new(&c, &[&shop, &copy], BTreeMap::new()).provisioning(provisioned.path());
    kubelet.during(|| {
        let in_place = json!({"clusterBackup": backup, "namespaces": [shop], "etcd": true});
        let st = restore(&c, &mut agent, &kubelet, &format!("{shop}-back"), in_place, &shop);
        assert_eq!(st["phase"], "Completed", "{st:#}\n{}", agent.logs());
        assert_eq!(st["objects"]["failed"], 0, "{st:#}");
        assert!(st["messages"].to_string().contains("no etcd snapshot"), "{st:#}");
        assert_workloads_after_volumes(&c, &shop, &st);
        assert_eq!(objects(&c, &shop), before);
        assert_volumes(&kubelet, &shop, &disks);

        // Again, from the newest complete backup of the series, beside the first.
        let mapped = json!({"series": backup, "namespaces": [shop],
            "namespaceMapping": {shop.clone(): copy.clone()}, "excludeKinds": ["widget.test.kairn.dev"]});
        let st = restore(&c, &mut agent, &kubelet, &format!("{shop}-copy"), mapped, &copy);
        assert_eq!(st["phase"], "Completed", "{st:#}\n{}", agent.logs());
        assert_eq!(st["clusterBackup"], backup.as_str());
        assert_workloads_after_volumes(&c, &copy, &st);
        let mut without_widget = before.clone();
        without_widget.remove("apis/test.kairn.dev/v1/widgets/w1");
        assert_eq!(objects(&c, &copy), without_widget);
        assert_volumes(&kubelet, &copy, &disks);
        wait_until("mount pods left behind", || {
            mount_pods(&c, &shop).is_empty() && mount_pods(&c, &copy).is_empty()
        });
    });
    let events = c.events("default");
    let completed = events
        .iter()
        .filter(|e| e["reason"] == "RestoreCompleted")
        .count();
    assert_eq!(completed, 2, "{events:#?}");
}
