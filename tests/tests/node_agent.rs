//! The node agent as a real process, against an in-process **fake** Kubernetes API server
//! (tests/src/fake_kube.rs: real-format JSON, no real API server can be installed here), a
//! kubelet-shaped directory tree in a temporary folder, and a real local repository.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kairn_e2e::fake_kube::FakeKube;
use kairn_e2e::{Cli, assert_same, scan, write_volume};
use serde_json::{Value, json};

const NODE: &str = "node-a";
const VB: &str = "/apis/kairn.dev/v1alpha1/namespaces";

fn agent_bin() -> PathBuf {
    let bin = kairn_e2e::repo_bin().with_file_name("node-agent");
    assert!(
        bin.exists(),
        "{} is missing: cargo test --workspace builds it",
        bin.display()
    );
    bin
}

/// A cluster of one node as the agent sees it.
struct Cluster {
    kube: FakeKube,
    cli: Cli,
    kubelet: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn new() -> Self {
        let kube = FakeKube::start();
        let cli = Cli::init();
        let kubeconfig = cli.dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kube.kubeconfig()).unwrap();
        Self {
            kube,
            cli,
            kubelet: tempfile::tempdir().unwrap(),
            kubeconfig,
        }
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
        dir.join("mount")
    }

    fn agent(&self, extra_env: &[(&str, &str)]) -> Agent {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = self.cli.dir.path().join(format!("agent-{port}.log"));
        let mut cmd = Command::new(agent_bin());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("KAIRN_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("NODE_NAME", NODE)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KAIRN_REPOSITORY", &self.cli.repo)
            .env("KAIRN_PASSWORD_FILE", &self.cli.password_file)
            .env("KAIRN_KUBELET_ROOT", self.kubelet.path())
            .env("KAIRN_RESYNC_SECONDS", "0.2")
            .env("KAIRN_PROGRESS_SECONDS", "0.2")
            .env("KAIRN_LISTEN", format!("127.0.0.1:{port}"))
            .env("KAIRN_CLUSTER", "test")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Agent {
            child: cmd.spawn().unwrap(),
            port,
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
    port: u16,
    log: PathBuf,
}

impl Agent {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn http(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let start = Instant::now();
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                write!(
                    s,
                    "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                let code = out
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let body = out
                    .split_once("\r\n\r\n")
                    .map(|b| b.1.to_string())
                    .unwrap_or_default();
                return (code, body);
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no HTTP endpoint:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_start} in:\n{text}"))
}

fn fill(volume: &Path) {
    write_volume(volume, 3, 12);
    std::fs::create_dir_all(volume.join("base/16384")).unwrap();
    std::fs::write(volume.join("base/16384/PG_VERSION"), "15\n").unwrap();
    std::os::unix::fs::symlink("base/16384", volume.join("current")).unwrap();
    std::fs::set_permissions(
        volume.join("base"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
}

#[test]
fn fake_api_server_volume_backup_lands_with_status_metrics_and_event_then_restores_identically() {
    let c = Cluster::new();
    let volume = c.pvc_with_pod("shop", "db", "db-0", NODE, "Running");
    fill(&volume);
    // A PVC on another node: this agent must leave its backup alone.
    c.pvc_with_pod("shop", "logs", "logs-0", "node-b", "Running");
    let mut agent = c.agent(&[]);

    c.create(
        "shop",
        "volumebackups",
        "db-1",
        json!({"pvc": "db", "tags": ["nightly"]}),
    );
    c.create("shop", "volumebackups", "logs-1", json!({"pvc": "logs"}));
    let st = c.wait("shop", "volumebackups", "db-1", &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}\n{}", agent.logs());
    assert_eq!(st["node"], NODE);
    assert_eq!(st["attempts"], 1);
    assert_eq!(st["progress"]["filesDone"], 13, "{st}");
    assert!(st["newBytesStored"].as_u64().unwrap() > 0);
    let id = st["snapshotId"].as_str().unwrap().to_string();

    let snaps = c.cli.json(&["snapshots"]);
    let snap = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{snaps}"));
    let source = &snap["source"];
    assert_eq!(
        (
            source["namespace"].as_str(),
            source["pvc"].as_str(),
            source["node"].as_str()
        ),
        (Some("shop"), Some("db"), Some(NODE))
    );
    assert_eq!(source["pv"], "pv-shop-db");
    assert_eq!(snap["paths"], json!(["/db"]));
    assert!(snap["tags"].as_array().unwrap().contains(&json!("nightly")));

    let (code, text) = agent.http("/metrics");
    assert_eq!(code, 200);
    let labels = r#"{namespace="shop",pvc="db"}"#;
    let read = metric(&text, &format!("kairn_volume_bytes_read_total{labels}"));
    assert_eq!(read as u64, st["progress"]["bytesDone"].as_u64().unwrap());
    assert!(
        metric(
            &text,
            &format!("kairn_volume_last_success_timestamp_seconds{labels}")
        ) > 1.7e9
    );
    assert_eq!(metric(&text, &format!("kairn_volume_files{labels}")), 13.0);
    assert_eq!(agent.http("/healthz").0, 200);
    assert_eq!(agent.http("/readyz").0, 200);

    let events = c.kube.list("/apis/events.k8s.io/v1/events");
    assert!(
        events.iter().any(|e| e["reason"] == "BackupCompleted"
            && e["regarding"]["name"] == "db"
            && e["regarding"]["kind"] == "PersistentVolumeClaim"),
        "{events:?}"
    );
    // Not this node's volume: untouched.
    assert!(c.status("shop", "volumebackups", "logs-1").is_null());

    // The pod is rescheduled (a new uid, so a new kubelet path): the next backup still finds
    // the PVC's parent and reads nothing unchanged.
    let moved = c.pvc_with_pod("shop", "db", "db-0b", NODE, "Running");
    c.kube.patch(
        "/api/v1/namespaces/shop/pods/db-0/status",
        json!({"status": {"phase": "Succeeded"}}),
    );
    std::fs::remove_dir(&moved).unwrap();
    std::fs::rename(&volume, &moved).unwrap();
    c.create("shop", "volumebackups", "db-2", json!({"pvc": "db"}));
    let st2 = c.wait("shop", "volumebackups", "db-2", &mut agent, is_final);
    // Taken after the backups, whose reads may have moved access times.
    let before = scan(&moved);
    assert_eq!(st2["phase"], "Completed", "{st2}");
    assert_eq!(
        st2["progress"]["bytesDone"], 0,
        "an unchanged volume was re-read: {st2}"
    );
    let snaps = c.cli.json(&["snapshots"]);
    let second = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == st2["snapshotId"])
        .unwrap();
    assert_eq!(second["parent"], id.as_str());

    // A tenant of namespace staging may not read shop's backups: refused.
    let target = c.pvc_with_pod("staging", "db-copy", "db-copy-0", NODE, "Pending");
    let across = json!({"snapshot": "latest", "sourceNamespace": "shop", "sourcePvc": "db",
                        "target": {"pvc": "db-copy"}});
    c.create("staging", "volumerestores", "tenant", across.clone());
    let refused = c.wait("staging", "volumerestores", "tenant", &mut agent, is_final);
    assert_eq!(refused["phase"], "Failed", "{refused}");
    assert!(
        refused["errors"][0]
            .as_str()
            .unwrap()
            .contains("kairn-system"),
        "{refused}"
    );

    // An administrator restores the latest snapshot of shop/db into the new PVC in staging,
    // whose pod waits in its init container (phase Pending).
    let mut admin = across;
    admin["targetNamespace"] = json!("staging");
    c.create("kairn-system", "volumerestores", "from-shop", admin);
    let rs = c.wait(
        "kairn-system",
        "volumerestores",
        "from-shop",
        &mut agent,
        is_final,
    );
    assert_eq!(rs["phase"], "Completed", "{rs}\n{}", agent.logs());
    assert_eq!(rs["snapshotId"], st2["snapshotId"]);
    let marker = target.join(".kairn-restored");
    assert!(
        marker.join("from-shop").exists(),
        "no completion marker for the init container"
    );
    std::fs::remove_dir_all(&marker).unwrap();
    assert_same(&before, &scan(&target));

    // SIGTERM: a clean exit.
    assert!(agent.terminate().success(), "{}", agent.logs());
    let logs = agent.logs();
    assert!(
        logs.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "not JSON lines:\n{logs}"
    );
    assert!(!logs.contains("correct horse"), "the password was logged");
}

#[test]
fn fake_api_server_a_killed_agent_does_not_leave_a_backup_in_progress() {
    let c = Cluster::new();
    let volume = c.pvc_with_pod("shop", "db", "db-0", NODE, "Running");
    write_volume(&volume, 9, 40);
    // Slow storage, so the kill lands mid-backup.
    let mut first = c.agent(&[("KAIRN_FAULTS", "seed=1,latency-ms=150")]);
    c.create("shop", "volumebackups", "db-1", json!({"pvc": "db"}));
    let st = c.wait("shop", "volumebackups", "db-1", &mut first, |s| {
        (s["phase"] == "InProgress" && s["progress"]["bytesDone"].as_u64().unwrap_or(0) > 0)
            || is_final(s)
    });
    assert_eq!(
        st["phase"], "InProgress",
        "finished before it could be killed: {st}"
    );
    let dead_instance = st["agent"].clone();
    first.kill();
    std::thread::sleep(Duration::from_millis(500));
    let st = c.status("shop", "volumebackups", "db-1");
    assert_eq!(st["phase"], "InProgress", "{st}");

    // The restarted agent (a new instance) takes it up again as a second attempt.
    let mut second = c.agent(&[]);
    let st = c.wait("shop", "volumebackups", "db-1", &mut second, is_final);
    assert_eq!(st["phase"], "Completed", "{st}\n{}", second.logs());
    assert_eq!(st["attempts"], 2);
    assert_ne!(st["agent"], dead_instance);
    let id = st["snapshotId"].as_str().unwrap();
    // Taken after the backup, whose reads may have moved access times.
    let before = scan(&volume);
    let out = c.cli.dir.path().join("restored");
    c.cli.ok(&[
        "restore",
        &format!("{id}:/db"),
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_same(&before, &scan(&out));
    c.cli.ok(&["check", "--read-data"]);

    // A cancel stops a running backup, records Canceled, and publishes no snapshot.
    // Counted now: the first agent may have been killed after storing its snapshot and before
    // recording it, and attempt 2 then rightly stored another.
    second.kill();
    let snapshots = c.cli.json(&["snapshots"]).as_array().unwrap().len();
    c.create("shop", "volumebackups", "db-2", json!({"pvc": "db"}));
    std::fs::write(volume.join("big"), kairn_e2e::noise(77, 30 << 20)).unwrap();
    let mut third = c.agent(&[("KAIRN_FAULTS", "seed=2,latency-ms=150")]);
    let running = c.wait("shop", "volumebackups", "db-2", &mut third, |s| {
        s["phase"] == "InProgress" || is_final(s)
    });
    assert_eq!(
        running["phase"], "InProgress",
        "finished before it could be canceled"
    );
    c.kube.patch(
        &format!("{VB}/shop/volumebackups/db-2"),
        json!({"spec": {"cancel": true}}),
    );
    let st = c.wait("shop", "volumebackups", "db-2", &mut third, is_final);
    assert_eq!(st["phase"], "Canceled", "{st}");
    assert_eq!(
        c.cli.json(&["snapshots"]).as_array().unwrap().len(),
        snapshots
    );
}

#[test]
fn fake_api_server_a_wrong_password_stops_the_agent_with_its_exit_code() {
    let c = Cluster::new();
    let wrong = c.cli.dir.path().join("wrong");
    std::fs::write(&wrong, "battery staple\n").unwrap();
    let mut agent = c.agent(&[("KAIRN_PASSWORD_FILE", wrong.to_str().unwrap())]);
    let status = agent.child.wait().unwrap();
    assert_eq!(status.code(), Some(12), "{}", agent.logs());
    assert!(agent.logs().contains("password"), "{}", agent.logs());
}

#[test]
fn fake_api_server_hooks_run_in_the_pod_around_the_backup_and_follow_their_error_policy() {
    let c = Cluster::new();
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

/// Turns a PVC made by `pvc_with_pod` into a block-mode volume: the kubelet then presents a
/// device under `volumeDevices/` (here a file of `size` bytes standing in for it).
fn as_block(c: &Cluster, ns: &str, pvc: &str, mount: &Path, size: u64) -> PathBuf {
    let pv = format!("pv-{ns}-{pvc}");
    c.kube.patch(
        &format!("/api/v1/persistentvolumes/{pv}"),
        json!({"spec": {"volumeMode": "Block"}}),
    );
    let volume_dir = mount.parent().unwrap();
    let pod_dir = volume_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap();
    std::fs::remove_dir_all(volume_dir).unwrap();
    let devices = pod_dir.join("volumeDevices/kubernetes.io~csi");
    std::fs::create_dir_all(&devices).unwrap();
    let device = devices.join(&pv);
    std::fs::File::create(&device)
        .unwrap()
        .set_len(size)
        .unwrap();
    device
}

#[test]
fn fake_api_server_a_block_volume_is_backed_up_as_one_file_with_zero_ranges_as_holes() {
    let c = Cluster::new();
    let mount = c.pvc_with_pod("shop", "disk", "vm-0", NODE, "Running");
    let size = 16u64 << 20;
    let device = as_block(&c, "shop", "disk", &mount, size);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&device)
            .unwrap();
        f.write_all_at(&kairn_e2e::noise(1, 1 << 20), 0).unwrap();
        f.write_all_at(&kairn_e2e::noise(2, 1 << 20), 9 << 20)
            .unwrap();
    }
    let mut agent = c.agent(&[]);
    c.create("shop", "volumebackups", "disk-1", json!({"pvc": "disk"}));
    let st = c.wait("shop", "volumebackups", "disk-1", &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}\n{}", agent.logs());
    let stored = st["newBytesStored"].as_u64().unwrap();
    // 2 MiB of data and 14 MiB of zeros: the zeros cost nothing.
    assert!(stored < 3 << 20, "stored {stored} bytes for 2 MiB of data");
    let snaps = c.cli.json(&["snapshots"]);
    assert_eq!(snaps[0]["source"]["kind"], "block-device", "{snaps}");

    // Restored onto another block volume of the same size.
    let target_mount = c.pvc_with_pod("shop", "disk-copy", "vm-1", NODE, "Pending");
    let target = as_block(&c, "shop", "disk-copy", &target_mount, size);
    c.create(
        "shop",
        "volumerestores",
        "disk-back",
        json!({
        "snapshot": st["snapshotId"], "target": {"pvc": "disk-copy"}}),
    );
    let rs = c.wait("shop", "volumerestores", "disk-back", &mut agent, is_final);
    assert_eq!(rs["phase"], "Completed", "{rs}\n{}", agent.logs());
    assert!(
        std::fs::read(&target).unwrap() == std::fs::read(&device).unwrap(),
        "the restored device differs"
    );
}

#[test]
fn fake_api_server_a_schedule_backs_up_the_selected_pvcs_of_this_node_and_applies_retention() {
    let c = Cluster::new();
    let db = c.pvc_with_pod("shop", "db", "db-0", NODE, "Running");
    write_volume(&db, 4, 3);
    let logs = c.pvc_with_pod("shop", "logs", "logs-0", NODE, "Running");
    write_volume(&logs, 6, 2);
    c.kube.create(
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"env": "prod"}}}),
    );
    c.kube.patch(
        "/api/v1/namespaces/shop/persistentvolumeclaims/db",
        json!({"metadata": {"labels": {"kairn.dev/backup": "true"}}}),
    );
    let mut agent = c.agent(&[]);
    // An earlier run of the schedule, and a manual backup the schedule's retention must spare.
    c.create(
        "shop",
        "volumebackups",
        "earlier",
        json!({"pvc": "db", "tags": ["schedule:every-minute"]}),
    );
    c.wait("shop", "volumebackups", "earlier", &mut agent, is_final);
    c.create("shop", "volumebackups", "manual", json!({"pvc": "db"}));
    c.wait("shop", "volumebackups", "manual", &mut agent, is_final);
    let earlier = c.status("shop", "volumebackups", "earlier")["snapshotId"].clone();

    c.kube.create(
        "/apis/kairn.dev/v1alpha1/backupschedules",
        json!({"apiVersion": "kairn.dev/v1alpha1", "kind": "BackupSchedule",
               "metadata": {"name": "every-minute"},
               "spec": {"schedule": "* * * * *",
                        "namespaceSelector": {"matchLabels": {"env": "prod"}},
                        "pvcSelector": {"matchLabels": {"kairn.dev/backup": "true"}},
                        "retention": {"keepLast": 1}}}),
    );
    let start = Instant::now();
    let scheduled = loop {
        let made: Vec<Value> = c
            .kube
            .list("/apis/kairn.dev/v1alpha1/volumebackups")
            .into_iter()
            .filter(|b| b["metadata"]["labels"]["kairn.dev/schedule"] == "every-minute")
            .collect();
        if let Some(b) = made.first() {
            assert_eq!(made.len(), 1, "{made:?}");
            assert_eq!(b["spec"]["pvc"], "db", "only the labelled PVC: {b}");
            break b["metadata"]["name"].as_str().unwrap().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no scheduled backup:\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let st = c.wait("shop", "volumebackups", &scheduled, &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}");
    // Retention runs after the status is written: wait for the earlier run to be forgotten.
    let start = Instant::now();
    loop {
        let ids: Vec<Value> = c
            .cli
            .json(&["snapshots"])
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].clone())
            .collect();
        if !ids.contains(&earlier) {
            assert_eq!(
                ids.len(),
                2,
                "the manual and the scheduled snapshot remain: {ids:?}"
            );
            assert!(ids.contains(&st["snapshotId"]));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "retention not applied:\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Idempotent: later reconciles create no second backup for the same minute.
    std::thread::sleep(Duration::from_millis(800));
    let again = c
        .kube
        .list("/apis/kairn.dev/v1alpha1/volumebackups")
        .into_iter()
        .filter(|b| b["metadata"]["labels"]["kairn.dev/schedule"] == "every-minute")
        .count();
    assert!(again <= 2, "{again} scheduled backups");
}

/// Not a test: the measurement behind BENCHMARKS.md's node-agent section. Copies the directory
/// in `KAIRN_AGENT_BENCH_VOLUME` into a PVC, has the agent back it up twice (full, then with
/// nothing changed) and restore it, and prints wall times and the agent's peak RSS; then
/// `repo backup` of the same directory under GNU time, for comparison.
///   KAIRN_AGENT_BENCH_VOLUME=/var/tmp/kairn-bench/data/pg \
///     cargo test --release -p kairn-e2e --test node_agent -- --ignored --nocapture measure
#[test]
#[ignore = "a measurement: run by hand, see BENCHMARKS.md"]
fn measure_agent_backup_and_restore_of_a_large_volume() {
    let Some(source) = std::env::var_os("KAIRN_AGENT_BENCH_VOLUME") else {
        eprintln!("set KAIRN_AGENT_BENCH_VOLUME to a directory");
        return;
    };
    let c = Cluster::new();
    let volume = c.pvc_with_pod("shop", "db", "db-0", NODE, "Running");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", Path::new(&source).display()))
        .arg(&volume)
        .status()
        .unwrap();
    assert!(copied.success());
    let mut agent = c.agent(&[("KAIRN_PROGRESS_SECONDS", "1")]);
    let peak = |agent: &Agent| {
        std::fs::read_to_string(format!("/proc/{}/status", agent.child.id()))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024)
            .unwrap()
    };
    for (name, spec) in [
        ("full", json!({"pvc": "db"})),
        ("unchanged", json!({"pvc": "db"})),
    ] {
        let start = Instant::now();
        c.create("shop", "volumebackups", name, spec);
        let st = c.wait("shop", "volumebackups", name, &mut agent, is_final);
        assert_eq!(st["phase"], "Completed", "{st}");
        println!(
            "agent backup {name}: {:.1} s, read {} bytes, stored {} new bytes, agent peak RSS {} MiB",
            start.elapsed().as_secs_f64(),
            st["progress"]["bytesDone"],
            st["newBytesStored"],
            peak(&agent)
        );
    }
    let target = c.pvc_with_pod("shop", "db-copy", "db-copy-0", NODE, "Pending");
    let start = Instant::now();
    c.create(
        "shop",
        "volumerestores",
        "back",
        json!({
        "snapshot": "latest", "sourcePvc": "db", "target": {"pvc": "db-copy"}}),
    );
    let rs = c.wait("shop", "volumerestores", "back", &mut agent, is_final);
    assert_eq!(rs["phase"], "Completed", "{rs}");
    println!(
        "agent restore: {:.1} s, {} bytes, agent peak RSS {} MiB",
        start.elapsed().as_secs_f64(),
        rs["progress"]["bytesDone"],
        peak(&agent)
    );
    let _ = target;
    let cli = Cli::init();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("repo backup: %e s, peak RSS %M KiB")
        .arg(kairn_e2e::repo_bin())
        .arg("-r")
        .arg(&cli.repo)
        .arg("--password-file")
        .arg(&cli.password_file)
        .arg("-q")
        .arg("backup")
        .arg(&volume)
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stderr).trim());
}

