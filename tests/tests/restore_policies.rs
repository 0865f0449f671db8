//! `repo restore` over a target that already holds files: `--overwrite always|if-changed|
//! if-newer|never`, `--delete` (inside the restored part only, never through a symlink),
//! `--dry-run` (changes nothing, lists what a run would), and the warning for a pattern that
//! matches nothing because `SNAP:SUBPATH` makes patterns relative to SUBPATH.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use kairn_e2e::{Cli, Entry, scan};
use serde_json::Value;

/// The snapshot's mtime of every file in the source.
const T0: i64 = 1_600_000_000;

struct Setup {
    cli: Cli,
    /// The snapshot's `ID:SUBPATH` for the source's `data` directory.
    spec: String,
    /// `/…/src/data`, as the snapshot records it.
    data: PathBuf,
}

fn setup() -> Setup {
    let cli = Cli::init();
    let data = cli.dir.path().join("src/data");
    std::fs::create_dir_all(data.join("www")).unwrap();
    std::fs::create_dir_all(data.join("db")).unwrap();
    for (rel, content) in [
        ("www/index.html", "<h1>snapshot</h1>"),
        ("www/app.js", "snapshot();"),
        ("www/keep.txt", "kept"),
        ("db/rows", "1,2,3"),
    ] {
        let path = data.join(rel);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        filetime::set_file_mtime(&path, FileTime::from_unix_time(T0, 0)).unwrap();
    }
    let id = cli.backup(&data);
    let spec = format!("{id}:{}", data.display());
    Setup { cli, spec, data }
}

fn mtime(path: &Path) -> i64 {
    std::fs::symlink_metadata(path).unwrap().mtime()
}

