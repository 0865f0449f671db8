//! `repo copy` between two repositories with different keys, passwords and chunk sizes: the
//! copies restore to what was backed up, the destination checks clean, a second copy copies
//! nothing, and a snapshot that shares most of its data with one copied before adds little; also
//! into a repository on S3 (moto), each copy naming its source snapshot as `original`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use filetime::{FileTime, set_file_mtime};
use kairn_e2e::{CHEAP_KDF, Cli, SMALL_CHUNKS, assert_same, noise, s3, scan};

/// A destination with its own password and chunk sizes half those of [`SMALL_CHUNKS`].
fn destination() -> Cli {
    init_destination(Cli::uninitialised())
}

/// Initialises `cli` as a [`destination`].
fn init_destination(cli: Cli) -> Cli {
    fs::write(&cli.password_file, "battery staple\n").unwrap();
    let mut args = vec!["init"];
    args.extend_from_slice(&CHEAP_KDF);
    args.extend_from_slice(&[
        "--chunk-min",
        "8192",
        "--chunk-avg",
        "32768",
        "--chunk-max",
        "131072",
    ]);
    cli.ok(&args);
    cli
}

fn build_tree(root: &Path) {
    fs::create_dir_all(root.join("nested/deeper/deepest")).unwrap();
    fs::create_dir_all(root.join("other")).unwrap();
    fs::write(root.join("big.bin"), noise(1, 4 << 20)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("nested/small.txt"), b"hello kairn\n").unwrap();
    fs::write(
        root.join("nested/deeper/deepest/text"),
        "line\n".repeat(30_000),
    )
    .unwrap();
    fs::write(root.join("other/same-as-small"), b"hello kairn\n").unwrap();
    symlink("nested/small.txt", root.join("link")).unwrap();
    fs::hard_link(root.join("nested/small.txt"), root.join("hard")).unwrap();
    xattr::set(root.join("nested/small.txt"), "user.note", b"kept").unwrap();
    let sparse = fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    {
        use std::os::unix::fs::FileExt;
        sparse.write_all_at(&noise(2, 100_000), 3 << 20).unwrap();
    }
    set_file_mtime(
        root.join("big.bin"),
        FileTime::from_unix_time(1_600_000_000, 7),
    )
    .unwrap();
}

fn copy(src: &Cli, dst: &Cli, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "copy",
        "--from-repo",
        src.repo.to_str().unwrap(),
        "--from-password-file",
        src.password_file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    dst.json(&args)
}

