//! Restore writes only inside its target, even while someone else who can write the target
//! swaps links in under it (issue 17 §1), and never leaves a half-written file under its final
//! name: not when killed, not on a full disk (§2). It keeps the modes it restores whatever the
//! umask (§5).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use engine::backup::{BackupOptions, backup};
use engine::index::Index;
use engine::locate::locate;
use engine::progress::Progress;
use engine::repo::{InitOptions, Repository};
use engine::restore::{RestoreOptions, restore};
use kairn_e2e::{Cli, SmallFs, code, contents, noise};

const DIRS: usize = 150;
const TEMP_PREFIX: &str = ".kairn-part-";

/// `dirs` directories (mode 0755) of 3 small files (mode 0644) each.
fn tree_of_dirs(src: &Path, dirs: usize) {
    for n in 0..dirs {
        let dir = src.join(format!("d{n}"));
        fs::create_dir_all(&dir).unwrap();
        for k in 0..3 {
            let file = dir.join(format!("f{k}"));
            fs::write(&file, format!("file {k} of directory {n}")).unwrap();
            fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A directory outside the target that the attacker points links at: mode 0700, one file.
struct Elsewhere(PathBuf);

/// Its mode and every entry with its content: what must not change.
type State = (u32, BTreeMap<String, Vec<u8>>);

impl Elsewhere {
    fn new(path: PathBuf) -> Self {
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), b"untouched").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        Self(path)
    }

    fn state(&self) -> State {
        kairn_e2e::listing_with_mode(&self.0)
    }

    /// Back to how it was, after the control run escaped into it.
    fn reset(&self) {
        for e in fs::read_dir(&self.0).unwrap() {
            let e = e.unwrap();
            if e.file_name() != "keep" {
                let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
            }
        }
        fs::write(self.0.join("keep"), b"untouched").unwrap();
        fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700)).unwrap();
    }
}

/// The attack of issue 17 §1, over and over until stopped, for every `dN` of `target`:
/// `mv target/dN target/dN.moved; ln -sfn elsewhere target/dN`.
struct Attacker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Attacker {
    fn start(target: &Path, elsewhere: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (target, elsewhere, flag) =
            (target.to_path_buf(), elsewhere.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                for n in 0..DIRS {
                    let dir = target.join(format!("d{n}"));
                    let _ = fs::rename(&dir, target.join(format!("d{n}.moved")));
                    // `ln -sfn`: a link or file in the way is replaced, a directory is not.
                    let _ = fs::remove_file(&dir);
                    let _ = symlink(&elsewhere, &dir);
                }
            }
        });
        Self { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
    }
}

