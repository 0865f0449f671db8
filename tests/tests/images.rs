//! Container images in the repository, against Debian's docker-registry on 127.0.0.1: images
//! assembled here (two versions of an app sharing a base layer, a multi-platform index) are
//! pushed with skopeo, backed up, deleted from the registry and garbage-collected, restored
//! as an OCI layout that skopeo reads, and pushed back to a second registry, digests unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

use kairn_e2e::registry::{Blob, Layout, Registry, auth_file, digest, skopeo, stderr};
use kairn_e2e::{Cli, code, noise};
use serde_json::Value;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The test images: digests of app v1, app v2, the multi-platform index, and the layer only v2
/// has.
struct Images {
    v1: Blob,
    v2: Blob,
    multi: Blob,
    v2_layer: Blob,
    base_layer: Blob,
}

fn build_images(dir: &std::path::Path) -> (Layout, Images) {
    let mut layout = Layout::new(dir);
    let base_layer = layout.layer(&[("usr/lib/base.so", &noise(1, 3 << 20))]);
    let v1_layer = layout.layer(&[("bin/app", &noise(2, 400_000))]);
    let v2_layer = layout.layer(&[("bin/app", &noise(3, 400_000))]);
    let v1 = layout.manifest(&[base_layer.clone(), v1_layer], "amd64");
    let v2 = layout.manifest(&[base_layer.clone(), v2_layer.clone()], "amd64");
    let arm_layer = layout.layer(&[("bin/app", &noise(4, 200_000))]);
    let amd = layout.manifest(std::slice::from_ref(&base_layer), "amd64");
    let arm = layout.manifest(&[base_layer.clone(), arm_layer], "arm64");
    let multi = layout.index(&[(amd, "amd64"), (arm, "arm64")]);
    layout.tag(&v1, "app-v1", MANIFEST);
    layout.tag(&v2, "app-v2", MANIFEST);
    layout.tag(&multi, "multi", INDEX);
    let images = Images {
        v1,
        v2,
        multi,
        v2_layer,
        base_layer,
    };
    (layout, images)
}

fn push_all(registry: &Registry, layout: &Layout) {
    registry.push(&layout.dir, "app-v1", "shop/app:v1");
    registry.push(&layout.dir, "app-v2", "shop/app:v2");
    registry.push(&layout.dir, "multi", "shop/multi:1");
}

