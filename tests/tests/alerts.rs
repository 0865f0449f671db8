//! The alerts and the dashboard, tested with Debian's `promtool` (scripts/test-deps.sh installs
//! it; a test fails in CI when it is missing, and says it skipped elsewhere):
//!
//! - the rule file passes `promtool check rules`, and `promtool test rules` with series that
//!   make every alert fire and series that must not (each alert has both, checked here);
//! - the dashboard's queries parse (as recording rules), with a `datasource` variable and no
//!   reference outside it;
//! - a real node agent (restarted, so what it exports comes from the repository) and a real
//!   `kairn-maintenance` export every metric any rule or dashboard query names, and their real
//!   `/metrics` pass `promtool check metrics`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kairn_e2e::agent::{AGENT_NAMESPACE, Cluster, deploy_file, is_final, kairn_object};
use kairn_e2e::write_volume;
use serde_json::{Value, json};

const RULES: &str = "deploy/chart/files/prometheus-rules.yaml";
const RULE_TESTS: &str = "tests/fixtures/prometheus-rules.test.yaml";
const DASHBOARD: &str = "deploy/chart/files/grafana-dashboard.json";

/// Metrics the rules and the dashboard may name that no Kairn binary exports, each with why.
const EXTERNAL: [(&str, &str); 1] = [(
    "up",
    "Prometheus writes it for every scrape target: 1 when the scrape worked, 0 when not",
)];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Debian's promtool, or `None` with a note where it is missing; in CI (CI set) a missing
/// promtool fails the test.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let why = "promtool is missing: scripts/test-deps.sh installs it (Debian's prometheus)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
    }
    found
}

