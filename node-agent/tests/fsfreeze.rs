//! The fsfreeze guard on a real ext4 filesystem on a loop device. It needs root and loop
//! devices; elsewhere each test says it is skipped and passes.
//!
//! Whether a filesystem is frozen is probed by freezing it again (EBUSY when frozen, then
//! thawed at once): a probe that wrote a file would hang on a frozen filesystem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use node_agent::freeze::{FreezeError, FreezeGuard};
use node_agent::freeze_record::FreezeOwner;
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

    fn state_dir(&self) -> StateDir {
        StateDir::new(self.state.path())
    }

    /// The record files in the state directory.
    fn records(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.state.path())
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
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
