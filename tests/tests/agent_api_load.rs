//! The API load of an idle node agent, measured on a real kube-apiserver of its own (this test
//! binary starts one; nothing else talks to it): the requests the server counts
//! (`apiserver_request_total`) and the bytes of its list responses over a window, with no
//! finished VolumeBackups and then with 1,000, and the agent's resident memory each time.
//! A measurement for BENCHMARKS.md, run by hand:
//!   cargo test -p kairn-e2e --test agent_api_load -- --ignored --nocapture

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use kairn_e2e::agent::{Agent, Cluster, KAIRN_API};
use serde_json::json;

/// `apiserver_request_total` summed by (verb, resource), from the server's /metrics.
fn requests(c: &Cluster) -> BTreeMap<(String, String), f64> {
    let text = c.plane.kubectl_ok(&["get", "--raw", "/metrics"]);
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |key: &str| {
            line.split(&format!("{key}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *out.entry((label("verb"), label("resource"))).or_default() += value;
    }
    out
}

/// The bytes of every response to a LIST, summed (`apiserver_response_sizes_sum`).
fn list_bytes(c: &Cluster) -> f64 {
    let text = c.plane.kubectl_ok(&["get", "--raw", "/metrics"]);
    text.lines()
        .filter(|l| l.starts_with("apiserver_response_sizes_sum{") && l.contains("verb=\"LIST\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn rss_mib(agent: &Agent) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", agent.child.id()))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024)
        .unwrap()
}

/// What the agent asked of the server over `window`: requests per minute by verb and
/// resource, and list bytes per minute.
fn observe(c: &Cluster, agent: &mut Agent, window: Duration, label: &str) {
    let (before, bytes_before) = (requests(c), list_bytes(c));
    let start = Instant::now();
    while start.elapsed() < window {
        agent.assert_running();
        std::thread::sleep(Duration::from_millis(500));
    }
    let minutes = start.elapsed().as_secs_f64() / 60.0;
    let (after, bytes_after) = (requests(c), list_bytes(c));
    let mut total = 0.0;
    println!("{label}: agent RSS {} MiB", rss_mib(agent));
    for (key, n) in &after {
        let delta = n - before.get(key).copied().unwrap_or(0.0);
        // Not the agent's: the test's own reads of /metrics (no resource), and the API
        // server's renewals of its own identity Lease in kube-system (PUT; the agent PATCHes).
        let servers_own = key.0 == "PUT" && key.1 == "leases";
        if delta > 0.0 && !key.1.is_empty() && !servers_own {
            println!("  {:>6} {:<28} {:>7.1}/min", key.0, key.1, delta / minutes);
            total += delta;
        }
    }
    println!(
        "  total {:.1} requests/min, {:.0} KiB/min of list responses",
        total / minutes,
        (bytes_after - bytes_before) / minutes / 1024.0
    );
}

/// Completed VolumeBackups `from..to` in `ns`, made through the API as the agents would leave
/// them.
fn finished_backups(c: &Cluster, ns: &str, from: usize, to: usize) {
    if from == to {
        return;
    }
    let items: Vec<_> = (from..to)
        .map(|i| {
            kairn_e2e::agent::kairn_object(
                "volumebackups",
                Some(ns),
                &format!("done-{i:04}"),
                json!({"pvc": format!("pvc-{}", i % 50)}),
            )
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    let out = c
        .plane
        .kubectl_with_stdin(&["create", "-f", "-"], Some(&list));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Status only through its subresource: one PATCH each, from a shell loop (kubectl would
    // take a process per object).
    let token = c.plane.admin.token.clone();
    let script = format!(
        "for i in $(seq -f %04g {from} {last}); do curl -sf --cacert {ca} -H 'Authorization: Bearer {token}' \
         -H 'Content-Type: application/merge-patch+json' -X PATCH \
         -d '{{\"status\":{{\"phase\":\"Completed\",\"finished\":\"2026-11-30T00:00:00Z\",\"snapshotId\":\"00\"}}}}' \
         {server}{KAIRN_API}/namespaces/{ns}/volumebackups/done-$i/status >/dev/null || exit 1; done",
        last = to - 1,
        ca = c.plane.ca.display(),
        server = c.plane.server,
    );
    let status = Command::new("bash").arg("-c").arg(script).status().unwrap();
    assert!(status.success(), "status patches failed");
}

#[test]
#[ignore = "a measurement: run by hand, see BENCHMARKS.md"]
fn measure_the_api_load_and_memory_of_an_idle_agent() {
    let Some(c) = Cluster::new() else { return };
    let ns = c.namespace("history");
    let window = Duration::from_secs(60);
    // The DaemonSet's defaults: resync 10 s, sweeps of finished objects and repository sync
    // every 300 s (each agent sweeps at its start, so the windows below show the idle state).
    let defaults = [
        ("KAIRN_RESYNC_SECONDS", "10"),
        ("KAIRN_HISTORY_SECONDS", "300"),
        ("KAIRN_REPO_SYNC_SECONDS", "300"),
        ("RUST_LOG", "warn"),
    ];
    // A new agent for each history size (the history made while none runs: an agent that saw
    // it created, unfinished, would have cached it for a moment, as it would any new work).
    // Each window starts after the agent's start-up lists and first sweep.
    let mut made = 0;
    for total in [0, 1000, 3000] {
        finished_backups(&c, &ns, made, total);
        made = total;
        let before = list_bytes(&c);
        let mut agent = c.agent(&defaults);
        std::thread::sleep(Duration::from_secs(20));
        let start_up = (list_bytes(&c) - before) / 1024.0;
        println!("{total} finished: start-up lists and first sweep {start_up:.0} KiB");
        observe(
            &c,
            &mut agent,
            window,
            &format!("{total} finished VolumeBackups"),
        );
        agent.kill();
    }
}
