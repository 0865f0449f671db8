//! The fsfreeze guard on a real ext4 filesystem on a loop device, and the start-up thaw of
//! what an agent killed mid-freeze left frozen, with a real process killed by SIGKILL. They
//! need root and loop devices; elsewhere each test says it is skipped and passes. The tests
//! named `freeze_records_*` need neither.
//!
//! Whether a filesystem is frozen is probed by freezing it again (EBUSY when frozen, then
//! thawed at once): a probe that wrote a file would hang on a frozen filesystem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use node_agent::freeze::{FreezeError, FreezeGuard};
use node_agent::freeze_record::{FreezeOwner, FreezeRecord};
use node_agent::freeze_recovery::{Outcome, announcement, thaw_left_frozen};
use node_agent::freeze_state::StateDir;

struct Ext4 {
    dir: tempfile::TempDir,
    mount: PathBuf,
    /// Outside the frozen filesystem: a record is written before the freeze, removed after.
    state: tempfile::TempDir,
}

impl Ext4 {
    fn new() -> Option<Self> {
        if !nix_is_root() {
            eprintln!("skipped: fsfreeze tests need root (loop devices and mount)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
        if !ok(Command::new("truncate").args(["-s", "32M"]).arg(&image))
            || !ok(Command::new("mkfs.ext4").arg("-q").arg(&image))
            || !ok(Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&mount))
        {
            eprintln!("skipped: cannot make an ext4 filesystem on a loop device here");
            return None;
        }
        let state = tempfile::tempdir().unwrap();
        Some(Self { dir, mount, state })
    }

    /// Stands for the kubelet's root: the mount point is under it.
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn state_dir(&self) -> StateDir {
        StateDir::new(self.state.path())
    }

    /// The record files in the state directory.
    fn records(&self) -> Vec<PathBuf> {
        files_in(self.state.path())
    }

    fn freeze(&self, path: &Path, limit: Duration) -> Result<FreezeGuard, FreezeError> {
        FreezeGuard::freeze(path, limit, &self.state_dir(), owner())
    }

    fn is_frozen(&self) -> bool {
        let refrozen = Command::new("fsfreeze")
            .arg("-f")
            .arg(&self.mount)
            .output()
            .unwrap();
        if refrozen.status.success() {
            Command::new("fsfreeze")
                .arg("-u")
                .arg(&self.mount)
                .status()
                .unwrap();
            return false;
        }
        true
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.mount).output();
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

/// One test at a time: a lock on a record belongs to its open file, and a child process forked
/// by another test thread (mount, fsfreeze) holds a copy of every open file until it execs, so
/// a record just written and closed here could still look held by a live agent.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

fn owner() -> FreezeOwner {
    FreezeOwner {
        instance: "agent-under-test".into(),
        namespace: Some("db".into()),
        pvc: Some("data".into()),
        backup: Some("nightly-1".into()),
    }
}

fn backup_that_fails(fs: &Ext4) -> Result<(), String> {
    let guard = fs
        .freeze(&fs.mount, Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    assert_eq!(fs.records().len(), 1, "recorded while frozen");
    assert!(guard.is_frozen());
    Err("the backup failed".to_string())?;
    guard.thaw().map_err(|e| e.to_string())
}

#[test]
fn fsfreeze_guard_thaws_when_the_backup_fails() {
    let _serial = serial();
    let Some(fs) = Ext4::new() else { return };
    assert!(backup_that_fails(&fs).is_err());
    assert!(!fs.is_frozen(), "left frozen after an error");
    assert_eq!(
        fs.records(),
        Vec::<PathBuf>::new(),
        "the record outlived the thaw"
    );
}

#[test]
fn fsfreeze_watchdog_thaws_a_guard_that_is_never_dropped() {
    let _serial = serial();
    let Some(fs) = Ext4::new() else { return };
    let guard = fs.freeze(&fs.mount, Duration::from_millis(300)).unwrap();
    assert!(fs.is_frozen());
    std::mem::forget(guard);
    let start = Instant::now();
    while fs.is_frozen() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the watchdog did not thaw"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The watchdog removes the record just after the thaw the probe sees.
    while !fs.records().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the record stayed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fsfreeze_refuses_a_directory_that_is_not_its_own_filesystem() {
    let _serial = serial();
    let Some(fs) = Ext4::new() else { return };
    let sub = fs.mount.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let err = fs.freeze(&sub, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, FreezeError::NotAMountPoint(_)), "{err}");
    assert!(!fs.is_frozen());
    assert!(fs.records().is_empty());
    let guard = fs.freeze(&fs.mount, Duration::from_secs(60)).unwrap();
    guard.thaw().unwrap();
    assert!(!fs.is_frozen());
}

#[test]
fn fsfreeze_is_not_made_when_it_cannot_be_recorded() {
    let _serial = serial();
    let Some(fs) = Ext4::new() else { return };
    let blocker = fs.state.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let state = StateDir::new(blocker.join("state"));
    let err = FreezeGuard::freeze(&fs.mount, Duration::from_secs(60), &state, owner()).unwrap_err();
    assert!(matches!(err, FreezeError::Record { .. }), "{err}");
    assert!(!fs.is_frozen(), "frozen without a record");
}

#[test]
fn fsfreeze_that_fails_leaves_no_record() {
    let _serial = serial();
    let Some(fs) = Ext4::new() else { return };
    let guard = fs.freeze(&fs.mount, Duration::from_secs(60)).unwrap();
    // A second freeze of a frozen filesystem fails (EBUSY): its own record must go, the
    // first one's must stay.
    let err = fs.freeze(&fs.mount, Duration::from_secs(60)).unwrap_err();
    assert!(matches!(err, FreezeError::Command { .. }), "{err}");
    assert_eq!(fs.records().len(), 1);
    guard.thaw().unwrap();
    assert!(fs.records().is_empty());
}

/// The record a dead agent leaves: written and fsynced, its lock gone with the process.
fn record_left_behind(state: &StateDir, mount: &Path) {
    let record = FreezeRecord {
        mount: mount.to_path_buf(),
        owner: owner(),
        frozen_at: chrono::Utc::now(),
    };
    drop(state.record(&record).unwrap());
}

const CHILD_MOUNT: &str = "KAIRN_TEST_FREEZE_MOUNT";
const CHILD_STATE: &str = "KAIRN_TEST_FREEZE_STATE";
const CHILD_READY: &str = "KAIRN_TEST_FREEZE_READY";

/// The agent to be killed: freezes through the guard, says so, and waits for SIGKILL.
#[test]
#[ignore = "run as a child process by fsfreeze_left_by_an_agent_killed_mid_freeze_is_thawed_at_the_next_start"]
fn child_freezes_through_the_guard_and_waits_to_be_killed() {
    let (Ok(mount), Ok(state), Ok(ready)) = (
        std::env::var(CHILD_MOUNT),
        std::env::var(CHILD_STATE),
        std::env::var(CHILD_READY),
    ) else {
        return;
    };
    let limit = Duration::from_secs(600);
    let _guard =
        FreezeGuard::freeze(Path::new(&mount), limit, &StateDir::new(state), owner()).unwrap();
    std::fs::write(ready, b"frozen").unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_freezing_child(fs: &Ext4, ready: &Path) -> KillOnDrop {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "--nocapture", "--test-threads=1"])
        .arg("child_freezes_through_the_guard_and_waits_to_be_killed")
        .env(CHILD_MOUNT, &fs.mount)
        .env(CHILD_STATE, fs.state.path())
        .env(CHILD_READY, ready)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let start = Instant::now();
    while !ready.exists() {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("the child ended before it froze: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child never froze"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn fsfreeze_left_by_an_agent_killed_mid_freeze_is_thawed_at_the_next_start() {
    let _serial = serial();
    let Some(fs) = Ext4::new() else { return };
    let ready = fs.root().join("child-froze");
    let mut child = spawn_freezing_child(&fs, &ready);
    assert_eq!(fs.records().len(), 1, "no record of the freeze");
    assert!(fs.is_frozen());

    // While the agent lives, its freeze is not for a start-up to undo (two agents on a node).
    let report = thaw_left_frozen(&fs.state_dir(), fs.root());
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].outcome, Outcome::HeldByLiveAgent);
    assert!(fs.is_frozen());
    assert_eq!(fs.records().len(), 1);

    child.0.kill().unwrap(); // SIGKILL: no Drop, no watchdog
    child.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(fs.is_frozen(), "not left frozen: the test proves nothing");

    let report = thaw_left_frozen(&fs.state_dir(), fs.root());
    assert!(!fs.is_frozen(), "still frozen after the start-up thaw");
    assert_eq!(fs.records(), Vec::<PathBuf>::new(), "the record stayed");
    assert_eq!(report.len(), 1, "{report:?}");
    let handled = &report[0];
    assert_eq!(handled.outcome, Outcome::Thawed);
    assert_eq!(handled.mount.as_deref(), Some(fs.mount.as_path()));
    assert_eq!(handled.record.as_ref().unwrap().owner, owner());
    let event = announcement(handled).unwrap();
    assert_eq!(event.reason, "FilesystemThawed");
    assert_eq!(event.pvc, Some(("db".into(), "data".into())));
    assert!(event.note.contains(&fs.mount.display().to_string()));
    assert!(event.note.contains("agent-under-test"), "{}", event.note);
}

#[test]
fn fsfreeze_record_of_a_filesystem_that_is_not_frozen_is_just_cleared() {
    let _serial = serial();
    let Some(fs) = Ext4::new() else { return };
    record_left_behind(&fs.state_dir(), &fs.mount);
    let report = thaw_left_frozen(&fs.state_dir(), fs.root());
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].outcome, Outcome::WasNotFrozen);
    assert_eq!(report[0].mount.as_deref(), Some(fs.mount.as_path()));
    assert!(fs.records().is_empty());
    assert!(!fs.is_frozen());
    assert_eq!(
        announcement(&report[0]).unwrap().reason,
        "FreezeRecordCleared"
    );
}

#[test]
fn fsfreeze_record_leading_outside_the_kubelet_root_is_not_acted_on() {
    let _serial = serial();
    let Some(fs) = Ext4::new() else { return };
    assert!(
        Command::new("fsfreeze")
            .arg("-f")
            .arg(&fs.mount)
            .status()
            .unwrap()
            .success()
    );
    // The record names the frozen mount directly, with another kubelet root...
    let elsewhere = tempfile::tempdir().unwrap();
    record_left_behind(&fs.state_dir(), &fs.mount);
    let report = thaw_left_frozen(&fs.state_dir(), elsewhere.path());
    assert!(matches!(report[0].outcome, Outcome::Kept(_)), "{report:?}");
    assert!(fs.is_frozen());
    assert_eq!(
        fs.records().len(),
        1,
        "a refused record stays, for a person to look at"
    );
    std::fs::remove_file(&fs.records()[0]).unwrap();
    // ...or through a link under the kubelet root that leads to it.
    let link = elsewhere.path().join("pods-link");
    std::os::unix::fs::symlink(&fs.mount, &link).unwrap();
    record_left_behind(&fs.state_dir(), &link);
    let report = thaw_left_frozen(&fs.state_dir(), elsewhere.path());
    assert!(
        matches!(&report[0].outcome, Outcome::Kept(why) if why.contains("leads elsewhere")),
        "{report:?}"
    );
    assert!(fs.is_frozen());
    assert_eq!(fs.records().len(), 1);
}

#[test]
fn freeze_records_of_mounts_that_are_gone_are_cleared_without_a_thaw() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(state_dir.path());
    // A directory that is no longer a mount point: thawing it would thaw the filesystem it
    // sits on, which nobody froze for a backup.
    let unmounted = root
        .path()
        .join("pods/u1/volumes/kubernetes.io~csi/pv-1/mount");
    std::fs::create_dir_all(&unmounted).unwrap();
    record_left_behind(&state, &unmounted);
    record_left_behind(&state, &root.path().join("pods/u2/gone"));
    let report = thaw_left_frozen(&state, root.path());
    assert_eq!(report.len(), 2);
    assert!(
        report.iter().all(|h| h.outcome == Outcome::MountGone),
        "{report:?}"
    );
    assert!(files_in(state_dir.path()).is_empty());
}

