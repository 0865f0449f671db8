//! `repo find`, `repo tag` and `repo rewrite` on the built binary: what find reports (by name,
//! path, time, blob, tree and pack), that tag and rewrite replace snapshots under new ids with
//! `original` kept, that rewritten data is gone after forget and prune while everything else
//! restores byte for byte, and that dry runs and append-only mode write or delete nothing.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kairn_e2e::{Cli, check_clean, code, contents, noise, restored, snapshot_ids, walk_files};
use serde_json::Value;

/// data/{a.txt, sub/b.log, sub/deep/c.log (mtime 2020), other/B.LOG}, each with its own content.
fn tree(root: &Path) -> PathBuf {
    let data = root.join("data");
    for (path, seed) in [
        ("a.txt", 1),
        ("sub/b.log", 2),
        ("sub/deep/c.log", 3),
        ("other/B.LOG", 4),
    ] {
        let p = data.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, noise(seed, 3000 + seed as usize)).unwrap();
    }
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_880_000); // 2020-01-01
    fs::File::options()
        .write(true)
        .open(data.join("sub/deep/c.log"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    data
}

/// The hit paths of a `find --json` document, per snapshot id.
fn hits(doc: &Value) -> Vec<(String, BTreeSet<String>)> {
    doc.as_array()
        .expect("an array")
        .iter()
        .map(|s| {
            let paths = s["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["path"].as_str().unwrap().to_string())
                .collect();
            (s["snapshot"].as_str().unwrap().to_string(), paths)
        })
        .collect()
}

fn set(data: &Path, rel: &[&str]) -> BTreeSet<String> {
    rel.iter()
        .map(|r| format!("{}/{r}", data.display()))
        .collect()
}

/// Every file of the repository directory, to show that a command wrote and deleted nothing.
fn repo_files(cli: &Cli) -> Vec<PathBuf> {
    walk_files(&cli.repo)
}

#[test]
fn find_by_name_path_case_and_time() {
    let cli = Cli::init();
    let data = tree(cli.dir.path());
    let first = cli.backup(&data);
    fs::write(data.join("sub/new.log"), b"new").unwrap();
    cli.ok(&["backup", data.to_str().unwrap(), "--tag", "second"]);
    let second = snapshot_ids(&cli).pop().unwrap();

    let by_name = hits(&cli.json(&["find", "*.log"]));
    assert_eq!(
        by_name,
        vec![
            (first.clone(), set(&data, &["sub/b.log", "sub/deep/c.log"])),
            (
                second.clone(),
                set(&data, &["sub/b.log", "sub/deep/c.log", "sub/new.log"])
            ),
        ]
    );
    let doc = cli.json(&["find", "c.log"]);
    let hit = &doc[0]["hits"][0];
    assert_eq!(hit["type"], "file");
    assert_eq!(hit["size"], 3003);
    assert_eq!(hit["mtime"], "2020-01-01T12:00:00Z");
    assert_eq!(doc[0]["schema_version"], 1);

    // Text: grouped per snapshot as restic prints it.
    let text = cli.ok(&["find", "b.log"]);
    assert!(
        text.contains(&format!(
            "Found matching entries in snapshot {} from",
            &first[..8]
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}/sub/b.log  3002  ", data.display())),
        "{text}"
    );

    // Case: exact by default, folded with -i.
    let exact = hits(&cli.json(&["find", "--snapshot", &first, "*.LOG"]));
    assert_eq!(exact, vec![(first.clone(), set(&data, &["other/B.LOG"]))]);
    let folded = hits(&cli.json(&["find", "-i", "--snapshot", &first, "*.log"]));
    assert_eq!(
        folded[0].1,
        set(&data, &["other/B.LOG", "sub/b.log", "sub/deep/c.log"])
    );

    // Path patterns: the last components, or the whole path from `/`; directories too.
    let suffix = hits(&cli.json(&["find", "-s", &first, "sub/*.log"]));
    assert_eq!(suffix[0].1, set(&data, &["sub/b.log"]));
    let whole = format!("{}/**/deep", data.display());
    let dir = cli.json(&["find", "-s", &first, &whole]);
    assert_eq!(hits(&dir)[0].1, set(&data, &["sub/deep"]));
    assert_eq!(dir[0]["hits"][0]["type"], "dir");
    assert!(hits(&cli.json(&["find", "-s", &first, "/sub/*.log"])).is_empty());

    // Modification times: c.log is from 2020, the rest from now.
    let old = hits(&cli.json(&["find", "-s", &first, "--newest", "2021-01-01", "*"]));
    assert_eq!(old[0].1, set(&data, &["sub/deep/c.log"]));
    let recent = hits(&cli.json(&[
        "find",
        "-s",
        &first,
        "--oldest",
        "2020-06-01 00:00:00",
        "*.log",
    ]));
    assert_eq!(recent[0].1, set(&data, &["sub/b.log"]));
    let day = hits(&cli.json(&[
        "find",
        "-s",
        &first,
        "--oldest",
        "2020-01-01T11:59:59Z",
        "--newest",
        "2020-01-01T12:00:00Z",
        "*.log",
    ]));
    assert_eq!(day[0].1, set(&data, &["sub/deep/c.log"]));

    // Snapshot filters and ids.
    let tagged = hits(&cli.json(&["find", "--tag", "second", "new.log"]));
    assert_eq!(tagged, vec![(second.clone(), set(&data, &["sub/new.log"]))]);
    assert!(hits(&cli.json(&["find", "-s", &first[..8], "new.log"])).is_empty());
    assert_eq!(cli.ok(&["find", "no-such-name"]), "");

    // Usage mistakes.
    for bad in [
        vec!["find"],
        vec!["find", "--newest", "yesterday", "*"],
        vec!["find", "a["],
        vec![
            "find",
            "--oldest",
            "2026-01-02",
            "--newest",
            "2026-01-01",
            "*",
        ],
        vec!["find", "--blob", "not-hex"],
    ] {
        assert_eq!(code(&cli.run(&bad)), 2, "{bad:?}");
    }
    assert_eq!(code(&cli.run(&["find", "--blob", "0000000000"])), 1);
}

#[test]
fn find_by_blob_tree_and_pack() {
    let cli = Cli::init();
    let data = tree(cli.dir.path());
    let id = cli.backup(&data);
    let listing = cli.ok(&["--json", "ls", &id]);
    let entry = |suffix: &str| -> Value {
        listing
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["path"].as_str().unwrap().ends_with(suffix))
            .unwrap()
    };
    let blob = entry("/sub/b.log")["kind"]["content"][0]["blob"]
        .as_str()
        .unwrap()
        .to_string();
    let subtree = entry("/sub/deep")["kind"]["subtree"]
        .as_str()
        .unwrap()
        .to_string();

    let by_blob = cli.json(&["find", "--blob", &blob[..12]]);
    assert_eq!(hits(&by_blob)[0].1, set(&data, &["sub/b.log"]));
    assert_eq!(by_blob[0]["hits"][0]["blobs"][0], blob.as_str());
    let by_tree = hits(&cli.json(&["find", "--tree", &subtree]));
    assert_eq!(by_tree[0].1, set(&data, &["sub/deep"]));
    // A tree blob given as --blob is the directory too; a data blob is no tree.
    assert_eq!(
        hits(&cli.json(&["find", "--blob", &subtree]))[0].1,
        set(&data, &["sub/deep"])
    );
    assert_eq!(code(&cli.run(&["find", "--tree", &blob])), 1);
    // With a pattern as well, both must hold.
    assert!(hits(&cli.json(&["find", "--blob", &blob, "*.txt"])).is_empty());

    // Every pack: the data packs name the files whose blobs they hold, and b.log is in one.
    let mut files_seen = BTreeSet::new();
    for pack in cli.files("data") {
        let name = pack.file_name().unwrap().to_str().unwrap().to_string();
        for (_, paths) in hits(&cli.json(&["find", "--pack", &name[..16]])) {
            files_seen.extend(paths);
        }
    }
    let all_files = set(
        &data,
        &["a.txt", "sub/b.log", "sub/deep/c.log", "other/B.LOG"],
    );
    assert!(
        all_files.is_subset(&files_seen),
        "{files_seen:?} lacks some of {all_files:?}"
    );
    assert_eq!(code(&cli.run(&["find", "--pack", "00000000000000"])), 1);
}

fn snapshot(cli: &Cli, id: &str) -> Value {
    cli.json(&["cat", "snapshot", id])
}

#[test]
fn tag_replaces_changed_snapshots_and_keeps_original() {
    let cli = Cli::init();
    let data = tree(cli.dir.path());
    let first = cli.backup(&data);
    let second = cli.backup(&data);
    let tree_before = snapshot(&cli, &first)["tree"].clone();

    // A dry run and an append-only tag change no file.
    let before = repo_files(&cli);
    let dry = cli.json(&["tag", "--add", "x", "--dry-run", &first]);
    assert_eq!(dry["tagged"][0]["old"], first.as_str());
    assert!(dry["tagged"][0]["new"].is_null());
    let refused = cli.run(&["--append-only", "tag", "--add", "x", &first]);
    assert_eq!(code(&refused), 18);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("append-only"));
    assert_eq!(repo_files(&cli), before);

    let out = cli.ok(&["tag", "--add", "x", "--add", "y", &first[..8]]);
    assert!(out.contains("tagged 1 snapshot(s)"), "{out}");
    let ids = snapshot_ids(&cli);
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&first), "the old snapshot is gone");
    let tagged = ids.iter().find(|i| **i != second).unwrap().clone();
    let snap = snapshot(&cli, &tagged);
    assert_eq!(snap["tags"], serde_json::json!(["x", "y"]));
    assert_eq!(snap["original"], first.as_str());
    assert_eq!(snap["tree"], tree_before);
    assert!(out.contains(&format!("{} -> {}", &first[..8], &tagged[..8])));

    // Tagged again: a new id, the first original kept.
    let again = cli.json(&["tag", "--remove", "y", &tagged]);
    let third = again["tagged"][0]["new"].as_str().unwrap().to_string();
    assert_eq!(snapshot(&cli, &third)["original"], first.as_str());
    assert_eq!(snapshot(&cli, &third)["tags"], serde_json::json!(["x"]));

    // Nothing to change: left alone.
    let files = repo_files(&cli);
    let same = cli.json(&["tag", "--add", "x", &third]);
    assert_eq!(same["tagged"].as_array().unwrap().len(), 0);
    assert_eq!(same["unchanged"][0], third.as_str());
    assert_eq!(repo_files(&cli), files);

    // No ids: every snapshot passing the filters.
    let all = cli.json(&["tag", "--tag", "x", "--set", "kept"]);
    assert_eq!(all["tagged"].as_array().unwrap().len(), 1);
    let everything = cli.json(&["tag", "--add", "z"]);
    assert_eq!(everything["tagged"].as_array().unwrap().len(), 2);
    let tags: Vec<Value> = cli
        .json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tags"].clone())
        .collect();
    assert!(tags.contains(&serde_json::json!(["kept", "z"])), "{tags:?}");
    assert!(tags.contains(&serde_json::json!(["z"])), "{tags:?}");
    let cleared = cli.json(&["tag", "--set", "", "--tag", "kept"]);
    let last = cleared["tagged"][0]["new"].as_str().unwrap().to_string();
    assert_eq!(snapshot(&cli, &last)["tags"], serde_json::json!([]));
    assert_eq!(restored(&cli, &last, &data), contents(&data));
    check_clean(&cli);

    for bad in [
        vec!["tag", "--add", "a,b"],
        vec!["tag", "--add", ""],
        vec!["tag"],
        vec!["tag", "--set", "a", "--add", "b"],
    ] {
        assert_eq!(code(&cli.run(&bad)), 2, "{bad:?}");
    }
}