#[test]
fn fake_api_server_a_scheduled_cluster_backup_groups_volumes_a_real_etcd_snapshot_and_manifests() {
    let c = Cluster::new();
    let data = c.pvc_with_pod("shop", "data", "db-0", NODE, "Running");
    write_volume(&data, 11, 3);
    c.kube.create(
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    c.kube.create(
        "/api/v1/namespaces/shop/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}}),
    );
    c.kube.create(
        "/apis/apps/v1/namespaces/shop/deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}}),
    );
    // This node is a control-plane node: its agent may take the etcd snapshot.
    c.kube.create(
        "/api/v1/nodes",
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": NODE, "labels": {"node-role.kubernetes.io/control-plane": ""}}}),
    );
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
    c.kube.create(
        "/apis/kairn.dev/v1alpha1/backupschedules",
        json!({"apiVersion": "kairn.dev/v1alpha1", "kind": "BackupSchedule",
               "metadata": {"name": "cluster"},
               "spec": {"schedule": this_minute,
                        "etcd": {"endpoints": [etcd.endpoint]},
                        "manifests": {"namespaces": ["shop"]},
                        "retention": {"keepLast": 1}}}),
    );
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
            .kube
            .list("/apis/kairn.dev/v1alpha1/clusterbackups")
            .into_iter()
            .find(|cb| is_final(&cb["status"]));
        if let Some(cb) = done {
            break (
                cb["metadata"]["name"].as_str().unwrap().to_string(),
                cb["status"].clone(),
            );
        }
        if let Ok(Some(exit)) = agent.child.try_wait() {
            panic!("the agent exited ({exit}):\n{}", agent.logs());
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no cluster backup finished: {:?}\n{}",
            c.kube.list("/apis/kairn.dev/v1alpha1/clusterbackups"),
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
