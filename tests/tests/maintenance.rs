//! Many writers on one repository: forget, prune beside running backups, expired sessions, and
//! a randomised run of concurrent backup, forget and prune processes killed at random moments.
//! Every test drives real `repo` processes; repo-format.md §14.1 is the protocol under test.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use kairn_e2e::{
    Cli, Rng, check_clean, code, contents, noise, restored, small_packs, snapshot_ids, write_volume,
};

#[test]
fn forget_then_prune_frees_the_space_of_forgotten_snapshots() {
    let cli = small_packs();
    let vol = cli.dir.path().join("vol");
    for round in 0..4 {
        write_volume(&vol, round + 1, 12);
        cli.backup(&vol);
    }
    let before: u64 = cli
        .files("data")
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    let dry = cli.json(&["forget", "--keep-last", "1", "--dry-run"]);
    assert_eq!(dry["forget"]["removed"].as_array().unwrap().len(), 3);
    assert_eq!(snapshot_ids(&cli).len(), 4, "a dry run removes nothing");
    let report = cli.json(&["forget", "--keep-last", "1", "--prune"]);
    let kept = &report["forget"]["groups"][0]["snapshots"][0];
    assert_eq!(kept["keep"], true);
    assert_eq!(kept["reasons"][0], "last snapshot");
    assert!(
        report["prune"]["deleted_packs"].as_u64().unwrap() > 0,
        "{report}"
    );
    let after: u64 = cli
        .files("data")
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        after * 3 < before,
        "prune kept {after} of {before} bytes for one of four snapshots"
    );
    assert_eq!(snapshot_ids(&cli).len(), 1);
    assert_eq!(restored(&cli, "latest", &vol), contents(&vol));
    check_clean(&cli);
    let again = cli.json(&["prune"]);
    assert_eq!(
        again["deleted_packs"], 0,
        "a second prune finds nothing: {again}"
    );
}

