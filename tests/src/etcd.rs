//! A real etcd (Debian's `etcd-server` 3.4, with `etcdctl` from `etcd-client`) for the tests,
//! on 127.0.0.1 ports picked free, killed on drop; with TLS and client-certificate auth the
//! way kubeadm runs it when asked. `scripts/test-deps.sh` installs both packages.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::s3::free_port;

/// Client-certificate TLS material in PEM files, made with the `openssl` command.
pub struct Pki {
    /// CA certificate.
    pub ca: PathBuf,
    /// Server certificate for 127.0.0.1, and its key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client certificate, and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate from another CA, which etcd must refuse.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`.
    pub fn create(dir: &Path) -> Self {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "stranger-ca"] {
            let mut args = vec!["req", "-x509", "-days", "2", "-subj"];
            let subject = format!("/CN={ca}");
            args.push(&subject);
            args.extend_from_slice(&ec);
            let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
            args.extend_from_slice(&["-keyout", &key, "-out", &crt]);
            openssl(dir, &args);
        }
        let leaf = |name: &str, ca: &str, ext: &str| {
            let (key, csr, crt) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
            );
            let subject = format!("/CN={name}");
            let mut args = vec!["req", "-new", "-subj", &subject];
            args.extend_from_slice(&ec);
            args.extend_from_slice(&["-keyout", &key, "-out", &csr]);
            openssl(dir, &args);
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            let (ca_crt, ca_key, ext_file) = (
                format!("{ca}.crt"),
                format!("{ca}.key"),
                format!("{name}.ext"),
            );
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_crt,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &ext_file,
                    "-out",
                    &crt,
                ],
            );
        };
        leaf(
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        );
        leaf("client", "ca", "extendedKeyUsage=clientAuth\n");
        leaf("stranger", "stranger-ca", "extendedKeyUsage=clientAuth\n");
        Self {
            ca: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            stranger_cert: dir.join("stranger.crt"),
            stranger_key: dir.join("stranger.key"),
        }
    }
}

/// An etcd member serving one data directory.
pub struct Etcd {
    child: Child,
    /// `http://127.0.0.1:PORT` or `https://...`.
    pub endpoint: String,
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
    log: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcd_installed() {
    assert!(
        Command::new("etcd").arg("--version").output().is_ok()
            && Command::new("etcdctl").arg("version").output().is_ok(),
        "etcd is not installed: run `bash scripts/test-deps.sh` (apt-get install etcd-server \
         etcd-client)"
    );
}

impl Etcd {
    /// Starts a new single-member cluster in `data_dir`; `name` must match the data directory's
    /// member name when it was made by `etcdctl snapshot restore`.
    pub fn start(name: &str, data_dir: &Path, pki: Option<&Pki>) -> Self {
        Self::start_with_peer(name, data_dir, pki, free_port())
    }

    /// As [`Etcd::start`], with the peer port fixed (a restored member keeps the peer URL it
    /// was restored with).
    pub fn start_with_peer(name: &str, data_dir: &Path, pki: Option<&Pki>, peer: u16) -> Self {
        etcd_installed();
        let port = free_port();
        let scheme = if pki.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = data_dir.with_extension("log");
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", name, "--data-dir"])
            .arg(data_dir)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("{name}={peer_url}")])
            .args(["--initial-cluster-state", "new"])
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "warn",
            ])
            .arg("--unsafe-no-fsync");
        if let Some(pki) = pki {
            cmd.arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(&pki.ca)
                .arg("--cert-file")
                .arg(&pki.server_cert)
                .arg("--key-file")
                .arg(&pki.server_key);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start etcd");
        let mut etcd = Self {
            child,
            endpoint: client_url,
            tls: pki.map(|p| (p.ca.clone(), p.client_cert.clone(), p.client_key.clone())),
            log,
        };
        etcd.wait_healthy(port);
        etcd
    }

    fn wait_healthy(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("etcd exited ({status}): {}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && self.ctl(&["endpoint", "health"]).status.success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("etcd did not become healthy within 60 s: {}", self.log());
    }

    /// What etcd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `etcdctl` against this member.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_with_stdin(args, b"")
    }

    /// Runs `etcdctl` with `stdin` as its input.
    pub fn ctl_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3").args([
            "--endpoints",
            &self.endpoint,
            "--command-timeout",
            "30s",
        ]);
        if let Some((ca, cert, key)) = &self.tls {
            cmd.arg("--cacert")
                .arg(ca)
                .arg("--cert")
                .arg(cert)
                .arg("--key")
                .arg(key);
        }
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run etcdctl");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Writes every key in one transaction per hundred (etcd allows 128 operations in one).
    pub fn put_all(&self, kvs: &BTreeMap<String, String>) {
        let entries: Vec<_> = kvs.iter().collect();
        for batch in entries.chunks(100) {
            let mut script = String::from("\n");
            for (k, v) in batch {
                assert!(!k.contains(char::is_whitespace) && !v.contains(char::is_whitespace));
                script.push_str(&format!("put {k} {v}\n"));
            }
            script.push_str("\n\n");
            let out = self.ctl_with_stdin(&["txn"], script.as_bytes());
            assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
                "etcdctl txn: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Every key under `prefix` with its value.
    pub fn get_prefix(&self, prefix: &str) -> BTreeMap<String, String> {
        let out = self.ctl(&["get", prefix, "--prefix", "-w", "json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let decode = |s: &serde_json::Value| {
            use base64::Engine as _;
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(s.as_str().unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        v["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| (decode(&kv["key"]), decode(&kv["value"])))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs `etcdctl snapshot restore` on `file` into a new data directory for member `name`,
/// whose peer URL is `127.0.0.1:peer`.
pub fn restore_snapshot(file: &Path, data_dir: &Path, name: &str, peer: u16) -> Output {
    etcd_installed();
    let peer_url = format!("http://127.0.0.1:{peer}");
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "restore"])
        .arg(file)
        .args(["--name", name, "--data-dir"])
        .arg(data_dir)
        .args(["--initial-cluster", &format!("{name}={peer_url}")])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .output()
        .expect("run etcdctl snapshot restore")
}