#[test]
fn rewrite_removes_entries_and_prune_frees_their_data() {
    let cli = Cli::init();
    let data = tree(cli.dir.path());
    let secret = noise(99, 3 << 20);
    fs::write(data.join("sub/secret.key"), &secret).unwrap();
    fs::create_dir_all(data.join("cache/x")).unwrap();
    fs::write(data.join("cache/x/blob"), noise(98, 5000)).unwrap();
    let old = cli.backup(&data);
    let old_snap = snapshot(&cli, &old);

    // Dry run: says what, writes nothing.
    let before = repo_files(&cli);
    let cache = format!("{}/cache", data.display());
    let dry = cli.ok(&["rewrite", "-n", "--exclude", "*.key", "--exclude", &cache]);
    assert!(
        dry.contains(&format!("  - {}/sub/secret.key  (file", data.display())),
        "{dry}"
    );
    assert!(dry.contains(&format!("  - {cache}/  (dir")), "{dry}");
    assert_eq!(repo_files(&cli), before);
    // Nothing matching: no changes.
    let none = cli.ok(&["rewrite", "--exclude", "*.nothing"]);
    assert!(
        none.contains(&format!("snapshot {}: no changes", &old[..8])),
        "{none}"
    );
    assert_eq!(repo_files(&cli), before);

    // Append-only: --forget refused, a rewrite that only adds allowed.
    assert_eq!(
        code(&cli.run(&["--append-only", "rewrite", "--forget", "--exclude", "*.key"])),
        18
    );
    assert_eq!(repo_files(&cli), before);
    let report = cli.json(&[
        "rewrite",
        "--exclude",
        "*.key",
        "--iexclude",
        &cache.to_uppercase(),
        &old,
    ]);
    let new = report["rewritten"][0]["new"].as_str().unwrap().to_string();
    assert_eq!(report["rewritten"][0]["counts"]["files"], 2);
    assert_eq!(report["rewritten"][0]["counts"]["dirs"], 2);
    let removed_bytes = (3 << 20) + 5000;
    assert_eq!(report["rewritten"][0]["counts"]["bytes"], removed_bytes);
    let mut ids = snapshot_ids(&cli);
    ids.sort();
    let mut want = vec![old.clone(), new.clone()];
    want.sort();
    assert_eq!(ids, want, "without --forget both stay");
    check_clean(&cli);
    // The same rewrite again finds its snapshot there: no duplicate.
    let files = repo_files(&cli);
    let again = cli.json(&[
        "rewrite",
        "--exclude",
        "*.key",
        "--iexclude",
        &cache.to_uppercase(),
        &old,
    ]);
    assert_eq!(again["rewritten"][0]["new"], new.as_str());
    assert_eq!(again["rewritten"][0]["existing"], true);
    assert_eq!(repo_files(&cli), files);

    let new_snap = snapshot(&cli, &new);
    assert_eq!(new_snap["original"], old.as_str());
    assert_ne!(new_snap["tree"], old_snap["tree"]);
    assert_eq!(
        new_snap["summary"]["total_bytes"].as_u64().unwrap(),
        old_snap["summary"]["total_bytes"].as_u64().unwrap() - removed_bytes
    );
    assert_eq!(new_snap["time"], old_snap["time"]);
    assert_eq!(new_snap["tags"], old_snap["tags"]);

    // Unchanged subtrees keep their ids.
    let subtree = |id: &str, dir: &str| -> Value {
        cli.ok(&["--json", "ls", id])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["path"].as_str().unwrap() == format!("{}/{dir}", data.display()))
            .map(|v| v["kind"]["subtree"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(subtree(&new, "other"), subtree(&old, "other"));
    assert_eq!(subtree(&new, "sub/deep"), subtree(&old, "sub/deep"));
    assert_ne!(subtree(&new, "sub"), subtree(&old, "sub"));
    assert_eq!(subtree(&new, "cache"), Value::Null);

    // The new snapshot restores everything else byte for byte, and lacks what was removed.
    let mut expected = contents(&data);
    expected.remove(Path::new("sub/secret.key"));
    expected.remove(Path::new("cache/x/blob"));
    assert_eq!(restored(&cli, &new, &data), expected);
    let secret_blob = cli
        .ok(&[
            "--json",
            "ls",
            &format!("{old}:{}/sub/secret.key", data.display()),
        ])
        .lines()
        .next()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["kind"]["content"][0]["blob"].clone())
        .unwrap();
    let users = hits(&cli.json(&["find", "--blob", secret_blob.as_str().unwrap()]));
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].0, old);

    // Forget the old one and prune: the secret's data goes.
    let stored_before = cli.json(&["stats"])["pack_bytes"].as_u64().unwrap();
    cli.ok(&["forget", &old]);
    cli.ok(&["prune", "--max-unused", "0", "--wait"]);
    let stored_after = cli.json(&["stats"])["pack_bytes"].as_u64().unwrap();
    assert!(
        stored_before - stored_after >= secret.len() as u64,
        "{stored_before} -> {stored_after}: the secret's {} bytes should be gone",
        secret.len()
    );
    assert_eq!(
        code(&cli.run(&["find", "--blob", secret_blob.as_str().unwrap()])),
        1,
        "no index names the secret's blob"
    );
    check_clean(&cli);
    assert_eq!(restored(&cli, &new, &data), expected);
}

