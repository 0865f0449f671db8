//! The node agent as a real process against the **real** control plane of
//! [`crate::control_plane`]: `deploy/crds.yaml` and `deploy/rbac.yaml` applied with
//! `kubectl apply`, the agent authenticated by the ServiceAccount token of `deploy/rbac.yaml`,
//! so every request it makes passes the real RBAC authorizer.
//!
//! There is no kubelet, so a test plays its part: it creates Pod, PV and PVC objects through
//! the API, sets their status through the `status` subresource, and lays out the kubelet's
//! directory on disk, where each volume's `mount` is made a real mount point (a bind mount, as
//! a CSI driver's would be). Mounting needs root; [`Cluster::new`] says so when it cannot.
//!
//! Tests of one binary share the control plane, and the agents of several tests run at once.
//! Each test's cluster is kept apart by its own node name (the agent only takes work for pods
//! on its node), its own namespaces and its own repository.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Cli;
use crate::control_plane::{self, ControlPlane};

/// The agent's namespace in `deploy/rbac.yaml`: restores there may cross namespaces.
pub const AGENT_NAMESPACE: &str = "kairn-system";
/// The agent's ServiceAccount in `deploy/rbac.yaml`.
pub const AGENT_ACCOUNT: &str = "kairn-node-agent";
/// The API group and version of Kairn's resources.
pub const KAIRN_API: &str = "/apis/kairn.dev/v1alpha1";

