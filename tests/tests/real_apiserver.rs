//! Kairn's manifests against a **real** kube-apiserver and etcd (tests/src/control_plane.rs,
//! built by scripts/control-plane.sh): the server validates the CRDs' schemas and the objects
//! made from them, and its RBAC authorizer says what `deploy/rbac.yaml` really grants.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kairn_e2e::control_plane::{self, ControlPlane};

const AGENT: &str = "system:serviceaccount:kairn-system:kairn-node-agent";

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The shared control plane with `deploy/crds.yaml` and `deploy/rbac.yaml` applied once, and
/// what `kubectl apply` answered for each.
fn deployed() -> (&'static ControlPlane, &'static [(String, Output)]) {
    static APPLIED: OnceLock<Vec<(String, Output)>> = OnceLock::new();
    let plane = control_plane::shared();
    let applied = APPLIED.get_or_init(|| {
        kairn_e2e::agent::DEPLOYED
            .into_iter()
            .map(|file| {
                let path = deploy(file);
                let out = plane.kubectl(&["apply", "-f", path.to_str().unwrap()]);
                (file.to_string(), out)
            })
            .collect()
    });
    for (file, out) in applied {
        assert!(
            out.status.success(),
            "kubectl apply -f deploy/{file} was refused by the server: {}",
            text(out)
        );
    }
    (plane, applied)
}

#[test]
fn crds_and_rbac_apply_and_the_crds_are_structural() {
    let (plane, applied) = deployed();
    for (file, out) in applied {
        println!("apply -f deploy/{file}:\n{}", text(out));
    }
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=120s",
    ]);
    // A schema the server cannot use for pruning and validation is still stored, with this
    // condition set: `apply` alone would not notice.
    for crd in [
        "volumebackups",
        "volumerestores",
        "backupschedules",
        "clusterbackups",
    ] {
        let name = format!("{crd}.kairn.dev");
        let conditions = plane.kubectl_ok(&[
            "get",
            "crd",
            &name,
            "-o",
            "jsonpath={range .status.conditions[*]}{.type}={.status} {end}",
        ]);
        assert!(
            conditions.contains("Established=True"),
            "{name}: {conditions}"
        );
        assert!(
            !conditions.contains("NonStructuralSchema"),
            "{name}: {conditions}"
        );
    }
}

#[test]
fn the_examples_pass_the_servers_validation() {
    let (plane, _) = deployed();
    for namespace in ["shop", "staging"] {
        plane.create_namespace(namespace);
    }
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=120s",
    ]);
    let examples = deploy("examples");
    // Server-side dry run: every object goes through schema validation and admission, and
    // nothing is stored (there is no kubelet here to run the example pod).
    let out = plane.kubectl_ok(&[
        "apply",
        "--dry-run=server",
        "-f",
        examples.to_str().unwrap(),
    ]);
    println!("{out}");
}