#[test]
fn images_are_backed_up_restored_for_skopeo_and_pushed_back_with_their_digests() {
    let work = tempfile::tempdir().unwrap();
    let (layout, images) = build_images(&work.path().join("layout"));
    let mut registry = Registry::start(None);
    push_all(&registry, &layout);
    let h = registry.host.clone();
    let v1_ref = format!("{h}/shop/app:v1");
    let multi_ref = format!("{h}/shop/multi:1");
    let cli = Cli::init();

    let first = cli.json(&["backup", "--images", &v1_ref, &multi_ref]);
    assert_eq!(first["images"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["images"][0]["digest"], images.v1.digest.as_str());

    // The second version shares the base layer: only its own layer (and config and manifest)
    // is downloaded, and the base is not stored again.
    let v2_ref = format!("{h}/shop/app:v2");
    let second = cli.json(&["backup", "--images", &v1_ref, &v2_ref, &multi_ref]);
    let downloaded = second["downloaded"].as_u64().unwrap();
    assert!(
        downloaded >= images.v2_layer.size && downloaded < images.v2_layer.size + 4096,
        "only v2's layer is fetched: {downloaded} bytes, its layer has {}",
        images.v2_layer.size
    );
    let added = second["summary"]["new_bytes_raw"].as_u64().unwrap();
    assert!(
        added < images.base_layer.size,
        "the base layer is not stored again: {added} new bytes"
    );
    // Nothing changed: nothing is downloaded and nothing is added.
    let third = cli.json(&["backup", "--images", &v1_ref, &v2_ref, &multi_ref]);
    assert_eq!(third["downloaded"], 0, "{third}");
    assert_eq!(third["summary"]["new_bytes_raw"], 0, "{third}");

    let listed = cli.json(&["images", "list", "latest"]);
    let listed: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["reference"].as_str().unwrap(),
                i["digest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (v1_ref.as_str(), images.v1.digest.as_str()),
            (v2_ref.as_str(), images.v2.digest.as_str()),
            (multi_ref.as_str(), images.multi.digest.as_str()),
        ],
        "sorted by reference"
    );

    // The registry loses them: manifests deleted, blobs garbage-collected.
    registry.delete_and_collect(&["shop/app:v1", "shop/app:v2", "shop/multi:1"]);
    assert!(registry.raw_manifest("shop/app:v1").is_none(), "deleted");

    // A restore is an OCI layout skopeo reads as it is.
    let restored = work.path().join("restored");
    cli.ok(&["restore", "latest", "--target", restored.to_str().unwrap()]);
    let copied = work.path().join("copied");
    for (reference, blob) in [(&v1_ref, &images.v1), (&v2_ref, &images.v2)] {
        let src = format!("oci:{}:{reference}", restored.display());
        let out = skopeo(&["copy", &src, &format!("oci:{}:x", copied.display())]);
        assert!(out.status.success(), "skopeo copy {src}: {}", stderr(&out));
        let out = skopeo(&["inspect", "--raw", &src]);
        assert_eq!(
            digest(&out.stdout),
            blob.digest,
            "{reference} from the restore"
        );
    }

    // Pushed to a second registry under a prefix, and back to the first: same digests.
    let other = Registry::start(None);
    let to = format!("{}/dr", other.host);
    let pushed = cli.json(&["images", "push", "latest", "--to", &to]);
    assert_eq!(pushed["pushed"].as_array().unwrap().len(), 3, "{pushed}");
    for (image, blob) in [
        ("dr/shop/app:v1", &images.v1),
        ("dr/shop/app:v2", &images.v2),
        ("dr/shop/multi:1", &images.multi),
    ] {
        let raw = other
            .raw_manifest(image)
            .unwrap_or_else(|| panic!("{image} was pushed"));
        assert_eq!(digest(&raw), blob.digest, "{image}");
    }
    let all = skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{}/dr/shop/multi:1", other.host),
        &format!("oci:{}:multi", work.path().join("pulled").display()),
    ]);
    assert!(
        all.status.success(),
        "every platform's blobs are there: {}",
        stderr(&all)
    );
    let again = cli.json(&["images", "push", "latest", "--to", &to]);
    assert_eq!(
        again["pushed"][0]["uploaded"], 0,
        "present blobs are not sent again: {again}"
    );
    cli.ok(&["images", "push", "latest"]);
    let raw = registry.raw_manifest("shop/multi:1").unwrap();
    assert_eq!(digest(&raw), images.multi.digest);
}

#[test]
fn one_platform_of_an_index_is_stored_as_that_platforms_manifest() {
    let work = tempfile::tempdir().unwrap();
    let (layout, images) = build_images(&work.path().join("layout"));
    let registry = Registry::start(None);
    push_all(&registry, &layout);
    let cli = Cli::init();
    let multi = format!("{}/shop/multi:1", registry.host);
    let out = cli.json(&["backup", "--images", &multi, "--platform", "linux/arm64"]);
    assert_eq!(out["images"][0]["platforms"][0], "linux/arm64", "{out}");
    let listed = cli.json(&["images", "list", "latest"]);
    assert_eq!(listed[0]["from_index"], images.multi.digest.as_str());
    assert_ne!(listed[0]["digest"], images.multi.digest.as_str());
    let bad = cli.run(&["backup", "--images", &multi, "--platform", "linux/s390x"]);
    assert_eq!(code(&bad), 1, "no such platform: {}", stderr(&bad));
    let usage = cli.run(&["backup", "--images", &multi, "--platform", "linux"]);
    assert_eq!(code(&usage), 2);
}

