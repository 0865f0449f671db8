//! What a restic or rustic user types on the first day (issue 21): snapshot filters that narrow
//! `latest`, the snapshots views, JSON with a schema version (errors too), key listings,
//! version, completions and man pages, password commands, options from a file or the
//! environment, profiles, stats modes and rate limits — each on the built binary.

use std::fs;
use std::path::Path;
use std::process::Command;

use kairn_e2e::{CHEAP_KDF, Cli, code, repo_bin};
use serde_json::Value;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A repository with three snapshots: `/a` on host alpha tagged `web`, `/b` on host beta, and
/// `/a` again on beta; returns the ids in that order and the two source directories.
fn three_snapshots() -> (Cli, Vec<String>, [std::path::PathBuf; 2]) {
    let cli = Cli::init();
    let a = cli.dir.path().join("a");
    let b = cli.dir.path().join("b");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("index.html"), "site a").unwrap();
    fs::write(b.join("notes.txt"), "notes b").unwrap();
    let mut ids = Vec::new();
    for (dir, host, tag) in [
        (&a, "alpha", Some("web")),
        (&b, "beta", None),
        (&a, "beta", None),
    ] {
        let mut args = vec!["--json", "backup", "--host", host, dir.to_str().unwrap()];
        if let Some(t) = tag {
            args.extend(["--tag", t]);
        }
        let v: Value = serde_json::from_str(&cli.ok(&args)).unwrap();
        ids.push(v["snapshot"].as_str().unwrap().to_string());
    }
    (cli, ids, [a, b])
}

