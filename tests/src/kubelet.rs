//! What the missing control-plane parts would do, played by a thread of the test: the
//! scheduler and the kubelet for Kairn's mount pods, and, when asked, the PV controller that
//! binds each new PVC to a new volume. There is no kubelet, scheduler or controller manager
//! in these tests; the tests that use this say so in their names (`no_kubelet_`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::agent::Cluster;

/// The label selector of Kairn's mount pods.
pub const MOUNT_PODS: &str = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dkairn";

/// The mount pods of `ns`, terminating ones included.
pub fn mount_pods(c: &Cluster, ns: &str) -> Vec<Value> {
    c.list(&format!("/api/v1/namespaces/{ns}/pods?{MOUNT_PODS}"))
}

/// The scheduler, the kubelet and (with [`Kubelet::provisioning`]) the PV controller, for the
/// namespaces given.
pub struct Kubelet<'a> {
    c: &'a Cluster,
    namespaces: Vec<String>,
    /// The "disk" of each PV: what its CSI driver mounts.
    disks: Mutex<BTreeMap<String, PathBuf>>,
    /// Every mount pod seen, as first seen.
    pub seen: Mutex<Vec<Value>>,
    /// Set to end [`Kubelet::run`].
    pub stop: AtomicBool,
    /// Where new volumes' disks go, when it plays the PV controller.
    provision: Option<PathBuf>,
    /// While false, new PVCs stay unbound (the test holds the PV controller back).
    pub bind_claims: AtomicBool,
}

impl<'a> Kubelet<'a> {
    /// Plays the scheduler and kubelet for the mount pods of `namespaces`; `disks` gives each
    /// existing PV's files.
    pub fn new(c: &'a Cluster, namespaces: &[&str], disks: BTreeMap<String, PathBuf>) -> Self {
        Self {
            c,
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            disks: Mutex::new(disks),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            provision: None,
            bind_claims: AtomicBool::new(true),
        }
    }

    /// Also binds every new PVC of its namespaces to a new PV whose disk is an empty
    /// directory under `dir`.
    pub fn provisioning(mut self, dir: &Path) -> Self {
        self.provision = Some(dir.to_path_buf());
        self
    }

    /// The disk of the PV bound to `ns/pvc`.
    pub fn disk_of(&self, ns: &str, pvc: &str) -> PathBuf {
        let claim = self.c.get(&format!(
            "/api/v1/namespaces/{ns}/persistentvolumeclaims/{pvc}"
        ));
        let claim = claim.unwrap_or_else(|| panic!("no PVC {ns}/{pvc}"));
        let pv = claim["spec"]["volumeName"].as_str().unwrap();
        self.disks.lock().unwrap()[pv].clone()
    }

    /// Runs `test` while playing its parts on another thread, and stops even when `test`
    /// panics (a scoped thread left running would hang the test instead of failing it).
    pub fn during<T>(&self, test: impl FnOnce() -> T) -> T {
        std::thread::scope(|s| {
            s.spawn(|| self.run());
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(test));
            self.stop.store(true, Ordering::Relaxed);
            outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Runs until `stop` is set.
    pub fn run(&self) {
        let mut started = BTreeSet::new();
        while !self.stop.load(Ordering::Relaxed) {
            for ns in &self.namespaces {
                if self.provision.is_some() && self.bind_claims.load(Ordering::Relaxed) {
                    self.bind_new_claims(ns);
                }
                for pod in mount_pods(self.c, ns) {
                    self.handle(ns, &pod, &mut started);
                }
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn bind_new_claims(&self, ns: &str) {
        let Some(dir) = &self.provision else { return };
        let c = self.c;
        for pvc in c.list(&format!("/api/v1/namespaces/{ns}/persistentvolumeclaims")) {
            if pvc["spec"]["volumeName"].is_string() {
                continue;
            }
            let name = pvc["metadata"]["name"].as_str().unwrap();
            let pv = format!("pv-{}", pvc["metadata"]["uid"].as_str().unwrap());
            let disk = dir.join(&pv);
            std::fs::create_dir_all(&disk).unwrap();
            c.apply_new(&json!({
                "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                         "csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": pv},
                         "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                      "namespace": ns, "name": name,
                                      "uid": pvc["metadata"]["uid"]}}}));
            c.patch(
                None,
                &format!("pv/{pv}"),
                &json!({"status": {"phase": "Bound"}}),
                true,
            );
            let bind = json!({"spec": {"volumeName": pv}});
            c.patch(Some(ns), &format!("pvc/{name}"), &bind, false);
            let bound = json!({"status": {"phase": "Bound"}});
            c.patch(Some(ns), &format!("pvc/{name}"), &bound, true);
            self.disks.lock().unwrap().insert(pv, disk);
        }
    }

    fn handle(&self, ns: &str, pod: &Value, started: &mut BTreeSet<String>) {
        let c = self.c;
        let name = pod["metadata"]["name"].as_str().unwrap();
        let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            // The kubelet confirms a graceful deletion once the containers stopped.
            let args = [
                "delete",
                "pod",
                name,
                "-n",
                ns,
                "--grace-period=0",
                "--force",
            ];
            let _ = c.plane.kubectl(&args);
            return;
        }
        if started.contains(&uid) {
            return;
        }
        let claim = pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
            .as_str()
            .unwrap();
        let pvc = c
            .get(&format!(
                "/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}"
            ))
            .unwrap();
        // Not bound yet (the PV controller is held back): the scheduler waits.
        let Some(pv) = pvc["spec"]["volumeName"].as_str() else {
            return;
        };
        self.seen.lock().unwrap().push(pod.clone());
        if pod["spec"]["nodeName"].is_null() {
            c.apply_new(&json!({"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": c.node}}));
        }
        let mount = c.lay_out_volume(&uid, pv, false);
        let disk = self.disks.lock().unwrap()[pv].clone();
        c.bind(&disk, &mount);
        c.set_pod_phase(ns, name, "Running");
        started.insert(uid);
    }
}
