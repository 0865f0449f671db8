//! Command-line usage without a cluster. (Also makes `cargo test --workspace` build the
//! `kubectl-kairn` binary, which the end-to-end tests in `tests/` run against a real API server.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn plugin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-kairn"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

#[test]
fn help_lists_the_commands_and_bad_usage_exits_2() {
    let help = plugin(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for command in [
        "backup",
        "restore",
        "restore-namespace",
        "get",
        "describe",
        "logs",
    ] {
        assert!(
            text.contains(command),
            "{command} missing from --help:\n{text}"
        );
    }
    assert_eq!(plugin(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(plugin(&["get", "--no-such-flag"]).status.code(), Some(2));
}

#[test]
fn an_unreadable_kubeconfig_is_an_error_that_names_it() {
    let out = plugin(&["--kubeconfig", "/nonexistent/kubeconfig", "get"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/kubeconfig"),
        "the message names the file: {stderr}"
    );
}
