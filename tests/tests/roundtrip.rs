//! A tree holding every kind of entry and metadata is backed up and restored through the CLI,
//! then compared entry by entry: content, mode bits, owners, nanosecond times, xattrs and ACLs,
//! hard-link groups, holes, devices, FIFOs, non-UTF-8 names and very long paths.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use filetime::{FileTime, set_symlink_file_times};
use kairn_e2e::{Cli, acl_with_user, assert_same, noise, scan};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Builds the tree; returns the path of the sparse file.
fn build_tree(root: &Path) -> PathBuf {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::write(root.join("small.txt"), b"hello kairn\n").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("dir/random.bin"), noise(1, 3 << 20)).unwrap();
    fs::write(root.join("dir/sub/text"), "line\n".repeat(50_000)).unwrap();
    fs::write(root.join("with space & \"quotes\""), b"x").unwrap();
    fs::write(
        root.join(OsStr::from_bytes(b"caf\xe9-latin1")),
        b"not utf-8 name",
    )
    .unwrap();
    fs::write(
        root.join(OsStr::from_bytes(b"new\nline")),
        b"newline in name",
    )
    .unwrap();

    fs::write(root.join("setuid"), b"#!/bin/sh\n").unwrap();
    chmod(&root.join("setuid"), 0o4755);
    fs::write(root.join("setgid"), b"g").unwrap();
    chmod(&root.join("setgid"), 0o2750);
    fs::create_dir(root.join("sticky")).unwrap();
    chmod(&root.join("sticky"), 0o1777);
    fs::write(root.join("private"), b"secret").unwrap();
    chmod(&root.join("private"), 0o600);

    symlink("small.txt", root.join("link-rel")).unwrap();
    symlink("/etc/hostname", root.join("link-abs")).unwrap();
    symlink("does/not/exist", root.join("link-dangling")).unwrap();

    fs::write(root.join("hard-a"), b"shared inode").unwrap();
    fs::hard_link(root.join("hard-a"), root.join("hard-b")).unwrap();
    fs::hard_link(root.join("hard-a"), root.join("dir/hard-c")).unwrap();

    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    if is_root() {
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        mknod(
            &root.join("chardev"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o620),
            makedev(1, 3),
        )
        .unwrap();
        mknod(
            &root.join("blockdev"),
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o660),
            makedev(7, 200),
        )
        .unwrap();
        std::os::unix::fs::lchown(root.join("dir/sub/text"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("link-rel"), Some(4321), Some(8765)).unwrap();
    }

    xattr::set(
        root.join("small.txt"),
        "user.comment",
        b"kept across restore",
    )
    .unwrap();
    xattr::set(root.join("small.txt"), "user.binary", &[0u8, 159, 146, 150]).unwrap();
    xattr::set(root.join("dir"), "user.on-a-dir", b"yes").unwrap();
    xattr::set(
        root.join("private"),
        "system.posix_acl_access",
        &acl_with_user(1000),
    )
    .unwrap();
    xattr::set(
        root.join("sticky"),
        "system.posix_acl_default",
        &acl_with_user(1001),
    )
    .unwrap();

    // A 64 MiB file holding 1 MiB of data in the middle: holes on both sides.
    let sparse = root.join("sparse.img");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::File::create(&sparse).unwrap();
        f.set_len(64 << 20).unwrap();
        f.seek(SeekFrom::Start(20 << 20)).unwrap();
        f.write_all(&noise(7, 1 << 20)).unwrap();
    }

    // A path of about 3,000 bytes.
    let mut deep = root.join("deep");
    for i in 0..14 {
        deep.push(format!("{i:02}-{}", "d".repeat(200)));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("leaf"), b"far down").unwrap();

    // Times with nanoseconds, set last (children first) so creating entries does not move them.
    let mut all: Vec<PathBuf> = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            all.push(e.path());
        }
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for (i, p) in all.iter().enumerate() {
        let mtime = FileTime::from_unix_time(1_600_000_000 + i as i64 * 77, 123_456_789 + i as u32);
        let atime = FileTime::from_unix_time(1_650_000_000 + i as i64 * 13, 987_654_321 - i as u32);
        set_symlink_file_times(p, atime, mtime).unwrap();
    }
    sparse
}

