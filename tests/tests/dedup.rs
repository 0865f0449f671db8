//! Deduplication, measured on what the repository stores: an unchanged re-backup, a copied file
//! and an insertion in the middle of a large file store (almost) nothing new.

use std::fs;

use kairn_e2e::{Cli, noise};

/// Bytes added by a backup, from its JSON summary.
fn added(cli: &Cli, path: &std::path::Path) -> (u64, serde_json::Value) {
    let v = cli.json(&[std::ffi::OsStr::new("backup"), path.as_os_str()]);
    (
        v["summary"]["new_bytes_stored"].as_u64().unwrap(),
        v["summary"].clone(),
    )
}

fn small_chunks() -> Cli {
    Cli::init_with(&kairn_e2e::SMALL_CHUNKS)
}

#[test]
fn an_unchanged_second_backup_stores_about_nothing_and_reads_nothing() {
    let cli = small_chunks();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    for i in 0..20 {
        fs::write(src.join(format!("d/f{i}")), noise(i, 200_000)).unwrap();
    }
    let (first, _) = added(&cli, &src);
    assert!(first > 4_000_000, "first backup stores the data: {first}");
    let (second, summary) = added(&cli, &src);
    assert_eq!(summary["bytes_read"], 0, "unchanged files are not read");
    assert_eq!(summary["files_unmodified"], 20);
    // No data; the trees of src and below are unchanged (their directories' access times are not
    // disturbed by the backup's own listing). Only the directories above src, such as /tmp, which
    // other tests keep changing, may yield new trees.
    assert_eq!(summary["data_blobs_new"], 0);
    assert!(
        summary["tree_blobs_new"].as_u64().unwrap() <= 3,
        "{summary}"
    );
    assert!(second < 4096, "second backup added {second} bytes");
    let (_, third) = added(&cli, &src);
    let listing = cli.ok(&["ls", "latest"]);
    assert!(listing.contains("/d/f19"));
    assert_eq!(third["bytes_read"], 0);
}

#[test]
fn a_copied_file_stores_nothing_new() {
    let cli = small_chunks();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("original"), noise(9, 3_000_000)).unwrap();
    added(&cli, &src);
    fs::copy(src.join("original"), src.join("copy")).unwrap();
    let (_, summary) = added(&cli, &src);
    assert_eq!(summary["files_new"], 1);
    assert_eq!(summary["bytes_read"], 3_000_000, "the copy is read");
    assert_eq!(
        summary["data_blobs_new"], 0,
        "but none of its chunks is new"
    );
}

#[test]
fn a_copy_within_one_backup_is_stored_once() {
    let cli = small_chunks();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let data = noise(10, 2_000_000);
    fs::write(src.join("a"), &data).unwrap();
    fs::write(src.join("b"), &data).unwrap();
    let (stored, summary) = added(&cli, &src);
    assert!(
        stored < 2_200_000,
        "two copies of 2 MB stored as {stored} bytes"
    );
    assert!(
        summary["new_bytes_raw"].as_u64().unwrap() < 2_010_000,
        "{summary}"
    );
}

#[test]
fn inserting_bytes_in_the_middle_of_a_large_file_stores_only_a_few_chunks() {
    let cli = small_chunks();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut data = noise(11, 16 << 20);
    fs::write(src.join("big"), &data).unwrap();
    let (_, first) = added(&cli, &src);
    let chunks = first["data_blobs_new"].as_u64().unwrap();
    assert!(chunks > 150, "16 MiB at 64 KiB average: {chunks} chunks");
    data.splice(8 << 20..8 << 20, b"a few inserted bytes".iter().copied());
    fs::write(src.join("big"), &data).unwrap();
    let (stored, second) = added(&cli, &src);
    let new_chunks = second["data_blobs_new"].as_u64().unwrap();
    assert!(
        (1..=3).contains(&new_chunks),
        "{new_chunks} new chunks of {chunks}"
    );
    assert!(stored < 1 << 20, "an insertion stored {stored} bytes");
    let target = cli.dir.path().join("out");
    cli.ok(&[
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    assert_eq!(fs::read(target.join("big")).unwrap(), data);
}