fn atime(path: &Path) -> i64 {
    std::fs::metadata(path).unwrap().atime()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// A target holding a full restore, then edited: index.html changed and older than the
/// snapshot, app.js changed and newer, keep.txt the same content with another mode, db/rows
/// untouched but for an access time far in the future. Returns the target and the access
/// time the snapshot gives db/rows.
fn edited_target(s: &Setup, name: &str) -> (PathBuf, i64) {
    let t = s.cli.dir.path().join(name);
    s.cli
        .ok(&["restore", &s.spec, "--target", t.to_str().unwrap()]);
    let snapshot_atime = atime(&t.join("db/rows"));
    std::fs::write(t.join("www/index.html"), "edited index").unwrap();
    filetime::set_file_mtime(
        t.join("www/index.html"),
        FileTime::from_unix_time(T0 - 100, 0),
    )
    .unwrap();
    std::fs::write(t.join("www/app.js"), "edited app").unwrap();
    filetime::set_file_mtime(t.join("www/app.js"), FileTime::from_unix_time(T0 + 100, 0)).unwrap();
    std::fs::set_permissions(
        t.join("www/keep.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    filetime::set_file_times(
        t.join("db/rows"),
        FileTime::from_unix_time(4_102_444_800, 0), // 2100-01-01
        FileTime::from_unix_time(T0, 0),
    )
    .unwrap();
    (t, snapshot_atime)
}

fn restore_json(s: &Setup, target: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["restore", &s.spec, "--target", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    s.cli.json(&args)
}

#[test]
fn always_rewrites_what_differs_and_sets_every_file_s_metadata() {
    let s = setup();
    let (t, snapshot_atime) = edited_target(&s, "always");
    let v = restore_json(&s, &t, &["--overwrite", "always"]);
    assert_eq!(read(&t.join("www/index.html")), "<h1>snapshot</h1>");
    assert_eq!(read(&t.join("www/app.js")), "snapshot();");
    assert_eq!(mtime(&t.join("www/index.html")), T0);
    assert_eq!(mtime(&t.join("www/app.js")), T0);
    assert_eq!(mode(&t.join("www/keep.txt")), 0o644);
    assert_eq!(
        atime(&t.join("db/rows")),
        snapshot_atime,
        "metadata set again"
    );
    assert_eq!(
        (v["replaced"].as_u64(), v["skipped"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(v["unchanged"], 2);
    assert_eq!(v["overwrite"], "always");
}

#[test]
fn if_changed_is_the_default_and_leaves_a_file_that_is_already_right_untouched() {
    let s = setup();
    let (t, _) = edited_target(&s, "if-changed");
    let v = restore_json(&s, &t, &[]);
    assert_eq!(v["overwrite"], "if-changed");
    assert_eq!(read(&t.join("www/index.html")), "<h1>snapshot</h1>");
    assert_eq!(read(&t.join("www/app.js")), "snapshot();");
    assert_eq!(mtime(&t.join("www/app.js")), T0);
    // Same content, another mode: the metadata is set, the content not rewritten.
    assert_eq!(mode(&t.join("www/keep.txt")), 0o644);
    // Content and metadata right: not touched, so the access time stays as it was.
    assert_eq!(atime(&t.join("db/rows")), 4_102_444_800);
    assert_eq!(
        (v["replaced"].as_u64(), v["skipped"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(v["unchanged"], 2);
}

#[test]
fn if_newer_replaces_only_what_the_snapshot_has_newer() {
    let s = setup();
    let (t, _) = edited_target(&s, "if-newer");
    let v = restore_json(&s, &t, &["--overwrite", "if-newer"]);
    // The existing index.html is older than the snapshot's: replaced.
    assert_eq!(read(&t.join("www/index.html")), "<h1>snapshot</h1>");
    assert_eq!(mtime(&t.join("www/index.html")), T0);
    // app.js is newer, keep.txt and rows as old: left as they are.
    assert_eq!(read(&t.join("www/app.js")), "edited app");
    assert_eq!(mtime(&t.join("www/app.js")), T0 + 100);
    assert_eq!(mode(&t.join("www/keep.txt")), 0o600);
    assert_eq!(atime(&t.join("db/rows")), 4_102_444_800);
    assert_eq!(
        (v["replaced"].as_u64(), v["skipped"].as_u64()),
        (Some(1), Some(3))
    );
}

#[test]
fn never_leaves_every_existing_file_and_still_restores_what_is_missing() {
    let s = setup();
    let (t, _) = edited_target(&s, "never");
    std::fs::remove_file(t.join("db/rows")).unwrap();
    let out = s.cli.ok(&[
        "restore",
        &s.spec,
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "never",
    ]);
    assert!(
        out.contains("replaced 0, skipped 3 (--overwrite never), deleted 0"),
        "{out}"
    );
    assert_eq!(read(&t.join("www/index.html")), "edited index");
    assert_eq!(mtime(&t.join("www/index.html")), T0 - 100);
    assert_eq!(read(&t.join("www/app.js")), "edited app");
    assert_eq!(mode(&t.join("www/keep.txt")), 0o600);
    assert_eq!(
        read(&t.join("db/rows")),
        "1,2,3",
        "a missing file is restored"
    );
    assert_eq!(mtime(&t.join("db/rows")), T0);
}

/// A target with extra entries: inside the restored part, outside it, excluded, and a
/// symlink a tenant planted that points out of the target.
fn target_with_extras(s: &Setup, name: &str) -> (PathBuf, PathBuf) {
    let t = s.cli.dir.path().join(name);
    s.cli
        .ok(&["restore", &s.spec, "--target", t.to_str().unwrap()]);
    let outside = s.cli.dir.path().join(format!("{name}-outside"));
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "not yours").unwrap();
    std::fs::write(t.join("www/extra.txt"), "x").unwrap();
    std::fs::create_dir_all(t.join("www/sub/deeper")).unwrap();
    std::fs::write(t.join("www/sub/deeper/f"), "y").unwrap();
    std::fs::write(t.join("www/notes.keep"), "excluded").unwrap();
    std::os::unix::fs::symlink(&outside, t.join("www/escape")).unwrap();
    std::fs::write(t.join("db/extra"), "outside the include").unwrap();
    std::fs::write(t.join("stray"), "at the top").unwrap();
    (t, outside)
}

#[test]
fn delete_removes_extras_inside_the_restored_part_only_and_never_follows_a_link() {
    let s = setup();
    let (t, outside) = target_with_extras(&s, "delete");
    let v = restore_json(
        &s,
        &t,
        &["--include", "/www", "--exclude", "*.keep", "--delete"],
    );
    let deleted: Vec<&str> = v["deleted_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(deleted, ["www/escape", "www/extra.txt", "www/sub"]);
    assert_eq!(v["deleted"], 3);
    assert!(!t.join("www/extra.txt").exists());
    assert!(!t.join("www/sub").exists());
    assert!(std::fs::symlink_metadata(t.join("www/escape")).is_err());
    // What the link pointed to is untouched.
    assert_eq!(read(&outside.join("secret")), "not yours");
    // Excluded, and outside the include: kept.
    assert_eq!(read(&t.join("www/notes.keep")), "excluded");
    assert_eq!(read(&t.join("db/extra")), "outside the include");
    assert_eq!(read(&t.join("stray")), "at the top");
    assert_eq!(read(&t.join("www/index.html")), "<h1>snapshot</h1>");

    // A subpath restore: the target stands for www, so what it holds beyond www goes.
    let t2 = s.cli.dir.path().join("delete-subpath");
    std::fs::create_dir_all(&t2).unwrap();
    std::fs::write(t2.join("old.html"), "old").unwrap();
    let www = format!("{}/www", s.spec);
    let out = s.cli.ok(&[
        "restore",
        &www,
        "--target",
        t2.to_str().unwrap(),
        "--delete",
    ]);
    assert!(
        out.contains(&format!("deleted {}", t2.join("old.html").display())),
        "{out}"
    );
    assert!(!t2.join("old.html").exists());
    assert_eq!(read(&t2.join("app.js")), "snapshot();");
}

#[test]
fn a_full_directory_where_a_file_goes_is_replaced_only_with_delete() {
    let s = setup();
    let t = s.cli.dir.path().join("typechange");
    std::fs::create_dir_all(t.join("www/app.js/inside")).unwrap();
    std::fs::write(t.join("www/app.js/inside/f"), "z").unwrap();
    let out = s
        .cli
        .run(&["restore", &s.spec, "--target", t.to_str().unwrap()]);
    assert_eq!(kairn_e2e::code(&out), 4, "not restored: reported");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--delete replaces it"), "{stderr}");
    assert!(t.join("www/app.js/inside/f").exists());
    restore_json(&s, &t, &["--delete"]);
    assert_eq!(read(&t.join("www/app.js")), "snapshot();");
}

/// The target as a scan sees it, without access times (the scan itself reads the files).
fn state(t: &Path) -> BTreeMap<PathBuf, Entry> {
    scan(t)
        .into_iter()
        .map(|(p, mut e)| {
            e.atime = None;
            (p, e)
        })
        .collect()
}

#[test]
fn dry_run_changes_nothing_and_lists_what_a_run_would_do() {
    let s = setup();
    let (t, _) = target_with_extras(&s, "dry");
    std::fs::write(t.join("www/index.html"), "edited index").unwrap();
    std::fs::remove_file(t.join("db/rows")).unwrap();
    let before = state(&t);
    let keep_atime = atime(&t.join("www/keep.txt"));
    let v = restore_json(&s, &t, &["--dry-run", "--delete", "--exclude", "*.keep"]);
    assert_eq!(state(&t), before, "a dry run changed the target");
    assert_eq!(atime(&t.join("www/keep.txt")), keep_atime);
    assert_eq!(v["dry_run"], true);
    let changes: Vec<(String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = changes.clone();
    sorted.sort();
    let expected: Vec<(String, String)> = [
        ("delete", "db/extra"),
        ("delete", "stray"),
        ("delete", "www/escape"),
        ("delete", "www/extra.txt"),
        ("delete", "www/sub"),
        ("new", "db/rows"),
        ("replace", "www/index.html"),
    ]
    .iter()
    .map(|(a, p)| ((*a).to_string(), (*p).to_string()))
    .collect();
    assert_eq!(sorted, expected);
    assert_eq!(
        (v["new"].as_u64(), v["replaced"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (v["deleted"].as_u64(), v["unchanged"].as_u64()),
        (Some(5), Some(2))
    );

    // The run does exactly that.
    let run = restore_json(&s, &t, &["--delete", "--exclude", "*.keep"]);
    assert_eq!(run["deleted_paths"], v["deleted_paths"]);
    assert_eq!(run["replaced"], 1);
    assert_eq!(read(&t.join("db/rows")), "1,2,3");
    assert_eq!(read(&t.join("www/notes.keep")), "excluded");
    let again = restore_json(&s, &t, &["--dry-run", "--delete", "--exclude", "*.keep"]);
    assert_eq!(
        again["changes"],
        serde_json::json!([]),
        "nothing left to do"
    );

    // Into a target that does not exist: not created, and everything is new (text listing).
    let missing = s.cli.dir.path().join("not-there");
    let out = s.cli.ok(&[
        "restore",
        &s.spec,
        "--target",
        missing.to_str().unwrap(),
        "-n",
    ]);
    assert!(!missing.exists(), "a dry run created the target");
    assert!(
        out.contains(&format!(
            "new      {}",
            missing.join("www/app.js").display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("new      {}/", missing.join("db").display())),
        "{out}"
    );
    assert!(out.contains("nothing was written"), "{out}");
}

#[test]
fn an_include_written_for_the_whole_snapshot_warns_with_the_relative_form() {
    let s = setup();
    let wrong = s.data.join("www");
    let t = s.cli.dir.path().join("wrong");
    // The README's shape: SNAP:/data with --include '/data/www'.
    let out = s.cli.run(&[
        "restore",
        &s.spec,
        "--target",
        t.to_str().unwrap(),
        "--include",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(kairn_e2e::code(&out), 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "warning: --include {:?} matched nothing in the snapshot; patterns are relative to \
             {}: try --include /www",
            wrong.display().to_string(),
            s.data.display()
        )),
        "{stderr}"
    );
    assert!(!t.join("www").exists());

    let right = s.cli.dir.path().join("right");
    let out = s.cli.run(&[
        "restore",
        &s.spec,
        "--target",
        right.to_str().unwrap(),
        "--include",
        "/www",
    ]);
    assert_eq!(kairn_e2e::code(&out), 0);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("matched nothing"));
    assert_eq!(read(&right.join("www/index.html")), "<h1>snapshot</h1>");
    assert!(!right.join("db").exists());

    // An exclude that matches nothing is named too, without a hint it does not need.
    let v = restore_json(&s, &right, &["--exclude", "*.nothing", "-n"]);
    assert_eq!(v["unmatched_exclude"], serde_json::json!(["*.nothing"]));
}