#[test]
fn every_kind_of_entry_and_metadata_survives_backup_and_restore() {
    let cli = Cli::init_with(&kairn_e2e::SMALL_CHUNKS);
    let src = cli.dir.path().join("src");
    let sparse = build_tree(&src);
    let _socket = std::os::unix::net::UnixListener::bind(src.join("socket")).unwrap();
    filetime::set_file_mtime(&src, FileTime::from_unix_time(1_500_000_000, 5)).unwrap();

    let snap = cli.backup(&src);
    let mut expected = scan(&src);
    expected
        .remove(Path::new("socket"))
        .expect("socket scanned");
    let listing = cli.ok(&["ls", "latest"]);
    assert!(listing.contains("/src/socket"), "sockets are recorded");

    let target = cli.dir.path().join("restored");
    let spec = format!("{snap}:{}", src.display());
    let out = cli.ok(&[
        "restore",
        &spec,
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    assert!(out.contains("verified"), "{out}");
    let actual = scan(&target);
    assert_same(&expected, &actual);

    // The target directory itself took the backed-up directory's metadata.
    assert_eq!(fs::metadata(&target).unwrap().mtime(), 1_500_000_000);

    // Holes came back as holes, not as written zeros.
    let restored = fs::metadata(target.join(sparse.file_name().unwrap())).unwrap();
    assert_eq!(restored.len(), 64 << 20);
    assert!(
        restored.blocks() * 512 < 4 << 20,
        "sparse file restored dense: {} blocks",
        restored.blocks()
    );
}

#[test]
fn restoring_the_whole_snapshot_recreates_absolute_paths() {
    let cli = Cli::init();
    let src = cli.dir.path().join("tree");
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a/file"), b"content").unwrap();
    cli.backup(&src);
    let target = cli.dir.path().join("out");
    cli.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let nested = target.join(src.strip_prefix("/").unwrap()).join("a/file");
    assert_eq!(fs::read(nested).unwrap(), b"content");
}

#[test]
fn include_exclude_dump_and_diff() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(src.join("keep/deep")).unwrap();
    fs::create_dir_all(src.join("skip")).unwrap();
    fs::write(src.join("keep/deep/a.txt"), b"A").unwrap();
    fs::write(src.join("keep/b.log"), b"B").unwrap();
    fs::write(src.join("skip/c.txt"), b"C").unwrap();
    let first = cli.backup(&src);
    let spec = format!("latest:{}", src.display());

    let only_keep = cli.dir.path().join("only-keep");
    cli.ok(&[
        "restore",
        &spec,
        "--target",
        only_keep.to_str().unwrap(),
        "--include",
        "/keep",
        "--exclude",
        "*.log",
    ]);
    assert_eq!(fs::read(only_keep.join("keep/deep/a.txt")).unwrap(), b"A");
    assert!(!only_keep.join("keep/b.log").exists());
    assert!(!only_keep.join("skip").exists());

    let dumped = cli
        .cmd()
        .args(["dump", &format!("latest:{}/keep/deep/a.txt", src.display())])
        .output()
        .unwrap();
    assert!(dumped.status.success());
    assert_eq!(dumped.stdout, b"A");
    let tar = cli
        .cmd()
        .args(["dump", &format!("latest:{}/keep", src.display())])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let mut archive = tar_names(&tar.stdout);
    archive.sort();
    assert_eq!(
        archive,
        vec!["keep/", "keep/b.log", "keep/deep/", "keep/deep/a.txt"]
    );

    fs::write(src.join("keep/deep/a.txt"), b"changed").unwrap();
    fs::remove_file(src.join("skip/c.txt")).unwrap();
    fs::write(src.join("new.txt"), b"N").unwrap();
    let second = cli.backup(&src);
    let diff = cli.json(&["diff", &first, &second]);
    let changes: Vec<(String, String)> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let p = |s: &str| format!("{}{s}", src.display());
    assert!(
        changes.contains(&("modified".into(), p("/keep/deep/a.txt"))),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("removed".into(), p("/skip/c.txt"))),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("added".into(), p("/new.txt"))),
        "{changes:?}"
    );
}

