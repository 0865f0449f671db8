//! A full disk is recoverable with the tool itself (issue 17 §4): a failed write leaves nothing
//! in `tmp/`, prune clears what a crashed writer staged, and the next backup that fits works
//! without anyone touching the repository by hand.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use kairn_e2e::{
    CHEAP_KDF, Cli, SmallFs, check_clean, code, contents, noise, restored, snapshot_ids,
};

fn volume(dir: &Path, seed: u64, files: usize, size: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        fs::write(
            dir.join(format!("f{i}")),
            noise(seed * 1000 + i as u64, size),
        )
        .unwrap();
    }
}

fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_full_disk_is_recoverable_with_the_tool_itself() {
    let mut cli = Cli::uninitialised();
    let Some(disk) = SmallFs::mount(&cli.dir.path().join("disk"), "20m") else {
        return;
    };
    cli.repo = disk.dir().join("repo");
    // Packs of 16 MiB: whichever pack the full disk stops, its staged bytes (up to a pack) are
    // what a failed write must give back.
    let mut init = vec!["init", "--pack-size-mib", "16"];
    init.extend_from_slice(&CHEAP_KDF);
    cli.ok(&init);

    let big = cli.dir.path().join("big");
    volume(&big, 1, 10, 5 << 20);
    let out = cli.run(&["backup", big.to_str().unwrap()]);
    assert_eq!(code(&out), 15, "{}", said(&out));
    assert_eq!(
        entries(&cli.repo.join("tmp")),
        Vec::<String>::new(),
        "staged files left"
    );
    assert_eq!(
        entries(&cli.repo.join("sessions")),
        Vec::<String>::new(),
        "the failed backup's session did not end"
    );

    // The disk is still nearly full of the failed backup's packs: prune must run anyway.
    let out = cli.run(&["prune"]);
    assert_eq!(code(&out), 0, "prune on a full disk: {}", said(&out));

    // What fits in the space the failed write gave back; nothing touched by hand.
    let small = cli.dir.path().join("small");
    volume(&small, 2, 4, 64 << 10);
    let snapshot = cli.backup(&small);

    // Once the failed backup's packs are older than the expiry, prune frees their space.
    std::thread::sleep(Duration::from_secs(7));
    let report = cli.json(&["--session-expiry", "6", "prune"]);
    assert!(
        report["deleted_packs"].as_u64().unwrap() > 0,
        "prune kept the failed backup's packs: {report}"
    );
    // The space is back: new data fits again.
    let more = cli.dir.path().join("more");
    volume(&more, 3, 4, 1 << 20);
    let second = cli.backup(&more);
    check_clean(&cli);
    assert_eq!(snapshot_ids(&cli).len(), 2);
    assert_eq!(restored(&cli, &snapshot, &small), contents(&small));
    assert_eq!(restored(&cli, &second, &more), contents(&more));
}

#[test]
fn prune_removes_staged_files_older_than_the_session_expiry() {
    let cli = Cli::init();
    let tmp = cli.repo.join("tmp");
    // What a writer killed mid-write leaves, an hour ago; and one being written now.
    let old = tmp.join(format!("{}.0123456789abcdef", "a".repeat(64)));
    fs::write(&old, vec![1u8; 4096]).unwrap();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let live = tmp.join(format!("{}.fedcba9876543210", "b".repeat(64)));
    fs::write(&live, vec![2u8; 4096]).unwrap();

    let report = cli.json(&["prune"]);
    assert_eq!(report["stale_staged_files"], 1, "{report}");
    assert!(!old.exists(), "the stale staged file is still there");
    assert!(live.exists(), "a live writer's staged file was removed");
}
