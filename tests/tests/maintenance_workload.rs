//! The recommended deployment end to end, on the real kube-apiserver of tests/src/agent.rs: the
//! node agent holds an append-only key, and `kairn-maintenance`, authenticated as the
//! ServiceAccount of `deploy/maintenance.yaml` (so the server's RBAC authorizer passes on every
//! request it makes), holds the full key, applies a schedule's retention and prunes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kairn_e2e::agent::{
    AGENT_NAMESPACE, Cluster, KAIRN_API, deploy_file, is_final, kairn_object, kubeconfig_yaml,
};
use kairn_e2e::{CHEAP_KDF, Cli, write_volume};
use serde_json::{Value, json};

fn maintenance_bin() -> PathBuf {
    let bin = kairn_e2e::repo_bin().with_file_name("kairn-maintenance");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build -p kairn-node-agent`",
        bin.display()
    );
    bin
}

/// Adds an append-only key to `cli`'s repository; returns its password file.
fn append_only_key(cli: &Cli) -> PathBuf {
    let file = cli.dir.path().join("agent-password");
    std::fs::write(&file, "the agents' append-only key\n").unwrap();
    let mut args = vec!["key", "add", "--append-only", "--new-password-file"];
    args.push(file.to_str().unwrap());
    args.extend_from_slice(&CHEAP_KDF);
    cli.ok(&args);
    file
}

/// `kairn-maintenance` with no inherited KAIRN_ settings, on `cli`'s repository.
fn maintenance_cmd(cli: &Cli, password_file: &Path) -> Command {
    let mut cmd = Command::new(maintenance_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KAIRN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("KAIRN_REPOSITORY", &cli.repo)
        .env("KAIRN_PASSWORD_FILE", password_file)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null());
    cmd
}

/// A running `kairn-maintenance`.
struct Maintenance {
    // Checked from the polling closures while others read the log.
    child: std::cell::RefCell<Child>,
    port: u16,
    log: PathBuf,
}

impl Maintenance {
    fn start(c: &Cluster, kubeconfig: &Path) -> Self {
        let port = kairn_e2e::s3::free_port();
        let log = c.cli.dir.path().join("maintenance.log");
        let child = maintenance_cmd(&c.cli, &c.cli.password_file)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", "kairn-maintenance-0")
            .env("KAIRN_MAINTENANCE_INTERVAL_SECONDS", "0.5")
            .env("KAIRN_LISTEN", format!("127.0.0.1:{port}"))
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child: child.into(),
            port,
            log,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&self) {
        if let Ok(Some(exit)) = self.child.borrow_mut().try_wait() {
            panic!("kairn-maintenance exited ({exit}):\n{}", self.logs());
        }
    }

    /// GET `path`: the status code and the body.
    fn http(&self, path: &str) -> (u16, String) {
        kairn_e2e::agent::http_get(self.port, path, || self.logs())
    }

    /// A sample's value in `/metrics` (0 when absent).
    fn metric(&self, line_start: &str) -> f64 {
        let (_, text) = self.http("/metrics");
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    fn terminate(&self) -> std::process::ExitStatus {
        let pid = self.child.borrow().id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.borrow_mut().wait().unwrap()
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The repository's snapshots as `repo snapshots --json` lists them.
fn snapshots(cli: &Cli) -> Vec<Value> {
    cli.json(&["snapshots"]).as_array().unwrap().clone()
}

fn ids(snaps: &[Value]) -> Vec<Value> {
    snaps.iter().map(|s| s["id"].clone()).collect()
}

/// Polls `done` every 200 ms for up to `secs`, failing with `why()` after that.
fn wait_for(secs: u64, mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(secs), "{}", why());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the server lets the maintenance ServiceAccount do, as `kubectl auth can-i` answers.
fn maintenance_can(c: &Cluster, verb: &str, resource: &str) -> bool {
    let who = format!("--as=system:serviceaccount:{AGENT_NAMESPACE}:kairn-maintenance");
    let out = c
        .plane
        .kubectl(&["auth", "can-i", verb, resource, "-A", &who]);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// deploy/maintenance.yaml applied (the server validates the Deployment and the role), and a
/// kubeconfig with its ServiceAccount's token.
fn deploy_maintenance(c: &Cluster) -> PathBuf {
    let path = deploy_file("maintenance.yaml");
    c.plane.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    let token = c
        .plane
        .service_account_token(AGENT_NAMESPACE, "kairn-maintenance");
    let kubeconfig = c.cli.dir.path().join("maintenance.kubeconfig");
    std::fs::write(
        &kubeconfig,
        kubeconfig_yaml(&c.plane.server, &c.plane.ca, &token),
    )
    .unwrap();
    kubeconfig
}

#[test]
fn with_an_append_only_agent_the_maintenance_workload_applies_retention_and_prunes() {
    let Some(c) = Cluster::new() else { return };
    let kubeconfig = deploy_maintenance(&c);
    assert!(maintenance_can(&c, "list", "backupschedules.kairn.dev"));
    assert!(maintenance_can(&c, "create", "events.events.k8s.io"));
    for (verb, resource) in [
        ("get", "secrets"),
        ("create", "volumebackups.kairn.dev"),
        ("delete", "backupschedules.kairn.dev"),
        ("get", "clusterbackups.kairn.dev"),
        ("list", "pods"),
    ] {
        assert!(
            !maintenance_can(&c, verb, resource),
            "it may {verb} {resource}"
        );
    }
    let agent_key = append_only_key(&c.cli);

    let shop = c.namespace("shop");
    let db = c.pvc_with_pod(&shop, "db", "db-0", "Running");
    write_volume(&db, 4, 3);
    // The selector's label is this test's own: schedules are cluster-wide.
    let env = format!("prod-{}", c.node);
    c.patch(
        None,
        &format!("namespace/{shop}"),
        &json!({"metadata": {"labels": {"env": env}}}),
        false,
    );
    let labels = json!({"metadata": {"labels": {"kairn.dev/backup": "true"}}});
    c.patch(Some(&shop), "pvc/db", &labels, false);
    let schedule = format!("keep-one-{}", c.node);
    let mut agent = c.agent(&[("KAIRN_PASSWORD_FILE", agent_key.to_str().unwrap())]);

    // An earlier run of the schedule; then the volume changes entirely, so what only that run
    // holds is garbage once it is forgotten; then a manual backup retention must spare.
    let tags = json!({"pvc": "db", "tags": [format!("schedule:{schedule}")]});
    c.create(&shop, "volumebackups", "earlier", tags);
    let st = c.wait(&shop, "volumebackups", "earlier", &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}\n{}", agent.logs());
    let earlier = st["snapshotId"].clone();
    write_volume(&db, 5, 3);
    c.create(&shop, "volumebackups", "manual", json!({"pvc": "db"}));
    let st = c.wait(&shop, "volumebackups", "manual", &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}");
    let manual = st["snapshotId"].clone();

    let maintenance = Maintenance::start(&c, &kubeconfig);
    c.apply_new(&kairn_object(
        "backupschedules",
        None,
        &schedule,
        json!({"schedule": "* * * * *",
               "namespaceSelector": {"matchLabels": {"env": env}},
               "pvcSelector": {"matchLabels": {"kairn.dev/backup": "true"}},
               "retention": {"keepLast": 1}}),
    ));
    let mut scheduled = String::new();
    wait_for(
        30,
        || {
            let made = c.list(&format!("{KAIRN_API}/namespaces/{shop}/volumebackups"));
            let mine = made
                .iter()
                .find(|b| b["metadata"]["labels"]["kairn.dev/schedule"] == schedule.as_str());
            if let Some(b) = mine {
                scheduled = b["metadata"]["name"].as_str().unwrap().to_string();
            }
            !scheduled.is_empty()
        },
        || format!("no scheduled backup:\n{}", agent.logs()),
    );
    let st = c.wait(&shop, "volumebackups", &scheduled, &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}");

    // The maintenance workload forgets the earlier run (keepLast 1 leaves one run of the
    // schedule, the newest, should the next minute's have come too); the manual one stays.
    let start = Instant::now();
    let mut after = Vec::new();
    wait_for(
        60,
        || {
            maintenance.assert_running();
            after = snapshots(&c.cli);
            let runs = after.iter().filter(|s| {
                s["tags"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!(format!("schedule:{schedule}"))))
            });
            !ids(&after).contains(&earlier) && runs.count() == 1
        },
        || format!("retention not applied:\n{}", maintenance.logs()),
    );
    assert!(
        ids(&after).contains(&manual),
        "the manual backup is spared: {after:?}"
    );
    // ... and prunes what only the earlier run held.
    let freed = "kairn_maintenance_bytes_freed_total";
    wait_for(
        60,
        || maintenance.metric(freed) > 0.0,
        || format!("nothing freed:\n{}", maintenance.logs()),
    );
    println!(
        "forgotten and freed {} bytes in {:.1} s after the scheduled backup completed",
        maintenance.metric(freed),
        start.elapsed().as_secs_f64()
    );
    let forgotten =
        format!("kairn_maintenance_snapshots_forgotten_total{{schedule=\"{schedule}\"}}");
    assert!(maintenance.metric(&forgotten) >= 1.0);
    assert!(maintenance.metric("kairn_maintenance_last_prune_timestamp_seconds") > 1.0e9);
    wait_for(
        10,
        || maintenance.metric("kairn_maintenance_last_success_timestamp_seconds") > 1.0e9,
        || format!("no successful pass:\n{}", maintenance.logs()),
    );
    assert_eq!(maintenance.http("/healthz").0, 200);
    assert_eq!(maintenance.http("/readyz").0, 200);
    c.cli.ok(&["check", "--read-data"]);

    // An Event on the schedule, where the API server keeps those of cluster-scoped objects.
    let applied = c
        .events("default")
        .into_iter()
        .find(|e| e["regarding"]["name"] == schedule.as_str() && e["reason"] == "RetentionApplied");
    let applied =
        applied.unwrap_or_else(|| panic!("no RetentionApplied Event:\n{}", maintenance.logs()));
    assert_eq!(applied["regarding"]["kind"], "BackupSchedule");
    assert_eq!(applied["reportingController"], "kairn.dev/maintenance");
    assert!(
        applied["note"]
            .as_str()
            .unwrap()
            .starts_with("forgot 1 snapshot"),
        "{applied}"
    );

    // The agent said once that retention is not its job, and never failed at it.
    let log = agent.logs();
    assert_eq!(
        log.matches("retention and prune are the maintenance workload's job")
            .count(),
        1,
        "{log}"
    );
    for failure in [
        "cannot apply retention",
        "retention task failed",
        "refusing to delete",
    ] {
        assert!(!log.contains(failure), "{failure}:\n{log}");
    }
    let log = maintenance.logs();
    for line in log.lines() {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_ne!(parsed["level"], "WARN", "{line}");
        assert_ne!(parsed["level"], "ERROR", "{line}");
    }
    assert!(log.contains("prune done"), "{log}");
    assert_eq!(
        maintenance.terminate().code(),
        Some(0),
        "{}",
        maintenance.logs()
    );
}

#[test]
fn kairn_maintenance_refuses_an_append_only_key_and_a_wrong_password_with_the_agents_codes() {
    let cli = Cli::init();
    let agent_key = append_only_key(&cli);
    // Refused before the Kubernetes API is needed: none is configured here.
    let run = |password: &Path, extra: &[(&str, &str)]| {
        let mut cmd = maintenance_cmd(&cli, password);
        cmd.env("KUBECONFIG", cli.dir.path().join("none"))
            .env("KAIRN_LOG_TEXT", "true");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.stderr(Stdio::piped()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&agent_key, &[]);
    assert_eq!(code, Some(18), "{err}");
    assert!(err.contains("needs the repository's full key"), "{err}");
    assert!(err.contains("append-only"), "{err}");
    // A full key behind a credential that cannot delete is refused alike.
    let (code, err) = run(&cli.password_file, &[("KAIRN_APPEND_ONLY", "true")]);
    assert_eq!(code, Some(18), "{err}");
    let wrong = cli.dir.path().join("wrong");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let (code, err) = run(&wrong, &[]);
    assert_eq!(code, Some(12), "{err}");
    // The full key starts it, and then it needs the API: exit 1 with the reason.
    let (code, err) = run(&cli.password_file, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Kubernetes client"), "{err}");
}