#[test]
fn rewrite_forget_replaces_the_snapshot() {
    let cli = Cli::init();
    let data = tree(cli.dir.path());
    let first = cli.backup(&data);
    fs::write(data.join("drop.me"), b"x").unwrap();
    let second = cli.backup(&data);

    let out = cli.ok(&[
        "rewrite",
        "--forget",
        "--exclude",
        "drop.me",
        "--exclude",
        "c.log",
    ]);
    let ids = snapshot_ids(&cli);
    assert_eq!(ids.len(), 2, "{out}");
    assert!(!ids.contains(&first) && !ids.contains(&second), "{out}");
    assert!(out.contains(&format!("{} removed", &second[..8])), "{out}");
    for id in &ids {
        let snap = snapshot(&cli, id);
        assert!([first.as_str(), second.as_str()].contains(&snap["original"].as_str().unwrap()));
        assert!(hits(&cli.json(&["find", "-s", id, "drop.me", "c.log"])).is_empty());
        assert_eq!(hits(&cli.json(&["find", "-s", id, "b.log"])).len(), 1);
    }
    check_clean(&cli);

    // Exclude file, and a rewrite that would leave no file is refused, writing nothing.
    let excl = cli.dir.path().join("excludes");
    fs::write(&excl, "# everything\n*\n").unwrap();
    let before = repo_files(&cli);
    let out = cli.run(&["rewrite", "--exclude-file", excl.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("forget it instead"));
    assert_eq!(repo_files(&cli), before);
    assert_eq!(code(&cli.run(&["rewrite"])), 2);
    assert_eq!(code(&cli.run(&["rewrite", "--exclude", "a["])), 2);
}

#[test]
fn object_lock_keeps_tags_and_the_rewritten_original() {
    let cli = Cli::init_with(&["--object-lock-days", "1"]);
    let data = tree(cli.dir.path());
    let id = cli.backup(&data);

    // A locked snapshot cannot be removed, so its tags stay as they are and nothing is written.
    let before = repo_files(&cli);
    let report = cli.json(&["tag", "--add", "x", &id]);
    assert_eq!(report["tagged"].as_array().unwrap().len(), 0);
    assert_eq!(report["locked"][0][0], id.as_str());
    assert!(report["locked"][0][1].as_i64().unwrap() > 0);
    assert_eq!(repo_files(&cli), before);
    let text = cli.ok(&["tag", "--add", "x", &id]);
    assert!(text.contains("Object Lock holds it until"), "{text}");

    // rewrite --forget writes the new snapshot and keeps the locked one, saying until when.
    let out = cli.json(&["rewrite", "--forget", "--exclude", "a.txt"]);
    let done = &out["rewritten"][0];
    assert_eq!(done["old"], id.as_str());
    assert!(done["old_locked_until"].as_i64().unwrap() > 0);
    let new = done["new"].as_str().unwrap();
    let mut ids = snapshot_ids(&cli);
    ids.sort();
    let mut want = vec![id.clone(), new.to_string()];
    want.sort();
    assert_eq!(ids, want);
    check_clean(&cli);
}
