//! Faults on the source side: an unreadable file is skipped with a warning and exit code 3, a
//! file that keeps changing while read is flagged, and in both cases the rest of the backup
//! completes and the snapshot is marked incomplete.

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