fn restore(cli: &Cli, snap: &str, path: &Path, target: &Path) {
    let spec = format!("{snap}:{}", path.display());
    cli.ok(&[
        OsStr::new("restore"),
        OsStr::new(&spec),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
}

/// The destination copy of source snapshot `source`, from a copy report.
fn copy_of(report: &serde_json::Value, source: &str) -> String {
    report["copied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["source"] == source)
        .unwrap_or_else(|| panic!("{source} not copied: {report}"))["copy"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn copies_restore_identically_check_clean_and_are_made_once() {
    let src = Cli::init_with(&SMALL_CHUNKS);
    let dst = destination();
    let data = src.dir.path().join("data");
    build_tree(&data);
    let first = src.backup(&data);
    let first_scan = scan(&data);
    fs::write(data.join("nested/small.txt"), b"changed\n").unwrap();
    fs::write(data.join("new-file"), noise(3, 300_000)).unwrap();
    fs::remove_file(data.join("other/same-as-small")).unwrap();
    let second = src.backup(&data);
    let second_scan = scan(&data);

    let dry = copy(&src, &dst, &["--dry-run"]);
    assert_eq!(dry["copied"].as_array().unwrap().len(), 2, "{dry}");
    assert_eq!(dry["data_blobs_new"], 0, "a dry run stores nothing");
    assert!(dst.files("snapshots").is_empty());

    let report = copy(&src, &dst, &[]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["skipped"].as_array().unwrap().len(), 0, "{report}");
    assert!(
        report["data_bytes_new"].as_u64().unwrap() > 4 << 20,
        "{report}"
    );

    for (source, expected) in [(&first, &first_scan), (&second, &second_scan)] {
        let target = dst.dir.path().join(format!("restored-{}", &source[..8]));
        restore(&dst, &copy_of(&report, source), &data, &target);
        assert_same(expected, &scan(&target));
    }
    let listing = dst.json(&["snapshots"]);
    let copied_second = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == copy_of(&report, &second).as_str())
        .unwrap()
        .clone();
    let original = src.json(&["cat", "snapshot", &second]);
    for field in ["time", "host", "username", "paths", "tags", "summary"] {
        assert_eq!(copied_second[field], original[field], "{field}");
    }
    assert_eq!(
        copied_second["parent"].as_str(),
        Some(copy_of(&report, &first).as_str()),
        "the parent is the copy of the source's parent"
    );

    dst.ok(&["check", "--read-data"]);

    let again = copy(&src, &dst, &[]);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["skipped"].as_array().unwrap().len(), 2, "{again}");
    assert_eq!(again["bytes_read"], 0);
    assert_eq!(dst.files("snapshots").len(), 2);
}

#[test]
fn a_snapshot_sharing_most_data_adds_little_to_the_destination() {
    let src = Cli::init_with(&SMALL_CHUNKS);
    let dst = destination();
    let data = src.dir.path().join("data");
    build_tree(&data);
    src.backup(&data);
    copy(&src, &dst, &[]);

    // A few bytes changed in the middle of the large file, and a small file added.
    let mut big = fs::read(data.join("big.bin")).unwrap();
    big[2_000_000..2_000_100].copy_from_slice(&noise(4, 100));
    fs::write(data.join("big.bin"), &big).unwrap();
    fs::write(data.join("nested/added"), noise(5, 20_000)).unwrap();
    let third = src.backup(&data);
    let third_scan = scan(&data);

    let report = copy(&src, &dst, &[third.as_str()]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report}");
    let read = report["bytes_read"].as_u64().unwrap();
    let new = report["data_bytes_new"].as_u64().unwrap();
    let stored = report["bytes_stored"].as_u64().unwrap();
    assert!(read > 4 << 20, "every file is read again: {report}");
    // The changed region and the new file, in chunks of 8 to 128 KiB.
    assert!(new < 400_000, "{new} new bytes of {read} read: {report}");
    assert!(stored < 500_000, "{stored} bytes stored: {report}");
    assert!(report["data_bytes_deduplicated"].as_u64().unwrap() > 4_000_000);

    let target = dst.dir.path().join("restored");
    restore(&dst, &copy_of(&report, &third), &data, &target);
    assert_same(&third_scan, &scan(&target));
}

#[test]
fn copies_into_a_repository_on_s3_restore_and_name_their_original() {
    let server = s3::moto();
    s3::create_bucket(&server.endpoint, "copies", None);
    let src = Cli::init_with(&SMALL_CHUNKS);
    let dst = init_destination(Cli::at(
        "s3://copies/team/repo",
        s3::options(&server.endpoint),
    ));
    let data = src.dir.path().join("data");
    build_tree(&data);
    let first = src.backup(&data);
    let expected = scan(&data);

    let report = copy(&src, &dst, &[]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report}");
    let copied = copy_of(&report, &first);
    let target = dst.dir.path().join("restored");
    restore(&dst, &copied, &data, &target);
    assert_same(&expected, &scan(&target));
    dst.ok(&["check"]);

    let cat = dst.json(&["cat", "snapshot", &copied]);
    assert_eq!(cat["original"].as_str(), Some(first.as_str()), "{cat}");
    let listing = dst.json(&["snapshots"]);
    let listed = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == copied.as_str())
        .unwrap_or_else(|| panic!("{copied} not listed: {listing}"));
    assert_eq!(
        listed["original"].as_str(),
        Some(first.as_str()),
        "{listed}"
    );
    // A backup names no original.
    assert!(
        src.json(&["cat", "snapshot", &first])
            .get("original")
            .is_none()
    );

    let again = copy(&src, &dst, &[]);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["skipped"][0]["existing"], copied.as_str(), "{again}");
    assert_eq!(again["bytes_read"], 0);
}

#[test]
fn a_wrong_source_password_fails_before_touching_the_destination() {
    let src = Cli::init();
    let dst = destination();
    let wrong = dst.dir.path().join("wrong");
    fs::write(&wrong, "nope\n").unwrap();
    let out = dst.run(&[
        "copy",
        "--from-repo",
        src.repo.to_str().unwrap(),
        "--from-password-file",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(kairn_e2e::code(&out), 12, "wrong password");
    assert!(dst.files("sessions").is_empty());
}

#[test]
fn a_rewritten_snapshot_is_copied_beside_the_snapshot_it_rewrote() {
    let src = Cli::init();
    let data = src.dir.path().join("data");
    build_tree(&data);
    fs::write(data.join("secret.env"), "TOKEN=1\n").unwrap();
    let first = src.backup(&data);
    // A retag keeps the counts: it is the same snapshot, copied once.
    src.ok(&["tag", "--add", "kept", &first[..8]]);
    // Rewritten with `original` naming the retagged snapshot's first id, but one file fewer.
    src.ok(&["rewrite", "--exclude", "secret.env", "latest"]);
    let dst = destination();
    let report = copy(&src, &dst, &[]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 2, "{report}");
    assert!(report["skipped"].as_array().unwrap().is_empty(), "{report}");
    let again = copy(&src, &dst, &[]);
    assert!(again["copied"].as_array().unwrap().is_empty(), "{again}");
    let copies = dst.json(&["snapshots"]);
    let with_secret = copies
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["summary"]["total_bytes"] == copies[0]["summary"]["total_bytes"])
        .count();
    assert_eq!(with_secret, 1, "{copies}");
}
