//! Disaster recovery into a new cluster, on **real** kube-apiservers: cluster A backs up a
//! namespace; cluster B (a second etcd and API server, with nothing of A's) gets Kairn and
//! the same repository, lists A's cluster backup as a synced resource and restores the
//! namespace from it with one NamespaceRestore.
//!
//! There is no kubelet, scheduler or controller manager: the test plays the kubelet for pods
//! and mount pods, and the PV controller, in both clusters (hence the name).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kairn_e2e::agent::{Cluster, KAIRN_API, deploy_file, is_final, kairn_object, other_cluster};
use kairn_e2e::kubelet::Kubelet;
use kairn_e2e::{assert_same, scan, write_volume};
use serde_json::{Value, json};

fn wait_for(what: &str, mut found: impl FnMut() -> Option<Value>) -> Value {
    let start = Instant::now();
    loop {
        if let Some(v) = found() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn cluster_backup(c: &Cluster, name: &str) -> Option<Value> {
    c.get(&format!("{KAIRN_API}/clusterbackups/{name}"))
}

#[test]
fn no_kubelet_a_new_cluster_lists_and_restores_a_cluster_backup_made_by_another_cluster() {
    let Some(a) = Cluster::new() else { return };
    let rbac = deploy_file("rbac-manifests.yaml");
    a.plane.kubectl_ok(&["apply", "-f", rbac.to_str().unwrap()]);
    let shop = a.namespace("shop");
    let data = a.pvc_with_pod(&shop, "data", "db-0", "Running");
    let disk = tempfile::tempdir().unwrap();
    write_volume(disk.path(), 91, 9);
    a.bind(disk.path(), &data);
    a.apply_new(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": shop}, "data": {"mode": "fast"}}));
    let mut agent_a = a.agent(&[("KAIRN_CLUSTER", "cluster-a")]);
    let name = format!("{shop}-dr");
    let selector = json!({"matchLabels": {"kubernetes.io/metadata.name": shop}});
    a.apply_new(&kairn_object(
        "clusterbackups",
        None,
        &name,
        json!({"namespaceSelector": selector, "manifests": {"namespaces": [shop]}}),
    ));
    let done = wait_for("cluster A's backup never finished", || {
        agent_a.assert_running();
        cluster_backup(&a, &name).filter(|cb| is_final(&cb["status"]))
    });
    assert_eq!(
        done["status"]["phase"],
        "Completed",
        "{done:#}\n{}",
        agent_a.logs()
    );
    let expected = scan(disk.path());
    agent_a.kill();
    let snapshots = a.cli.json(&["snapshots"]).as_array().unwrap().len();

    // Cluster B: Kairn installed, the same repository, nothing else.
    let b = a.sharing_repository_on(other_cluster());
    assert!(cluster_backup(&b, &name).is_none());
    let mut agent_b = b.agent(&[
        ("KAIRN_CLUSTER", "cluster-b"),
        ("KAIRN_REPO_SYNC_SECONDS", "1"),
        ("KAIRN_MOUNT_POD_IMAGE", "kairn-test/node-agent:mount"),
    ]);
    let synced = wait_for("cluster B never showed cluster A's backup", || {
        agent_b.assert_running();
        cluster_backup(&b, &name).filter(|cb| cb["status"]["phase"].is_string())
    });
    assert_eq!(
        synced["metadata"]["labels"]["kairn.dev/synced-from-repository"],
        "true"
    );
    assert_eq!(synced["status"]["phase"], "Completed", "{synced:#}");
    assert_eq!(synced["status"]["volumes"]["total"], 1, "{synced:#}");
    let listed = b.plane.kubectl_ok(&["get", "clusterbackups"]);
    assert!(
        listed.contains(&name) && listed.contains("Completed"),
        "{listed}"
    );

    // Read-only: its spec cannot be edited.
    let edit = [
        "patch",
        "clusterbackup",
        &name,
        "--type=merge",
        "-p",
        r#"{"spec":{"volumes":true}}"#,
    ];
    let out = b.plane.kubectl(&edit);
    assert!(!out.status.success(), "a synced object was edited");
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));

    // Without the optional restore role, the restore ends at once, saying what it lacks, and
    // fills no volume.
    let spec = json!({"clusterBackup": name, "namespaces": [shop]});
    b.apply_new(&kairn_object("namespacerestores", None, "early", spec));
    let early = || {
        b.get(&format!("{KAIRN_API}/namespacerestores/early"))
            .unwrap()
    };
    let start = Instant::now();
    let st = loop {
        let nsr = early();
        if is_final(&nsr["status"]) {
            break nsr["status"].clone();
        }
        let logs = agent_b.logs();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never ended: {nsr:#}\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(st["phase"], "PartiallyFailed", "{st:#}");
    assert!(
        st["failures"]
            .to_string()
            .contains("deploy/rbac-restore.yaml"),
        "{st:#}"
    );
    assert_eq!(st["volumes"][0]["phase"], "Failed", "{st:#}");
    assert!(st["volumes"][0]["volumeRestore"].is_null(), "{st:#}");
    assert!(b.get(&format!("/api/v1/namespaces/{shop}")).is_none());
    let restore_rbac = deploy_file("rbac-restore.yaml");
    b.plane
        .kubectl_ok(&["apply", "-f", restore_rbac.to_str().unwrap()]);

    let provisioned = tempfile::tempdir().unwrap();
    let kubelet = Kubelet::new(&b, &[&shop], BTreeMap::new()).provisioning(provisioned.path());
    kubelet.during(|| {
        let spec = json!({"clusterBackup": name, "namespaces": [shop]});
        b.apply_new(&kairn_object("namespacerestores", None, "back", spec));
        let st = wait_for("the restore never finished", || {
            agent_b.assert_running();
            let nsr = b.get(&format!("{KAIRN_API}/namespacerestores/back"))?;
            is_final(&nsr["status"]).then(|| nsr["status"].clone())
        });
        assert_eq!(st["phase"], "Completed", "{st:#}\n{}", agent_b.logs());
    });
    let settings = b
        .get(&format!("/api/v1/namespaces/{shop}/configmaps/settings"))
        .unwrap();
    assert_eq!(settings["data"]["mode"], "fast");
    let restored = kubelet.disk_of(&shop, "data");
    std::fs::remove_dir_all(restored.join(".kairn-restored")).unwrap();
    assert_same(&expected, &scan(&restored));

    // Deleting the synced object deletes no data.
    b.plane.kubectl_ok(&["delete", "clusterbackup", &name]);
    agent_b.kill();
    assert_eq!(
        a.cli.json(&["snapshots"]).as_array().unwrap().len(),
        snapshots
    );
}
