//! A real Kubernetes control plane for the tests (the envtest approach): etcd and kube-apiserver
//! on 127.0.0.1 ports picked free, run as a cluster runs them (RBAC authorization, signed
//! ServiceAccount tokens, its own serving certificate), with static bearer tokens for an admin
//! and two tenants. There is no kubelet, scheduler or controller manager: tests create the
//! objects those would.
//!
//! The binaries come from `scripts/control-plane.sh build` (built once from the Go module proxy
//! and cached outside the work tree), or from `$KUBEBUILDER_ASSETS` when it is set.
//!
//! Both servers run under a small bash watchdog whose stdin is a pipe held by the test process.
//! A control plane shared through a `static` is never dropped, and a test binary can die any
//! way; in every case the pipe closes with the process, and the watchdog then stops both servers
//! and removes their directory. Nothing in the kernel does that for a plain child (PDEATHSIG
//! would need `unsafe` in `pre_exec`).

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::s3::free_port;

/// A user the API server knows by a static bearer token (`--token-auth-file`).
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub token: String,
}

/// A running etcd + kube-apiserver pair.
pub struct ControlPlane {
    watchdog: Child,
    /// Closing this ends the watchdog, which stops both servers.
    lifeline: Option<ChildStdin>,
    dir: PathBuf,
    kubectl: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// Certificate of the authority that signed the server's certificate.
    pub ca: PathBuf,
    /// A kubeconfig for the admin user.
    pub kubeconfig: PathBuf,
    /// In group `system:masters`: every request is allowed.
    pub admin: User,
    /// Two users with no grant but what RBAC gives every authenticated user.
    pub tenant_a: User,
    pub tenant_b: User,
    namespaces: AtomicU32,
}

/// The shared control plane of this test binary, started by the first test that asks.
pub fn shared() -> &'static ControlPlane {
    static SHARED: OnceLock<ControlPlane> = OnceLock::new();
    SHARED.get_or_init(ControlPlane::start)
}