/// Entry names of a tar stream (a minimal reader: 512-byte headers, GNU long names).
fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut pos = 0;
    let mut long_name: Option<String> = None;
    while pos + 512 <= bytes.len() {
        let h = &bytes[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let field = |a: usize, b: usize| {
            String::from_utf8_lossy(&h[a..b])
                .trim_end_matches('\0')
                .trim()
                .to_string()
        };
        let size = u64::from_str_radix(&field(124, 136), 8).unwrap_or(0) as usize;
        let kind = h[156];
        let body = &bytes[pos + 512..pos + 512 + size];
        if kind == b'L' {
            long_name = Some(
                String::from_utf8_lossy(body)
                    .trim_end_matches('\0')
                    .to_string(),
            );
        } else {
            names.push(long_name.take().unwrap_or_else(|| field(0, 100)));
        }
        pos += 512 + size.div_ceil(512) * 512;
    }
    names
}

#[test]
fn thousands_of_tiny_files_restore_under_a_low_descriptor_limit() {
    // Found by the benchmark: one pack segment of tiny files targets thousands of files, and the
    // restore kept every one of them open.
    let cli = Cli::init();
    let src = cli.dir.path().join("tiny");
    for d in 0..4 {
        fs::create_dir_all(src.join(format!("{d}"))).unwrap();
        for f in 0..750 {
            fs::write(
                src.join(format!("{d}/{f}.txt")),
                format!("tiny file {d}/{f}\n"),
            )
            .unwrap();
        }
    }
    cli.backup(&src);
    let target = cli.dir.path().join("out");
    let out = std::process::Command::new("prlimit")
        .arg("--nofile=256")
        .arg(kairn_e2e::repo_bin())
        .args([
            "-r",
            cli.repo.to_str().unwrap(),
            "--password-file",
            cli.password_file.to_str().unwrap(),
        ])
        .args([
            "restore",
            &format!("latest:{}", src.display()),
            "--target",
            target.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&scan(&src), &scan(&target));
}

#[test]
fn a_tree_of_many_batches_restores_every_entry_and_links_across_batches() {
    // Restore plans and carries out a few thousand entries at a time: this tree takes several
    // batches, with a hard link whose first name is in the first batch and its second in the
    // last, a symlink and directory times in late batches.
    let cli = Cli::init();
    let src = cli.dir.path().join("many");
    for d in 0..20 {
        let dir = src.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            fs::write(dir.join(format!("{f:04}")), format!("{d}/{f}\n")).unwrap();
        }
    }
    fs::write(src.join("d00/linked"), b"one inode, two batches").unwrap();
    fs::hard_link(src.join("d00/linked"), src.join("d19/linked")).unwrap();
    symlink("../d00/0000", src.join("d19/link")).unwrap();
    for d in 0..20 {
        let when = FileTime::from_unix_time(1_600_000_000 + d, 7);
        filetime::set_file_times(src.join(format!("d{d:02}")), when, when).unwrap();
    }
    cli.backup(&src);

    let target = cli.dir.path().join("out");
    let spec = format!("latest:{}", src.display());
    let out = cli.ok(&[
        "restore",
        &spec,
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    assert!(out.contains("20002 files"), "{out}");
    assert_same(&scan(&src), &scan(&target));
    let (a, b) = (
        fs::metadata(target.join("d00/linked")).unwrap(),
        fs::metadata(target.join("d19/linked")).unwrap(),
    );
    assert_eq!(
        (a.ino(), a.nlink()),
        (b.ino(), 2),
        "the link group is one inode again"
    );
}
