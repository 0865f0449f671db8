//! Mount pods on the **real** kube-apiserver: a VolumeBackup or VolumeRestore whose PVC no
//! running pod mounts gets a short-lived pod that mounts it, and says why it waits when it
//! cannot proceed.
//!
//! There is no kubelet and no scheduler here: a thread of the test plays both for the mount
//! pods of its namespaces (hence the `no_kubelet_` names). It binds each new mount pod to the
//! test's node (POST binding, as the scheduler does), lays out and bind-mounts its volume in the
//! kubelet directory, sets it Running, and finishes the deletion of those the agent deletes
//! (the kubelet's part of a graceful deletion).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kairn_e2e::agent::{Agent, Cluster, is_final};
use kairn_e2e::kubelet::{Kubelet, mount_pods};
use kairn_e2e::{assert_same, scan, write_volume};
use serde_json::{Value, json};

/// The mount pods' image: every agent of these tests (any may create a mount pod) sets it.
const IMAGE: &str = "kairn-test/node-agent:mount";

fn start_agent(c: &Cluster) -> Agent {
    c.agent(&[("KAIRN_MOUNT_POD_IMAGE", IMAGE)])
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what}");
        std::thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn no_kubelet_no_scheduler_an_unmounted_pvc_is_backed_up_and_restored_through_mount_pods() {
    let Some(c) = Cluster::new() else { return };
    let ns = c.namespace("cold");
    let (source, copy) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_volume(source.path(), 31, 20);
    std::fs::create_dir_all(source.path().join("conf/empty")).unwrap();
    let disks = BTreeMap::from([
        (c.bound_pvc(&ns, "data", false), source.path().to_path_buf()),
        (c.bound_pvc(&ns, "copy", false), copy.path().to_path_buf()),
    ]);
    let kubelet = Kubelet::new(&c, &[&ns], disks);
    let mut agent = start_agent(&c);
    kubelet.during(|| {
        // No pod mounts either PVC: a backup of one, then a restore into the other.
        c.create(&ns, "volumebackups", "cold-1", json!({"pvc": "data"}));
        let st = c.wait(&ns, "volumebackups", "cold-1", &mut agent, is_final);
        assert_eq!(st["phase"], "Completed", "{st}\n{}", agent.logs());
        assert_eq!(st["node"], c.node.as_str());
        assert_eq!(st["progress"]["filesDone"], 20, "{st}");
        assert!(st["waiting"].is_null(), "{st}");
        let spec = json!({"snapshot": "latest", "sourcePvc": "data", "target": {"pvc": "copy"}});
        c.create(&ns, "volumerestores", "warm-1", spec);
        let rs = c.wait(&ns, "volumerestores", "warm-1", &mut agent, is_final);
        assert_eq!(rs["phase"], "Completed", "{rs}\n{}", agent.logs());
        assert_eq!(rs["snapshotId"], st["snapshotId"]);
        // Deleted when their work ended (the test's kubelet finishing the deletion).
        wait_until("mount pods left behind", || mount_pods(&c, &ns).is_empty());
    });
    std::fs::remove_dir_all(copy.path().join(".kairn-restored")).unwrap();
    assert_same(&scan(source.path()), &scan(copy.path()));

    let seen = kubelet.seen.into_inner().unwrap();
    assert_eq!(seen.len(), 2, "one mount pod per resource: {seen:#?}");
    for (pod, kind, owner, read_only) in [
        (&seen[0], "VolumeBackup", "cold-1", true),
        (&seen[1], "VolumeRestore", "warm-1", false),
    ] {
        let meta = &pod["metadata"];
        assert_eq!(meta["labels"]["app.kubernetes.io/managed-by"], "kairn");
        let label = format!("kairn.dev/{}", kind.to_lowercase());
        assert_eq!(meta["labels"][label.as_str()], owner, "{pod}");
        assert_eq!(meta["ownerReferences"][0]["kind"], kind, "{pod}");
        assert_eq!(meta["ownerReferences"][0]["name"], owner, "{pod}");
        let spec = &pod["spec"];
        assert_eq!(spec["containers"][0]["image"], IMAGE);
        assert_eq!(spec["containers"][0]["command"][1], "mount-pod");
        let volume = &spec["volumes"][0]["persistentVolumeClaim"];
        let ro = volume["readOnly"].as_bool().unwrap_or(false);
        assert_eq!(ro, read_only, "{pod}");
        assert_eq!(spec["automountServiceAccountToken"], false);
    }
}

#[test]
fn a_backup_of_a_missing_or_unbound_pvc_says_why_within_a_resync() {
    let Some(c) = Cluster::new() else { return };
    let ns = c.namespace("typo");
    c.apply_new(&json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "unbound", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}}));
    let mut agent = start_agent(&c);
    let start = Instant::now();
    c.create(&ns, "volumebackups", "missing", json!({"pvc": "dbb"}));
    c.create(&ns, "volumebackups", "early", json!({"pvc": "unbound"}));
    let has_reason = |s: &Value| s["waiting"].is_string();
    let st = c.wait(&ns, "volumebackups", "missing", &mut agent, has_reason);
    let why = st["waiting"].as_str().unwrap();
    assert!(why.contains(&format!("PVC {ns}/dbb not found")), "{st}");
    let st = c.wait(&ns, "volumebackups", "early", &mut agent, has_reason);
    let why = st["waiting"].as_str().unwrap();
    assert!(why.contains("is not bound"), "{st}");
    // The agent resyncs every 0.3 s: a few resyncs at most, not a timeout.
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(mount_pods(&c, &ns).is_empty(), "nothing to mount");
    // Still New, and canceled as such.
    c.patch(
        Some(&ns),
        "volumebackup/early",
        &json!({"spec": {"cancel": true}}),
        false,
    );
    let st = c.wait(&ns, "volumebackups", "early", &mut agent, is_final);
    assert_eq!(st["phase"], "Canceled", "{st}");
}

