//! The rest of the command set: keys, standard input, snapshot filters, cat, stats, exit codes
//! on a full disk.

use std::fs;
use std::io::Write;
use std::process::Stdio;

use kairn_e2e::{CHEAP_KDF, Cli, SmallFs, code, noise};

#[test]
fn keys_can_be_added_listed_changed_and_removed() {
    let cli = Cli::init();
    let other = cli.dir.path().join("other-password");
    fs::write(&other, "second password").unwrap();
    let mut add = vec!["key", "add", "--new-password-file", other.to_str().unwrap()];
    add.extend_from_slice(&CHEAP_KDF);
    cli.ok(&add);
    let keys = cli.json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);

    // The second password opens the repository too.
    let out = std::process::Command::new(kairn_e2e::repo_bin())
        .args([
            "-r",
            cli.repo.to_str().unwrap(),
            "--password-file",
            other.to_str().unwrap(),
            "snapshots",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The key in use cannot be removed; the other can.
    let current = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(code(&cli.run(&["key", "remove", &current])), 1);
    cli.ok(&["key", "remove", &second[..10]]);
    assert_eq!(cli.json(&["key", "list"]).as_array().unwrap().len(), 1);

    // passwd replaces the key in use.
    let third = cli.dir.path().join("third");
    fs::write(&third, "third password").unwrap();
    let mut passwd = vec![
        "key",
        "passwd",
        "--new-password-file",
        third.to_str().unwrap(),
    ];
    passwd.extend_from_slice(&CHEAP_KDF);
    cli.ok(&passwd);
    assert_eq!(
        code(&cli.run(&["snapshots"])),
        12,
        "the old password no longer opens it"
    );
    fs::copy(&third, &cli.password_file).unwrap();
    cli.ok(&["snapshots"]);
}

#[test]
fn standard_input_is_backed_up_as_one_file() {
    let cli = Cli::init();
    let data = noise(5, 3_000_000);
    let mut child = cli
        .cmd()
        .args([
            "--json",
            "backup",
            "--stdin",
            "--stdin-filename",
            "dump.sql",
            "--tag",
            "db",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dumped = cli
        .cmd()
        .args(["dump", "latest:/dump.sql"])
        .output()
        .unwrap();
    assert_eq!(dumped.stdout, data);
    let snaps = cli.json(&["snapshots", "--tag", "db"]);
    assert_eq!(snaps[0]["source"]["kind"], "stdin");
}

#[test]
fn snapshots_filter_by_host_path_and_tag() {
    let cli = Cli::init();
    let a = cli.dir.path().join("a");
    let b = cli.dir.path().join("b");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    cli.ok(&[
        "backup",
        a.to_str().unwrap(),
        "--host",
        "node-1",
        "--tag",
        "daily",
    ]);
    cli.ok(&[
        "backup",
        b.to_str().unwrap(),
        "--host",
        "node-2",
        "--tag",
        "daily",
        "--tag",
        "pg",
    ]);
    cli.ok(&["backup", a.to_str().unwrap(), "--host", "node-1"]);
    let count = |args: &[&str]| {
        cli.json(&[&["snapshots"], args].concat())
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(&[]), 3);
    assert_eq!(count(&["--host", "node-1"]), 2);
    assert_eq!(count(&["--tag", "daily"]), 2);
    assert_eq!(count(&["--tag", "daily", "--tag", "pg"]), 1);
    assert_eq!(count(&["--path", a.to_str().unwrap()]), 2);
    let text = cli.ok(&["snapshots"]);
    assert!(
        text.contains("node-2") && text.contains("3 snapshot(s)"),
        "{text}"
    );
    // The third backup found the first as its parent (same host and paths).
    let third = &cli.json(&["snapshots", "--host", "node-1"])[1];
    let first = &cli.json(&["snapshots", "--host", "node-1"])[0];
    assert_eq!(third["parent"], first["id"]);
}

#[test]
fn cat_and_stats_show_decrypted_objects() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "text ".repeat(100_000)).unwrap();
    fs::write(src.join("g"), "text ".repeat(100_000)).unwrap();
    let snap = cli.backup(&src);
    let config = cli.json(&["cat", "config"]);
    assert_eq!(config["version"], 1);
    assert_eq!(config["chunker"], "fastcdc-2020-keyed-gear");
    let s = cli.json(&["cat", "snapshot", &snap[..8]]);
    let tree = s["tree"].as_str().unwrap();
    let root = cli.json(&["cat", "tree", tree]);
    assert!(root["nodes"].as_array().unwrap().len() == 1);
    let index = kairn_e2e::walk_files(&cli.repo.join("index"));
    let idx = cli.json(&[
        "cat",
        "index",
        index[0].file_name().unwrap().to_str().unwrap(),
    ]);
    let pack = idx["packs"][0]["id"].as_str().unwrap();
    let header = cli.json(&["cat", "pack", pack]);
    assert_eq!(
        header["blobs"].as_array().unwrap().len(),
        idx["packs"][0]["blobs"].as_array().unwrap().len()
    );
    let stats = cli.json(&["stats"]);
    assert_eq!(stats["logical_bytes"], 1_000_000);
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 1.9, "{stats}");
    assert!(
        stats["compression_ratio"].as_f64().unwrap() > 10.0,
        "{stats}"
    );
    let out = cli.run(&["cat", "snapshot", "ffffffff"]);
    assert_eq!(code(&out), 1);
}

#[test]
fn a_full_disk_exits_15_with_a_clear_message() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big"), noise(1, 6 << 20)).unwrap();
    fs::write(src.join("small"), b"small").unwrap();
    cli.backup(&src);

    let Some(target) = SmallFs::mount(&cli.dir.path().join("full-target"), "2m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let out = cli.run(&[
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        target.dir().to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 15, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("full"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A repository on a full disk: the backup fails, and no snapshot claims data it lacks.
    let small_repo = SmallFs::mount(&cli.dir.path().join("full-repo"), "3m").unwrap();
    let repo = small_repo.dir().join("repo");
    let on_small = |args: &[&str]| {
        std::process::Command::new(kairn_e2e::repo_bin())
            .args([
                "-r",
                repo.to_str().unwrap(),
                "--password-file",
                cli.password_file.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        on_small(&[&["init"], &CHEAP_KDF[..]].concat())
            .status
            .success()
    );
    let out = on_small(&["backup", src.to_str().unwrap()]);
    assert_eq!(code(&out), 15, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        kairn_e2e::walk_files(&repo.join("snapshots")).is_empty(),
        "no snapshot after a failed backup"
    );
}

#[test]
fn one_file_system_keeps_the_mount_point_but_not_what_is_mounted_there() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("here"), b"same filesystem").unwrap();
    let Some(mnt) = SmallFs::mount(&src.join("mnt"), "1m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    fs::write(mnt.dir().join("elsewhere"), b"other filesystem").unwrap();
    cli.ok(&["backup", "--one-file-system", src.to_str().unwrap()]);
    let listing = cli.ok(&["ls", "latest"]);
    assert!(
        listing.contains("/src/here") && listing.contains("/src/mnt\n"),
        "{listing}"
    );
    assert!(!listing.contains("elsewhere"), "{listing}");
    cli.ok(&["backup", src.to_str().unwrap()]);
    assert!(cli.ok(&["ls", "latest"]).contains("/src/mnt/elsewhere"));
}
