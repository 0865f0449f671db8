//! Pre and post hooks of a backup, run in the application's container through the exec API.
//! That needs a kubelet behind the API server, which the tests cannot run; so these tests talk
//! to the in-process **fake** API server (tests/src/fake_kube.rs), which serves the exec
//! endpoint itself by running the command on this machine. Every other agent test runs
//! against the real kube-apiserver (node_agent.rs).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use kairn_e2e::agent::{AgentSetup, BindMount, agent_command, can_mount};
use kairn_e2e::fake_kube::FakeKube;
use kairn_e2e::{Cli, write_volume};
use serde_json::{Value, json};

const NODE: &str = "node-a";
const VB: &str = "/apis/kairn.dev/v1alpha1/namespaces";

/// A cluster of one node as the agent sees it.
struct Cluster {
    kube: FakeKube,
    cli: Cli,
    kubelet: tempfile::TempDir,
    kubeconfig: PathBuf,
    mounts: std::sync::Mutex<Vec<BindMount>>,
}

impl Cluster {
    /// `None` when this process may not mount (the volume is bind-mounted, as the agent only
    /// touches a mounted volume).
    fn new() -> Option<Self> {
        if !can_mount() {
            eprintln!("skipped: the agent tests bind-mount volumes as a kubelet does (needs root)");
            return None;
        }
        let kube = FakeKube::start();
        let cli = Cli::init();
        let kubeconfig = cli.dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kube.kubeconfig()).unwrap();
        Some(Self {
            kube,
            cli,
            kubelet: tempfile::tempdir().unwrap(),
            kubeconfig,
            mounts: Default::default(),
        })
    }

    /// A bound PVC and its PV, and a pod on `node` that mounts it; returns the volume's
    /// directory in the kubelet tree (a CSI volume's `mount`).
    fn pvc_with_pod(&self, ns: &str, pvc: &str, pod: &str, node: &str, phase: &str) -> PathBuf {
        let pv = format!("pv-{ns}-{pvc}");
        if self
            .kube
            .get(&format!("/api/v1/persistentvolumes/{pv}"))
            .is_none()
        {
            self.kube.create(
                "/api/v1/persistentvolumes",
                json!({"apiVersion": "v1", "kind": "PersistentVolume",
                       "metadata": {"name": pv},
                       "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                "volumeMode": "Filesystem",
                                "csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": pv},
                                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                             "namespace": ns, "name": pvc}},
                       "status": {"phase": "Bound"}}),
            );
            self.kube.create(
                &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                       "metadata": {"name": pvc},
                       "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": pv,
                                "resources": {"requests": {"storage": "1Gi"}}},
                       "status": {"phase": "Bound"}}),
            );
        }
        let created = self.kube.create(
            &format!("/api/v1/namespaces/{ns}/pods"),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": pod},
                   "spec": {"nodeName": node,
                            "containers": [{"name": "app", "image": "postgres:15"}],
                            "volumes": [
                                {"name": "config", "configMap": {"name": "app"}},
                                {"name": "data", "persistentVolumeClaim": {"claimName": pvc}}]},
                   "status": {"phase": phase}}),
        );
        let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
        let dir = self
            .kubelet
            .path()
            .join("pods")
            .join(&uid)
            .join("volumes/kubernetes.io~csi")
            .join(&pv);
        std::fs::create_dir_all(dir.join("mount")).unwrap();
        std::fs::write(
            dir.join("vol_data.json"),
            json!({"driverName": "hostpath.csi.k8s.io", "volumeHandle": pv}).to_string(),
        )
        .unwrap();
        let cm = self
            .kubelet
            .path()
            .join("pods")
            .join(&uid)
            .join("volumes/kubernetes.io~configmap/config");
        std::fs::create_dir_all(&cm).unwrap();
        let mount = dir.join("mount");
        self.mounts
            .lock()
            .unwrap()
            .push(BindMount::new(&mount, &mount));
        mount
    }

    fn agent(&self, extra_env: &[(&str, &str)]) -> Agent {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = self.cli.dir.path().join(format!("agent-{port}.log"));
        let mut cmd = agent_command(&AgentSetup {
            node: NODE,
            kubeconfig: &self.kubeconfig,
            cli: &self.cli,
            kubelet: self.kubelet.path(),
            port,
            log: &log,
        });
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Agent {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    fn create(&self, ns: &str, kind: &str, name: &str, spec: Value) {
        self.kube.create(
            &format!("{VB}/{ns}/{kind}"),
            json!({
            "apiVersion": "kairn.dev/v1alpha1",
            "kind": if kind == "volumebackups" { "VolumeBackup" } else { "VolumeRestore" },
            "metadata": {"name": name}, "spec": spec}),
        );
    }

    fn status(&self, ns: &str, kind: &str, name: &str) -> Value {
        self.kube.get(&format!("{VB}/{ns}/{kind}/{name}")).unwrap()["status"].clone()
    }

    /// Waits until `done(status)`, up to a minute, and returns the status.
    fn wait(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
        agent: &mut Agent,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let st = self.status(ns, kind, name);
            if done(&st) {
                return st;
            }
            if let Ok(Some(exit)) = agent.child.try_wait() {
                panic!("the agent exited ({exit}):\n{}", agent.logs());
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{kind}/{name} stuck at {st}:\n{}",
                agent.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn is_final(st: &Value) -> bool {
    matches!(
        st["phase"].as_str(),
        Some("Completed" | "PartiallyFailed" | "Failed" | "Canceled")
    )
}

struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn fake_api_server_hooks_run_in_the_pod_around_the_backup_and_follow_their_error_policy() {
    let Some(c) = Cluster::new() else { return };
    let volume = c.pvc_with_pod("shop", "db", "db-0", NODE, "Running");
    write_volume(&volume, 5, 3);
    let log = c.cli.dir.path().join("hook.log");
    let echo = |word: &str| json!(["sh", "-c", format!("echo {word} >> {}", log.display())]);
    // Hooks from the pod's annotations, the shape Velero users know.
    c.kube.patch(
        "/api/v1/namespaces/shop/pods/db-0",
        json!({"metadata": {"annotations": {
            "pre.hook.backup.kairn.dev/container": "app",
            "pre.hook.backup.kairn.dev/command": echo("pre").to_string(),
            "post.hook.backup.kairn.dev/command": echo("post").to_string(),
        }}}),
    );
    let mut agent = c.agent(&[]);
    c.create("shop", "volumebackups", "annotated", json!({"pvc": "db"}));
    let st = c.wait("shop", "volumebackups", "annotated", &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");
    let execs = c.kube.execs();
    assert_eq!(
        (execs[0].0.as_str(), execs[0].1.as_str()),
        ("shop/db-0", "app")
    );

    // A failing pre hook with onError Fail: no backup, Failed, and the post hook still runs.
    std::fs::remove_file(&log).unwrap();
    let before = c.cli.json(&["snapshots"]).as_array().unwrap().len();
    c.create(
        "shop",
        "volumebackups",
        "pre-fails",
        json!({"pvc": "db", "hooks": {
        "pre": [{"command": ["sh", "-c", "echo quiesce failed >&2; exit 3"], "onError": "Fail"}],
        "post": [{"command": echo("post")}]}}),
    );
    let st = c.wait("shop", "volumebackups", "pre-fails", &mut agent, is_final);
    assert_eq!(st["phase"], "Failed", "{st}");
    let why = st["errors"][0].as_str().unwrap();
    assert!(
        why.contains("pre hook") && why.contains("exit status 3") && why.contains("quiesce failed"),
        "{why}"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "post\n");
    assert_eq!(c.cli.json(&["snapshots"]).as_array().unwrap().len(), before);

    // onError Continue: the backup goes on, and the failure is reported.
    c.create(
        "shop",
        "volumebackups",
        "pre-tolerated",
        json!({"pvc": "db", "hooks": {
        "pre": [{"command": ["false"], "onError": "Continue"}]}}),
    );
    let st = c.wait(
        "shop",
        "volumebackups",
        "pre-tolerated",
        &mut agent,
        is_final,
    );
    assert_eq!(st["phase"], "PartiallyFailed", "{st}");
    assert!(st["snapshotId"].is_string());
    assert!(
        st["errors"][0]
            .as_str()
            .unwrap()
            .contains("pre hook `false`"),
        "{st}"
    );

    // A hook that outlives its timeout counts as failed.
    c.create(
        "shop",
        "volumebackups",
        "pre-hangs",
        json!({"pvc": "db", "hooks": {
        "pre": [{"command": ["sleep", "5"], "timeoutSeconds": 1}]}}),
    );
    let st = c.wait("shop", "volumebackups", "pre-hangs", &mut agent, is_final);
    assert_eq!(st["phase"], "Failed", "{st}");
    assert!(
        st["errors"][0]
            .as_str()
            .unwrap()
            .contains("timed out after 1s"),
        "{st}"
    );
}