#[test]
fn a_registry_with_basic_auth_wants_the_login_and_wrong_ones_exit_21() {
    let work = tempfile::tempdir().unwrap();
    let (layout, images) = build_images(&work.path().join("layout"));
    let registry = Registry::start(Some("alice:correct-secret"));
    registry.push(&layout.dir, "app-v1", "shop/app:v1");
    let v1 = format!("{}/shop/app:v1", registry.host);
    let cli = Cli::init();
    let none = cli
        .cmd()
        .env("HOME", work.path())
        .args(["backup", "--images", &v1])
        .output()
        .unwrap();
    assert_eq!(code(&none), 21, "no login: {}", stderr(&none));
    let wrong = work.path().join("wrong.json");
    auth_file(&wrong, &registry.host, "alice:not-it");
    let out = cli.run(&[
        "backup",
        "--images",
        &v1,
        "--authfile",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 21, "wrong password: {}", stderr(&out));
    assert!(
        !stderr(&out).contains("not-it"),
        "the password is never printed"
    );
    let right = work.path().join("right.json");
    auth_file(&right, &registry.host, "alice:correct-secret");
    let out = cli.json(&[
        "backup",
        "--images",
        &v1,
        "--authfile",
        right.to_str().unwrap(),
    ]);
    assert_eq!(out["images"][0]["digest"], images.v1.digest.as_str());
    let other = Registry::start(Some("bob:other-secret"));
    let push = cli.run(&[
        "images",
        "push",
        "latest",
        "--to",
        &other.host,
        "--authfile",
        right.to_str().unwrap(),
    ]);
    assert_eq!(
        code(&push),
        21,
        "no login for the target: {}",
        stderr(&push)
    );
}

/// An HTTP proxy in front of the registry that flips one byte of one blob.
struct CorruptingProxy {
    child: std::process::Child,
    host: String,
}

impl Drop for CorruptingProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl CorruptingProxy {
    fn start(upstream: &str, blob: &str) -> Self {
        let port = kairn_e2e::s3::free_port();
        let script = format!(
            r#"
import http.server, urllib.request, sys
class H(http.server.BaseHTTPRequestHandler):
    def do(self, head):
        req = urllib.request.Request("http://{upstream}" + self.path, method=self.command,
                                     headers={{k: v for k, v in self.headers.items() if k.lower() != "host"}})
        try:
            resp = urllib.request.urlopen(req)
            status, headers, body = resp.status, resp.getheaders(), resp.read()
        except urllib.error.HTTPError as e:
            status, headers, body = e.code, e.headers.items(), e.read()
        if "{blob}" in self.path and self.command == "GET" and body:
            body = bytes([body[0] ^ 1]) + body[1:]
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
    def do_GET(self): self.do(False)
    def do_HEAD(self): self.do(True)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", {port}), H)
print("ready", flush=True)
s.serve_forever()
"#
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "ready");
        Self {
            child,
            host: format!("127.0.0.1:{port}"),
        }
    }
}

#[test]
fn a_layer_corrupted_on_the_way_is_refused_and_the_other_images_are_kept() {
    let work = tempfile::tempdir().unwrap();
    let (layout, images) = build_images(&work.path().join("layout"));
    let registry = Registry::start(None);
    push_all(&registry, &layout);
    let proxy = CorruptingProxy::start(&registry.host, &images.v2_layer.digest);
    let cli = Cli::init();
    let v2 = format!("{}/shop/app:v2", proxy.host);
    let v1 = format!("{}/shop/app:v1", proxy.host);
    let out = cli.run(&["backup", "--images", &v1, &v2]);
    assert_eq!(code(&out), 19, "a corrupt layer: {}", stderr(&out));
    assert!(
        stderr(&out).contains(&images.v2_layer.digest),
        "the message names the layer: {}",
        stderr(&out)
    );
    let listed = cli.json(&["images", "list", "latest"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "v1 was kept: {listed}");
    assert_eq!(listed[0]["reference"], Value::from(v1));
    let only = cli.run(&["backup", "--images", &v2]);
    assert_eq!(code(&only), 19);
    assert_eq!(
        cli.json(&["snapshots"]).as_array().unwrap().len(),
        1,
        "no snapshot of v2 alone"
    );
}
