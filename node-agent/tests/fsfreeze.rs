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

struct Ext4 {
    _dir: tempfile::TempDir,
    mount: PathBuf,
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
        Some(Self { _dir: dir, mount })
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

fn backup_that_fails(mount: &Path) -> Result<(), String> {
    let guard = FreezeGuard::freeze(mount, Duration::from_secs(60)).map_err(|e| e.to_string())?;
    assert!(guard.is_frozen());
    Err("the backup failed".to_string())?;
    guard.thaw().map_err(|e| e.to_string())
}

#[test]
fn fsfreeze_guard_thaws_when_the_backup_fails() {
    let Some(fs) = Ext4::new() else { return };
    assert!(backup_that_fails(&fs.mount).is_err());
    assert!(!fs.is_frozen(), "left frozen after an error");
}

#[test]
fn fsfreeze_watchdog_thaws_a_guard_that_is_never_dropped() {
    let Some(fs) = Ext4::new() else { return };
    let guard = FreezeGuard::freeze(&fs.mount, Duration::from_millis(300)).unwrap();
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
}

#[test]
fn fsfreeze_refuses_a_directory_that_is_not_its_own_filesystem() {
    let Some(fs) = Ext4::new() else { return };
    let sub = fs.mount.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let err = FreezeGuard::freeze(&sub, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, FreezeError::NotAMountPoint(_)), "{err}");
    assert!(!fs.is_frozen());
    let guard = FreezeGuard::freeze(&fs.mount, Duration::from_secs(60)).unwrap();
    guard.thaw().unwrap();
    assert!(!fs.is_frozen());
}
