//! Faults on the source side: an unreadable file is skipped with a warning and exit code 3; a
//! file that keeps changing, grows or vanishes while read is flagged; in every case the rest of
//! the backup completes and the snapshot is marked incomplete. On the restore side: a read-only
//! target fails at once with a clear message (a full one is in commands.rs).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kairn_e2e::{Cli, code, noise, repo_bin};

/// Runs `repo` as an unprivileged user when we are root, so that permissions apply.
fn unprivileged(cli: &Cli) -> Command {
    if !nix::unistd::geteuid().is_root() {
        return cli.cmd();
    }
    let status = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(cli.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    fs::set_permissions(cli.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(repo_bin());
    c.arg("-r")
        .arg(&cli.repo)
        .arg("--password-file")
        .arg(&cli.password_file);
    c.env_remove("KAIRN_REPOSITORY")
        .env_remove("KAIRN_PASSWORD")
        .env_remove("KAIRN_PASSWORD_FILE");
    c
}

#[test]
fn an_unreadable_file_is_skipped_with_a_warning_and_exit_code_3() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(src.join("locked-dir")).unwrap();
    fs::write(src.join("readable"), b"fine").unwrap();
    fs::write(src.join("unreadable"), b"secret").unwrap();
    fs::write(src.join("locked-dir/inside"), b"hidden").unwrap();
    let mut cmd = unprivileged(&cli);
    fs::set_permissions(src.join("unreadable"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(src.join("locked-dir"), fs::Permissions::from_mode(0o000)).unwrap();

    let out = cmd.arg("--json").arg("backup").arg(&src).output().unwrap();
    assert_eq!(
        code(&out),
        3,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = report["warnings"].as_array().unwrap();
    let paths: Vec<&str> = warnings
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.iter().any(|p| p.ends_with("/unreadable")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.ends_with("/locked-dir")),
        "{paths:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("incomplete"));

    fs::set_permissions(src.join("locked-dir"), fs::Permissions::from_mode(0o755)).unwrap();
    let snaps = cli.json(&["snapshots"]);
    assert_eq!(snaps[0]["incomplete"], true);
    assert_eq!(snaps[0]["summary"]["warnings"], 2);
    let listing = cli.ok(&["ls", "latest"]);
    assert!(listing.contains("/readable"));
    assert!(!listing.contains("/unreadable"));
}

#[test]
fn a_file_that_keeps_changing_while_read_is_flagged() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let busy = src.join("busy.db");
    fs::write(&busy, noise(3, 32 << 20)).unwrap();
    fs::write(src.join("calm"), b"still").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let busy = busy.clone();
        std::thread::spawn(move || {
            use std::os::unix::fs::FileExt;
            let f = fs::OpenOptions::new().write(true).open(&busy).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                f.write_all_at(&i.to_le_bytes(), (i * 4099) % (32 << 20))
                    .unwrap();
                i += 1;
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let out = cli.run(&["--json", "backup", src.to_str().unwrap()]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(
        code(&out),
        3,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = &report["warnings"][0];
    assert!(w["path"].as_str().unwrap().ends_with("busy.db"));
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("changed while it was read")
    );
    // The snapshot is still usable, and the calm file is in it.
    let target = cli.dir.path().join("out");
    cli.ok(&[
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(target.join("calm")).unwrap(), b"still");
    assert_eq!(
        fs::metadata(target.join("busy.db")).unwrap().len(),
        32 << 20
    );
}

/// Runs a backup of `src` while `meddle` works on it in another thread.
fn backup_while(
    cli: &Cli,
    src: &std::path::Path,
    meddle: impl FnOnce(&AtomicBool) + Send + 'static,
) -> std::process::Output {
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || meddle(&stop))
    };
    let out = cli.run(&["--json", "backup", src.to_str().unwrap()]);
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    out
}

#[test]
fn files_that_vanish_during_the_backup_are_named_and_the_rest_is_stored_whole() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let originals: Vec<Vec<u8>> = (0..400)
        .map(|i| noise(i, 20_000 + i as usize * 50))
        .collect();
    for (i, data) in originals.iter().enumerate() {
        fs::write(src.join(format!("f{i:03}")), data).unwrap();
    }
    let doomed = src.clone();
    let out = backup_while(&cli, &src, move |stop| {
        // Deletes every other file, from the end of the listing backwards, so that some go
        // before the backup reaches them and some after.
        for i in (0..400).rev().step_by(2) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let _ = fs::remove_file(doomed.join(format!("f{i:03}")));
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
    });
    let rc = code(&out);
    assert!(
        rc == 0 || rc == 3,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(rc == 3, !warnings.is_empty());
    for w in warnings {
        let path = std::path::Path::new(w["path"].as_str().unwrap());
        assert!(
            !path.exists(),
            "{} was warned about but is there",
            path.display()
        );
        assert!(
            w["message"].as_str().unwrap().contains("No such file"),
            "{w}"
        );
    }
    let snaps = cli.json(&["snapshots"]);
    assert_eq!(snaps[0]["incomplete"], rc == 3);

    let target = cli.dir.path().join("out");
    cli.ok(&[
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        target.to_str().unwrap(),
    ]);
    let mut restored = 0;
    for (i, data) in originals.iter().enumerate() {
        let name = format!("f{i:03}");
        match fs::read(target.join(&name)) {
            Ok(got) => {
                assert_eq!(&got, data, "{name} restored with other bytes");
                restored += 1;
            }
            Err(_) => assert!(
                !src.join(&name).exists(),
                "{name} is there but was not stored"
            ),
        }
    }
    assert!(
        restored >= 200,
        "the files never deleted are all stored ({restored})"
    );
    eprintln!("vanish: {} warned, {restored} stored", warnings.len());
}

#[test]
fn a_file_that_grows_during_the_backup_is_flagged_and_stored_as_a_prefix() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let log = src.join("growing.log");
    fs::write(&log, noise(5, 24 << 20)).unwrap();
    let path = log.clone();
    let out = backup_while(&cli, &src, move |stop| {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            f.write_all(&noise(1000 + i, 4096)).unwrap();
            i += 1;
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
    });
    assert_eq!(code(&out), 3, "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["warnings"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("growing.log")
    );
    let target = cli.dir.path().join("out");
    cli.ok(&[
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        target.to_str().unwrap(),
    ]);
    let stored = fs::read(target.join("growing.log")).unwrap();
    let now = fs::read(&log).unwrap();
    assert!(stored.len() >= 24 << 20);
    assert!(
        now.starts_with(&stored),
        "what was stored is a prefix of the file, never a mix"
    );
}

#[test]
fn a_read_only_restore_target_fails_at_once_with_a_clear_message() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"data").unwrap();
    cli.backup(&src);
    let target = cli.dir.path().join("ro");
    fs::create_dir_all(&target).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&target)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let out = cli.run(&[
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        target.to_str().unwrap(),
    ]);
    let _ = Command::new("umount").arg(&target).status();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 1, "{err}");
    assert!(err.contains("cannot write to the restore target"), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
