//! Cluster backups: snapshots taken for one request or schedule run share a group id, are
//! listed as one (`snapshots --group`), and are kept or forgotten whole.

use std::io::Write;
use std::process::Stdio;

use kairn_e2e::{Cli, code, write_volume};

fn backup_stdin(cli: &Cli, name: &str, data: &[u8], extra: &[&str]) {
    let mut child = cli
        .cmd()
        .args(["backup", "--stdin", "--stdin-filename", name])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    assert!(child.wait().unwrap().success());
}

/// One run: two volumes and a dump, grouped under `run-N`, series `nightly`; run 2 also has a
/// volume on another host.
fn run(cli: &Cli, n: u32) {
    let dir = cli.dir.path().join(format!("run-{n}"));
    for vol in ["db", "web"] {
        let path = dir.join(vol);
        write_volume(&path, u64::from(n) * 10 + vol.len() as u64, 3);
        let group = format!("run-{n}");
        cli.ok(&[
            "backup",
            path.to_str().unwrap(),
            "--group",
            &group,
            "--series",
            "nightly",
            "--host",
            if vol == "web" && n == 2 {
                "node-b"
            } else {
                "node-a"
            },
        ]);
    }
    let group = format!("run-{n}");
    backup_stdin(
        cli,
        "dump.sql",
        format!("dump {n}").as_bytes(),
        &["--group", &group, "--series", "nightly", "--host", "node-a"],
    );
}

#[test]
fn cluster_backups_are_listed_as_one_and_forgotten_whole() {
    let cli = Cli::init();
    for n in 1..=3 {
        run(&cli, n);
    }
    // An ungrouped snapshot is not part of any cluster backup.
    let lone = cli.dir.path().join("lone");
    write_volume(&lone, 99, 2);
    cli.backup(&lone);

    let groups = cli.json(&["snapshots", "--group"]);
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 3);
    for (i, g) in groups.iter().enumerate() {
        assert_eq!(g["id"], format!("run-{}", i + 1));
        assert_eq!(g["series"], "nightly");
        assert_eq!(g["snapshots"].as_array().unwrap().len(), 3);
    }
    let one = cli.json(&["snapshots", "--group", "run-2"]);
    assert_eq!(one.as_array().unwrap().len(), 1);
    let text = cli.ok(&["snapshots", "--group"]);
    assert!(text.contains("cluster backup run-1 (nightly)"), "{text}");
    assert!(text.contains("3 cluster backup(s)"), "{text}");
    // `latest` narrowed to one cluster backup and one kind: run 2's database dump.
    let dump = cli.ok(&[
        "dump",
        "latest:/dump.sql",
        "--group",
        "run-2",
        "--kind",
        "stdin",
    ]);
    assert_eq!(dump, "dump 2");

    // Keep the last cluster backup of the series, filtered to node-a: run 2's web volume on
    // node-b goes with its group anyway, and the lone snapshot is its own source.
    let report = cli.json(&["forget", "--keep-last", "1", "--host", "node-a"]);
    let removed = report["forget"]["removed"].as_array().unwrap().len();
    assert_eq!(removed, 6, "{report:#}");
    let left = cli.json(&["snapshots", "--group"]);
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], "run-3");
    assert_eq!(cli.json(&["snapshots"]).as_array().unwrap().len(), 4);

    // A whole cluster backup by id.
    cli.ok(&["forget", "--group", "run-3"]);
    assert!(
        cli.json(&["snapshots", "--group"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(cli.json(&["snapshots"]).as_array().unwrap().len(), 1);
    let missing = cli.run(&["forget", "--group", "run-3"]);
    assert_eq!(
        code(&missing),
        1,
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let misplaced = cli.run(&["backup", lone.to_str().unwrap(), "--cluster", "prod"]);
    assert_eq!(
        code(&misplaced),
        2,
        "--cluster is for etcd and manifests backups"
    );
    let bad = cli.run(&["backup", lone.to_str().unwrap(), "--group", "a b"]);
    assert_eq!(code(&bad), 1);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cluster backup id"));
}