/// The directory holding `kube-apiserver`, `kubectl` and `etcd`: `$KUBEBUILDER_ASSETS`, or what
/// `scripts/control-plane.sh build` prints (it builds them the first time).
pub fn assets() -> &'static Path {
    static ASSETS: OnceLock<PathBuf> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/control-plane.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("build")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/control-plane.sh");
        assert!(
            out.status.success(),
            "no Kubernetes control plane: `bash scripts/control-plane.sh build` failed ({}). It \
             builds kube-apiserver and kubectl with Go from the Go module proxy, and needs etcd \
             (scripts/test-deps.sh installs it); or set KUBEBUILDER_ASSETS to a directory holding \
             kube-apiserver, kubectl and etcd",
            out.status
        );
        let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        for bin in ["kube-apiserver", "kubectl", "etcd"] {
            assert!(dir.join(bin).exists(), "{} has no {bin}", dir.display());
        }
        dir
    })
}

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Quotes `text` for bash.
fn quote(text: impl AsRef<std::ffi::OsStr>) -> String {
    let text = text.as_ref().to_string_lossy();
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A bash script that starts etcd and kube-apiserver in `dir`, then waits. When the test process
/// closes the script's stdin, it stops both servers and removes `dir`. When a server exits on
/// its own, it stops the other and keeps `dir`, so that the test can show the logs.
fn watchdog_script(assets: &Path, dir: &Path, etcd_port: u16, peer: u16, api_port: u16) -> String {
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let etcd = [
        "--name control-plane --data-dir \"$dir/etcd\" --unsafe-no-fsync".to_string(),
        format!("--listen-client-urls {etcd_url} --advertise-client-urls {etcd_url}"),
        format!("--listen-peer-urls {peer_url} --initial-advertise-peer-urls {peer_url}"),
        format!("--initial-cluster control-plane={peer_url} --initial-cluster-state new"),
        "--logger zap --log-outputs stderr --log-level warn".to_string(),
    ];
    let apiserver = [
        format!("--etcd-servers {etcd_url}"),
        format!("--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port {api_port}"),
        "--cert-dir \"$dir/certs\" --token-auth-file \"$dir/tokens.csv\"".to_string(),
        "--authorization-mode RBAC --allow-privileged=true".to_string(),
        "--service-account-issuer https://kubernetes.default.svc.cluster.local".to_string(),
        "--service-account-key-file \"$dir/service-account.key\"".to_string(),
        "--service-account-signing-key-file \"$dir/service-account.key\"".to_string(),
        "--service-cluster-ip-range 10.0.0.0/24".to_string(),
        // The `kubernetes` Service's endpoint would be the advertised 127.0.0.1, which an
        // Endpoints object may not hold: the server would log that every 10 s. No pod runs
        // here to use the Service.
        "--endpoint-reconciler-type none".to_string(),
    ];
    format!(
        r#"set -u
dir={dir}
exec 3<&0 </dev/null
{etcd_bin} {etcd} >"$dir/etcd.log" 2>&1 &
etcd=$!
{api_bin} {apiserver} >"$dir/kube-apiserver.log" 2>&1 &
api=$!
(read -r _ <&3 || true) &
lifeline=$!
exec 3<&-
wait -n $etcd $api $lifeline
# SIGKILL: the data is thrown away, and kube-apiserver's graceful shutdown waits on etcd and
# open watches for a long time once etcd is gone.
if kill -0 $lifeline 2>/dev/null; then
  kill -KILL $lifeline $etcd $api 2>/dev/null
  wait
  exit 1
fi
kill -KILL $etcd $api 2>/dev/null
wait
rm -rf "$dir"
"#,
        dir = quote(dir),
        etcd_bin = quote(assets.join("etcd")),
        api_bin = quote(assets.join("kube-apiserver")),
        etcd = etcd.join(" "),
        apiserver = apiserver.join(" "),
    )
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the API server is ready.
    pub fn start() -> Self {
        let assets = assets();
        let dir = tempfile::Builder::new()
            .prefix("kairn-control-plane")
            .tempdir()
            .unwrap()
            .keep();
        let users = [
            ("admin", "system:masters"),
            ("tenant-a", "tenants"),
            ("tenant-b", "tenants"),
        ]
        .map(|(name, group)| (name, group, random_token()));
        let tokens: String = users
            .iter()
            .map(|(name, group, token)| format!("{token},{name},{name},\"{group}\"\n"))
            .collect();
        std::fs::write(dir.join("tokens.csv"), tokens).unwrap();
        run_ok(
            Command::new("openssl")
                .args(["genrsa", "-out"])
                .arg(dir.join("service-account.key"))
                .arg("2048"),
            "openssl genrsa (Debian package openssl)",
        );
        let (etcd_port, etcd_peer, api_port) = (free_port(), free_port(), free_port());
        let server = format!("https://127.0.0.1:{api_port}");
        let script = watchdog_script(assets, &dir, etcd_port, etcd_peer, api_port);
        std::fs::write(dir.join("watchdog.sh"), script).unwrap();
        let mut watchdog = Command::new("bash")
            .arg(dir.join("watchdog.sh"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the control plane's watchdog (bash)");
        let lifeline = watchdog.stdin.take();
        let user = |i: usize| User {
            name: users[i].0.to_string(),
            token: users[i].2.clone(),
        };
        // kube-apiserver writes its self-signed certificate, followed by the CA that signed it,
        // into --cert-dir; the bundle serves as the kubeconfig's authority.
        let ca = dir.join("certs/apiserver.crt");
        let kubeconfig = dir.join("admin.kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&server, &ca, &users[0].2)).unwrap();
        let mut plane = Self {
            watchdog,
            lifeline,
            dir,
            kubectl: assets.join("kubectl"),
            server,
            ca,
            kubeconfig,
            admin: user(0),
            tenant_a: user(1),
            tenant_b: user(2),
            namespaces: AtomicU32::new(0),
        };
        plane.wait_ready();
        plane
    }

    fn wait_ready(&mut self) {
        // A cold start creates RBAC's bootstrap roles and every built-in API; on a loaded
        // 2-core machine that can take a minute or more.
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.watchdog.try_wait() {
                panic!(
                    "the control plane stopped ({status}) before it was ready:\n{}",
                    self.logs()
                );
            }
            if self.ca.exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return;
                }
                last = String::from_utf8_lossy(&out.stderr).into_owned();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "kube-apiserver was not ready within 300 s ({last}):\n{}",
            self.logs()
        );
    }

    /// Where the servers keep their data, certificates and logs (removed when they stop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last lines of what etcd and kube-apiserver logged.
    pub fn logs(&self) -> String {
        let tail = |name: &str| {
            let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- etcd.log\n{}\n--- kube-apiserver.log\n{}",
            tail("etcd.log"),
            tail("kube-apiserver.log")
        )
    }

    /// Runs kubectl as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_stdin(args, None)
    }

    /// Runs kubectl as the admin with `stdin` as its input (for `apply -f -`).
    pub fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        run_with_stdin(cmd, stdin)
    }

    /// Runs kubectl as the admin, asserts it succeeded, and returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        expect_success(self.kubectl(args), args)
    }

    /// Runs kubectl with a bearer token instead of the admin's credentials: a static user's, or
    /// a ServiceAccount's from [`ControlPlane::service_account_token`].
    pub fn kubectl_as(&self, token: &str, args: &[&str]) -> Output {
        self.kubectl_as_with_stdin(token, args, None)
    }

    /// [`ControlPlane::kubectl_as`] with `stdin` as kubectl's input.
    pub fn kubectl_as_with_stdin(&self, token: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(&self.kubectl);
        // An empty kubeconfig, so that nothing of the admin's is sent along with the token.
        cmd.arg("--kubeconfig")
            .arg("/dev/null")
            .arg("--server")
            .arg(&self.server)
            .arg("--certificate-authority")
            .arg(&self.ca)
            .arg("--token")
            .arg(token)
            .args(args);
        run_with_stdin(cmd, stdin)
    }

    /// A new namespace named `<prefix>-<n>`, with its `default` ServiceAccount (made by the
    /// controller manager in a cluster; there is none here, and pods need it to be admitted).
    pub fn namespace(&self, prefix: &str) -> String {
        let n = self.namespaces.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{n}");
        self.create_namespace(&name);
        name
    }

    /// Namespace `name`, with its `default` ServiceAccount, for a test that needs a fixed name.
    pub fn create_namespace(&self, name: &str) {
        self.kubectl_ok(&["create", "namespace", name]);
        self.kubectl_ok(&["create", "serviceaccount", "default", "-n", name]);
    }

    /// A bearer token for ServiceAccount `namespace/name`, from the TokenRequest API (as the
    /// kubelet would project it into a pod).
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let token = self.kubectl_ok(&["create", "token", name, "-n", namespace]);
        token.trim().to_string()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let _ = self.watchdog.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_with_stdin(mut cmd: Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn expect_success(out: Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "kubectl {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn kubeconfig_yaml(server: &str, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kairn-test\n  cluster:\n    server: \
         {server}\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    token: \
         {token}\ncontexts:\n- name: admin\n  context:\n    cluster: kairn-test\n    user: \
         admin\ncurrent-context: admin\n",
        ca.display()
    )
}
