//! fsfreeze outlives no agent: the node agent (against the real kube-apiserver, see
//! tests/src/agent.rs) is killed with SIGKILL while the volume's filesystem, a real ext4 on a
//! loop device, is frozen for a backup; the next agent on the node thaws it at start-up and
//! says so in an Event on the PVC. Needs root (loop devices, mount); skipped elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kairn_e2e::agent::{Cluster, is_final};
use kairn_e2e::write_volume;
use serde_json::json;

/// An ext4 filesystem on a loop device, mounted at a volume's `mount` directory.
struct Ext4 {
    mount: PathBuf,
    _image: tempfile::TempDir,
}

impl Ext4 {
    fn mount_at(mount: &Path) -> Option<Self> {
        let image = tempfile::tempdir().unwrap();
        let file = image.path().join("fs.img");
        let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
        let made = ok(Command::new("truncate").args(["-s", "64M"]).arg(&file))
            && ok(Command::new("mkfs.ext4").arg("-q").arg(&file))
            && ok(Command::new("mount")
                .args(["-o", "loop"])
                .arg(&file)
                .arg(mount));
        if !made {
            eprintln!("skipped: cannot mount an ext4 filesystem on a loop device here");
            return None;
        }
        Some(Self {
            mount: mount.to_path_buf(),
            _image: image,
        })
    }

    /// Freezing it again fails (EBUSY) while it is frozen; a probe that wrote would hang.
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

#[test]
fn a_filesystem_frozen_by_an_agent_killed_with_sigkill_is_thawed_by_the_next_one() {
    let Some(c) = Cluster::new() else { return };
    let shop = c.namespace("shop");
    let pv = c.bound_pvc(&shop, "data", false);
    let uid = c.pod(&shop, "db-0", "data", "Running");
    let dir = c.lay_out_volume(&uid, &pv, false);
    let Some(fs) = Ext4::mount_at(&dir) else {
        return;
    };
    write_volume(&fs.mount, 5, 30);

    // Slow storage, so that the kill lands while the filesystem is frozen for the backup.
    let mut first = c.agent(&[("KAIRN_FAULTS", "seed=3,latency-ms=200")]);
    let spec = json!({"pvc": "data", "hooks": {"fsfreeze": true}});
    c.create(&shop, "volumebackups", "frozen", spec);
    let st = c.wait(&shop, "volumebackups", "frozen", &mut first, |s| {
        (s["phase"] == "InProgress" && s["progress"]["bytesDone"].as_u64().unwrap_or(0) > 0)
            || is_final(s)
    });
    assert_eq!(st["phase"], "InProgress", "finished before the kill: {st}");
    assert!(
        fs.is_frozen(),
        "not frozen during the backup:\n{}",
        first.logs()
    );
    first.kill();
    std::thread::sleep(Duration::from_millis(300));
    assert!(fs.is_frozen(), "SIGKILL thawed it: nothing left to test");

    // No probing from here on: the probe freezes for an instant, and the agent's second
    // attempt would find the filesystem busy. The thaw shows in the Event, the log, and in the
    // second attempt, which could not freeze a filesystem still frozen.
    let mut second = c.agent(&[]);
    let start = Instant::now();
    loop {
        let events = c.events(&shop);
        if let Some(e) = events.iter().find(|e| e["reason"] == "FilesystemThawed") {
            assert_eq!(e["regarding"]["name"], "data", "{e}");
            assert_eq!(e["type"], "Warning", "{e}");
            let note = e["note"].as_str().unwrap();
            assert!(note.contains(&fs.mount.display().to_string()), "{note}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no FilesystemThawed event: {events:?}\n{}",
            second.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        second
            .logs()
            .contains("thawed a filesystem an earlier agent left frozen"),
        "{}",
        second.logs()
    );
    // And the interrupted backup is taken up again, frozen and thawed as it should be.
    let st = c.wait(&shop, "volumebackups", "frozen", &mut second, is_final);
    assert_eq!(st["phase"], "Completed", "{st}\n{}", second.logs());
    assert_eq!(st["attempts"], 2);
    assert!(!fs.is_frozen());
}