/// A restore that works by path, as Kairn's did before directory handles: make each directory
/// (owner-only), create its files, then set the directories' modes. The control that shows
/// the harness catches an escape.
fn path_based_copy(src: &Path, target: &Path) {
    for n in 0..DIRS {
        let dir = target.join(format!("d{n}"));
        let _ = fs::create_dir(&dir);
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
    }
    for n in 0..DIRS {
        for k in 0..3 {
            let rel = format!("d{n}/f{k}");
            if let Ok(data) = fs::read(src.join(&rel)) {
                let _ = fs::write(target.join(&rel), data);
            }
        }
    }
    for n in 0..DIRS {
        let dir = target.join(format!("d{n}"));
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn a_link_swapped_in_during_restore_never_leads_outside_the_target() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    tree_of_dirs(&src, DIRS);
    let id = cli.backup(&src);
    let elsewhere = Elsewhere::new(cli.dir.path().join("elsewhere"));
    let untouched = elsewhere.state();

    // The control: the same attack redirects a path-based restore.
    let mut escapes = 0;
    for run in 0..20 {
        let target = cli.dir.path().join(format!("control-{run}"));
        fs::create_dir(&target).unwrap();
        let attacker = Attacker::start(&target, &elsewhere.0);
        path_based_copy(&src, &target);
        attacker.stop();
        if elsewhere.state() != untouched {
            escapes += 1;
            elsewhere.reset();
        }
        if escapes >= 2 {
            break;
        }
    }
    assert!(
        escapes > 0,
        "the attack never redirected a path-based restore"
    );

    for run in 0..6 {
        let target = cli.dir.path().join(format!("target-{run}"));
        fs::create_dir(&target).unwrap();
        let attacker = Attacker::start(&target, &elsewhere.0);
        let out = cli.run(&[
            "restore",
            &format!("{id}:{}", src.display()),
            "--target",
            target.to_str().unwrap(),
        ]);
        attacker.stop();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(matches!(code(&out), 0 | 4), "run {run}: {stderr}");
        assert_eq!(
            elsewhere.state(),
            untouched,
            "run {run}: restore wrote or changed modes outside its target\n{stderr}"
        );
    }
}

/// Does `act` when the restore starts writing data: after every entry was created.
struct AtWriteStart<F: Fn() + Send + Sync>(F);

impl<F: Fn() + Send + Sync> Progress for AtWriteStart<F> {
    fn start(&self, phase: &str, _total: Option<u64>) {
        if phase == "restore" {
            (self.0)();
        }
    }
}

#[test]
fn a_directory_that_vanishes_or_is_replaced_mid_restore_is_reported_and_the_rest_restored() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    tree_of_dirs(&src, 4);
    let opts = InitOptions {
        kdf: engine::crypto::KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    let backend = Arc::new(engine::backend::OpendalBackend::memory().unwrap());
    let repo = Repository::init(backend, b"pw", &opts).unwrap();
    let session = repo
        .begin_session("backup", engine::session::DEFAULT_EXPIRY)
        .unwrap();
    let backup_opts = BackupOptions {
        paths: vec![src.clone()],
        ..Default::default()
    };
    let snap = backup(
        &repo,
        &session,
        &Index::load(&repo).unwrap(),
        &backup_opts,
        &engine::progress::NoProgress,
    )
    .unwrap()
    .snapshot;
    session.end().unwrap();
    let index = Index::load(&repo).unwrap();
    let start = locate(&repo, &index, snap.tree, src.to_str().unwrap()).unwrap();

    let elsewhere = Elsewhere::new(work.path().join("elsewhere"));
    let untouched = elsewhere.state();
    let target = work.path().join("target");
    let swap = || {
        fs::rename(target.join("d1"), target.join("d1.moved")).unwrap();
        symlink(&elsewhere.0, target.join("d1")).unwrap();
        fs::remove_dir_all(target.join("d2")).unwrap();
    };
    let report = restore(
        &repo,
        &index,
        &start,
        &target,
        &RestoreOptions::default(),
        &AtWriteStart(swap),
    )
    .unwrap();

    let mut failed: Vec<String> = report
        .errors
        .iter()
        .map(|e| e.path.display().to_string())
        .collect();
    failed.sort();
    let expected: Vec<String> = ["d1", "d2"]
        .iter()
        .flat_map(|d| (0..3).map(move |k| format!("{d}/f{k}")))
        .collect();
    assert_eq!(failed, expected, "{:?}", report.errors);
    assert_eq!(report.files, 6, "{report:?}");
    for d in ["d0", "d3"] {
        for k in 0..3 {
            let rel = format!("{d}/f{k}");
            assert_eq!(
                fs::read(target.join(&rel)).unwrap(),
                fs::read(src.join(&rel)).unwrap()
            );
        }
    }
    assert_eq!(
        elsewhere.state(),
        untouched,
        "written or changed through the link"
    );
}

/// Temporaries and files below `dir`, relative.
fn names(dir: &Path) -> Vec<String> {
    kairn_e2e::walk_files(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

#[test]
fn a_killed_restore_leaves_no_incomplete_file_under_its_name_and_a_rerun_completes() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big"), noise(7, 48 << 20)).unwrap();
    fs::write(src.join("small"), b"small").unwrap();
    let id = cli.backup(&src);
    let spec = format!("{id}:{}", src.display());
    let target = cli.dir.path().join("target");
    let mut child = cli
        .cmd()
        .args(["restore", &spec, "--target", target.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill as soon as some, but not all, of the big file's bytes are on disk.
    let mut killed = false;
    while child.try_wait().unwrap().is_none() {
        let partly_written = fs::read_dir(&target)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.metadata()
                    .is_ok_and(|m| m.is_file() && m.blocks() > 0 && m.blocks() * 512 < m.len())
            });
        if partly_written {
            child.kill().unwrap();
            killed = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.wait().unwrap();
    assert!(
        killed,
        "the restore finished before it could be killed mid-write"
    );
    let expected = contents(&src);
    for (rel, hash) in contents(&target) {
        if !rel.to_string_lossy().starts_with(TEMP_PREFIX) {
            assert_eq!(
                Some(&hash),
                expected.get(&rel),
                "{} is incomplete",
                rel.display()
            );
        }
    }

    cli.ok(&["restore", &spec, "--target", target.to_str().unwrap()]);
    assert_eq!(contents(&target), expected, "{:?}", names(&target));
}

#[test]
fn a_full_disk_names_every_incomplete_file_and_leaves_none_under_its_name() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..5 {
        fs::write(src.join(format!("big{i}")), noise(i, 1_500_000)).unwrap();
    }
    fs::write(src.join("small"), b"small").unwrap();
    let id = cli.backup(&src);
    let Some(disk) = SmallFs::mount(&cli.dir.path().join("small-disk"), "4m") else {
        eprintln!("skipped: mounting a 4 MiB tmpfs needs root, and this test does not run as root");
        return;
    };
    let out = cli.run(&[
        "restore",
        &format!("{id}:{}", src.display()),
        "--target",
        disk.dir().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 15, "{stderr}");
    assert!(stderr.contains("full"), "{stderr}");

    let expected = contents(&src);
    let on_disk = contents(disk.dir());
    for (rel, hash) in &expected {
        match on_disk.get(rel) {
            Some(found) => assert_eq!(found, hash, "{} is incomplete", rel.display()),
            None => assert!(
                stderr.contains(&format!("error: {}: ", rel.display())),
                "{} is missing and not named:\n{stderr}",
                rel.display()
            ),
        }
    }
    assert!(on_disk.len() < expected.len(), "the disk was not full");
    assert_eq!(
        on_disk
            .keys()
            .filter(|rel| !expected.contains_key(*rel))
            .count(),
        0,
        "temporaries left behind: {:?}",
        names(disk.dir())
    );
}

#[test]
fn a_restore_under_umask_077_keeps_the_modes_of_the_snapshot() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    let sub = src.join("sub");
    fs::create_dir_all(&sub).unwrap();
    fs::write(sub.join("doc"), b"readable").unwrap();
    fs::write(sub.join("tool"), b"#!/bin/sh\n").unwrap();
    nix::unistd::mkfifo(
        &sub.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    for (rel, mode) in [
        ("sub/doc", 0o644),
        ("sub/tool", 0o755),
        ("sub/pipe", 0o640),
        ("sub", 0o755),
    ] {
        fs::set_permissions(src.join(rel), fs::Permissions::from_mode(mode)).unwrap();
    }
    let id = cli.backup(&src);
    let target = cli.dir.path().join("target");
    let out = std::process::Command::new("sh")
        .args(["-c", "umask 077 && exec \"$0\" \"$@\""])
        .arg(kairn_e2e::repo_bin())
        .args(["-r", cli.repo.to_str().unwrap()])
        .args(["--password-file", cli.password_file.to_str().unwrap()])
        .args(["restore", &format!("{id}:{}", src.display()), "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    for (rel, mode) in [
        ("sub/doc", 0o644),
        ("sub/tool", 0o755),
        ("sub/pipe", 0o640),
        ("sub", 0o755),
    ] {
        let found = fs::symlink_metadata(target.join(rel)).unwrap().mode() & 0o7777;
        assert_eq!(found, mode, "{rel}: {found:o}, expected {mode:o}");
    }
}