#[test]
fn prune_does_not_delete_what_a_running_backup_is_about_to_reuse() {
    use engine::backend::OpendalBackend;
    use engine::backup::{BackupOptions, ParentChoice, backup};
    use engine::index::Index;
    use engine::repo::Repository;

    let cli = small_packs();
    let vol = cli.dir.path().join("vol");
    write_volume(&vol, 1, 10);
    let first = cli.backup(&vol);

    // A backup that has started its session and loaded the index, so it will deduplicate
    // against the first snapshot's blobs...
    let backend = std::sync::Arc::new(OpendalBackend::local(&cli.repo).unwrap());
    let repo = Repository::open(backend, b"correct horse").unwrap();
    let session = repo
        .begin_session("backup", Duration::from_secs(600))
        .unwrap();
    let index = Index::load(&repo).unwrap();

    // ...while that snapshot is forgotten and a prune runs: it must not delete the packs.
    cli.ok(&["forget", &first]);
    let report = cli.json(&["prune"]);
    assert_eq!(report["deleted_packs"], 0, "{report}");
    assert_eq!(report["pending"].as_array().unwrap().len(), 1, "{report}");
    let waiting = &report["pending"][0]["waiting_for"][0];
    assert_eq!(waiting["kind"], "backup");

    let opts = BackupOptions {
        paths: vec![vol.clone()],
        parent: ParentChoice::None,
        ..Default::default()
    };
    let outcome = backup(
        &repo,
        &session,
        &index,
        &opts,
        &engine::progress::NoProgress,
    )
    .unwrap();
    assert_eq!(
        outcome.snapshot.summary.data_blobs_new, 0,
        "the backup reused every blob"
    );
    session.end().unwrap();

    // The next prune sweeps: it sees the new snapshot, indexes its packs again, deletes nothing
    // it uses.
    let report = cli.json(&["prune"]);
    assert!(report["pending"].as_array().unwrap().is_empty(), "{report}");
    assert!(report["reindexed_packs"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(restored(&cli, &outcome.id.to_hex(), &vol), contents(&vol));
    check_clean(&cli);
}

fn spawn(cli: &Cli, args: &[&str], expiry: &str) -> Child {
    cli.cmd()
        .env("KAIRN_SESSION_EXPIRY", expiry)
        .arg("--json")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_stalled_backup_is_expired_by_prune_and_cannot_commit() {
    let cli = Cli::init();
    let vol = cli.dir.path().join("vol");
    write_volume(&vol, 3, 40);
    let old = cli.backup(&vol);
    write_volume(&vol, 4, 300); // large enough to be stopped halfway

    let child = spawn(&cli, &["backup", vol.to_str().unwrap()], "6");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Stop it once its session exists, before it can finish.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cli.files("sessions").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the backup never started a session"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    cli.ok(&["forget", &old]);
    std::thread::sleep(Duration::from_secs(8)); // longer than the expiry, in storage time too
    let report: serde_json::Value = serde_json::from_slice(
        &cli.cmd()
            .env("KAIRN_SESSION_EXPIRY", "6")
            .args(["--json", "prune"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(report["pending"].as_array().unwrap().is_empty(), "{report}");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        code(&out),
        16,
        "the stalled backup must refuse to publish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("session"));
    assert!(snapshot_ids(&cli).is_empty(), "no snapshot was written");
    check_clean(&cli);
}

#[test]
fn concurrent_backups_forget_and_prune_killed_at_random_never_lose_a_reported_snapshot() {
    let seed = std::env::var("KAIRN_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = Rng(seed | 1);
    let cli = small_packs();
    let volumes: Vec<PathBuf> = (0..3)
        .map(|v| cli.dir.path().join(format!("vol{v}")))
        .collect();
    for (i, v) in volumes.iter().enumerate() {
        write_volume(v, i as u64 + 1, 8);
    }
    // Snapshot id -> (volume, content at backup time), for every backup that reported success.
    let mut written: BTreeMap<String, (usize, BTreeMap<PathBuf, [u8; 32]>)> = BTreeMap::new();
    let expiry = "6";
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    for round in 0..10 {
        // Change some files between rounds (never while a backup reads them).
        for v in &volumes {
            for _ in 0..rng.below(4) {
                let f = v.join(format!("f{}", rng.below(10)));
                fs::write(
                    &f,
                    noise(rng.next_u64(), 10_000 + rng.below(200_000) as usize),
                )
                .unwrap();
            }
        }
        let states: Vec<_> = volumes.iter().map(|v| contents(v)).collect();
        let mut children: Vec<(Option<usize>, Child)> = Vec::new();
        for (i, v) in volumes.iter().enumerate() {
            children.push((
                Some(i),
                spawn(&cli, &["backup", v.to_str().unwrap()], expiry),
            ));
        }
        if rng.below(2) == 0 {
            children.push((None, spawn(&cli, &["forget", "--keep-last", "2"], expiry)));
        }
        children.push((None, spawn(&cli, &["prune", "--max-unused", "0"], expiry)));
        // Kill some of them at a random moment.
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        for (_, child) in children.iter_mut() {
            if rng.below(2) == 0 {
                let _ = child.kill();
            }
        }
        for (volume, child) in children {
            let out = child.wait_with_output().unwrap();
            let c = out.status.code();
            *outcomes.entry(format!("{c:?}")).or_insert(0) += 1;
            assert!(
                matches!(c, None | Some(0) | Some(16)),
                "round {round} (seed {seed}): a process failed with {c:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if let (Some(i), Some(0)) = (volume, c) {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let id = v["snapshot"].as_str().unwrap().to_string();
                written.insert(id, (i, states[i].clone()));
            }
        }
    }
    // Every process has ended. A writer killed between its commit fence and the end of its
    // session keeps sweeps waiting by design; the operator, who knows it is gone, removes it.
    for s in cli.json(&["repair", "sessions"]).as_array().unwrap() {
        if s["fence"] == "commit" {
            cli.ok(&[
                "repair",
                "sessions",
                "--remove",
                s["session"].as_str().unwrap(),
            ]);
        }
    }
    // Let killed writers' sessions expire, then prune to completion.
    std::thread::sleep(Duration::from_secs(7));
    let out = cli
        .cmd()
        .env("KAIRN_SESSION_EXPIRY", expiry)
        .args(["--json", "prune", "--wait", "--max-unused", "0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["pending"].as_array().unwrap().is_empty(), "{report}");
    check_clean(&cli);
    let present = snapshot_ids(&cli);
    assert!(!present.is_empty());
    let mut verified = 0;
    for (id, (volume, expected)) in &written {
        if present.contains(id) {
            assert_eq!(
                &restored(&cli, id, &volumes[*volume]),
                expected,
                "snapshot {id} (seed {seed}) does not restore what was backed up"
            );
            verified += 1;
        }
    }
    eprintln!(
        "seed {seed}: exits {outcomes:?}; {} snapshots reported, {} present, {verified} verified; \
         final prune: {report}",
        written.len(),
        present.len()
    );
    assert!(verified > 0, "no reported snapshot survived to be verified");
    // A backup killed after writing its snapshot but before reporting it leaves a snapshot
    // nobody vouched for; it must still restore whole.
    for id in present.iter().filter(|id| !written.contains_key(*id)) {
        let target = tempfile::tempdir().unwrap();
        cli.ok(&["restore", id, "--target", target.path().to_str().unwrap()]);
    }
}

#[test]
fn check_finds_a_missing_index_and_a_dangling_snapshot_and_repair_fixes_both() {
    use engine::backend::OpendalBackend;
    use engine::repo::Repository;

    let cli = small_packs();
    let vol = cli.dir.path().join("vol");
    write_volume(&vol, 7, 12);
    let id = cli.backup(&vol);

    // A missing index: every blob the snapshot uses is unaccounted for.
    for f in cli.files("index") {
        fs::remove_file(f).unwrap();
    }
    let out = cli.run(&["check"]);
    assert_eq!(code(&out), 4);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("not in the index") && text.contains(&id[..8]),
        "{text}"
    );
    let repaired = cli.json(&["repair", "index"]);
    assert!(repaired["packs"].as_u64().unwrap() > 1, "{repaired}");
    check_clean(&cli);
    assert_eq!(restored(&cli, &id, &vol), contents(&vol));

    // A dangling snapshot: its root tree is stored nowhere.
    let backend = std::sync::Arc::new(OpendalBackend::local(&cli.repo).unwrap());
    let repo = Repository::open(backend, b"correct horse").unwrap();
    let (_, mut snap) = engine::snapshots::find(&repo, &id, &Default::default()).unwrap();
    snap.tree = engine::id::BlobId(engine::id::Id([7; 32]));
    snap.time = "2030-01-01T00:00:00Z".into();
    let writer = repo
        .begin_session("repair", Duration::from_secs(600))
        .unwrap();
    let dangling = writer.save_snapshot(&snap).unwrap().to_hex();
    writer.end().unwrap();
    let out = cli.run(&["check"]);
    assert_eq!(code(&out), 4);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&dangling[..8]),
        "the dangling snapshot is named: {text}"
    );

    // A lost data pack: the files it held go, the rest stays restorable.
    let data = cli.files("data");
    let victim = data
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    fs::remove_file(victim).unwrap();
    assert_eq!(code(&cli.run(&["check"])), 4);
    // The documented order: the index first (it forgets the lost pack), then the snapshots.
    cli.json(&["repair", "index"]);
    let dry = cli.json(&["repair", "snapshots", "--dry-run"]);
    assert_eq!(dry["repaired"].as_array().unwrap().len(), 2, "{dry}");
    assert_eq!(snapshot_ids(&cli).len(), 2, "a dry run writes nothing");
    let report = cli.json(&["repair", "snapshots"]);
    let fixed = report["repaired"].as_array().unwrap();
    assert_eq!(fixed.len(), 2, "{report}");
    let ids = snapshot_ids(&cli);
    assert_eq!(ids.len(), 2);
    assert!(
        !ids.contains(&id) && !ids.contains(&dangling),
        "originals are replaced"
    );
    check_clean(&cli);
    let repaired_id = fixed.iter().find(|r| r["original"] == id.as_str()).unwrap()["repaired"]
        .as_str()
        .unwrap()
        .to_string();
    let lost: Vec<String> = fixed.iter().find(|r| r["original"] == id.as_str()).unwrap()["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert!(!lost.is_empty());
    let got = restored(&cli, &repaired_id, &vol);
    let mut want = contents(&vol);
    want.retain(|p, _| {
        !lost
            .iter()
            .any(|l| l.ends_with(&format!("/{}", p.display())))
    });
    assert_eq!(got, want, "everything not lost restores");
    let tags = &cli.json(&["snapshots"])[0]["tags"];
    assert!(tags.as_array().unwrap().iter().any(|t| t == "repaired"));
}
