//! Command-line usage errors. (Also makes `cargo test` build the `repo` binary, which the
//! end-to-end tests in `tests/` run.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn repo() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_repo"));
    c.env_remove("KAIRN_REPOSITORY")
        .env_remove("KAIRN_PASSWORD")
        .env_remove("KAIRN_PASSWORD_FILE");
    c
}

#[test]
fn help_succeeds_and_bad_usage_exits_2() {
    assert_eq!(
        repo().arg("--help").output().unwrap().status.code(),
        Some(0)
    );
    assert_eq!(
        repo()
            .arg("no-such-command")
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    let out = repo().args(["snapshots"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "no repository given is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("KAIRN_REPOSITORY"));
}

#[test]
fn missing_password_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = repo()
        .arg("-r")
        .arg(dir.path())
        .arg("snapshots")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no password"));
}
