//! `repo report`: a repository with two Kubernetes volumes (written through the engine with
//! their namespace and PVC, as the node agent writes them), a host's files, two cluster
//! backups of one series (the second without its manifests), a check, a prune and a verified
//! restore. The JSON must agree with `repo snapshots --json` and `repo stats --json`; the page
//! is rendered by headless Chromium (Debian's), its screenshot decoded, and its DOM read back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use engine::backend::OpendalBackend;
use engine::backup::{BackupOptions, backup};
use engine::format::snapshot::{Group, Source};
use engine::index::Index;
use engine::progress::NoProgress;
use engine::repo::Repository;
use kairn_e2e::{Cli, write_volume};
use serde_json::Value;

/// One volume backup, as the node agent makes it: stored as `/<pvc>`, with its identity.
fn volume_backup(repo: &Repository, dir: &Path, pvc: &str, group: Option<&str>) -> String {
    let session = repo
        .begin_session("backup", engine::session::DEFAULT_EXPIRY)
        .unwrap();
    let index = Index::load(repo).unwrap();
    let opts = BackupOptions {
        paths: vec![dir.to_path_buf()],
        tags: vec!["schedule:nightly".into()],
        host: Some("node-a".into()),
        source: Source {
            cluster: Some("prod".into()),
            namespace: Some("shop".into()),
            pvc: Some(pvc.into()),
            node: Some("node-a".into()),
            ..Default::default()
        },
        stored_as: Some(pvc.into()),
        group: group.map(|g| Group {
            id: g.into(),
            series: "nightly".into(),
        }),
        ..Default::default()
    };
    let outcome = backup(repo, &session, &index, &opts, &NoProgress).unwrap();
    session.end().unwrap();
    outcome.id.to_hex()
}

fn manifests(cli: &Cli, group: &str) {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "settings", "namespace": "shop"}, "data": {"mode": "prod"}}]});
    let file = cli.dir.path().join("objects.json");
    std::fs::write(&file, list.to_string()).unwrap();
    cli.ok(&[
        "backup",
        "--manifests",
        file.to_str().unwrap(),
        "--cluster",
        "prod",
        "--group",
        group,
        "--series",
        "nightly",
    ]);
}

/// Builds the repository; returns the id of the db snapshot restored with --verify.
fn populate(cli: &Cli) -> String {
    let backend = Arc::new(OpendalBackend::local(&cli.repo).unwrap());
    let repo = Repository::open(backend, b"correct horse").unwrap();
    let vol = |name: &str, seed: u64, files: usize| {
        let dir = cli.dir.path().join("volumes").join(name);
        write_volume(&dir, seed, files);
        dir
    };
    let db = vol("db", 1, 3);
    let web = vol("web", 2, 2);
    volume_backup(&repo, &db, "db", Some("nightly-1"));
    volume_backup(&repo, &web, "web", Some("nightly-1"));
    manifests(cli, "nightly-1");
    write_volume(&db, 3, 4);
    let restored = volume_backup(&repo, &db, "db", Some("nightly-2"));
    volume_backup(&repo, &web, "web", Some("nightly-2"));
    write_volume(&db, 4, 5);
    volume_backup(&repo, &db, "db", None);
    // A host's files on an hourly schedule, which the report is told runs every second: late.
    let files = vol("etc", 5, 1);
    cli.ok(&[
        "backup",
        files.to_str().unwrap(),
        "--tag",
        "schedule:hourly",
    ]);
    restored
}

fn by_label<'a>(report: &'a Value, label: &str) -> &'a Value {
    report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == label)
        .unwrap_or_else(|| panic!("no source {label}: {report:#}"))
}

/// The figures of each volume are those of its snapshots in `repo snapshots --json`.
fn check_sources(report: &Value, snapshots: &[Value]) {
    for pvc in ["db", "web"] {
        let mine: Vec<&Value> = snapshots
            .iter()
            .filter(|s| s["source"]["pvc"] == pvc)
            .collect();
        let src = by_label(report, &format!("shop/{pvc}"));
        assert_eq!(src["kind"], "volume");
        assert_eq!(src["cluster"], "prod");
        assert_eq!(src["snapshots"], mine.len() as u64);
        let newest = mine.last().unwrap();
        assert_eq!(src["last"]["id"], newest["id"]);
        assert_eq!(src["last"]["total_bytes"], newest["summary"]["total_bytes"]);
        assert_eq!(src["status"], "ok", "{src:#}");
        assert_eq!(src["interval_from"], "default");
        assert_eq!(src["expected_interval_secs"], 86_400);
        let history: Vec<&Value> = src["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| &h["new_bytes_stored"])
            .collect();
        let stored: Vec<&Value> = mine
            .iter()
            .map(|s| &s["summary"]["new_bytes_stored"])
            .collect();
        assert_eq!(history, stored);
    }
    let hourly = report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["schedules"] == serde_json::json!(["hourly"]))
        .unwrap();
    assert_eq!(hourly["status"], "late", "{hourly:#}");
    assert_eq!(by_label(report, "shop/cache")["status"], "never");
}

