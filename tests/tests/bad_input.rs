//! Every kind of bad input gets a clear message and its documented exit code, never a panic and
//! never a partial result presented as success.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use kairn_e2e::{Cli, code, noise, walk_files};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_no_panic(out: &std::process::Output) {
    assert!(!stderr(out).contains("panicked"), "panic: {}", stderr(out));
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, keep: usize) {
    let bytes = fs::read(path).unwrap();
    fs::write(path, &bytes[..keep.min(bytes.len())]).unwrap();
}

fn repo_with_backup() -> (Cli, PathBuf) {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"alpha").unwrap();
    cli.backup(&src);
    (cli, src)
}

#[test]
fn wrong_password_exits_12() {
    let (cli, _) = repo_with_backup();
    fs::write(&cli.password_file, "not the password").unwrap();
    let out = cli.run(&["snapshots"]);
    assert_eq!(code(&out), 12, "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong password"));
}

#[test]
fn a_directory_that_is_not_a_repository_exits_10() {
    let cli = Cli::uninitialised();
    fs::create_dir_all(&cli.repo).unwrap();
    fs::write(cli.repo.join("unrelated"), b"x").unwrap();
    let out = cli.run(&["snapshots"]);
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    assert!(stderr(&out).contains("no kairn repository"));
    let missing = std::process::Command::new(kairn_e2e::repo_bin())
        .args(["-r", "/nonexistent/kairn/repo", "--password-file"])
        .arg(&cli.password_file)
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(code(&missing), 10);
}

#[test]
fn init_refuses_an_existing_repository() {
    let (cli, _) = repo_with_backup();
    let mut args = vec!["init"];
    args.extend_from_slice(&kairn_e2e::CHEAP_KDF);
    let out = cli.run(&args);
    assert_eq!(code(&out), 11, "{}", stderr(&out));
    assert_eq!(cli.files("snapshots").len(), 1, "nothing was overwritten");
}

#[test]
fn a_newer_format_version_exits_13() {
    let (cli, _) = repo_with_backup();
    // A newer config.
    let config = cli.repo.join("config");
    let original = fs::read(&config).unwrap();
    let mut newer = original.clone();
    newer[4] = 2;
    fs::write(&config, &newer).unwrap();
    let out = cli.run(&["snapshots"]);
    assert_eq!(code(&out), 13, "{}", stderr(&out));
    assert!(stderr(&out).contains("upgrade kairn"));
    fs::write(&config, &original).unwrap();

    // A newer key file, correctly named by its hash (as a newer kairn would write it).
    let key = cli.files("keys").pop().unwrap();
    let text = fs::read_to_string(&key)
        .unwrap()
        .replace("\"version\": 1", "\"version\": 2");
    let name = blake3::hash(text.as_bytes()).to_hex().to_string();
    fs::remove_file(&key).unwrap();
    fs::write(cli.repo.join("keys").join(name), text).unwrap();
    let out = cli.run(&["snapshots"]);
    assert_eq!(code(&out), 13, "{}", stderr(&out));
}

#[test]
fn damaged_config_key_index_and_snapshot_exit_14() {
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 2] = [
        ("flipped", |p| flip_byte(p, 40)),
        ("truncated", |p| truncate(p, 20)),
    ];
    for (what, damage) in damages {
        for target in ["config", "keys", "index", "snapshots"] {
            let (cli, _) = repo_with_backup();
            let file = if target == "config" {
                cli.repo.join("config")
            } else {
                cli.files(target).pop().unwrap()
            };
            damage(&file);
            let out = cli.run(&["ls", "latest"]);
            assert_no_panic(&out);
            assert_eq!(code(&out), 14, "{what} {target}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("damaged")
                    || stderr(&out).contains("corrupt")
                    || stderr(&out).contains("not a kairn"),
                "{what} {target}: unclear message {}",
                stderr(&out)
            );
        }
    }
}

