//! The node agent as a real process against a **real** kube-apiserver and etcd
//! (tests/src/agent.rs, tests/src/control_plane.rs), authenticated by the ServiceAccount token
//! of `deploy/rbac.yaml`, so the server's RBAC authorizer passes on every request it makes. The
//! tests play the kubelet (there is none): pod status through the `status` subresource, and
//! the kubelet's directory on disk with each volume bind-mounted as a CSI driver would.
//!
//! Hooks, which need a kubelet behind the API server's exec endpoint, are tested on the fake
//! API server in `agent_hooks_fake_api_server.rs`; the cluster backup, whose parts any agent
//! may claim, in `agent_cluster_backup.rs`, so no agent of another test claims them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kairn_e2e::agent::{AGENT_NAMESPACE, Agent, Cluster, KAIRN_API, is_final, kairn_object};
use kairn_e2e::{Cli, assert_same, scan, write_volume};
use serde_json::{Value, json};

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

fn snapshot_ids(cli: &Cli) -> Vec<Value> {
    cli.json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect()
}

#[test]
fn volume_backup_lands_with_status_metrics_and_event_then_restores_identically() {
    let Some(c) = Cluster::new() else { return };
    let (shop, staging) = (c.namespace("shop"), c.namespace("staging"));
    let volume = c.pvc_with_pod(&shop, "db", "db-0", "Running");
    fill(&volume);
    // A PVC whose pod runs on another node: this agent must leave its backup alone.
    c.bound_pvc(&shop, "logs", false);
    c.pod_on("elsewhere", &shop, "logs-0", "logs", "Running");
    let mut agent = c.agent(&[]);

    c.create(
        &shop,
        "volumebackups",
        "db-1",
        json!({"pvc": "db", "tags": ["nightly"]}),
    );
    c.create(&shop, "volumebackups", "logs-1", json!({"pvc": "logs"}));
    let st = c.wait(&shop, "volumebackups", "db-1", &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}\n{}", agent.logs());
    assert_eq!(st["node"], c.node.as_str());
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
        (Some(shop.as_str()), Some("db"), Some(c.node.as_str()))
    );
    assert_eq!(source["pv"], format!("pv-{shop}-db"));
    assert_eq!(snap["paths"], json!(["/db"]));
    assert!(snap["tags"].as_array().unwrap().contains(&json!("nightly")));
    // The CLI finds the volume by its Kubernetes identity, and shows it in its own column.
    let by_pvc = c
        .cli
        .json(&["snapshots", "--pvc", &format!("{shop}/db"), "--latest", "1"]);
    assert_eq!(by_pvc.as_array().map(Vec::len), Some(1), "{by_pvc}");
    assert_eq!(by_pvc[0]["id"], id.as_str());
    let by_namespace = c.cli.json(&[
        "cat",
        "snapshot",
        "latest",
        "--namespace",
        &shop,
        "--kind",
        "filesystem",
    ]);
    assert_eq!(by_namespace["source"]["pvc"], "db");
    let elsewhere = c.cli.json(&["snapshots", "--namespace", "not-there"]);
    assert_eq!(elsewhere, json!([]));
    let compact = c.cli.ok(&["snapshots", "--compact", "--pvc", "db"]);
    assert!(compact.contains(&format!("{shop}/db")), "{compact}");

    let (code, text) = agent.http("/metrics");
    assert_eq!(code, 200);
    let labels = format!(r#"{{namespace="{shop}",pvc="db"}}"#);
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

    let events = c.events(&shop);
    assert!(
        events.iter().any(|e| e["reason"] == "BackupCompleted"
            && e["regarding"]["name"] == "db"
            && e["regarding"]["kind"] == "PersistentVolumeClaim"),
        "{events:?}"
    );
    // Where an operator looks: kubectl describe finds events by the object's uid too.
    let described = c.plane.kubectl_ok(&["describe", "pvc", "db", "-n", &shop]);
    assert!(described.contains("BackupCompleted"), "{described}");
    // Not this node's volume: untouched.
    assert!(c.status(&shop, "volumebackups", "logs-1").is_null());

    // The pod is rescheduled (a new uid, so a new kubelet path, where the CSI driver mounts the
    // same volume): the next backup still finds the PVC's parent and reads nothing unchanged.
    let new_uid = c.pod(&shop, "db-0b", "db", "Running");
    c.set_pod_phase(&shop, "db-0", "Succeeded");
    let moved = c.lay_out_volume(&new_uid, &format!("pv-{shop}-db"), false);
    c.bind(&volume, &moved);
    c.create(&shop, "volumebackups", "db-2", json!({"pvc": "db"}));
    let st2 = c.wait(&shop, "volumebackups", "db-2", &mut agent, is_final);
    // Taken after the backups, whose reads may have moved access times.
    let before = scan(&moved);
    assert_eq!(st2["phase"], "Completed", "{st2}\n{}", agent.logs());
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

    // A tenant of namespace staging may not read shop's backups: refused at admission.
    let target = c.pvc_with_pod(&staging, "db-copy", "db-copy-0", "Initializing");
    let across = json!({"snapshot": "latest", "sourceNamespace": shop, "sourcePvc": "db",
                        "target": {"pvc": "db-copy"}});
    let obj = kairn_object("volumerestores", Some(&staging), "tenant", across.clone());
    let refused = c.try_create_as(None, &obj);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "admitted: {obj}");
    assert!(said.contains(AGENT_NAMESPACE), "{said}");

    // An administrator restores the latest snapshot of shop/db into the new PVC in staging,
    // whose pod waits in its init container (phase Pending, its volumes mounted).
    let mut admin = across;
    admin["targetNamespace"] = json!(staging);
    let name = format!("from-{shop}");
    c.create(AGENT_NAMESPACE, "volumerestores", &name, admin);
    let rs = c.wait(
        AGENT_NAMESPACE,
        "volumerestores",
        &name,
        &mut agent,
        is_final,
    );
    assert_eq!(rs["phase"], "Completed", "{rs}\n{}", agent.logs());
    assert_eq!(rs["snapshotId"], st2["snapshotId"]);
    let marker = target.join(".kairn-restored");
    assert!(
        marker.join(&name).exists(),
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
fn a_killed_agent_does_not_leave_a_backup_in_progress() {
    let Some(c) = Cluster::new() else { return };
    let shop = c.namespace("shop");
    let volume = c.pvc_with_pod(&shop, "db", "db-0", "Running");
    write_volume(&volume, 9, 40);
    // Slow storage, so the kill lands mid-backup.
    let mut first = c.agent(&[("KAIRN_FAULTS", "seed=1,latency-ms=150")]);
    c.create(&shop, "volumebackups", "db-1", json!({"pvc": "db"}));
    let st = c.wait(&shop, "volumebackups", "db-1", &mut first, |s| {
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
    let st = c.status(&shop, "volumebackups", "db-1");
    assert_eq!(st["phase"], "InProgress", "{st}");

    // The restarted agent (a new instance) takes it up again as a second attempt.
    let mut second = c.agent(&[]);
    let st = c.wait(&shop, "volumebackups", "db-1", &mut second, is_final);
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
    let snapshots = snapshot_ids(&c.cli).len();
    c.create(&shop, "volumebackups", "db-2", json!({"pvc": "db"}));
    std::fs::write(volume.join("big"), kairn_e2e::noise(77, 30 << 20)).unwrap();
    let mut third = c.agent(&[("KAIRN_FAULTS", "seed=2,latency-ms=150")]);
    let running = c.wait(&shop, "volumebackups", "db-2", &mut third, |s| {
        s["phase"] == "InProgress" || is_final(s)
    });
    assert_eq!(
        running["phase"], "InProgress",
        "finished before it could be canceled"
    );
    c.patch(
        Some(&shop),
        "volumebackup/db-2",
        &json!({"spec": {"cancel": true}}),
        false,
    );
    let st = c.wait(&shop, "volumebackups", "db-2", &mut third, is_final);
    assert_eq!(st["phase"], "Canceled", "{st}");
    assert_eq!(snapshot_ids(&c.cli).len(), snapshots);
}

#[test]
fn a_wrong_password_stops_the_agent_with_its_exit_code() {
    let Some(c) = Cluster::new() else { return };
    let wrong = c.cli.dir.path().join("wrong");
    std::fs::write(&wrong, "battery staple\n").unwrap();
    let mut agent = c.agent(&[("KAIRN_PASSWORD_FILE", wrong.to_str().unwrap())]);
    let status = agent.child.wait().unwrap();
    assert_eq!(status.code(), Some(12), "{}", agent.logs());
    assert!(agent.logs().contains("password"), "{}", agent.logs());
}

/// A block-mode PVC on this node, its pod in `phase`: the kubelet presents the device under
/// `volumeDevices/` (here a file of `size` bytes standing in for it).
fn block_pvc_with_pod(
    c: &Cluster,
    ns: &str,
    pvc: &str,
    pod: &str,
    phase: &str,
    size: u64,
) -> std::path::PathBuf {
    let pv = c.bound_pvc(ns, pvc, true);
    let uid = c.pod(ns, pod, pvc, phase);
    let devices = c
        .kubelet
        .path()
        .join("pods")
        .join(uid)
        .join("volumeDevices/kubernetes.io~csi");
    std::fs::create_dir_all(&devices).unwrap();
    let device = devices.join(&pv);
    std::fs::File::create(&device)
        .unwrap()
        .set_len(size)
        .unwrap();
    device
}

#[test]
fn a_block_volume_is_backed_up_as_one_file_with_zero_ranges_as_holes() {
    let Some(c) = Cluster::new() else { return };
    let shop = c.namespace("shop");
    let size = 16u64 << 20;
    let device = block_pvc_with_pod(&c, &shop, "disk", "vm-0", "Running", size);
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
    c.create(&shop, "volumebackups", "disk-1", json!({"pvc": "disk"}));
    let st = c.wait(&shop, "volumebackups", "disk-1", &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}\n{}", agent.logs());
    let stored = st["newBytesStored"].as_u64().unwrap();
    // 2 MiB of data and 14 MiB of zeros: the zeros cost nothing.
    assert!(stored < 3 << 20, "stored {stored} bytes for 2 MiB of data");
    let snaps = c.cli.json(&["snapshots"]);
    assert_eq!(snaps[0]["source"]["kind"], "block-device", "{snaps}");

    // Restored onto another block volume of the same size.
    let target = block_pvc_with_pod(&c, &shop, "disk-copy", "vm-1", "Initializing", size);
    c.create(
        &shop,
        "volumerestores",
        "disk-back",
        json!({"snapshot": st["snapshotId"], "target": {"pvc": "disk-copy"}}),
    );
    let rs = c.wait(&shop, "volumerestores", "disk-back", &mut agent, is_final);
    assert_eq!(rs["phase"], "Completed", "{rs}\n{}", agent.logs());
    assert!(
        std::fs::read(&target).unwrap() == std::fs::read(&device).unwrap(),
        "the restored device differs"
    );
}

fn scheduled_backups(c: &Cluster, schedule: &str) -> Vec<Value> {
    c.list(&format!("{KAIRN_API}/volumebackups"))
        .into_iter()
        .filter(|b| b["metadata"]["labels"]["kairn.dev/schedule"] == schedule)
        .collect()
}

#[test]
fn a_schedule_backs_up_the_selected_pvcs_of_this_node_and_applies_retention() {
    let Some(c) = Cluster::new() else { return };
    let shop = c.namespace("shop");
    let db = c.pvc_with_pod(&shop, "db", "db-0", "Running");
    write_volume(&db, 4, 3);
    let logs = c.pvc_with_pod(&shop, "logs", "logs-0", "Running");
    write_volume(&logs, 6, 2);
    // The selector's label is this test's own: the schedule is cluster-wide, and the agents of
    // other tests see it too.
    let env = format!("prod-{}", c.node);
    c.patch(
        None,
        &format!("namespace/{shop}"),
        &json!({"metadata": {"labels": {"env": env}}}),
        false,
    );
    c.patch(
        Some(&shop),
        "pvc/db",
        &json!({"metadata": {"labels": {"kairn.dev/backup": "true"}}}),
        false,
    );
    let schedule = format!("every-minute-{}", c.node);
    let mut agent = c.agent(&[]);
    // An earlier run of the schedule, and a manual backup the schedule's retention must spare.
    c.create(
        &shop,
        "volumebackups",
        "earlier",
        json!({"pvc": "db", "tags": [format!("schedule:{schedule}")]}),
    );
    c.wait(&shop, "volumebackups", "earlier", &mut agent, is_final);
    c.create(&shop, "volumebackups", "manual", json!({"pvc": "db"}));
    c.wait(&shop, "volumebackups", "manual", &mut agent, is_final);
    let earlier = c.status(&shop, "volumebackups", "earlier")["snapshotId"].clone();

    c.apply_new(&kairn_object(
        "backupschedules",
        None,
        &schedule,
        json!({"schedule": "* * * * *",
               "namespaceSelector": {"matchLabels": {"env": env}},
               "pvcSelector": {"matchLabels": {"kairn.dev/backup": "true"}},
               "retention": {"keepLast": 1}}),
    ));
    let start = Instant::now();
    let scheduled = loop {
        let made = scheduled_backups(&c, &schedule);
        if let Some(b) = made.first() {
            assert_eq!(made.len(), 1, "{made:?}");
            assert_eq!(b["spec"]["pvc"], "db", "only the labelled PVC: {b}");
            break b["metadata"]["name"].as_str().unwrap().to_string();
        }
        agent.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no scheduled backup:\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let st = c.wait(&shop, "volumebackups", &scheduled, &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}");
    // Retention runs after the status is written: wait for the earlier run to be forgotten.
    let start = Instant::now();
    loop {
        let ids = snapshot_ids(&c.cli);
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
        std::thread::sleep(Duration::from_millis(200));
    }
    // The schedule's status tells its run and how it went, and when it runs next.
    let path = format!("{KAIRN_API}/backupschedules/{schedule}");
    let start = Instant::now();
    let status = loop {
        let status = c.get(&path).unwrap()["status"].clone();
        if status["lastOutcome"] == "Completed" {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no schedule status: {status}\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status["lastScheduleTime"].is_string(), "{status}");
    assert_eq!(status["lastSuccessfulTime"], status["lastScheduleTime"]);
    assert!(
        status["nextScheduleTime"].as_str().unwrap() > status["lastScheduleTime"].as_str().unwrap()
    );
    assert_eq!(status["conditions"][0]["status"], "True", "{status}");
    // A cron expression that cannot be read: a condition, not a log line per resync.
    let bad = format!("bad-{}", c.node);
    c.apply_new(&kairn_object(
        "backupschedules",
        None,
        &bad,
        json!({"schedule": "every night", "namespaceSelector": {"matchLabels": {"env": env}}}),
    ));
    let start = Instant::now();
    loop {
        let status = c
            .get(&format!("{KAIRN_API}/backupschedules/{bad}"))
            .unwrap()["status"]
            .clone();
        if status["conditions"][0]["status"] == "False" {
            assert_eq!(status["conditions"][0]["reason"], "BadSchedule", "{status}");
            assert!(status["nextScheduleTime"].is_null(), "{status}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!agent.logs().contains("every night"), "{}", agent.logs());

    // Idempotent: later reconciles create no second backup for the same minute.
    std::thread::sleep(Duration::from_millis(1000));
    let again = scheduled_backups(&c, &schedule).len();
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
    let Some(c) = Cluster::new() else { return };
    let shop = c.namespace("shop");
    let volume = c.pvc_with_pod(&shop, "db", "db-0", "Running");
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
    for name in ["full", "unchanged"] {
        let start = Instant::now();
        c.create(&shop, "volumebackups", name, json!({"pvc": "db"}));
        let st = c.wait(&shop, "volumebackups", name, &mut agent, is_final);
        assert_eq!(st["phase"], "Completed", "{st}");
        println!(
            "agent backup {name}: {:.1} s, read {} bytes, stored {} new bytes, agent peak RSS {} MiB",
            start.elapsed().as_secs_f64(),
            st["progress"]["bytesDone"],
            st["newBytesStored"],
            peak(&agent)
        );
    }
    c.pvc_with_pod(&shop, "db-copy", "db-copy-0", "Initializing");
    let start = Instant::now();
    c.create(
        &shop,
        "volumerestores",
        "back",
        json!({"snapshot": "latest", "sourcePvc": "db", "target": {"pvc": "db-copy"}}),
    );
    let rs = c.wait(&shop, "volumerestores", "back", &mut agent, is_final);
    assert_eq!(rs["phase"], "Completed", "{rs}");
    println!(
        "agent restore: {:.1} s, {} bytes, agent peak RSS {} MiB",
        start.elapsed().as_secs_f64(),
        rs["progress"]["bytesDone"],
        peak(&agent)
    );
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

/// There is no kubelet behind this API server, so a hook cannot run here (the fake API server
/// runs them: agent_hooks_fake_api_server.rs). What the real server shows is that RBAC lets the
/// agent's exec request through: it fails for want of a node to reach, not as Forbidden.
#[test]
fn no_kubelet_hooks_pass_rbac_and_fail_only_for_want_of_a_kubelet() {
    let Some(c) = Cluster::new() else { return };
    let shop = c.namespace("shop");
    let volume = c.pvc_with_pod(&shop, "db", "db-0", "Running");
    write_volume(&volume, 5, 2);
    let mut agent = c.agent(&[]);
    c.create(
        &shop,
        "volumebackups",
        "hooked",
        json!({"pvc": "db", "hooks": {"pre": [{"command": ["true"], "onError": "Fail"}]}}),
    );
    let st = c.wait(&shop, "volumebackups", "hooked", &mut agent, is_final);
    assert_eq!(st["phase"], "Failed", "{st}");
    let why = st["errors"][0].as_str().unwrap().to_lowercase();
    assert!(why.contains("pre hook"), "{why}");
    assert!(!why.contains("forbidden"), "RBAC refused the exec: {why}");
}

/// No kubelet here: the test plays it, creating the volume's `mount` directory before the
/// "driver" mounts anything there, as the kubelet does.
#[test]
fn no_kubelet_only_a_mounted_volume_of_a_started_pod_is_read_or_written() {
    let Some(c) = Cluster::new() else { return };
    let shop = c.namespace("shop");
    let pv = c.bound_pvc(&shop, "db", false);
    let uid = c.pod(&shop, "db-0", "db", "Pending");
    let bare = c.lay_out_volume(&uid, &pv, false);
    let mut agent = c.agent(&[]);

    // The pod has not started: the backup waits, and says why.
    c.create(&shop, "volumebackups", "early", json!({"pvc": "db"}));
    let st = c.wait(&shop, "volumebackups", "early", &mut agent, |s| {
        s["waiting"].is_string()
    });
    assert!(
        st["waiting"].as_str().unwrap().contains("db-0 is Pending"),
        "{st}"
    );
    assert!(st["phase"].is_null() || st["phase"] == "New", "{st}");
    // Running, but nothing is mounted at the volume's directory: refused, no empty snapshot.
    c.set_pod_phase(&shop, "db-0", "Running");
    let st = c.wait(&shop, "volumebackups", "early", &mut agent, is_final);
    assert_eq!(st["phase"], "Failed", "{st}");
    let why = st["errors"][0].as_str().unwrap();
    assert!(why.contains("not a mount point"), "{why}");
    assert!(st["waiting"].is_null(), "{st}");
    assert!(snapshot_ids(&c.cli).is_empty());

    // Mounted: backed up.
    c.mount(&bare);
    write_volume(&bare, 21, 3);
    c.create(&shop, "volumebackups", "mounted", json!({"pvc": "db"}));
    let st = c.wait(&shop, "volumebackups", "mounted", &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}\n{}", agent.logs());
    assert_eq!(st["progress"]["filesDone"], 3, "{st}");

    // A restore into a started pod whose volume is not mounted writes nothing to the node.
    c.bound_pvc(&shop, "copy", false);
    let uid = c.pod(&shop, "copy-0", "copy", "Initializing");
    let target = c.lay_out_volume(&uid, &format!("pv-{shop}-copy"), false);
    let spec = json!({"snapshot": "latest", "sourcePvc": "db", "target": {"pvc": "copy"}});
    c.create(&shop, "volumerestores", "unmounted", spec);
    let rs = c.wait(&shop, "volumerestores", "unmounted", &mut agent, is_final);
    assert_eq!(rs["phase"], "Failed", "{rs}");
    assert!(
        rs["errors"][0]
            .as_str()
            .unwrap()
            .contains("not a mount point"),
        "{rs}"
    );
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn a_finished_backup_past_its_ttl_is_deleted_and_its_snapshot_stays() {
    let Some(c) = Cluster::new() else { return };
    let shop = c.namespace("shop");
    let volume = c.pvc_with_pod(&shop, "db", "db-0", "Running");
    write_volume(&volume, 31, 2);
    let mut agent = c.agent(&[]);
    c.create(
        &shop,
        "volumebackups",
        "short",
        json!({"pvc": "db", "ttl": "2s"}),
    );
    c.create(&shop, "volumebackups", "kept", json!({"pvc": "db"}));
    let st = c.wait(&shop, "volumebackups", "short", &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}");
    let id = st["snapshotId"].clone();
    c.wait(&shop, "volumebackups", "kept", &mut agent, is_final);
    let path = format!("{KAIRN_API}/namespaces/{shop}/volumebackups/short");
    let start = Instant::now();
    while c.get(&path).is_some() {
        agent.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not deleted after its ttl:\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Only the object went: the snapshot stays, and the default ttl (30 days) keeps the other.
    assert!(snapshot_ids(&c.cli).contains(&id));
    assert!(
        c.get(&format!("{KAIRN_API}/namespaces/{shop}/volumebackups/kept"))
            .is_some()
    );
}

#[test]
fn a_backup_claimed_by_a_node_whose_lease_expired_fails_as_node_lost() {
    let Some(c) = Cluster::new() else { return };
    let shop = c.namespace("shop");
    let volume = c.pvc_with_pod(&shop, "db", "db-0", "Running");
    write_volume(&volume, 41, 40);
    let lease = [("KAIRN_LEASE_SECONDS", "2")];
    // Slow storage, so the node dies mid-backup.
    let mut dying = c.agent(&[("KAIRN_FAULTS", "seed=4,latency-ms=150"), lease[0]]);
    c.create(&shop, "volumebackups", "db-1", json!({"pvc": "db"}));
    let st = c.wait(&shop, "volumebackups", "db-1", &mut dying, |s| {
        s["phase"] == "InProgress" || is_final(s)
    });
    assert_eq!(st["phase"], "InProgress", "finished too soon: {st}");
    let lease_path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{AGENT_NAMESPACE}/leases/kairn-agent-{}",
        c.node
    );
    assert!(c.get(&lease_path).is_some(), "the agent holds no Lease");
    // The node is gone for good: its agent never renews its Lease again.
    dying.kill();
    let mut survivor = c.agent_on(&format!("{}-b", c.node), &lease);
    let st = c.wait(&shop, "volumebackups", "db-1", &mut survivor, is_final);
    assert_eq!(st["phase"], "Failed", "{st}");
    let why = st["errors"][0].as_str().unwrap();
    assert!(why.contains("node lost") && why.contains(&c.node), "{why}");
}