/// `deploy/<file>`.
pub fn deploy_file(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

/// The built node agent, beside the `repo` binary.
pub fn agent_bin() -> PathBuf {
    let bin = crate::repo_bin().with_file_name("node-agent");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build -p node-agent` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// The files of `deploy/` every agent test needs, applied once per control plane.
pub const DEPLOYED: [&str; 4] = [
    "crds.yaml",
    "rbac.yaml",
    "tenant-roles.yaml",
    "admission.yaml",
];

/// The shared control plane with [`DEPLOYED`] applied and the CRDs established.
pub fn deployed() -> &'static ControlPlane {
    static APPLIED: OnceLock<()> = OnceLock::new();
    let plane = control_plane::shared();
    APPLIED.get_or_init(|| deploy_to(plane));
    plane
}

/// A second cluster, for the tests of a new cluster pointed at an existing repository: its
/// own etcd and API server, with [`DEPLOYED`] applied; started once per test binary.
pub fn other_cluster() -> &'static ControlPlane {
    static OTHER: OnceLock<ControlPlane> = OnceLock::new();
    OTHER.get_or_init(|| {
        let plane = ControlPlane::start();
        deploy_to(&plane);
        plane
    })
}

fn deploy_to(plane: &ControlPlane) {
    for file in DEPLOYED {
        let path = deploy_file(file);
        plane.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    }
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=120s",
    ]);
    aggregate_cluster_roles(plane);
}

/// What the controller manager's clusterrole-aggregation controller does (there is no
/// controller manager here): each aggregated ClusterRole (`admin`, `edit`, `view`) gets the
/// rules of every ClusterRole its selectors match, `deploy/tenant-roles.yaml`'s included.
pub fn aggregate_cluster_roles(plane: &ControlPlane) {
    for role in ["admin", "edit", "view"] {
        let out = plane.kubectl(&["get", "clusterrole", role, "-o", "json"]);
        let aggregated = json_out(out, role);
        let mut rules: Vec<Value> = Vec::new();
        for selector in aggregated["aggregationRule"]["clusterRoleSelectors"]
            .as_array()
            .unwrap()
        {
            let labels: Vec<String> = selector["matchLabels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect();
            let out = plane.kubectl(&["get", "clusterrole", "-l", &labels.join(","), "-o", "json"]);
            for source in json_out(out, "clusterroles")["items"].as_array().unwrap() {
                for rule in source["rules"].as_array().into_iter().flatten() {
                    if !rules.contains(rule) {
                        rules.push(rule.clone());
                    }
                }
            }
        }
        let patch = json!({ "rules": rules }).to_string();
        plane.kubectl_ok(&[
            "patch",
            "clusterrole",
            role,
            "--type",
            "merge",
            "-p",
            &patch,
        ]);
    }
}

/// True when this process may mount (the kubelet's mounts are played with bind mounts).
pub fn can_mount() -> bool {
    static CAN: OnceLock<bool> = OnceLock::new();
    *CAN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["--bind"])
            .arg(dir.path())
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            let _ = Command::new("umount").arg(dir.path()).status();
        }
        ok
    })
}

/// One test's corner of the shared cluster: a node of its own, its repository, its kubelet
/// directory.
pub struct Cluster {
    /// The control plane.
    pub plane: &'static ControlPlane,
    /// The repository the agent writes to, and the CLI to inspect it.
    pub cli: Cli,
    /// The kubelet's root directory of this node.
    pub kubelet: tempfile::TempDir,
    /// This node's name.
    pub node: String,
    /// A kubeconfig holding the agent ServiceAccount's token.
    pub agent_kubeconfig: PathBuf,
    mounts: Mutex<Vec<BindMount>>,
}

/// A bind mount, undone on drop.
pub struct BindMount(PathBuf);

impl BindMount {
    /// Mounts `source` at `target` (`mount --bind`).
    pub fn new(source: &Path, target: &Path) -> Self {
        let status = Command::new("mount")
            .arg("--bind")
            .arg(source)
            .arg(target)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount --bind {} {}",
            source.display(),
            target.display()
        );
        Self(target.to_path_buf())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn json_out(out: Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: {e}"))
}

impl Cluster {
    /// A new node in the shared cluster, with a repository of its own. `None`, with a note,
    /// when this process cannot mount (the tests need root to play the kubelet).
    pub fn new() -> Option<Self> {
        if !can_mount() {
            eprintln!("skipped: the agent tests bind-mount volumes as a kubelet does (needs root)");
            return None;
        }
        Some(Self::on(deployed(), Cli::init()))
    }

    /// A node of the cluster behind `plane` (deployed, as [`other_cluster`]) whose agents use
    /// this node's repository: a new cluster pointed at the same bucket.
    pub fn sharing_repository_on(&self, plane: &'static ControlPlane) -> Self {
        let repo = self.cli.repo.to_str().unwrap();
        Self::on(plane, Cli::at(repo, self.cli.extra.clone()))
    }

    fn on(plane: &'static ControlPlane, cli: Cli) -> Self {
        static NODES: AtomicU32 = AtomicU32::new(0);
        let token = plane.kubectl_ok(&[
            "create",
            "token",
            AGENT_ACCOUNT,
            "-n",
            AGENT_NAMESPACE,
            "--duration=24h",
        ]);
        let agent_kubeconfig = cli.dir.path().join("agent.kubeconfig");
        std::fs::write(
            &agent_kubeconfig,
            kubeconfig_yaml(&plane.server, &plane.ca, token.trim()),
        )
        .unwrap();
        Self {
            plane,
            cli,
            kubelet: tempfile::tempdir().unwrap(),
            node: format!("node-{}", NODES.fetch_add(1, Ordering::Relaxed)),
            agent_kubeconfig,
            mounts: Mutex::new(Vec::new()),
        }
    }

    /// A new namespace `<prefix>-<n>`.
    pub fn namespace(&self, prefix: &str) -> String {
        self.plane.namespace(prefix)
    }

    /// Creates `obj` (JSON) as the admin and returns what the server stored.
    pub fn apply_new(&self, obj: &Value) -> Value {
        let out = self
            .plane
            .kubectl_with_stdin(&["create", "-o", "json", "-f", "-"], Some(&obj.to_string()));
        json_out(out, &format!("create {obj}"))
    }

    /// GET `path` as the admin; `None` when it does not exist.
    pub fn get(&self, path: &str) -> Option<Value> {
        let out = self.plane.kubectl(&["get", "--raw", path]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("NotFound"), "GET {path}: {err}");
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).unwrap())
    }

    /// The items of the collection at `path`.
    pub fn list(&self, path: &str) -> Vec<Value> {
        let list = self.get(path).unwrap_or_else(|| panic!("no {path}"));
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// A JSON merge patch of `resource` (`kind/name`, as kubectl names it) in `ns` (`None` for
    /// a cluster-scoped one), of its `status` subresource when `status` is set.
    pub fn patch(&self, ns: Option<&str>, resource: &str, patch: &Value, status: bool) {
        let patch = patch.to_string();
        let mut args = vec!["patch", resource, "--type", "merge", "-p", &patch];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        if status {
            args.extend(["--subresource", "status"]);
        }
        self.plane.kubectl_ok(&args);
    }

    /// Sets a pod's phase, as its kubelet would: `Running` also marks its container running;
    /// `Initializing` is phase `Pending` with its init container running (it waits for a
    /// restore), so its volumes are mounted.
    pub fn set_pod_phase(&self, ns: &str, pod: &str, phase: &str) {
        let running = |name: &str, image: &str| {
            json!([{"name": name, "image": image, "imageID": "", "ready": false,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}])
        };
        let mut status = json!({ "phase": phase });
        if phase == "Running" {
            status["containerStatuses"] = running("app", "postgres:15");
        } else if phase == "Initializing" {
            status["phase"] = json!("Pending");
            status["initContainerStatuses"] = running("wait-for-restore", "busybox:1");
        }
        self.patch(
            Some(ns),
            &format!("pod/{pod}"),
            &json!({ "status": status }),
            true,
        );
    }

    /// A PV bound to claim `ns/pvc` and the claim bound to it, both with status `Bound`.
    pub fn bound_pvc(&self, ns: &str, pvc: &str, block: bool) -> String {
        let pv = format!("pv-{ns}-{pvc}");
        let mode = if block { "Block" } else { "Filesystem" };
        self.apply_new(&json!({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "volumeMode": mode,
                     "csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": pv},
                     "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                  "namespace": ns, "name": pvc}}}));
        self.patch(
            None,
            &format!("pv/{pv}"),
            &json!({"status": {"phase": "Bound"}}),
            true,
        );
        self.apply_new(&json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": pvc, "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": pv, "volumeMode": mode,
                     "resources": {"requests": {"storage": "1Gi"}}}}));
        self.patch(
            Some(ns),
            &format!("pvc/{pvc}"),
            &json!({"status": {"phase": "Bound"}}),
            true,
        );
        pv
    }

    /// A pod on this node mounting `pvc` (which must exist), in `phase`; returns its uid.
    pub fn pod(&self, ns: &str, pod: &str, pvc: &str, phase: &str) -> String {
        self.pod_on(&self.node, ns, pod, pvc, phase)
    }

    /// A pod on `node` mounting `pvc`, in `phase`; returns its uid.
    pub fn pod_on(&self, node: &str, ns: &str, pod: &str, pvc: &str, phase: &str) -> String {
        let created = self.apply_new(&json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": ns},
            "spec": {"nodeName": node,
                     "initContainers": [{"name": "wait-for-restore", "image": "busybox:1"}],
                     "containers": [{"name": "app", "image": "postgres:15"}],
                     "volumes": [
                         {"name": "config", "configMap": {"name": "app"}},
                         {"name": "data", "persistentVolumeClaim": {"claimName": pvc}}]}}));
        if phase != "Pending" {
            self.set_pod_phase(ns, pod, phase);
        }
        created["metadata"]["uid"].as_str().unwrap().to_string()
    }

    /// The kubelet's directory of a pod's CSI volume (holding `mount` and `vol_data.json`).
    pub fn volume_dir(&self, uid: &str, pv: &str) -> PathBuf {
        self.kubelet
            .path()
            .join("pods")
            .join(uid)
            .join("volumes/kubernetes.io~csi")
            .join(pv)
    }

    /// Lays out a CSI volume in the kubelet directory as the kubelet does for a pod: the
    /// volume's directory, its `vol_data.json`, and `mount`, which becomes a mount point when
    /// `mounted` (the CSI driver's step; left out, it is the kubelet's bare directory).
    pub fn lay_out_volume(&self, uid: &str, pv: &str, mounted: bool) -> PathBuf {
        let dir = self.volume_dir(uid, pv);
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
            .join(uid)
            .join("volumes/kubernetes.io~configmap/config");
        std::fs::create_dir_all(cm).unwrap();
        let mount = dir.join("mount");
        if mounted {
            self.mount(&mount);
        }
        mount
    }

    /// Makes `dir` a mount point of its own: a bind mount onto itself.
    pub fn mount(&self, dir: &Path) {
        self.bind(dir, dir);
    }

    /// Mounts `source` at `target`, as a CSI driver mounts one volume for a new pod.
    pub fn bind(&self, source: &Path, target: &Path) {
        let mount = BindMount::new(source, target);
        self.mounts.lock().unwrap().push(mount);
    }

    /// A bound PVC, its PV, and a pod on this node in `phase` that mounts it; returns the
    /// volume's directory in the kubelet tree (a CSI volume's `mount`), mounted.
    pub fn pvc_with_pod(&self, ns: &str, pvc: &str, pod: &str, phase: &str) -> PathBuf {
        let pv = format!("pv-{ns}-{pvc}");
        if self
            .get(&format!("/api/v1/persistentvolumes/{pv}"))
            .is_none()
        {
            self.bound_pvc(ns, pvc, false);
        }
        let uid = self.pod(ns, pod, pvc, phase);
        self.lay_out_volume(&uid, &pv, true)
    }

    /// Creates a Kairn resource (`kind` is its plural) named `name` in `ns`.
    pub fn create(&self, ns: &str, kind: &str, name: &str, spec: Value) {
        self.apply_new(&kairn_object(kind, Some(ns), name, spec));
    }

    /// Tries to create `obj` as the user holding `token` (`None`: the admin); kubectl's
    /// output, success or not.
    pub fn try_create_as(&self, token: Option<&str>, obj: &Value) -> Output {
        let args = ["create", "-f", "-"];
        let text = obj.to_string();
        match token {
            None => self.plane.kubectl_with_stdin(&args, Some(&text)),
            Some(token) => self.plane.kubectl_as_with_stdin(token, &args, Some(&text)),
        }
    }

    /// A Kairn resource's status (`null` before an agent wrote one).
    pub fn status(&self, ns: &str, kind: &str, name: &str) -> Value {
        self.get(&format!("{KAIRN_API}/namespaces/{ns}/{kind}/{name}"))
            .unwrap_or_else(|| panic!("no {kind} {ns}/{name}"))["status"]
            .clone()
    }

    /// Starts the agent of this node, under the ServiceAccount of `deploy/rbac.yaml`.
    pub fn agent(&self, extra_env: &[(&str, &str)]) -> Agent {
        self.agent_on(&self.node, extra_env)
    }

    /// Starts an agent as if on node `node`, sharing this cluster's repository and kubelet
    /// directory (a second node of the same cluster).
    pub fn agent_on(&self, node: &str, extra_env: &[(&str, &str)]) -> Agent {
        let port = crate::s3::free_port();
        let log = self.cli.dir.path().join(format!("agent-{port}.log"));
        let mut cmd = agent_command(&AgentSetup {
            node,
            kubeconfig: &self.agent_kubeconfig,
            cli: &self.cli,
            kubelet: self.kubelet.path(),
            port,
            log: &log,
        });
        cmd.env("POD_NAMESPACE", AGENT_NAMESPACE)
            // Short, so that the agents of tests that ended stop leading within seconds.
            .env("KAIRN_LEASE_SECONDS", "5");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Agent {
            child: cmd.spawn().unwrap(),
            port,
            log,
        }
    }

    /// Waits until `done(status)`, up to 90 s, and returns the status.
    pub fn wait(
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
            agent.assert_running();
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{kind}/{name} stuck at {st}:\n{}",
                agent.logs()
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// The Events in `ns` (events.k8s.io/v1).
    pub fn events(&self, ns: &str) -> Vec<Value> {
        self.list(&format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Newest first, before the kubelet directory that holds them is removed.
        let mut mounts = self.mounts.lock().unwrap();
        while mounts.pop().is_some() {}
    }
}

/// A Kairn resource of kind `plural` as JSON.
pub fn kairn_object(plural: &str, ns: Option<&str>, name: &str, spec: Value) -> Value {
    let kind = match plural {
        "volumebackups" => "VolumeBackup",
        "volumerestores" => "VolumeRestore",
        "backupschedules" => "BackupSchedule",
        "clusterbackups" => "ClusterBackup",
        "namespacerestores" => "NamespaceRestore",
        other => panic!("not a Kairn resource: {other}"),
    };
    let mut metadata = json!({ "name": name });
    if let Some(ns) = ns {
        metadata["namespace"] = json!(ns);
    }
    json!({"apiVersion": "kairn.dev/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec})
}

/// True once a Kairn resource's status has a final phase.
pub fn is_final(st: &Value) -> bool {
    matches!(
        st["phase"].as_str(),
        Some("Completed" | "PartiallyFailed" | "Failed" | "Canceled")
    )
}

/// A kubeconfig that authenticates with a bearer token.
pub fn kubeconfig_yaml(server: &str, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kairn-test\n  cluster:\n    server: \
         {server}\n    certificate-authority: {}\nusers:\n- name: user\n  user:\n    token: \
         {token}\ncontexts:\n- name: user\n  context:\n    cluster: kairn-test\n    user: \
         user\ncurrent-context: user\n",
        ca.display()
    )
}

/// Where a test's node agent runs: its node, API server, repository and kubelet directory.
pub struct AgentSetup<'a> {
    /// `NODE_NAME`.
    pub node: &'a str,
    /// The kubeconfig it authenticates with.
    pub kubeconfig: &'a Path,
    /// Its repository.
    pub cli: &'a Cli,
    /// The kubelet's root directory.
    pub kubelet: &'a Path,
    /// Its metrics and health port on 127.0.0.1.
    pub port: u16,
    /// Where its stderr (JSON log lines) goes.
    pub log: &'a Path,
}

/// The node agent's command for a test: no `KAIRN_*` of the test's own environment, fast
/// resyncs and progress, its log in a file.
pub fn agent_command(setup: &AgentSetup<'_>) -> Command {
    let mut cmd = Command::new(agent_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KAIRN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NODE_NAME", setup.node)
        .env("KUBECONFIG", setup.kubeconfig)
        .env("KAIRN_REPOSITORY", &setup.cli.repo)
        .env("KAIRN_PASSWORD_FILE", &setup.cli.password_file)
        .env("KAIRN_KUBELET_ROOT", setup.kubelet)
        // Never the node's /var/lib/kairn: each test's agents keep their freeze records apart.
        .env("KAIRN_STATE_DIR", setup.cli.dir.path().join("agent-state"))
        .env("KAIRN_RESYNC_SECONDS", "0.3")
        .env("KAIRN_PROGRESS_SECONDS", "0.3")
        .env("KAIRN_LISTEN", format!("127.0.0.1:{}", setup.port))
        .env("KAIRN_CLUSTER", "test")
        // Off: a test's repository shows in its cluster only where the test asks for it.
        .env("KAIRN_REPO_SYNC_SECONDS", "0")
        .env("KAIRN_HISTORY_SECONDS", "0.5")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(setup.log).unwrap());
    cmd
}

/// GET `path` from a metrics and health endpoint on 127.0.0.1:`port`, waiting up to 30 s for
/// it to listen: the status code and the body. `logs` says why when it never does.
pub fn http_get(port: u16, path: &str, logs: impl Fn() -> String) -> (u16, String) {
    use std::io::{Read, Write};
    let start = Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            let code = out.split(' ').nth(1).and_then(|c| c.parse().ok());
            let body = out.split_once("\r\n\r\n").map(|b| b.1.to_string());
            return (code.unwrap_or(0), body.unwrap_or_default());
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no HTTP endpoint:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running node agent.
pub struct Agent {
    /// The process.
    pub child: Child,
    /// Its metrics and health port on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
}

impl Agent {
    /// What it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with its log when it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(exit)) = self.child.try_wait() {
            panic!("the agent exited ({exit}):\n{}", self.logs());
        }
    }

    /// GET `path` from its HTTP endpoint: the status code and the body.
    pub fn http(&self, path: &str) -> (u16, String) {
        http_get(self.port, path, || self.logs())
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits for it to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}