/// Builds a repository whose data spans several packs, and returns, for each data pack, the
/// files that need it.
fn multi_pack_repo() -> (Cli, PathBuf, BTreeMap<PathBuf, BTreeSet<String>>) {
    let cli = Cli::init_with(&[&["--pack-size-mib", "1"][..], &kairn_e2e::SMALL_CHUNKS].concat());
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..8u64 {
        fs::write(src.join(format!("file{i}")), noise(i + 100, 600_000)).unwrap();
    }
    fs::write(src.join("tiny"), b"tiny").unwrap();
    cli.backup(&src);
    let mut blob_files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let listing = cli.ok(&["--json", "ls", "latest"]);
    for line in listing.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(content) = v["kind"]["content"].as_array() {
            for e in content {
                if let Some(b) = e["blob"].as_str() {
                    blob_files
                        .entry(b.to_string())
                        .or_default()
                        .insert(v["name"].as_str().unwrap().to_string());
                }
            }
        }
    }
    let mut by_pack = BTreeMap::new();
    for pack in cli.files("data") {
        let name = pack.file_name().unwrap().to_str().unwrap().to_string();
        let header = cli.json(&["cat", "pack", &name]);
        let mut files = BTreeSet::new();
        for b in header["blobs"].as_array().unwrap() {
            if let Some(f) = blob_files.get(b["id"].as_str().unwrap()) {
                files.extend(f.iter().cloned());
            }
        }
        if !files.is_empty() {
            by_pack.insert(pack, files);
        }
    }
    assert!(by_pack.len() >= 3, "the data should span several packs");
    (cli, src, by_pack)
}

fn restore_and_check(cli: &Cli, src: &Path, lost: &BTreeSet<String>, label: &str) {
    let target = cli.dir.path().join(format!("out-{label}"));
    let spec = format!("latest:{}", src.display());
    let out = cli.run(&["restore", &spec, "--target", target.to_str().unwrap()]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 4, "{label}: {}", stderr(&out));
    let err = stderr(&out);
    for name in lost {
        assert!(
            err.contains(&format!("error: {name}:")),
            "{label}: {name} not named in {err}"
        );
        assert!(
            !target.join(name).exists(),
            "{label}: damaged {name} must not be left behind"
        );
    }
    for entry in fs::read_dir(src).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        if !lost.contains(&name) {
            assert_eq!(
                fs::read(entry.path()).unwrap(),
                fs::read(target.join(&name)).unwrap(),
                "{label}: {name}"
            );
        }
    }
}

#[test]
fn a_missing_pack_names_the_files_it_held_and_restores_the_rest() {
    let (cli, src, by_pack) = multi_pack_repo();
    let (pack, lost) = by_pack.iter().next().unwrap();
    fs::remove_file(pack).unwrap();
    restore_and_check(&cli, &src, lost, "missing");
}

