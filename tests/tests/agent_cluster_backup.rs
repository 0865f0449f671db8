//! A scheduled cluster backup by the node agent against a **real** kube-apiserver (see
//! node_agent.rs): volumes, a real etcd snapshot and the manifests, as one group in the
//! repository. Its own test binary, so its own control plane: any agent may claim a cluster
//! backup's etcd or manifests part, and the agents of other tests write to other repositories.

use std::time::{Duration, Instant};

use kairn_e2e::agent::{Cluster, KAIRN_API, is_final, kairn_object};
use kairn_e2e::write_volume;
use serde_json::json;

#[test]
fn a_scheduled_cluster_backup_groups_volumes_a_real_etcd_snapshot_and_manifests() {
    let Some(c) = Cluster::new() else { return };
    // The export of manifests needs the optional read-all role.
    let rbac = kairn_e2e::agent::deploy_file("rbac-manifests.yaml");
    c.plane.kubectl_ok(&["apply", "-f", rbac.to_str().unwrap()]);
    let shop = c.namespace("shop");
    let data = c.pvc_with_pod(&shop, "data", "db-0", "Running");
    write_volume(&data, 11, 3);
    c.apply_new(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": shop}, "data": {"mode": "fast"}}));
    c.apply_new(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": shop},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}}));
    // This node is a control-plane node: its agent may take the etcd snapshot.
    c.apply_new(&json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": c.node, "labels": {"node-role.kubernetes.io/control-plane": ""}}}));
    let work = tempfile::tempdir().unwrap();
    let etcd = kairn_e2e::etcd::Etcd::start("cp", &work.path().join("etcd"), None);
    let out = etcd.ctl(&["put", "/registry/kairn", "cluster-state"]);
    assert!(out.status.success());

    // Due once: at this very minute (UTC) of the day, so no second run can start mid-test.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let this_minute = format!("{} {} * * *", now / 60 % 60, now / 3600 % 24);
    c.apply_new(&kairn_object(
        "backupschedules",
        None,
        "cluster",
        json!({"schedule": this_minute,
               "etcd": {"endpoints": [etcd.endpoint]},
               "manifests": {"namespaces": [shop]},
               "retention": {"keepLast": 1}}),
    ));
    // An earlier run of the same schedule, of two snapshots: retention forgets it whole.
    for part in ["etcd", "volume"] {
        let dir = work.path().join(part);
        write_volume(&dir, 70, 1);
        c.cli.ok(&[
            "backup",
            dir.to_str().unwrap(),
            "--group",
            "cluster-202601010000",
            "--series",
            "cluster",
            "--tag",
            "schedule:cluster",
        ]);
    }
    let mut agent = c.agent(&[]);
    let start = Instant::now();
    let (name, status) = loop {
        let done = c
            .list(&format!("{KAIRN_API}/clusterbackups"))
            .into_iter()
            .find(|cb| is_final(&cb["status"]));
        if let Some(cb) = done {
            break (
                cb["metadata"]["name"].as_str().unwrap().to_string(),
                cb["status"].clone(),
            );
        }
        agent.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no cluster backup finished: {:?}\n{}",
            c.list(&format!("{KAIRN_API}/clusterbackups")),
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(name.starts_with("cluster-"), "{name}");
    assert_eq!(status["phase"], "Completed", "{status:#}");
    assert_eq!(status["etcd"]["phase"], "Completed", "{status:#}");
    assert_eq!(status["manifests"]["phase"], "Completed", "{status:#}");
    assert_eq!(
        status["volumes"],
        json!({"total": 1, "completed": 1, "failed": 0})
    );
    // Its member carries its label and names it as owner.
    let members = c.list(&format!(
        "{KAIRN_API}/namespaces/{shop}/volumebackups?labelSelector=kairn.dev/cluster-backup%3D{name}"
    ));
    assert_eq!(members.len(), 1, "{members:?}");
    let owner = &members[0]["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("ClusterBackup"), Some(name.as_str())),
        "{owner}"
    );

    let start = Instant::now();
    while c
        .cli
        .json(&["snapshots", "--group"])
        .as_array()
        .unwrap()
        .len()
        > 1
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "retention did not forget the earlier run: {}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.kill();
    assert_eq!(c.cli.json(&["snapshots"]).as_array().unwrap().len(), 3);

    // In the repository: one cluster backup of three snapshots, the etcd one restorable.
    let groups = c.cli.json(&["snapshots", "--group", &name]);
    let group = &groups[0];
    assert_eq!(group["series"], "cluster");
    assert_eq!(
        (
            group["etcd"].as_u64(),
            group["manifests"].as_u64(),
            group["volumes"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{group:#}"
    );
    let yaml = c.cli.ok(&[
        "manifests",
        status["manifests"]["snapshotId"].as_str().unwrap(),
    ]);
    for want in [
        "kind: Namespace",
        "kind: ConfigMap",
        "kind: Deployment",
        "mode: fast",
    ] {
        assert!(yaml.contains(want), "{want} missing from\n{yaml}");
    }
    let target = work.path().join("etcd-restore");
    c.cli.ok(&[
        "restore",
        status["etcd"]["snapshotId"].as_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]);
    let peer = kairn_e2e::s3::free_port();
    let rebuilt = work.path().join("rebuilt");
    let out =
        kairn_e2e::etcd::restore_snapshot(&target.join("etcd-snapshot.db"), &rebuilt, "r", peer);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(etcd);
    let member = kairn_e2e::etcd::Etcd::start_with_peer("r", &rebuilt, None, peer);
    assert_eq!(
        member.get_prefix("/registry/")["/registry/kairn"],
        "cluster-state"
    );
}
