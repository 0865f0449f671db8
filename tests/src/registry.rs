//! A real OCI registry for the image tests: Debian's `docker-registry` (the CNCF distribution
//! registry) on 127.0.0.1, with or without basic auth, stopped on drop; `skopeo` to push and
//! inspect; and test images assembled here as OCI layouts (gzip tar layers, configs,
//! manifests, a multi-platform index), so their digests are known before any tool sees them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::s3::free_port;

/// A registry process, killed on drop.
pub struct Registry {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// `user:password`, when it asks for basic auth.
    pub creds: Option<String>,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Registry {
    /// Starts a registry; with `creds` (`user:password`) it wants HTTP basic auth.
    pub fn start(creds: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut auth = String::new();
        if let Some(c) = creds {
            let (user, password) = c.split_once(':').unwrap();
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils): scripts/test-deps.sh installs it");
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: kairn-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut r = Self {
            child: None,
            host: format!("127.0.0.1:{port}"),
            creds: creds.map(String::from),
            config,
            _dir: dir,
        };
        r.run();
        r
    }

    fn run(&mut self) {
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry: scripts/test-deps.sh installs it");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("docker-registry did not listen on {}", self.host);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Deletes `repository:tag`'s manifest, then stops the registry, runs its garbage
    /// collector (which removes every blob no manifest uses), and starts it again.
    pub fn delete_and_collect(&mut self, images: &[&str]) {
        for image in images {
            let out = skopeo(&self.with_creds(&[
                "delete",
                "--tls-verify=false",
                &format!("docker://{}/{image}", self.host),
            ]));
            assert!(
                out.status.success(),
                "skopeo delete {image}: {}",
                stderr(&out)
            );
        }
        self.stop();
        let out = Command::new("docker-registry")
            .args(["garbage-collect", "--delete-untagged"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(out.status.success(), "garbage-collect: {}", stderr(&out));
        self.run();
    }

    /// `args` with this registry's credentials for skopeo, if it has any.
    pub fn with_creds(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if let Some(c) = &self.creds {
            let flag = if args[0] == "copy" {
                "--dest-creds"
            } else {
                "--creds"
            };
            all.insert(1, format!("{flag}={c}"));
        }
        all
    }

    /// Pushes image `tag` of the OCI layout `layout` to `repository:tag` (all platforms).
    pub fn push(&self, layout: &Path, tag: &str, target: &str) {
        let src = format!("oci:{}:{tag}", layout.display());
        let dst = format!("docker://{}/{target}", self.host);
        let out =
            skopeo(&self.with_creds(&["copy", "--all", "--dest-tls-verify=false", &src, &dst]));
        assert!(
            out.status.success(),
            "skopeo copy {src} {dst}: {}",
            stderr(&out)
        );
    }

    /// The raw manifest of `repository:tag` as the registry serves it, or `None` if it has
    /// none.
    pub fn raw_manifest(&self, image: &str) -> Option<Vec<u8>> {
        let out = skopeo(&self.with_creds(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/{image}", self.host),
        ]));
        out.status.success().then_some(out.stdout)
    }
}

/// Runs skopeo with these arguments (no signature policy: the test images are unsigned).
pub fn skopeo<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo: scripts/test-deps.sh installs it")
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex(&sha2::Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OCI image layout being assembled.
pub struct Layout {
    /// Its directory.
    pub dir: PathBuf,
    index: Vec<Value>,
}

/// A blob written: its descriptor's fields.
#[derive(Debug, Clone)]
pub struct Blob {
    /// `sha256:...`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

impl Layout {
    /// An empty layout at `dir`.
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Self {
            dir: dir.to_path_buf(),
            index: Vec::new(),
        }
    }

    /// Stores a blob.
    pub fn blob(&self, bytes: &[u8]) -> Blob {
        let d = digest(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(&d[7..]), bytes).unwrap();
        Blob {
            digest: d,
            size: bytes.len() as u64,
        }
    }

    /// A gzip tar layer holding `files` (name, content), stored.
    pub fn layer(&self, files: &[(&str, &[u8])]) -> Blob {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(1_700_000_000);
            header.set_cksum();
            tar.append_data(&mut header, name, *content).unwrap();
        }
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        self.blob(&gz.finish().unwrap())
    }

    /// An image manifest over `layers` for `arch`, stored; returns the manifest blob.
    pub fn manifest(&self, layers: &[Blob], arch: &str) -> Blob {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
        let config = json!({"architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/app"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let config = self.blob(&serde_json::to_vec(&config).unwrap());
        let layers: Vec<Value> = layers
            .iter()
            .map(|l| {
                json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": l.digest, "size": l.size})
            })
            .collect();
        let manifest = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config.digest, "size": config.size},
            "layers": layers});
        self.blob(&serde_json::to_vec(&manifest).unwrap())
    }

    /// An index of `(manifest, arch)` entries, stored.
    pub fn index(&self, manifests: &[(Blob, &str)]) -> Blob {
        let entries: Vec<Value> = manifests
            .iter()
            .map(|(m, arch)| {
                json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": m.digest, "size": m.size,
                "platform": {"os": "linux", "architecture": arch}})
            })
            .collect();
        let index = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
        self.blob(&serde_json::to_vec(&index).unwrap())
    }

    /// Names `blob` (a manifest or index) `tag` in `index.json`.
    pub fn tag(&mut self, blob: &Blob, tag: &str, media_type: &str) {
        self.index
            .push(json!({"mediaType": media_type, "digest": blob.digest,
            "size": blob.size, "annotations": {"org.opencontainers.image.ref.name": tag}}));
        let index = json!({"schemaVersion": 2, "manifests": self.index});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }
}

/// A Docker `config.json` with one login.
pub fn auth_file(path: &Path, host: &str, creds: &str) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(creds);
    std::fs::write(
        path,
        serde_json::to_vec(&json!({"auths": {host: {"auth": auth}}})).unwrap(),
    )
    .unwrap();
}