#[test]
fn a_damaged_or_truncated_pack_names_the_files_it_held_and_restores_the_rest() {
    let (cli, src, by_pack) = multi_pack_repo();
    let (pack, lost) = by_pack.iter().next().unwrap();
    let len = fs::metadata(pack).unwrap().len() as usize;
    flip_byte(pack, len / 3);
    // Only the blob holding the flipped byte fails; find which files that is by restoring.
    let target = cli.dir.path().join("out-flip");
    let out = cli.run(&[
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let named: Vec<&String> = lost
        .iter()
        .filter(|n| stderr(&out).contains(&format!("error: {n}:")))
        .collect();
    assert_eq!(
        named.len(),
        1,
        "exactly the file with the flipped blob is named: {}",
        stderr(&out)
    );
    for entry in fs::read_dir(&src).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        if !named.contains(&&name) {
            assert_eq!(
                fs::read(entry.path()).unwrap(),
                fs::read(target.join(&name)).unwrap(),
                "{name}"
            );
        }
    }

    let (cli, src, by_pack) = multi_pack_repo();
    let (pack, _) = by_pack.iter().next().unwrap();
    let len = fs::metadata(pack).unwrap().len() as usize;
    truncate(pack, len / 2);
    let out = cli.run(&[
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        cli.dir.path().join("t").to_str().unwrap(),
    ]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
}

#[test]
fn a_missing_tree_pack_is_reported_not_silently_skipped() {
    let (cli, src) = repo_with_backup();
    let index = cli.files("index");
    assert_eq!(index.len(), 1);
    // Packs holding trees are the small ones here; remove every pack and expect exit 4 or 14.
    for pack in walk_files(&cli.repo.join("data")) {
        fs::remove_file(pack).unwrap();
    }
    let out = cli.run(&[
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        cli.dir.path().join("t").to_str().unwrap(),
    ]);
    assert_no_panic(&out);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
}

#[test]
fn check_finds_missing_truncated_and_flipped_packs() {
    let (cli, _src, by_pack) = multi_pack_repo();
    let out = cli.ok(&["check", "--read-data"]);
    assert!(out.contains("no problems found"), "{out}");
    let packs: Vec<&PathBuf> = by_pack.keys().collect();

    // A flipped byte: only reading the data finds it.
    let len = fs::metadata(packs[0]).unwrap().len() as usize;
    flip_byte(packs[0], len / 2);
    assert!(
        cli.run(&["check"]).status.success(),
        "the structure is still intact"
    );
    let out = cli.run(&["check", "--read-data"]);
    assert_eq!(code(&out), 4);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is damaged"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A truncated and a missing pack: the structure check finds both and names the snapshot.
    truncate(packs[1], 100);
    fs::remove_file(packs[2]).unwrap();
    let out = cli.run(&["check"]);
    assert_eq!(code(&out), 4);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("is missing") && text.contains("bytes, the index says"),
        "{text}"
    );
    assert!(
        text.contains("(snapshots "),
        "affected snapshots are named: {text}"
    );
}

#[test]
fn an_empty_password_file_is_a_usage_error_not_a_wrong_password() {
    let (cli, _) = repo_with_backup();
    for empty in ["", "\n", "\r\n"] {
        fs::write(&cli.password_file, empty).unwrap();
        let out = cli.run(&["snapshots"]);
        assert_no_panic(&out);
        assert_eq!(code(&out), 2, "{empty:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("wrong password"), "{}", stderr(&out));
    }
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// With another repository's config and key (same password), no pack authenticates: repair
/// must not replace the good index with an empty one.
#[test]
fn repair_index_with_another_repositorys_keys_refuses_and_keeps_the_index() {
    let (cli, src) = repo_with_backup();
    let other = Cli::init();
    fs::copy(other.repo.join("config"), cli.repo.join("config")).unwrap();
    for name in names_in(&cli.repo.join("keys")) {
        fs::remove_file(cli.repo.join("keys").join(name)).unwrap();
    }
    for name in names_in(&other.repo.join("keys")) {
        fs::copy(
            other.repo.join("keys").join(&name),
            cli.repo.join("keys").join(&name),
        )
        .unwrap();
    }
    let index_before = names_in(&cli.repo.join("index"));
    assert!(!index_before.is_empty());
    let out = cli.run(&["repair", "index"]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 14, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no index file or snapshot"),
        "{}",
        stderr(&out)
    );
    assert_eq!(names_in(&cli.repo.join("index")), index_before);
    let _ = src;
}

#[test]
fn an_os_error_is_said_once() {
    let (cli, _) = repo_with_backup();
    let file = cli.dir.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let target = file.join("sub");
    let out = cli.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = stderr(&out);
    assert_eq!(text.matches("os error").count(), 1, "{text}");
}

#[test]
fn a_symlinked_restore_target_is_named_as_a_link() {
    let (cli, _) = repo_with_backup();
    let real = cli.dir.path().join("real");
    fs::create_dir_all(&real).unwrap();
    let link = cli.dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = cli.run(&["restore", "latest", "--target", link.to_str().unwrap()]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert!(
        fs::read_dir(&real).unwrap().next().is_none(),
        "nothing written through it"
    );
}

#[test]
fn init_on_a_file_says_so_without_storage_internals() {
    let cli = Cli::uninitialised();
    fs::create_dir_all(cli.repo.parent().unwrap()).unwrap();
    fs::write(&cli.repo, b"not a repository").unwrap();
    let out = cli.run(&["init"]);
    assert_no_panic(&out);
    assert_ne!(code(&out), 0);
    let text = stderr(&out);
    assert!(text.contains("is a file, not a directory"), "{text}");
    assert!(
        !text.contains("Builder") && !text.contains("atomic_write_dir"),
        "{text}"
    );
}

#[test]
fn a_bandwidth_limit_on_a_local_repository_is_refused_not_ignored() {
    let (cli, src) = repo_with_backup();
    let out = cli.run(&["--limit-bandwidth", "1M", "backup", src.to_str().unwrap()]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--limit-bandwidth"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_pack_never_costs_the_file_a_restore_over_live_data_was_to_replace() {
    let (cli, src, by_pack) = multi_pack_repo();
    let (pack, lost) = by_pack.iter().next().unwrap();
    // The live tree: the first restore, then the user's own edits to the files the pack held.
    let target = cli.dir.path().join("live");
    let spec = format!("latest:{}", src.display());
    cli.ok(&["restore", &spec, "--target", target.to_str().unwrap()]);
    for name in lost {
        fs::write(target.join(name), format!("edited {name}")).unwrap();
    }
    fs::remove_file(pack).unwrap();
    let out = cli.run(&["restore", &spec, "--target", target.to_str().unwrap()]);
    assert_no_panic(&out);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    for name in lost {
        assert!(
            stderr(&out).contains(&format!("error: {name}:")),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("left as it was"), "{}", stderr(&out));
        assert_eq!(
            fs::read_to_string(target.join(name)).unwrap(),
            format!("edited {name}"),
            "the user's file must survive a restore that could not replace it"
        );
    }
}