#[test]
fn tokens_authenticate_static_users_and_service_accounts() {
    let plane = control_plane::shared();
    let namespace = plane.namespace("tokens");
    let who = |token: &str| {
        let out = plane.kubectl_as(
            token,
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(who(&plane.tenant_a.token), "tenant-a");
    assert_eq!(who(&plane.tenant_b.token), "tenant-b");
    let sa_token = plane.service_account_token(&namespace, "default");
    assert_eq!(
        who(&sa_token),
        format!("system:serviceaccount:{namespace}:default")
    );
    // RBAC is on: a tenant with no binding is refused, by the authorizer, not the client.
    let out = plane.kubectl_as(&plane.tenant_a.token, &["get", "secrets", "-n", &namespace]);
    assert!(!out.status.success());
    assert!(text(&out).contains("Forbidden"), "{}", text(&out));
    let out = plane.kubectl_as("not-a-token", &["get", "pods", "-n", &namespace]);
    assert!(text(&out).contains("Unauthorized"), "{}", text(&out));
}

fn can_i(plane: &ControlPlane, verb: &str, resource: &str, namespace: &str) -> bool {
    can_i_as(plane, AGENT, verb, resource, namespace)
}

fn can_i_as(plane: &ControlPlane, who: &str, verb: &str, resource: &str, ns: &str) -> bool {
    // `can-i VERB a/b` would ask about the object named b: a subresource has its own flag.
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let subresource = format!("--subresource={subresource}");
    let mut args = vec!["auth", "can-i", verb, resource, &subresource, "--as", who];
    if !ns.is_empty() {
        args.extend(["-n", ns]);
    }
    let out = plane.kubectl(&args);
    // can-i answers on stdout and exits 1 for "no".
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        _ => panic!("kubectl auth can-i {verb} {resource}: {}", text(&out)),
    }
}

/// Lines of a `kubectl auth can-i --list` table, with runs of spaces made one.
fn table_rows(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// The block of README.md between the two markers of the agent's permission list.
fn documented_permissions() -> Vec<String> {
    let readme = std::fs::read_to_string(deploy("../README.md")).unwrap();
    let start = "<!-- agent-permissions:start -->";
    let block = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("<!-- agent-permissions:end -->"))
        .unwrap_or_else(|| panic!("README.md has no {start} block"))
        .0;
    table_rows(&block.replace("```text", "").replace("```", ""))
}

/// What the agent's ServiceAccount may do, as the real RBAC authorizer computes it from
/// `deploy/rbac.yaml`, printed and compared with the list in README.md. Reading a Secret is
/// refused everywhere, and so is every subresource but the one the exec hooks need.
#[test]
fn the_agents_effective_permissions_are_the_documented_ones() {
    let (plane, _) = deployed();
    let other = plane.namespace("tenant");
    let list = plane.kubectl_ok(&["auth", "can-i", "--list", "--as", AGENT, "-n", &other]);
    println!("kubectl auth can-i --list --as={AGENT} -n <a tenant's namespace>\n{list}");
    assert_eq!(
        table_rows(&list),
        documented_permissions(),
        "README.md's list of the agent's permissions is not what the server grants"
    );
    for ns in [other.as_str(), "kairn-system"] {
        for verb in ["get", "list", "watch"] {
            assert!(!can_i(plane, verb, "secrets", ns), "{verb} secrets in {ns}");
        }
        assert!(!can_i(plane, "get", "pods/log", ns));
        assert!(!can_i(plane, "create", "pods/attach", ns));
        assert!(!can_i(plane, "create", "pods/portforward", ns));
        assert!(!can_i(plane, "get", "configmaps", ns));
    }
    assert!(!can_i(plane, "get", "nodes/proxy", ""));
    assert!(!can_i(plane, "create", "nodes/proxy", ""));
    // Granted on purpose.
    assert!(can_i(plane, "list", "pods", &other));
    assert!(can_i(
        plane,
        "patch",
        "volumebackups.kairn.dev/status",
        &other
    ));
    assert!(can_i(plane, "get", "pods/exec", &other));
    assert!(can_i(plane, "create", "pods/exec", &other));
    assert!(can_i(plane, "create", "events.events.k8s.io", &other));
    // Mount pods, for volumes no running pod mounts: created and deleted, never changed.
    assert!(can_i(plane, "create", "pods", &other));
    assert!(can_i(plane, "delete", "pods", &other));
    assert!(can_i(plane, "list", "volumeattachments.storage.k8s.io", ""));
    // Never granted: no writes beyond the rules.
    assert!(!can_i(plane, "delete", "secrets", &other));
    assert!(!can_i(plane, "update", "pods", &other));
    assert!(!can_i(plane, "patch", "pods", &other));
    assert!(!can_i(plane, "create", "pods/eviction", &other));
    assert!(!can_i(plane, "update", "volumebackups.kairn.dev", &other));
    // Deleting its own resources is granted, for expiry (spec.ttl), and pods, for mount pods;
    // no other delete.
    assert!(can_i(plane, "delete", "volumebackups.kairn.dev", &other));
    assert!(!can_i(plane, "delete", "persistentvolumeclaims", &other));
}

/// `deploy/rbac-manifests.yaml`, bound here to an account of its own so that the agent's stays
/// as `deploy/rbac.yaml` makes it: it lists everything, and reaches no subresource.
#[test]
fn the_optional_manifests_role_lists_everything_and_reaches_no_subresource() {
    let (plane, _) = deployed();
    let ns = plane.namespace("manifests");
    let yaml = std::fs::read_to_string(deploy("rbac-manifests.yaml"))
        .unwrap()
        .replace(
            "metadata:\n  name: kairn-manifests-reader\nroleRef",
            &format!("metadata:\n  name: kairn-manifests-reader-{ns}\nroleRef"),
        )
        .replace(
            "name: kairn-node-agent\n    namespace: kairn-system",
            &format!("name: exporter\n    namespace: {ns}"),
        );
    assert!(yaml.contains(&format!("namespace: {ns}")), "{yaml}");
    plane.kubectl_ok(&["create", "serviceaccount", "exporter", "-n", &ns]);
    let out = plane.kubectl_with_stdin(&["apply", "-f", "-"], Some(&yaml));
    assert!(out.status.success(), "{}", text(&out));
    let who = format!("system:serviceaccount:{ns}:exporter");
    let other = plane.namespace("tenant");
    assert!(can_i_as(plane, &who, "list", "secrets", &other));
    assert!(can_i_as(plane, &who, "list", "widgets.example.com", &other));
    for (verb, resource) in [
        ("get", "secrets"),
        ("get", "pods/exec"),
        ("create", "pods/exec"),
        ("get", "pods/log"),
        ("watch", "secrets"),
        ("delete", "configmaps"),
    ] {
        assert!(
            !can_i_as(plane, &who, verb, resource, &other),
            "{verb} {resource}"
        );
    }
    assert!(!can_i_as(plane, &who, "get", "nodes/proxy", ""));
}

/// Run only as a child of the test below: starts this binary's shared control plane, says
/// where it is, and ends as every test binary does, without dropping the static.
#[test]
#[ignore = "run by the_servers_stop_when_the_test_process_ends"]
fn child_starts_the_shared_control_plane_and_exits() {
    let plane = control_plane::shared();
    println!("DIR={}", plane.dir().display());
    println!("SERVER={}", plane.server);
}

/// A test binary never drops its shared control plane; its servers must stop anyway when the
/// process ends, and their directory must go.
#[test]
fn the_servers_stop_when_the_test_process_ends() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_starts_the_shared_control_plane_and_exits",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out));
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .to_string()
    };
    let dir = PathBuf::from(value("DIR="));
    let port: u16 = value("SERVER=https://127.0.0.1:").parse().unwrap();
    // The watchdog removes the directory after both servers have been killed and reaped; a
    // generous bound only keeps a broken watchdog from hanging the suite.
    let deadline = Instant::now() + Duration::from_secs(120);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !dir.exists(),
        "{} is still there: the servers outlived their test process",
        dir.display()
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "kube-apiserver still listens on {port}"
    );
}

/// A control plane of a test's own stops, and its directory goes, when the test drops it.
#[test]
fn a_dropped_control_plane_stops_its_servers() {
    let plane = ControlPlane::start();
    plane.kubectl_ok(&["get", "namespaces"]);
    let dir = plane.dir().to_path_buf();
    let port: u16 = plane
        .server
        .strip_prefix("https://127.0.0.1:")
        .unwrap()
        .parse()
        .unwrap();
    drop(plane);
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "kube-apiserver still listens on {port}"
    );
}
