//! `kubectl kairn`, run by the real `kubectl` (found as a plugin on PATH) against the real API
//! server, with a real agent doing the work. There is no kubelet: the tests play it (pod
//! status, the kubelet directory, and for `logs` the kubelet's log endpoint), and say so.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use kairn_e2e::agent::{Cluster, deploy_file};
use kairn_e2e::control_plane::{self, ControlPlane};
use serde_json::{Value, json};

/// The built plugin, beside the `repo` binary.
fn plugin_dir() -> PathBuf {
    let dir = kairn_e2e::repo_bin().parent().unwrap().to_path_buf();
    assert!(
        dir.join("kubectl-kairn").exists(),
        "kubectl-kairn is missing: `cargo build -p kubectl-kairn`"
    );
    dir
}

/// `kubectl kairn ARGS` as the admin: kubectl finds the plugin on PATH and passes it the
/// environment (kubectl does not pass its own flags, so the kubeconfig goes in KUBECONFIG).
fn kairn(plane: &ControlPlane, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}",
        plugin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(control_plane::assets().join("kubectl"))
        .arg("kairn")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", &plane.kubeconfig)
        .env_remove("KAIRN_NAMESPACE")
        .output()
        .expect("run kubectl")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(plane: &ControlPlane, args: &[&str]) -> String {
    let out = kairn(plane, args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "kubectl kairn {args:?}: {stderr}\n{stdout}"
    );
    stdout
}

fn code(plane: &ControlPlane, args: &[&str]) -> (i32, String) {
    let out = kairn(plane, args);
    (out.status.code().unwrap_or(-1), text(&out).1)
}

fn created_name(stdout: &str, kind: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{kind}.kairn.dev/")))
        .unwrap_or_else(|| panic!("no {kind} created in {stdout}"));
    let name = line.split('/').nth(1).unwrap();
    name.trim_end_matches(" created").to_string()
}

/// A namespace holding what the chart installs for the plugin to read: the agent DaemonSet
/// (whose pods never run here) and the Secret it mounts, with this test's repository.
fn agent_namespace(c: &Cluster) -> String {
    let ns = c.namespace("kairn-agents");
    let password = fs::read_to_string(&c.cli.password_file).unwrap();
    c.apply_new(&json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "kairn-repository", "namespace": ns},
        "stringData": {"password": password, "storage-options": "# none: a local repository\n"}}));
    let text = fs::read_to_string(deploy_file("daemonset.yaml")).unwrap();
    let mut ds: Value = serde_yaml::from_str(&text).unwrap();
    ds["metadata"]["namespace"] = json!(ns);
    let env = ds["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap();
    for var in env.iter_mut() {
        if var["name"] == "KAIRN_REPOSITORY" {
            var["value"] = json!(c.cli.repo.to_str().unwrap());
        }
        // As the test agents record it (tests/src/agent.rs).
        if var["name"] == "KAIRN_CLUSTER" {
            var["value"] = json!("test");
        }
    }
    ds["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("priorityClassName");
    c.apply_new(&ds);
    ns
}

#[test]
fn no_kubelet_plugin_backs_up_restores_describes_and_lists_through_kubectl() {
    let Some(c) = Cluster::new() else { return };
    let plane = c.plane;
    let shop = c.namespace("plugin");
    let data = c.pvc_with_pod(&shop, "db", "db-0", "Running");
    fs::write(data.join("table.dat"), vec![7u8; 300_000]).unwrap();
    fs::create_dir(data.join("wal")).unwrap();
    fs::write(data.join("wal/0001"), b"write-ahead").unwrap();
    let mut agent = c.agent(&[]);

    let out = ok(
        plane,
        &["backup", &format!("{shop}/db"), "--wait", "--tag", "manual"],
    );
    let backup = created_name(&out, "volumebackup");
    agent.assert_running();

    let listed = ok(plane, &["get", "-n", &shop]);
    let row = listed
        .lines()
        .find(|l| l.contains(&format!("volumebackup/{backup}")))
        .unwrap_or_else(|| panic!("{backup} not in:\n{listed}"));
    assert!(row.contains("Completed") && row.contains(" db "), "{row}");

    let described = ok(plane, &["describe", &backup, "-n", &shop]);
    for want in [
        "Phase:        Completed",
        "PVC:          db",
        "Tags:         manual",
    ] {
        assert!(described.contains(want), "{want:?} not in:\n{described}");
    }
    let snaps: Value = serde_json::from_str(&c.cli.ok(&["snapshots", "--json"])).unwrap();
    let id = snaps[0]["id"].as_str().unwrap().to_string();
    let json: Value = serde_json::from_str(&ok(
        plane,
        &["describe", &backup, "-n", &shop, "-o", "json"],
    ))
    .unwrap();
    assert_eq!(json["kind"], "VolumeBackup");
    assert_eq!(json["object"]["status"]["snapshotId"], json!(id));
    assert!(json["object"]["status"]["progress"]["bytesDone"].as_u64() >= Some(300_000));

    // Restore the latest snapshot of db into a second PVC, whose pod waits in its init
    // container as a restore's target does.
    let target = c.pvc_with_pod(&shop, "db-copy", "copy-0", "Initializing");
    let args = [
        "restore",
        "latest",
        "--to",
        &format!("{shop}/db-copy"),
        "--from",
        "db",
        "--wait",
    ];
    let out = ok(plane, &[&args[..], &["-n", &shop]].concat());
    created_name(&out, "volumerestore");
    assert_eq!(
        fs::read(target.join("table.dat")).unwrap(),
        vec![7u8; 300_000]
    );
    assert_eq!(fs::read(target.join("wal/0001")).unwrap(), b"write-ahead");

    // A snapshot that does not exist fails the restore, and --wait says so in its exit code.
    let to = format!("{shop}/db-copy");
    let (status, stderr) = code(
        plane,
        &["restore", "00000000deadbeef", "--to", &to, "--wait"],
    );
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("Failed"), "{stderr}");

    // What the repository holds, read through the agents' Secret: no password given here.
    let agents = agent_namespace(&c);
    let listed = ok(
        plane,
        &[
            "snapshots",
            "-n",
            &shop,
            "--kairn-namespace",
            &agents,
            "-o",
            "json",
        ],
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["id"], json!(id));
    assert_eq!(
        (items[0]["namespace"].as_str(), items[0]["pvc"].as_str()),
        (Some(shop.as_str()), Some("db"))
    );
    let table = ok(
        plane,
        &["snapshots", "-n", &shop, "--kairn-namespace", &agents],
    );
    assert!(table.contains(&id[..8]) && table.contains("db"), "{table}");
    // From the objects, as a user who may not read that Secret would see them.
    let objects = ok(
        plane,
        &["snapshots", "-n", &shop, "--objects", "-o", "json"],
    );
    assert!(objects.contains(&id), "{objects}");
}

