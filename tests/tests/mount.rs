//! `repo mount`: the snapshots as a read-only FUSE filesystem. A tree with files of several
//! sizes (one of many chunks), a symlink, a FIFO, nested directories, owners, modes, times and
//! an xattr is backed up twice (the second tagged) beside a Kubernetes volume snapshot; the
//! mount must show every entry with its bytes and metadata, by time, id, host, tag and volume,
//! read a range from the middle of the large file, refuse writes with EROFS, and unmount
//! cleanly on SIGINT or SIGTERM with exit code 0. The snapshot filters narrow what is shown.
//!
//! Skipped, with a message, only where FUSE is not there (no /dev/fuse or no fusermount3);
//! scripts/test-deps.sh installs fuse3, so CI runs it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use engine::backend::OpendalBackend;
use engine::backup::{BackupOptions, backup};
use engine::format::snapshot::Source;
use engine::index::Index;
use engine::progress::NoProgress;
use engine::repo::Repository;
use filetime::{FileTime, set_symlink_file_times};
use kairn_e2e::{Cli, Entry, SMALL_CHUNKS, assert_same, code, noise, scan};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Why FUSE cannot be used here, if it cannot.
fn why_no_fuse() -> Option<&'static str> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse does not exist");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d.join("fusermount3").is_file()) {
        return Some("fusermount3 is not installed (scripts/test-deps.sh installs fuse3)");
    }
    None
}

fn is_mounted(dir: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    let dir = dir.to_str().unwrap();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(dir))
}

/// A running `repo mount`. Dropped, it kills the process and unmounts what is left, so a
/// failing test leaves no mount behind.
struct Mount {
    child: Option<Child>,
    dir: PathBuf,
}