/// Plays the scheduler that finds no node for a pod.
fn unschedulable(c: &Cluster, ns: &str, pod: &str) {
    let condition = json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient memory.",
        "lastTransitionTime": "2026-01-01T00:00:00Z"});
    let status = json!({"status": {"phase": "Pending", "conditions": [condition]}});
    c.patch(Some(ns), &format!("pod/{pod}"), &status, true);
}

fn uid(c: &Cluster, ns: &str, kind: &str, name: &str) -> String {
    let path = format!(
        "{}/namespaces/{ns}/{kind}/{name}",
        kairn_e2e::agent::KAIRN_API
    );
    c.get(&path).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn no_scheduler_an_unschedulable_mount_pod_says_why_and_goes_on_cancel_and_restart() {
    let Some(c) = Cluster::new() else { return };
    let ns = c.namespace("full");
    c.bound_pvc(&ns, "data", false);
    let mut agent = start_agent(&c);
    for name in ["stuck", "orphan"] {
        c.create(&ns, "volumebackups", name, json!({"pvc": "data"}));
    }
    let pod = |name: &str| format!("kairn-mount-{}", uid(&c, &ns, "volumebackups", name));
    let (stuck, orphan) = (pod("stuck"), pod("orphan"));
    wait_until("no mount pods", || mount_pods(&c, &ns).len() == 2);
    unschedulable(&c, &ns, &stuck);
    let st = c.wait(&ns, "volumebackups", "stuck", &mut agent, |s| {
        s["waiting"]
            .as_str()
            .is_some_and(|w| w.contains("cannot be scheduled"))
    });
    let why = st["waiting"].as_str().unwrap();
    assert!(
        why.contains(&stuck) && why.contains("Insufficient memory"),
        "{st}"
    );
    assert!(st["phase"].is_null() || st["phase"] == "New", "{st}");

    // Canceled: its mount pod goes (never scheduled, so deleted at once).
    c.patch(
        Some(&ns),
        "volumebackup/stuck",
        &json!({"spec": {"cancel": true}}),
        false,
    );
    let st = c.wait(&ns, "volumebackups", "stuck", &mut agent, is_final);
    assert_eq!(st["phase"], "Canceled", "{st}");
    let path = |pod: &str| format!("/api/v1/namespaces/{ns}/pods/{pod}");
    wait_until("the canceled backup's mount pod stays", || {
        c.get(&path(&stuck)).is_none()
    });

    // Its owner deleted while no agent runs (and no garbage collector here): the next agent
    // deletes it at start-up.
    agent.kill();
    c.plane
        .kubectl_ok(&["delete", "volumebackup", "orphan", "-n", &ns]);
    assert!(c.get(&path(&orphan)).is_some());
    let _agent = start_agent(&c);
    wait_until("the orphaned mount pod stays", || {
        c.get(&path(&orphan)).is_none()
    });
}

/// A nightly schedule must not skip a volume because nothing mounts it tonight (a scaled-down
/// StatefulSet): the leading agent creates the backup of every selected PVC of the cluster,
/// and a mount pod serves the one no pod mounts.
#[test]
fn no_kubelet_no_scheduler_a_schedule_backs_up_a_pvc_no_pod_mounts() {
    let Some(c) = Cluster::new() else { return };
    let ns = c.namespace("scaled-down");
    let env = format!("nightly-{}", c.node);
    c.patch(
        None,
        &format!("namespace/{ns}"),
        &json!({"metadata": {"labels": {"env": env}}}),
        false,
    );
    let disk = tempfile::tempdir().unwrap();
    write_volume(disk.path(), 51, 7);
    let disks = BTreeMap::from([(c.bound_pvc(&ns, "data", false), disk.path().to_path_buf())]);
    let kubelet = Kubelet::new(&c, &[&ns], disks);
    let mut agent = start_agent(&c);
    let schedule = format!("every-minute-{}", c.node);
    c.apply_new(&kairn_e2e::agent::kairn_object(
        "backupschedules",
        None,
        &schedule,
        json!({"schedule": "* * * * *", "namespaceSelector": {"matchLabels": {"env": env}}}),
    ));
    let path = format!(
        "{}/namespaces/{ns}/volumebackups?labelSelector=kairn.dev%2Fschedule%3D{schedule}",
        kairn_e2e::agent::KAIRN_API
    );
    kubelet.during(|| {
        let mut name = String::new();
        wait_until("no scheduled backup of the unmounted PVC", || {
            let made = c.list(&path);
            if let Some(b) = made.first() {
                name = b["metadata"]["name"].as_str().unwrap().to_string();
            }
            !name.is_empty()
        });
        let st = c.wait(&ns, "volumebackups", &name, &mut agent, is_final);
        assert_eq!(st["phase"], "Completed", "{st}\n{}", agent.logs());
        assert_eq!(st["progress"]["filesDone"], 7, "{st}");
        wait_until("mount pods left behind", || mount_pods(&c, &ns).is_empty());
    });
    // One mount pod per scheduled backup, never two: on a loaded machine the next minute's
    // run may have started too, with a mount pod of its own (or not yet).
    agent.terminate();
    let runs = c.list(&path).len();
    let seen = kubelet.seen.into_inner().unwrap().len();
    assert!(
        (1..=runs).contains(&seen),
        "{seen} mount pods for {runs} backups"
    );
}