/// Runs promtool with `args` (and `stdin`), asserting success; its stdout and stderr.
fn promtool_ok(promtool: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The metric names a PromQL expression reads: identifiers that are not functions,
/// keywords, label names (in braces or after by/without/on/ignoring/group_*), durations,
/// numbers, strings or Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Operators, and the aggregations, which may be followed by `by (...)` before their `(`.
    const KEYWORDS: [&str; 22] = [
        "and",
        "or",
        "unless",
        "offset",
        "bool",
        "atan2",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let b = expr.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Skips from an opening byte to its closing one, over strings.
    let skip_to = |mut i: usize, close: u8| {
        while i < b.len() && b[i] != close {
            if matches!(b[i], b'"' | b'\'' | b'`') {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            i += 1;
        }
        i + 1
    };
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            let q = c;
            i += 1;
            while i < b.len() && b[i] != q {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == b'{' {
            i = skip_to(i + 1, b'}');
        } else if c == b'[' {
            i = skip_to(i + 1, b']');
        } else if c == b'$' {
            i += 1;
            while i < b.len() && (ident(b[i]) || b[i] == b'{' || b[i] == b'}') {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == b'.' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if ident(c) {
            let start = i;
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            let mut j = i;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let call = j < b.len() && b[j] == b'(';
            if LABEL_LISTS.contains(&word) {
                if call {
                    i = skip_to(j + 1, b')');
                }
            } else if !call && !KEYWORDS.contains(&word) {
                names.insert(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_found_and_nothing_else() {
    let expr = r#"sum by (namespace, pvc) (increase(kairn_a_total{kind="x{y}", pvc=~"$pvc"}[1h]))
        + max without (instance) (kairn_c) + count(kairn_b)
        > on (namespace) group_left (schedule) clamp_min(kairn_b * 0.25, 1e3)
        unless kairn_c offset 1h or vector(0) and time() - process_start_time_seconds
        / $__interval"#;
    assert_eq!(
        metric_names(expr),
        [
            "kairn_a_total",
            "kairn_b",
            "kairn_c",
            "process_start_time_seconds"
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );
}

fn rules() -> serde_yaml::Value {
    let text = std::fs::read_to_string(root().join(RULES)).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Every rule of the rule file.
fn each_rule() -> Vec<serde_yaml::Value> {
    let rules = rules();
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .collect()
}

/// Every query of the dashboard (targets and query variables), with Grafana's variables in.
fn dashboard_queries(dash: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        // A variable's query: label_values(SELECTOR, LABEL).
                        ("query", Value::Object(q)) => {
                            if let Some(Value::String(e)) = q.get("query") {
                                let inner = e
                                    .strip_prefix("label_values(")
                                    .and_then(|r| r.rsplit_once(','))
                                    .map(|(sel, _)| sel.to_string());
                                out.push(inner.unwrap_or_else(|| e.clone()));
                            }
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dash, &mut out);
    out
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(root().join(DASHBOARD)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// What the rules and the dashboard read.
fn names_used() -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for rule in each_rule() {
        used.extend(metric_names(rule["expr"].as_str().unwrap()));
    }
    for q in dashboard_queries(&dashboard()) {
        used.extend(metric_names(&q));
    }
    used
}

#[test]
fn the_rules_pass_promtool_and_every_alert_is_tested_firing_and_not() {
    let Some(promtool) = promtool() else { return };
    let checked = promtool_ok(&promtool, &["check", "rules", RULES], None);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool_ok(&promtool, &["test", "rules", RULE_TESTS], None);
    assert!(tested.contains("SUCCESS"), "{tested}");
    eprintln!("{tested}");

    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let tests: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join(RULE_TESTS)).unwrap()).unwrap();
    let cases: Vec<&serde_yaml::Value> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap())
        .collect();
    let alerts: Vec<serde_yaml::Value> = each_rule()
        .into_iter()
        .filter(|r| r["alert"].is_string())
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    for rule in &alerts {
        let name = rule["alert"].as_str().unwrap();
        let of_it = cases.iter().copied().filter(|c| c["alertname"] == name);
        let fires =
            |c: &&serde_yaml::Value| c["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty());
        let (firing, quiet): (Vec<&serde_yaml::Value>, Vec<&serde_yaml::Value>) =
            of_it.partition(fires);
        assert!(
            !firing.is_empty() && !quiet.is_empty(),
            "{name}: {} case(s) where it fires, {} where it must not",
            firing.len(),
            quiet.len()
        );
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("warning" | "critical")),
            "{name}: {severity:?}"
        );
        for key in ["summary", "description", "runbook"] {
            assert!(rule["annotations"][key].is_string(), "{name} has no {key}");
        }
        let runbook = rule["annotations"]["runbook"].as_str().unwrap();
        assert!(runbook.starts_with("README.md"), "{name}: {runbook}");
        assert!(
            readme.contains(&format!("`{name}`")),
            "the README has no runbook entry for {name}"
        );
    }
}

#[test]
fn the_dashboard_is_self_contained_and_its_queries_parse() {
    let Some(promtool) = promtool() else { return };
    let dash = dashboard();
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 36, "{dash}");
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["name"] == "datasource"
            && v["query"] == "prometheus"),
        "{vars:?}"
    );
    let text = dash.to_string();
    for outside in ["http://", "https://", "\"url\"", "__inputs", "gnetId"] {
        assert!(
            !text.contains(outside),
            "the dashboard refers outside: {outside}"
        );
    }
    let panels = dash["panels"].as_array().unwrap();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{p}");
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{t}");
        }
    }
    for title in [
        "Backups and failures",
        "Recovery point age per PVC",
        "New bytes stored per day",
        "Repository growth",
        "Agent queue and jobs running",
        "Memory (resident)",
    ] {
        assert!(
            panels.iter().any(|p| p["title"] == title),
            "no panel {title}"
        );
    }
    // Every query, Grafana's variables given values, as a recording rule promtool parses.
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 20, "{queries:?}");
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let expr = q
                .replace("$__rate_interval", "5m")
                .replace("$__interval", "1h")
                .replace("$namespace", ".*");
            json!({"record": format!("kairn:dashboard_query_{i}"), "expr": expr})
        })
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    let yaml =
        serde_yaml::to_string(&json!({"groups": [{"name": "dashboard", "rules": rules}]})).unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    promtool_ok(
        &promtool,
        &["check", "rules", file.path().to_str().unwrap()],
        None,
    );
}