fn check_repository(report: &Value, snapshots: &[Value], stats: &Value) {
    let repo = &report["repository"];
    assert_eq!(repo["snapshots"], snapshots.len() as u64);
    for field in [
        "logical_bytes",
        "pack_bytes",
        "raw_bytes",
        "packs",
        "dedup_ratio",
    ] {
        assert_eq!(repo["stats"][field], stats[field], "{field}");
    }
    let stored: u64 = snapshots
        .iter()
        .map(|s| s["summary"]["new_bytes_stored"].as_u64().unwrap())
        .sum();
    let growth = repo["growth"].as_array().unwrap();
    assert_eq!(growth.len(), snapshots.len());
    assert_eq!(growth.last().unwrap()["cumulative_bytes"], stored);
    let groups = report["cluster_backups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["complete"], true, "{:#}", groups[0]);
    assert_eq!(groups[0]["manifests"], 1);
    assert_eq!(groups[1]["complete"], false);
    let problems = groups[1]["problems"].to_string();
    assert!(problems.contains("no manifests snapshot"), "{problems}");
}

fn check_records(report: &Value, restored: &str) {
    let ops = &report["operations"];
    assert_eq!(ops["last_check"]["outcome"], "ok", "{ops:#}");
    assert_eq!(ops["last_check"]["check"]["read_data"], "all");
    assert_eq!(ops["last_check"]["check"]["snapshots"], 7);
    assert_eq!(ops["last_prune"]["outcome"], "ok");
    assert!(ops["last_prune"]["prune"]["deleted_bytes"].is_u64());
    let v = &by_label(report, "shop/db")["last_verified_restore"];
    assert_eq!(v["snapshot"], &restored[..8], "{v:#}");
    assert_eq!(v["outcome"], "ok");
    assert!(v["verified"].as_u64().unwrap() > 0);
    assert_eq!(v["verified"], v["files"]);
    assert!(by_label(report, "shop/web")["last_verified_restore"].is_null());
}

#[test]
fn the_report_agrees_with_snapshots_and_stats_and_renders_in_chromium() {
    let cli = Cli::init();
    let restored = populate(&cli);
    let target = cli.dir.path().join("restored");
    cli.ok(&[
        "restore",
        &restored,
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    cli.ok(&["check", "--read-data"]);
    cli.ok(&["prune"]);
    // Ages only grow: after two seconds the hourly files are late against one second.
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let page = cli.dir.path().join("out").join("report.html");
    std::fs::create_dir_all(page.parent().unwrap()).unwrap();
    let report: Value = cli.json(&[
        "report",
        "--html",
        page.to_str().unwrap(),
        "--schedule-interval",
        "hourly=1s",
        "--expect-volume",
        "shop/cache",
    ]);
    assert_eq!(report["schema_version"], 1);
    let snapshots = cli.json(&["snapshots"]);
    let snapshots = snapshots.as_array().unwrap();
    assert_eq!(snapshots.len(), 7);
    let stats = cli.json(&["stats"]);
    check_sources(&report, snapshots);
    check_repository(&report, snapshots, &stats);
    check_records(&report, &restored);

    let html = std::fs::read_to_string(&page).unwrap();
    for fetch in ["http://", "https://", "<script", "<link", "src="] {
        assert!(
            !html.contains(fetch),
            "the page must fetch nothing: {fetch}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(page.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("report.html")]);
    render_in_chromium(&page, &cli.dir.path().join("chromium"));
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// Where the screenshot stays for people to look at.
fn screenshot_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KAIRN_REPORT_SCREENSHOT") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("report-screenshot.png")
}

fn headless(browser: &Path, profile: &Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .env("HOME", profile);
    c
}

fn render_in_chromium(page: &Path, profile: &Path) {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing: scripts/test-deps.sh installs it"
        );
        eprintln!("skipped: no chromium here (scripts/test-deps.sh installs it)");
        return;
    };
    let url = format!("file://{}", page.display());
    let dom = headless(&browser, profile)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    assert!(dom.status.success(), "{dom:?}");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches(r#"<tr class="source""#).count(), 5, "{dom}");
    for row in ["shop/db", "shop/web", "shop/cache", "manifests (prod)"] {
        assert!(
            dom.contains(&format!(r#"<div class="name">{row}</div>"#)),
            "{row}"
        );
    }
    assert_eq!(dom.matches(r#"<tr class="cluster-backup""#).count(), 2);

    let shot = screenshot_path();
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&shot);
    let out = headless(&browser, profile)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,2000")
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (1280, 2000));
    let channels = frame.color_type.samples();
    let pixels = &pixels[..frame.buffer_size()];
    let colours: std::collections::HashSet<&[u8]> = pixels.chunks(channels).collect();
    let background = pixels
        .chunks(channels)
        .filter(|p| *p == &pixels[..channels])
        .count();
    let total = pixels.len() / channels;
    assert!(
        colours.len() > 50,
        "{} colours: a blank page?",
        colours.len()
    );
    assert!(
        background < total * 95 / 100,
        "{background} of {total} pixels are the background colour"
    );
    eprintln!("screenshot of the report: {}", shot.display());
}
