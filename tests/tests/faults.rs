//! The store misbehaving under real `repo` processes, through the fault-injecting backend
//! (`KAIRN_FAULTS`, engine/src/backend/faults.rs): failed requests, torn and short writes,
//! lagging listings, slow requests beside concurrent writers, and kills on object storage
//! (s3s-fs, started on 127.0.0.1).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use kairn_e2e::s3;
use kairn_e2e::{
    Cli, check_clean, code, contents, restored, small_packs, snapshot_ids, write_volume,
};

type Contents = BTreeMap<PathBuf, [u8; 32]>;

fn with_faults(cli: &Cli, faults: &str, args: &[&str]) -> Output {
    cli.cmd()
        .env("KAIRN_FAULTS", faults)
        .args(args)
        .output()
        .expect("run repo")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn backup_id(out: &Output) -> String {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["snapshot"].as_str().expect("snapshot id").to_string()
}

/// Every reported snapshot still listed restores as it was backed up.
fn verify(cli: &Cli, src: &Path, reported: &BTreeMap<String, Contents>) {
    let listed = snapshot_ids(cli);
    for (id, expected) in reported {
        if listed.contains(id) {
            assert_eq!(&restored(cli, id, src), expected, "snapshot {id}");
        }
    }
}

#[test]
fn failed_requests_fail_the_command_cleanly_and_a_rerun_succeeds() {
    let cli = small_packs();
    let src = cli.dir.path().join("vol");
    let mut reported = BTreeMap::new();
    let mut failures = 0;
    for seed in 1..=12u64 {
        write_volume(&src, seed, 4 + seed as usize % 4);
        let faults = format!("seed={seed},error=0.04");
        let out = with_faults(
            &cli,
            &faults,
            &["--json", "backup", src.to_str().expect("utf-8")],
        );
        if code(&out) == 0 {
            reported.insert(backup_id(&out), contents(&src));
        } else {
            failures += 1;
            assert_eq!(code(&out), 1, "{}", stderr(&out));
            assert!(stderr(&out).contains("injected fault"), "{}", stderr(&out));
        }
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
        check_clean(&cli);
        // The same data again, without faults: always succeeds.
        reported.insert(cli.backup(&src), contents(&src));
    }
    for seed in 1..=6u64 {
        let oldest = snapshot_ids(&cli)[0].clone();
        let faults = format!("seed={seed},error=0.1");
        for args in [
            &["forget", oldest.as_str()][..],
            &["prune", "--max-unused", "0"],
        ] {
            let out = with_faults(&cli, &faults, args);
            assert!(
                code(&out) == 0 || stderr(&out).contains("injected fault"),
                "{}",
                stderr(&out)
            );
            failures += usize::from(code(&out) != 0);
            check_clean(&cli);
        }
    }
    assert!(failures > 0, "the faults were injected");
    verify(&cli, &src, &reported);
    eprintln!("{failures} commands failed on injected faults; everything else checks out");
}

#[test]
fn a_torn_index_write_is_found_by_check_and_undone_by_repair_index() {
    let cli = small_packs();
    let src = cli.dir.path().join("vol");
    write_volume(&src, 1, 6);
    let out = with_faults(
        &cli,
        "torn=1,only=index",
        &["backup", src.to_str().expect("utf-8")],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let check = cli.run(&["check"]);
    assert_ne!(code(&check), 0, "a torn index file is reported");
    // Every reader refuses the damaged index until it is repaired, rather than guess.
    let blocked = cli.run(&["backup", src.to_str().expect("utf-8")]);
    assert_eq!(code(&blocked), 14, "{}", stderr(&blocked));
    cli.ok(&["repair", "index"]);
    check_clean(&cli);
    let id = cli.backup(&src);
    assert_eq!(restored(&cli, &id, &src), contents(&src));
}

#[test]
fn a_torn_pack_write_leaves_only_an_unindexed_pack() {
    let cli = small_packs();
    let src = cli.dir.path().join("vol");
    write_volume(&src, 2, 6);
    let out = with_faults(
        &cli,
        "torn=1,only=pack",
        &["backup", src.to_str().expect("utf-8")],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(snapshot_ids(&cli).is_empty());
    check_clean(&cli);
    // The re-run does not adopt the torn pack: its header does not read back.
    let id = cli.backup(&src);
    assert_eq!(restored(&cli, &id, &src), contents(&src));
    check_clean(&cli);
}

/// A store that keeps a prefix and reports success defeats the write path; every read is
/// verified, so check --read-data finds it and restore names what it cost.
#[test]
fn short_writes_are_caught_by_check_and_named_by_restore() {
    let cli = small_packs();
    let src = cli.dir.path().join("vol");
    write_volume(&src, 3, 6);
    let out = with_faults(
        &cli,
        "seed=3,short=0.5,only=pack",
        &["backup", src.to_str().expect("utf-8")],
    );
    assert_eq!(
        code(&out),
        0,
        "the store lied: the backup cannot tell {}",
        stderr(&out)
    );
    let check = cli.run(&["check", "--read-data"]);
    assert_eq!(
        code(&check),
        4,
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        stderr(&check)
    );
    let target = tempfile::tempdir().expect("tempdir");
    let spec = format!("latest:{}", src.display());
    let out = cli.run(&[
        "restore",
        &spec,
        "--target",
        target.path().to_str().expect("utf-8"),
    ]);
    // 4: the files in damaged packs are named; 14: a tree on the way to the path is damaged, so
    // nothing could be restored. Either way no file holds a wrong byte.
    let rc = code(&out);
    assert!(rc == 4 || rc == 14, "{}", stderr(&out));
    let expected = contents(&src);
    let got = contents(target.path());
    for (path, hash) in &expected {
        match got.get(path) {
            Some(h) => assert_eq!(h, hash, "{} restored wrong", path.display()),
            None => assert!(
                rc == 14 || stderr(&out).contains(&path.display().to_string()),
                "{} neither restored nor named",
                path.display()
            ),
        }
    }
    // repair index drops the damaged packs (exit 4: it names them); the next backup stores
    // their data again.
    let repair = cli.run(&["repair", "index"]);
    assert_eq!(code(&repair), 4, "{}", stderr(&repair));
    assert!(String::from_utf8_lossy(&repair.stdout).contains("unreadable: pack"));
    let id = cli.backup(&src);
    assert_eq!(restored(&cli, &id, &src), expected);
}

/// A listing that lags behind writes (which the storage contract rules out, §2) may hide the
/// newest snapshot or the index files it needs; a restore then fails or restores an older
/// snapshot whole. It never mixes them up.
#[test]
fn a_lagging_listing_never_yields_wrong_bytes() {
    const LAG_MS: u64 = 1500;
    let cli = small_packs();
    let src = cli.dir.path().join("vol");
    let mut reported = BTreeMap::new();
    write_volume(&src, 4, 5);
    reported.insert(cli.backup(&src), contents(&src));
    let mut outcomes = BTreeMap::<&str, usize>::new();
    for round in 0..4u64 {
        // What was written before sleeping is listed again; the next backup is not, yet.
        std::thread::sleep(std::time::Duration::from_millis(LAG_MS + 200));
        write_volume(&src, 40 + round, 5);
        let newest = cli.backup(&src);
        reported.insert(newest.clone(), contents(&src));
        let target = tempfile::tempdir().expect("tempdir");
        let spec = format!("latest:{}", src.display());
        let out = with_faults(
            &cli,
            &format!("list-lag-ms={LAG_MS}"),
            &[
                "--json",
                "restore",
                &spec,
                "--target",
                target.path().to_str().expect("utf-8"),
            ],
        );
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
        let outcome = if code(&out) == 0 {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            let id = v["snapshot"].as_str().expect("id");
            assert_eq!(&contents(target.path()), &reported[id], "snapshot {id}");
            if id == newest {
                "the newest snapshot"
            } else {
                "an older snapshot, whole"
            }
        } else {
            "a clear error"
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    eprintln!("restores of `latest` under a lagging listing gave: {outcomes:?}");
}

#[test]
fn slow_requests_beside_concurrent_writers_lose_nothing() {
    let cli = small_packs();
    let vols: Vec<PathBuf> = (0..3)
        .map(|i| cli.dir.path().join(format!("vol{i}")))
        .collect();
    for (i, v) in vols.iter().enumerate() {
        write_volume(v, 50 + i as u64, 4);
    }
    let first = cli.backup(&vols[0]);
    let mut children: Vec<std::process::Child> = vols
        .iter()
        .map(|v| {
            cli.cmd()
                .env("KAIRN_FAULTS", "latency-ms=25")
                .args(["--json", "backup", v.to_str().expect("utf-8")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    children.push(
        cli.cmd()
            .env("KAIRN_FAULTS", "latency-ms=25")
            .args(["forget", &first])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    children.push(
        cli.cmd()
            .env("KAIRN_FAULTS", "latency-ms=25")
            .args(["prune", "--max-unused", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    for out in &outs {
        assert_eq!(code(out), 0, "{}", stderr(out));
    }
    check_clean(&cli);
    for (v, out) in vols.iter().zip(&outs) {
        assert_eq!(restored(&cli, &backup_id(out), v), contents(v));
    }
}

/// The crash sweep of crash.rs, on object storage: a backup killed after each of its requests
/// that change the bucket leaves a repository that checks clean and takes the next backup.
#[test]
fn a_backup_killed_at_every_change_on_s3s_fs_loses_nothing() {
    let server = s3::s3s_fs("crash");
    let cli = Cli::at("s3://crash/repo", s3::options(&server.endpoint));
    let mut init = vec!["init"];
    init.extend_from_slice(&kairn_e2e::CHEAP_KDF);
    init.extend_from_slice(&["--pack-size-mib", "1"]);
    init.extend_from_slice(&kairn_e2e::SMALL_CHUNKS);
    cli.ok(&init);
    let src = cli.dir.path().join("vol");
    let mut reported = BTreeMap::new();
    let mut kills = 0;
    for n in 1.. {
        write_volume(&src, 60 + n, 4);
        let out = with_faults(
            &cli,
            &format!("kill-after={n}"),
            &["backup", src.to_str().expect("utf-8")],
        );
        if std::os::unix::process::ExitStatusExt::signal(&out.status) != Some(9) {
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            break;
        }
        kills += 1;
        let check = cli.run(&["check"]);
        assert_eq!(code(&check), 0, "killed after {n}: {}", stderr(&check));
        reported.insert(cli.backup(&src), contents(&src));
        assert!(n < 100, "the backup never completed");
    }
    assert!(kills >= 5, "{kills}");
    verify(&cli, &src, &reported);
    eprintln!("{kills} kill points on s3s-fs");
}