/// Polls `f` every 200 ms for up to `secs` until it gives a value; fails with its last word.
fn poll<T>(secs: u64, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(why) => assert!(start.elapsed() < Duration::from_secs(secs), "{why}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of the sample `name{labels}` (labels as written, in order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// An RFC 3339 time in UTC (`2026-01-02T03:04:05.123456789Z`, as the engine writes them, or
/// with `+00:00`) as Unix seconds, to the millisecond.
fn unix_ms(t: &str) -> f64 {
    let t = t.trim_end_matches('Z').trim_end_matches("+00:00");
    let (date, time) = t.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let h: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + (yoe * 365 + yoe / 4 - yoe / 100 + doy) - 719_468;
    let ms: i64 = format!("{frac:0<3}")[..3].parse().unwrap();
    ((days * 86_400 + h[0] * 3600 + h[1] * 60 + h[2]) * 1000 + ms) as f64 / 1000.0
}

#[test]
fn rfc3339_times_convert_to_unix_seconds() {
    assert_eq!(unix_ms("1970-01-01T00:00:00Z"), 0.0);
    assert_eq!(unix_ms("2026-03-01T12:34:56.789123456Z"), 1_772_368_496.789);
    assert_eq!(unix_ms("2000-02-29T00:00:00+00:00"), 951_782_400.0);
}

/// The names of the samples of a metrics text.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect()
}

/// A running `kairn-maintenance` on `c`'s repository, as the ServiceAccount of
/// deploy/maintenance.yaml.
struct Maintenance {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Maintenance {
    fn start(c: &Cluster) -> Self {
        let path = deploy_file("maintenance.yaml");
        c.plane.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
        let token = c
            .plane
            .service_account_token(AGENT_NAMESPACE, "kairn-maintenance");
        let kubeconfig = c.cli.dir.path().join("maintenance.kubeconfig");
        let config = kairn_e2e::agent::kubeconfig_yaml(&c.plane.server, &c.plane.ca, &token);
        std::fs::write(&kubeconfig, config).unwrap();
        let bin = kairn_e2e::repo_bin().with_file_name("kairn-maintenance");
        assert!(
            bin.exists(),
            "{}: cargo build -p kairn-node-agent",
            bin.display()
        );
        let port = kairn_e2e::s3::free_port();
        let log = c.cli.dir.path().join("maintenance.log");
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("KAIRN_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .env("KAIRN_REPOSITORY", &c.cli.repo)
            .env("KAIRN_PASSWORD_FILE", &c.cli.password_file)
            .env("KUBECONFIG", &kubeconfig)
            .env("KAIRN_MAINTENANCE_INTERVAL_SECONDS", "0.5")
            .env("KAIRN_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, port, log }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn metrics(&mut self) -> String {
        if let Ok(Some(exit)) = self.child.try_wait() {
            panic!("kairn-maintenance exited ({exit}):\n{}", self.logs());
        }
        let log = self.log.clone();
        let logs = move || std::fs::read_to_string(&log).unwrap_or_default();
        kairn_e2e::agent::http_get(self.port, "/metrics", logs).1
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_restarted_agent_and_the_maintenance_workload_export_what_the_rules_and_dashboard_read() {
    let Some(promtool) = promtool() else { return };
    let Some(c) = Cluster::new() else { return };
    let shop = c.namespace("shop");
    let db = c.pvc_with_pod(&shop, "db", "db-0", "Running");
    write_volume(&db, 1, 3);
    c.bound_pvc(&shop, "fresh", false);
    // Schedules are cluster-wide: the selector's label is this test's own. Once a year, so
    // that in the test's minutes it never runs: `fresh` stays never backed up.
    let mark = json!({"metadata": {"labels": {"kairn.dev/alerts-test": c.node}}});
    c.patch(Some(&shop), "pvc/db", &mark, false);
    c.patch(Some(&shop), "pvc/fresh", &mark, false);
    let schedule = format!("yearly-{}", c.node);
    c.apply_new(&kairn_object(
        "backupschedules",
        None,
        &schedule,
        json!({"schedule": "0 0 1 1 *",
               "pvcSelector": {"matchLabels": {"kairn.dev/alerts-test": c.node}},
               "retention": {"keepLast": 5}}),
    ));
    let mut agent = c.agent(&[]);
    // A backup as the schedule's runs are tagged, so that the maintenance workload applies the
    // schedule's retention to it.
    let tags = json!({"pvc": "db", "tags": [format!("schedule:{schedule}")]});
    c.create(&shop, "volumebackups", "db-1", tags);
    let st = c.wait(&shop, "volumebackups", "db-1", &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}\n{}", agent.logs());
    let id = st["snapshotId"].as_str().unwrap().to_string();
    // The agent that ran the backup exports its per-PVC figures; its real output lints clean.
    let (code, ran) = agent.http("/metrics");
    assert_eq!(code, 200);
    let errors = format!(r#"kairn_volume_backup_errors_total{{namespace="{shop}",pvc="db"}}"#);
    assert_eq!(sample(&ran, &errors), Some(0.0), "{ran}");
    promtool_ok(&promtool, &["check", "metrics"], Some(&ran));
    assert_eq!(agent.terminate().code(), Some(0), "{}", agent.logs());

    // A new agent knows the volume's last success only from the repository.
    let mut agent = c.agent(&[]);
    let db_series = format!(r#"{{namespace="{shop}",pvc="db"}}"#);
    let fresh_selected = format!(r#"{{namespace="{shop}",pvc="fresh",schedule="{schedule}"}}"#);
    let text = poll(60, || {
        agent.assert_running();
        let text = agent.http("/metrics").1;
        let last = format!("kairn_volume_last_success_timestamp_seconds{db_series}");
        let selected = format!("kairn_volume_selected{fresh_selected}");
        if sample(&text, &last).is_some() && sample(&text, &selected).is_some() {
            return Ok(text);
        }
        Err(format!("no recomputed series:\n{text}\n{}", agent.logs()))
    });
    let snaps = c.cli.json(&["snapshots"]);
    let snap = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{snaps}"));
    let finished = unix_ms(snap["summary"]["finished"].as_str().unwrap());
    let last = sample(
        &text,
        &format!("kairn_volume_last_success_timestamp_seconds{db_series}"),
    )
    .unwrap();
    assert_eq!(last, finished, "{text}\n{snap}");
    // The PVC never backed up: selected, with its schedule's interval (a year) and since when.
    assert_eq!(
        sample(&text, &format!("kairn_volume_selected{fresh_selected}")),
        Some(1.0)
    );
    let interval = sample(
        &text,
        &format!("kairn_volume_backup_interval_seconds{fresh_selected}"),
    )
    .unwrap();
    assert!(
        [365.0, 366.0].contains(&(interval / 86_400.0)),
        "{interval}"
    );
    let since = sample(
        &text,
        &format!("kairn_volume_selected_since_timestamp_seconds{fresh_selected}"),
    )
    .unwrap();
    let pvc = c.get(&format!(
        "/api/v1/namespaces/{shop}/persistentvolumeclaims/fresh"
    ));
    let created = pvc.unwrap()["metadata"]["creationTimestamp"]
        .as_str()
        .map(unix_ms);
    assert!(Some(since) >= created, "{since} {created:?}");
    let fresh_last =
        format!(r#"kairn_volume_last_success_timestamp_seconds{{namespace="{shop}",pvc="fresh"}}"#);
    assert_eq!(sample(&text, &fresh_last), None, "{text}");
    assert!(sample(&text, "kairn_repository_snapshots").unwrap() >= 1.0);
    assert!(sample(&text, "kairn_repository_size_bytes").unwrap() > 0.0);
    assert_eq!(sample(&text, "kairn_agent_leading"), Some(1.0));
    assert_eq!(sample(&text, "kairn_agent_ready"), Some(1.0));
    // The agent's real output lints clean.
    promtool_ok(&promtool, &["check", "metrics"], Some(&text));

    // The maintenance workload: a pass applies the retention, checks and prunes.
    let mut maintenance = Maintenance::start(&c);
    let mtext = poll(90, || {
        let mtext = maintenance.metrics();
        let done = [
            "last_check_timestamp_seconds",
            "last_prune_timestamp_seconds",
        ]
        .iter()
        .all(|m| sample(&mtext, &format!("kairn_maintenance_{m}")).is_some())
            && mtext.contains("kairn_maintenance_snapshots_forgotten_total{");
        if done {
            return Ok(mtext);
        }
        Err(format!(
            "no check and prune:\n{mtext}\n{}",
            maintenance.logs()
        ))
    });
    assert_eq!(
        sample(&mtext, "kairn_maintenance_last_check_success"),
        Some(1.0),
        "{mtext}\n{}",
        maintenance.logs()
    );
    assert_eq!(
        sample(&mtext, "kairn_maintenance_check_problems"),
        Some(0.0)
    );
    assert_eq!(
        sample(&mtext, "kairn_maintenance_last_prune_success"),
        Some(1.0)
    );
    promtool_ok(&promtool, &["check", "metrics"], Some(&mtext));

    // It also left a record of each in the repository, as `repo check` and `repo prune` do,
    // for the restore-readiness report (no `repo check` or `repo prune` ran here).
    let report: Value = serde_json::from_str(&c.cli.ok(&["report", "--json"])).unwrap();
    let ops = &report["operations"];
    assert_eq!(ops["last_check"]["outcome"], "ok", "{ops}");
    assert_eq!(ops["last_check"]["check"]["problems"], 0, "{ops}");
    assert_eq!(ops["last_prune"]["outcome"], "ok", "{ops}");

    // Every metric a rule or a dashboard query reads is exported by one of them.
    let mut exported = sample_names(&ran);
    exported.extend(sample_names(&text));
    exported.extend(sample_names(&mtext));
    let external: BTreeSet<String> = EXTERNAL.iter().map(|(n, _)| n.to_string()).collect();
    let used = names_used();
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !exported.contains(*n) && !external.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "read by the rules or the dashboard, exported by neither binary: {missing:?}\n\
         agents:\n{ran}\n{text}\nmaintenance:\n{mtext}"
    );
    for name in &external {
        assert!(used.contains(name), "{name} is allowed but not used");
        assert!(!exported.contains(name), "{name} is exported after all");
    }
    assert!(used.len() >= 20, "{used:?}");
}