#[test]
fn freeze_records_that_are_junk_are_left_in_place_and_nothing_hangs() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let dir = state_dir.path();
    std::fs::write(dir.join("freeze-junk.record"), b"\xff\xfe\x00 mount").unwrap();
    std::fs::write(dir.join("freeze-root.record"), b"mount /\n").unwrap();
    std::fs::write(dir.join("notes.txt"), b"not ours").unwrap();
    std::fs::write(dir.join(".freeze-1-2-3.tmp"), b"kairn freeze record 1\nmou").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("freeze-link.record")).unwrap();
    let fifo = dir.join("freeze-fifo.record");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );

    let report = thaw_left_frozen(&StateDir::new(dir), root.path());
    let outcome = |file: &str| {
        let h = report.iter().find(|h| h.file == file).unwrap();
        h.outcome.clone()
    };
    assert_eq!(report.len(), 5, "{report:?}");
    assert_eq!(outcome(".freeze-1-2-3.tmp"), Outcome::UnfinishedRemoved);
    for kept in [
        "freeze-junk.record",
        "freeze-root.record",
        "freeze-link.record",
        "freeze-fifo.record",
    ] {
        assert!(
            matches!(outcome(kept), Outcome::Kept(_)),
            "{kept}: {report:?}"
        );
    }
    let left: Vec<String> = files_in(dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        [
            "freeze-fifo.record",
            "freeze-junk.record",
            "freeze-link.record",
            "freeze-root.record",
            "notes.txt"
        ]
    );
    let missing = StateDir::new(dir.join("never-made"));
    assert!(thaw_left_frozen(&missing, root.path()).is_empty());
}