#[test]
fn plugin_mistakes_get_their_exit_codes() {
    let plane = kairn_e2e::agent::deployed();
    let ns = plane.namespace("plugin-bad");
    let (status, stderr) = code(plane, &["describe", "no-such-backup", "-n", &ns]);
    assert_eq!(status, 6, "{stderr}");
    assert!(stderr.contains("kubectl kairn get"), "{stderr}");
    let (status, stderr) = code(plane, &["backup", "a/b/c"]);
    assert_eq!(status, 2, "{stderr}");
    let (status, stderr) = code(plane, &["restore-namespace", "shop"]);
    assert_eq!(status, 2, "--backup or --series is required: {stderr}");
    // A user with no grant in the namespace is refused by the API server.
    let out = Command::new(control_plane::assets().join("kubectl"))
        .args(["kairn", "backup", &format!("{ns}/db")])
        .env(
            "PATH",
            format!(
                "{}:{}",
                plugin_dir().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .env("KUBECONFIG", tenant_kubeconfig(plane))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out).1);
}

fn tenant_kubeconfig(plane: &ControlPlane) -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("tenant.kubeconfig");
    let yaml = kairn_e2e::agent::kubeconfig_yaml(&plane.server, &plane.ca, &plane.tenant_a.token);
    fs::write(&path, yaml).unwrap();
    path
}

/// The kubelet's log endpoint, played by a small HTTPS server on 127.0.0.1 (Python's, with
/// the API server's own certificate: the API server does not verify kubelets here).
struct FakeKubeletLogs(Child);

impl FakeKubeletLogs {
    fn start(plane: &ControlPlane, log: &Path, port: u16) -> Self {
        let certs = plane.dir().join("certs");
        let script = format!(
            r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if not self.path.startswith('/containerLogs/'):
            self.send_response(404); self.end_headers(); return
        body = open({log:?}, 'rb').read()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(('127.0.0.1', {port}), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain({crt:?}, {key:?})
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print('ready', flush=True)
s.serve_forever()
"#,
            log = log.display().to_string(),
            crt = certs.join("apiserver.crt").display().to_string(),
            key = certs.join("apiserver.key").display().to_string(),
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .stdin(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        let _ = child.stdin.take().map(|mut s| s.flush());
        Self(child)
    }
}

impl Drop for FakeKubeletLogs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn no_kubelet_plugin_shows_the_agents_log_lines_through_the_api_server() {
    let Some(c) = Cluster::new() else { return };
    let plane = c.plane;
    let shop = c.namespace("plugin-logs");
    let data = c.pvc_with_pod(&shop, "db", "db-0", "Running");
    fs::write(data.join("a"), b"some data").unwrap();
    let agent = c.agent(&[]);
    let out = ok(plane, &["backup", &format!("{shop}/db"), "--wait"]);
    let backup = created_name(&out, "volumebackup");

    // The agent pod on this node, and the node's kubelet endpoint: a server on 127.0.0.1
    // that serves the agent's real log as the kubelet would serve its container's.
    let agents = agent_namespace(&c);
    let port = kairn_e2e::s3::free_port();
    let log = c.cli.dir.path().join(format!("agent-{}.log", agent.port));
    let _kubelet = FakeKubeletLogs::start(plane, &log, port);
    if c.get(&format!("/api/v1/nodes/{}", c.node)).is_none() {
        c.apply_new(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": c.node}}));
    }
    c.patch(
        None,
        &format!("node/{}", c.node),
        &json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}),
        true,
    );
    c.apply_new(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "kairn-node-agent-x1", "namespace": agents,
                     "labels": {"app.kubernetes.io/name": "kairn-node-agent"}},
        "spec": {"nodeName": c.node, "containers": [{"name": "node-agent", "image": "kairn"}]}}));

    let lines = ok(
        plane,
        &["logs", &backup, "-n", &shop, "--kairn-namespace", &agents],
    );
    assert!(!lines.is_empty(), "no log line names {backup}");
    assert!(lines.lines().all(|l| l.contains(&backup)), "{lines}");
    assert!(lines.contains("snapshot"), "{lines}");
    let all = ok(
        plane,
        &[
            "logs",
            &backup,
            "-n",
            &shop,
            "--kairn-namespace",
            &agents,
            "--all",
        ],
    );
    assert!(
        all.lines().count() > lines.lines().count(),
        "--all keeps every line"
    );
}
