//! The images member of a ClusterBackup, by the node agent against a **real** kube-apiserver
//! and Debian's docker-registry with basic auth. There is no kubelet: the test plays it,
//! writing the pods' status with the digests a kubelet would report. Its own test binary, so
//! its own control plane (any agent may claim a cluster backup's images part).

use std::time::{Duration, Instant};

use base64::Engine as _;
use kairn_e2e::agent::{Cluster, KAIRN_API, is_final, kairn_object};
use kairn_e2e::noise;
use kairn_e2e::registry::{Layout, Registry};
use serde_json::{Value, json};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A pod running `image` whose status (written as its kubelet would) names `digest`.
fn running_pod(c: &Cluster, ns: &str, name: &str, image: &str, image_id: &str) {
    c.apply_new(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": c.node, "imagePullSecrets": [{"name": "regcred"}],
                 "containers": [{"name": "app", "image": image}]}}));
    c.patch(
        Some(ns),
        &format!("pod/{name}"),
        &json!({"status": {"phase": "Running", "containerStatuses": [{"name": "app",
            "image": image, "imageID": image_id, "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}),
        true,
    );
}

fn pull_secret(c: &Cluster, ns: &str, host: &str, creds: &str) {
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let config = json!({"auths": {host: {"auth": b64(creds.as_bytes())}}});
    c.apply_new(&json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "regcred", "namespace": ns},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": b64(config.to_string().as_bytes())}}));
}

#[test]
fn no_kubelet_cluster_backup_stores_the_digests_its_pods_run_with_their_pull_secrets() {
    let Some(c) = Cluster::new() else { return };
    for file in [
        "rbac-images.yaml",
        "rbac-manifests.yaml",
        "rbac-restore.yaml",
    ] {
        let rbac = kairn_e2e::agent::deploy_file(file);
        c.plane.kubectl_ok(&["apply", "-f", rbac.to_str().unwrap()]);
    }
    let work = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&work.path().join("layout"));
    let base = layout.layer(&[("lib/base", &noise(21, 1 << 20))]);
    let web = layout.manifest(
        &[base.clone(), layout.layer(&[("bin/web", &noise(22, 9000))])],
        "amd64",
    );
    let job = layout.manifest(
        &[base.clone(), layout.layer(&[("bin/job", &noise(23, 9000))])],
        "amd64",
    );
    let other = layout.manifest(
        &[base, layout.layer(&[("bin/x", &noise(24, 9000))])],
        "amd64",
    );
    layout.tag(&web, "web", MANIFEST);
    layout.tag(&job, "job", MANIFEST);
    layout.tag(&other, "other", MANIFEST);
    let registry = Registry::start(Some("puller:pull-secret"));
    registry.push(&layout.dir, "web", "shop/web:v1");
    registry.push(&layout.dir, "job", "shop/report:v1");
    registry.push(&layout.dir, "other", "else/app:v1");
    let h = &registry.host;

    let shop = c.namespace("shop");
    pull_secret(&c, &shop, h, "puller:pull-secret");
    running_pod(
        &c,
        &shop,
        "web-0",
        &format!("{h}/shop/web:v1"),
        &format!("{h}/shop/web@{}", web.digest),
    );
    // A workload scaled to zero: only its template names its image.
    c.apply_new(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "report", "namespace": shop},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "report"}},
                 "template": {"metadata": {"labels": {"app": "report"}},
                              "spec": {"imagePullSecrets": [{"name": "regcred"}],
                                       "containers": [{"name": "r", "image": format!("{h}/shop/report:v1")}]}}}}));
    // Another namespace, not chosen: its image stays out.
    let elsewhere = c.namespace("else");
    pull_secret(&c, &elsewhere, h, "puller:pull-secret");
    running_pod(
        &c,
        &elsewhere,
        "x-0",
        &format!("{h}/else/app:v1"),
        &format!("{h}/else/app@{}", other.digest),
    );

    c.apply_new(&kairn_object(
        "clusterbackups",
        None,
        "with-images",
        json!({"volumes": false,
               "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": shop}},
               "manifests": {"namespaces": [shop]},
               "images": {"pullSecrets": true}}),
    ));
    let mut agent = c.agent(&[]);
    let start = Instant::now();
    let status: Value = loop {
        let st = c
            .get(&format!("{KAIRN_API}/clusterbackups/with-images"))
            .map(|cb| cb["status"].clone())
            .unwrap_or_default();
        if is_final(&st) {
            break st;
        }
        agent.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "stuck at {st}:\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(150));
    };
    assert_eq!(status["phase"], "Completed", "{status:#}\n{}", agent.logs());
    assert_eq!(status["images"]["phase"], "Completed", "{status:#}");
    let snapshot = status["images"]["snapshotId"].as_str().unwrap();
    let listed = c.cli.json(&["images", "list", snapshot]);
    let mut stored: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["reference"].as_str().unwrap().into(),
                i["digest"].as_str().unwrap().into(),
            )
        })
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            (format!("{h}/shop/report:v1"), job.digest.clone()),
            (format!("{h}/shop/web@{}", web.digest), web.digest.clone()),
        ],
        "the running digest, the scaled-down template, nothing of the other namespace"
    );
    let snaps = c.cli.json(&["snapshots"]);
    let snap = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == snapshot)
        .unwrap();
    assert_eq!(
        snap["group"]["id"], "with-images",
        "a member of the group: {snap}"
    );
}