impl Mount {
    fn start(cli: &Cli, dir: &Path, args: &[&str]) -> Self {
        let child = cli
            .cmd()
            .arg("mount")
            .args(args)
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start repo mount");
        let mut m = Mount {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        for _ in 0..200 {
            if dir.join("snapshots").exists() {
                return m;
            }
            let child = m.child.as_mut().unwrap();
            if child.try_wait().unwrap().is_some() {
                let out = m.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "repo mount exited with {:?} before mounting: {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{}/snapshots did not appear within 10 s", dir.display());
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `sig` and waits (30 s at most) for the exit: the code, stdout and stderr.
    fn stop(&mut self, sig: Signal) -> (Option<i32>, String, String) {
        let mut child = self.child.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        for _ in 0..600 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
            panic!("repo mount did not exit within 30 s of {sig}");
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z", "--"])
                .arg(&self.dir)
                .status();
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A scan without access times, which reading the source to hash it moves.
fn without_atimes(entries: BTreeMap<PathBuf, Entry>) -> BTreeMap<PathBuf, Entry> {
    entries
        .into_iter()
        .map(|(p, mut e)| {
            e.atime = None;
            (p, e)
        })
        .collect()
}

fn build_tree(root: &Path) -> Vec<u8> {
    fs::create_dir_all(root.join("dir/sub/deeper")).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("small.txt"), b"a few bytes\n").unwrap();
    fs::write(root.join("dir/medium.bin"), noise(1, 100_000)).unwrap();
    // About 50 chunks of 16..256 KiB.
    let big = noise(2, 3 << 20);
    fs::write(root.join("dir/sub/big.bin"), &big).unwrap();
    fs::write(root.join("dir/sub/deeper/leaf"), b"far down").unwrap();
    fs::write(root.join("private"), b"secret").unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(root.join("script"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("script"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("../small.txt", root.join("dir/link")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    xattr::set(root.join("small.txt"), "user.comment", b"shown by getfattr").unwrap();
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::lchown(root.join("dir/medium.bin"), Some(1234), Some(5678)).unwrap();
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        mknod(
            &root.join("dir/null"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o620),
            makedev(1, 3),
        )
        .unwrap();
    }
    // Times with nanoseconds, deepest first so that setting them does not move a parent's.
    let mut all = kairn_e2e::walk_files(root);
    all.extend(
        ["dir/sub/deeper", "dir/sub", "dir", "dir/link", "fifo"]
            .iter()
            .map(|p| root.join(p)),
    );
    all.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for (i, p) in all.iter().enumerate() {
        let mtime = FileTime::from_unix_time(1_600_000_000 + i as i64 * 77, 123_456_789);
        set_symlink_file_times(p, mtime, mtime).unwrap();
    }
    big
}

/// A volume snapshot as the node agent writes it: stored as `/data`, of shop/data.
fn volume_backup(cli: &Cli, dir: &Path) -> String {
    let backend = Arc::new(OpendalBackend::local(&cli.repo).unwrap());
    let repo = Repository::open(backend, b"correct horse").unwrap();
    let session = repo
        .begin_session("backup", engine::session::DEFAULT_EXPIRY)
        .unwrap();
    let index = Index::load(&repo).unwrap();
    let opts = BackupOptions {
        paths: vec![dir.to_path_buf()],
        host: Some("node-a".into()),
        source: Source {
            namespace: Some("shop".into()),
            pvc: Some("data".into()),
            ..Default::default()
        },
        stored_as: Some("data".into()),
        ..Default::default()
    };
    let outcome = backup(&repo, &session, &index, &opts, &NoProgress).unwrap();
    session.end().unwrap();
    outcome.id.to_hex()
}

fn assert_erofs(result: std::io::Result<impl std::fmt::Debug>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(
        err.raw_os_error(),
        Some(Errno::EROFS as i32),
        "{what}: {err}"
    );
}

#[test]
fn snapshots_browse_by_time_id_host_tag_and_volume_until_ctrl_c() {
    if let Some(why) = why_no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let cli = Cli::init_with(&SMALL_CHUNKS);
    let src = cli.dir.path().join("src");
    let big = build_tree(&src);
    let expected = without_atimes(scan(&src));
    let first = cli.backup(&src);
    let second = cli.json(&[
        OsStr::new("backup"),
        src.as_os_str(),
        OsStr::new("--tag"),
        OsStr::new("weekly"),
    ])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let vol = cli.dir.path().join("volume");
    fs::create_dir(&vol).unwrap();
    fs::write(vol.join("orders.db"), noise(3, 200_000)).unwrap();
    let volume = volume_backup(&cli, &vol);

    let mnt = cli.dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut m = Mount::start(&cli, &mnt, &[]);
    assert!(is_mounted(&mnt));
    assert_eq!(
        names(&mnt),
        ["hosts", "ids", "snapshots", "tags", "volumes"]
    );

    // snapshots/: three times and latest, which is the newest (the volume's).
    let times = names(&mnt.join("snapshots"));
    assert_eq!(times.len(), 4, "{times:?}");
    assert!(times.contains(&"latest".to_string()));
    for t in times.iter().filter(|t| *t != "latest") {
        // 2026-11-30T14:03:05+01:00, perhaps with -1 after a twin
        assert_eq!(&t[4..5], "-", "{t}");
        assert_eq!(&t[10..11], "T", "{t}");
        assert_eq!(&t[22..23], ":", "{t}");
    }
    let latest = fs::read_link(mnt.join("snapshots/latest")).unwrap();
    assert!(times.contains(&latest.to_str().unwrap().to_string()));
    assert!(mnt.join("snapshots/latest/data/orders.db").is_file());

    // The first snapshot through its id: every entry with its bytes and metadata.
    let rel = src.strip_prefix("/").unwrap();
    let root = mnt.join("ids").join(&first[..8]).join(rel);
    assert_same(&expected, &without_atimes(scan(&root)));
    assert_eq!(
        xattr::get(root.join("small.txt"), "user.comment").unwrap(),
        Some(b"shown by getfattr".to_vec())
    );

    // The second through its tag, and by host.
    let weekly = names(&mnt.join("tags/weekly"));
    assert_eq!(weekly.len(), 2, "{weekly:?}");
    let tagged = mnt.join("tags/weekly/latest").join(rel);
    assert_same(&expected, &without_atimes(scan(&tagged)));
    assert!(mnt.join("ids").join(&second[..8]).join(rel).is_dir());
    let hosts = names(&mnt.join("hosts"));
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert!(hosts.contains(&"node-a".to_string()));
    let here = hosts.iter().find(|h| *h != "node-a").unwrap();
    assert_eq!(names(&mnt.join("hosts").join(here)).len(), 3);

    // The volume under its namespace and PVC.
    assert_eq!(names(&mnt.join("volumes")), ["shop"]);
    let data = mnt.join("volumes/shop/data/latest/data/orders.db");
    assert_eq!(fs::read(&data).unwrap(), noise(3, 200_000));
    assert!(mnt.join("ids").join(&volume[..8]).join("data").is_dir());

    // A range from the middle of the large file, and its end.
    let mut f = fs::File::open(root.join("dir/sub/big.bin")).unwrap();
    f.seek(SeekFrom::Start(1_234_567)).unwrap();
    let mut middle = vec![0u8; 300_001];
    f.read_exact(&mut middle).unwrap();
    assert_eq!(middle, big[1_234_567..1_534_568]);
    f.seek(SeekFrom::End(-10)).unwrap();
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, big[big.len() - 10..]);

    assert_eq!(
        fs::read_link(root.join("dir/link")).unwrap(),
        Path::new("../small.txt")
    );
    assert_eq!(fs::read(root.join("dir/link")).unwrap(), b"a few bytes\n");

    // Read-only, whatever is tried.
    assert_erofs(fs::write(root.join("small.txt"), b"x"), "overwrite");
    assert_erofs(fs::File::create(root.join("new")), "create");
    assert_erofs(fs::create_dir(mnt.join("new")), "mkdir");
    assert_erofs(fs::remove_file(root.join("small.txt")), "unlink");
    assert_erofs(
        fs::rename(root.join("small.txt"), root.join("moved")),
        "rename",
    );
    assert_erofs(
        fs::set_permissions(root.join("small.txt"), fs::Permissions::from_mode(0o777)),
        "chmod",
    );

    let (status, stdout, stderr) = m.stop(Signal::SIGINT);
    assert_eq!(status, Some(0), "stderr: {stderr}");
    assert!(
        stdout.contains(&format!("mounted at {}; Ctrl-C unmounts", mnt.display())),
        "stdout: {stdout}"
    );
    assert!(stderr.contains("unmounted"), "stderr: {stderr}");
    assert!(!is_mounted(&mnt), "still mounted after the exit");
    assert!(names(&mnt).is_empty(), "the mountpoint is not empty again");
}

#[test]
fn filters_narrow_the_mount_and_sigterm_unmounts() {
    if let Some(why) = why_no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("file"), b"host files").unwrap();
    cli.backup(&src);
    let vol = cli.dir.path().join("volume");
    fs::create_dir(&vol).unwrap();
    fs::write(vol.join("orders.db"), b"volume data").unwrap();
    let volume = volume_backup(&cli, &vol);

    let mnt = cli.dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut m = Mount::start(&cli, &mnt, &["--namespace", "shop"]);
    assert_eq!(
        names(&mnt.join("snapshots")).len(),
        2,
        "one snapshot and latest"
    );
    assert_eq!(names(&mnt.join("ids")), [volume[..8].to_string()]);
    assert_eq!(names(&mnt.join("hosts")), ["node-a"]);
    assert_eq!(
        fs::read(mnt.join("snapshots/latest/data/orders.db")).unwrap(),
        b"volume data"
    );
    let (status, _, stderr) = m.stop(Signal::SIGTERM);
    assert_eq!(status, Some(0), "stderr: {stderr}");
    assert!(!is_mounted(&mnt));
    assert!(names(&mnt).is_empty());
}

/// Peak resident memory of a process, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn reading_a_large_file_holds_a_few_mib() {
    if let Some(why) = why_no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let cli = Cli::init_with(&SMALL_CHUNKS);
    let src = cli.dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let content = noise(4, 48 << 20);
    fs::write(src.join("large"), &content).unwrap();
    let id = cli.backup(&src);

    let mnt = cli.dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut m = Mount::start(&cli, &mnt, &["--read-cache", "1M"]);
    let file = mnt
        .join("ids")
        .join(&id[..8])
        .join(src.strip_prefix("/").unwrap())
        .join("large");
    // Touch the mount once so that the baseline includes the index, the trees and the threads.
    assert_eq!(fs::metadata(&file).unwrap().len(), 48 << 20);
    let before = peak_rss_kib(m.pid());
    let mut read = Vec::with_capacity(content.len());
    fs::File::open(&file)
        .unwrap()
        .read_to_end(&mut read)
        .unwrap();
    let grown_mib = (peak_rss_kib(m.pid()) - before) / 1024;
    assert!(read == content, "the content differs");
    assert!(
        grown_mib < 16,
        "reading a 48 MiB file grew the mount's peak memory by {grown_mib} MiB"
    );
    let (status, _, stderr) = m.stop(Signal::SIGINT);
    assert_eq!(status, Some(0), "stderr: {stderr}");
}

#[test]
fn a_damaged_blob_fails_its_read_with_eio_and_the_rest_still_reads() {
    if let Some(why) = why_no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("large"), noise(5, 3 << 20)).unwrap();
    fs::write(src.join("small"), b"still readable").unwrap();
    let id = cli.backup(&src);
    // A byte in the middle of the largest pack: inside one of the large file's blobs.
    let pack = cli
        .files("data")
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::set_permissions(&pack, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&pack, bytes).unwrap();

    let mnt = cli.dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut m = Mount::start(&cli, &mnt, &[]);
    let root = mnt
        .join("ids")
        .join(&id[..8])
        .join(src.strip_prefix("/").unwrap());
    assert_eq!(fs::read(root.join("small")).unwrap(), b"still readable");
    let err = fs::read(root.join("large")).expect_err("a damaged blob was read");
    assert_eq!(err.raw_os_error(), Some(Errno::EIO as i32), "{err}");
    let (status, _, stderr) = m.stop(Signal::SIGINT);
    assert_eq!(status, Some(0), "stderr: {stderr}");
    assert!(
        stderr.contains("cannot read") && stderr.contains("large"),
        "stderr: {stderr}"
    );
}

#[test]
fn a_killed_mount_is_removed_by_fusermount3_as_root() {
    if let Some(why) = why_no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: auto_unmount is used as root (or with --allow-other)");
        return;
    }
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("file"), b"x").unwrap();
    cli.backup(&src);
    let mnt = cli.dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut m = Mount::start(&cli, &mnt, &[]);
    let (status, _, _) = m.stop(Signal::SIGKILL);
    assert_eq!(status, None, "killed by the signal");
    // fusermount3 notices the process is gone and unmounts; wait for it (10 s at most).
    for _ in 0..200 {
        if !is_mounted(&mnt) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!is_mounted(&mnt), "a stale mount was left behind");
    assert!(names(&mnt).is_empty());
}

#[test]
fn a_mountpoint_that_is_missing_or_a_file_is_a_usage_error() {
    let cli = Cli::init();
    let missing = cli.dir.path().join("missing");
    let out = cli.run(&[OsStr::new("mount"), missing.as_os_str()]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = cli.run(&[OsStr::new("mount"), cli.password_file.as_os_str()]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
}