#[test]
fn latest_means_the_newest_snapshot_that_matches_the_filters() {
    let (cli, ids, [a, b]) = three_snapshots();
    let out = cli.dir.path().join("out");
    // Unfiltered, latest is the third; narrowed, it is the one that matches.
    cli.ok(&[
        "restore",
        "latest",
        "-t",
        out.join("web").to_str().unwrap(),
        "--tag",
        "web",
    ]);
    assert!(
        out.join("web")
            .join(a.strip_prefix("/").unwrap())
            .join("index.html")
            .exists()
    );
    let listed = cli.ok(&["ls", "latest", "--path", b.to_str().unwrap()]);
    assert!(listed.contains("notes.txt"), "{listed}");
    let alpha = cli.json(&["cat", "snapshot", "latest", "--host", "alpha"]);
    assert_eq!(alpha["host"], "alpha");
    let diff = cli.ok(&[
        "diff",
        "latest",
        "latest",
        "--host",
        "beta",
        "--path",
        a.to_str().unwrap(),
    ]);
    assert!(diff.contains("0 added"), "{diff}");
    // An id that the filters given beside it do not match is refused, not used.
    let out = cli.run(&["ls", &ids[1][..8], "--host", "alpha"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("does not match the filters"),
        "{}",
        stderr(&out)
    );
    // A filter nothing matches says so.
    let out = cli.run(&["restore", "latest", "-t", "/tmp/never", "--kind", "etcd"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("matching the filters"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new("/tmp/never").exists());
    // An unknown kind is a usage error that lists the kinds.
    let out = cli.run(&["snapshots", "--kind", "volume"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("filesystem"), "{}", stderr(&out));
}

#[test]
fn snapshots_can_show_the_latest_per_group_grouped_and_compact() {
    let (cli, ids, [a, _]) = three_snapshots();
    let latest = cli.json(&["snapshots", "--latest", "1"]);
    let got: Vec<&str> = latest
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    // One per host and paths: alpha:/a, beta:/b, beta:/a, in time order.
    assert_eq!(got, [ids[0].as_str(), ids[1].as_str(), ids[2].as_str()]);
    let by_path = cli.json(&["snapshots", "--group-by", "paths", "--latest", "1"]);
    let groups = by_path.as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let of_a = groups
        .iter()
        .find(|g| g["group_key"]["paths"] == serde_json::json!([a.to_str().unwrap()]))
        .unwrap();
    assert_eq!(of_a["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(of_a["snapshots"][0]["id"], ids[2].as_str());
    assert_eq!(of_a["schema_version"], 1);
    let text = cli.ok(&["snapshots", "--group-by", "host"]);
    assert!(text.contains("snapshots for host \"alpha\":"), "{text}");
    let compact = cli.ok(&["snapshots", "--compact"]);
    let rows: Vec<&str> = compact.lines().collect();
    assert_eq!(rows.len(), 5, "{compact}");
    assert!(
        rows[0].starts_with("ID") && rows[0].contains("Source"),
        "{compact}"
    );
    assert!(!compact.contains("Paths"), "{compact}");
    let out = cli.run(&["snapshots", "--group-by", "colour"]);
    assert_eq!(code(&out), 2);
}

#[test]
fn json_documents_carry_a_schema_version_and_errors_are_json_too() {
    let (cli, _, _) = three_snapshots();
    for doc in cli.json(&["snapshots"]).as_array().unwrap() {
        assert_eq!(doc["schema_version"], 1);
    }
    assert_eq!(cli.json(&["stats"])["schema_version"], 1);
    // ls keeps restic's shape: one object per line, each stamped.
    let lines = cli.ok(&["--json", "ls", "latest"]);
    for line in lines.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["schema_version"], 1, "{line}");
    }
    let out = cli.run(&["--json", "restore", "ffffffff", "-t", "/tmp/x"]);
    assert_eq!(code(&out), 1);
    let err: Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(err["code"], 1);
    assert_eq!(err["kind"], "NotFound");
    assert_eq!(err["retryable"], false);
    assert_eq!(err["schema_version"], 1);
    assert!(err["error"].as_str().unwrap().contains("ffffffff"), "{err}");
}

#[test]
fn keys_print_json_and_the_listing_shows_append_only_keys_in_local_time() {
    let cli = Cli::init();
    let other = cli.dir.path().join("agent-password");
    fs::write(&other, "agent").unwrap();
    let mut add = vec![
        "key",
        "add",
        "--append-only",
        "--new-password-file",
        other.to_str().unwrap(),
    ];
    add.extend_from_slice(&CHEAP_KDF);
    let added = cli.json(&add);
    assert_eq!(added["append_only"], true);
    let id = added["added"].as_str().unwrap().to_string();
    let keys = cli.json(&["key", "list"]);
    let agent = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert_eq!(agent["append_only"], true);
    let text = cli.ok(&["key", "list"]);
    let row = text.lines().find(|l| l.contains(&id[..8])).unwrap();
    assert!(row.ends_with("append-only"), "{text}");
    // Local time to the second, not the stored UTC with nanoseconds.
    assert!(!row.contains('T') && !row.contains('Z'), "{row}");
    let removed = cli.json(&["key", "remove", &id[..8]]);
    assert_eq!(removed["removed"], id.as_str());
}

#[test]
fn version_completions_and_man_pages_come_from_the_binary() {
    let out = Command::new(repo_bin()).arg("version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("repo {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("repository format 1"), "{text}");
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef repo"),
        ("fish", "complete -c repo"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = Command::new(repo_bin())
            .args(["generate", "--completions", shell])
            .output()
            .unwrap();
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && script.contains(marker),
            "{shell}: {script:.200}"
        );
        assert!(
            script.contains("restore") && script.contains("overwrite"),
            "{shell}"
        );
    }
    // bash accepts its script.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("repo.bash");
    let out = Command::new(repo_bin())
        .args(["generate", "--completions", "bash"])
        .output()
        .unwrap();
    fs::write(&script, &out.stdout).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let man = dir.path().join("man");
    let out = Command::new(repo_bin())
        .args(["generate", "--man", man.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for page in [
        "repo.1",
        "repo-backup.1",
        "repo-key-add.1",
        "repo-restore.1",
    ] {
        let text = fs::read_to_string(man.join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
    assert!(!man.join("repo-help.1").exists());
    let out = Command::new(repo_bin()).arg("generate").output().unwrap();
    assert_eq!(code(&out), 2);
}

#[test]
fn help_lists_the_commands_own_flags_before_the_global_ones() {
    let out = Command::new(repo_bin())
        .args(["forget", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let own = help.find("--keep-last").unwrap();
    let global = help.find("Global options:").unwrap();
    assert!(own < global, "{help}");
    assert!(help[global..].contains("--repo") && !help[..global].contains("--repo"));
}

/// `repo` with the repository but no password option.
fn bare(cli: &Cli) -> Command {
    let mut c = Command::new(repo_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KAIRN_") {
            c.env_remove(k);
        }
    }
    c.arg("-r").arg(&cli.repo);
    c
}

#[test]
fn a_password_command_opens_the_repository_and_its_failure_is_said() {
    let cli = Cli::init();
    let cmd = format!("cat {}", cli.password_file.display());
    let out = bare(&cli)
        .args(["--password-command", &cmd, "snapshots"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bare(&cli)
        .env("KAIRN_PASSWORD_COMMAND", "echo wrong")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(code(&out), 12, "a wrong password: {}", stderr(&out));
    let out = bare(&cli)
        .args(["--password-command", "exit 7", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("exit status: 7"), "{}", stderr(&out));
    // Both a file and a command: the typed one wins over the environment's, and of two typed
    // (a profile's, placed first, and the user's) the later.
    let out = cli.run(&["snapshots", "--password-command", "echo wrong"]);
    assert_eq!(code(&out), 12, "the later, typed command: {}", stderr(&out));
    let out = bare(&cli)
        .env("KAIRN_PASSWORD_FILE", "/nonexistent")
        .args(["--password-command", &cmd, "snapshots"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "typed over environment: {}",
        stderr(&out)
    );
}

#[test]
fn storage_options_come_from_a_file_or_the_environment() {
    let cli = Cli::init();
    // A local repository takes no storage option, so an unknown one proves it was read.
    let file = cli.dir.path().join("options");
    fs::write(
        &file,
        "# secrets stay off the command line\n\nbogus-key=1\n",
    )
    .unwrap();
    let out = cli.run(&["--option-file", file.to_str().unwrap(), "snapshots"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("bogus-key"), "{}", stderr(&out));
    let out = cli
        .cmd()
        .env("KAIRN_OPTION_OTHER_KEY", "1")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("other-key"), "{}", stderr(&out));
    fs::write(&file, "no equals sign\n").unwrap();
    let out = cli.run(&["--option-file", file.to_str().unwrap(), "snapshots"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

#[test]
fn a_profile_names_the_repository_and_command_defaults_and_typed_options_win() {
    let cli = Cli::init();
    let data = cli.dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), "x").unwrap();
    let config = cli.dir.path().join("config");
    fs::create_dir_all(&config).unwrap();
    fs::write(
        config.join("prod.toml"),
        format!(
            "[global]\nrepo = {:?}\npassword-file = {:?}\n\n[backup]\ntag = [\"nightly\"]\nhost = \"from-profile\"\n\n[snapshots]\ncompact = true\n",
            cli.repo.to_str().unwrap(),
            cli.password_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(repo_bin());
        c.env_remove("KAIRN_REPOSITORY")
            .env_remove("KAIRN_PASSWORD_FILE");
        c.env("KAIRN_CONFIG_DIR", &config)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["-P", "prod", "backup", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[
        "-P",
        "prod",
        "backup",
        "--host",
        "typed",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let snaps = cli.json(&["snapshots"]);
    let hosts: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["from-profile", "typed"]);
    assert!(
        snaps
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["tags"] == serde_json::json!(["nightly"]))
    );
    let out = run(&["--profile=prod", "snapshots"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ID"),
        "compact from the profile"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Paths"));
    // Mistakes in a profile name the file and the key.
    fs::write(config.join("bad.toml"), "[backup]\ncolour = \"red\"\n").unwrap();
    let out = run(&["-P", "bad", "backup", data.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("bad.toml") && stderr(&out).contains("colour"),
        "{}",
        stderr(&out)
    );
    let out = run(&["-P", "missing", "snapshots"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn stats_modes_count_the_chosen_snapshots() {
    let cli = Cli::init();
    let data = cli.dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let body = kairn_e2e::noise(7, 300_000);
    fs::write(data.join("one"), &body).unwrap();
    fs::write(data.join("copy-of-one"), &body).unwrap();
    fs::write(data.join("two"), kairn_e2e::noise(8, 100_000)).unwrap();
    cli.ok(&["backup", data.to_str().unwrap(), "--tag", "first"]);
    cli.ok(&["backup", data.to_str().unwrap()]);
    let restore = cli.json(&["stats", "--mode", "restore-size"]);
    assert_eq!(restore["snapshots"], 2);
    assert_eq!(restore["total_file_count"], 6);
    assert_eq!(restore["total_size"], 2 * 700_000);
    let by_contents = cli.json(&["stats", "--mode", "files-by-contents"]);
    assert_eq!(by_contents["total_file_count"], 2);
    assert_eq!(by_contents["total_size"], 400_000);
    let raw = cli.json(&["stats", "latest", "--mode", "raw-data"]);
    assert_eq!(raw["snapshots"], 1);
    assert!(raw["total_size"].as_u64().unwrap() >= 400_000, "{raw}");
    assert!(raw["total_blob_count"].as_u64().unwrap() >= 3, "{raw}");
    let tagged = cli.json(&["stats", "--tag", "first"]);
    assert_eq!(
        (tagged["mode"].as_str(), tagged["snapshots"].as_u64()),
        (Some("restore-size"), Some(1))
    );
    let text = cli.ok(&["stats", "latest", "--mode", "raw-data"]);
    assert!(
        text.contains("raw-data mode") && text.contains("compression"),
        "{text}"
    );
}

#[test]
fn upload_and_download_limits_work_on_a_local_repository() {
    let cli = Cli::init();
    let data = cli.dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), kairn_e2e::noise(3, 200_000)).unwrap();
    cli.ok(&["--limit-upload", "512", "backup", data.to_str().unwrap()]);
    let out = cli.dir.path().join("out");
    cli.ok(&[
        "--limit-download",
        "2M",
        "restore",
        "latest",
        "-t",
        out.to_str().unwrap(),
    ]);
    let restored = out.join(data.strip_prefix("/").unwrap()).join("f");
    assert_eq!(fs::read(restored).unwrap(), kairn_e2e::noise(3, 200_000));
    let bad = cli.run(&["--limit-upload", "0", "snapshots"]);
    assert_eq!(code(&bad), 2);
}
