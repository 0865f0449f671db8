//! Ctrl-C and SIGTERM: a backup asked to stop says so, ends its session (no heartbeat left to
//! hold back a prune), leaves nothing staged, keeps the packs it stored for the next run, and
//! exits 130 or 143. A second Ctrl-C exits at once, even while the backup is blocked.
//!
//! The backups here read standard input from a pipe the test controls, so the moment of the
//! signal is chosen by what was written, not by timing.

use std::io::Write;
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use kairn_e2e::{Cli, check_clean, noise, small_packs, snapshot_ids, walk_files};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn stdin_backup(cli: &Cli) -> (Child, ChildStdin) {
    let mut child = cli
        .cmd()
        .args(["backup", "--stdin", "--stdin-filename", "stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start repo backup");
    let stdin = child.stdin.take().expect("piped stdin");
    (child, stdin)
}

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).expect("send signal");
}

/// Waits for the child, killing it and failing if it does not end within a minute.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("poll child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("repo did not stop within a minute of the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("collect output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_for_a_pack(cli: &Cli) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while walk_files(&cli.repo.join("data")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no pack was stored within a minute"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stopped_in_order_by(sig: Signal, expected_code: i32) {
    let cli = small_packs();
    let (child, mut stdin) = stdin_backup(&cli);
    stdin
        .write_all(&noise(1, 6 << 20))
        .expect("feed the backup");
    wait_for_a_pack(&cli);
    signal(&child, sig);
    // More data makes at least one more batch, where the backup looks at the request; then
    // the end of the stream. Either may fail once the backup has stopped reading.
    let _ = stdin.write_all(&noise(2, 2 << 20));
    drop(stdin);
    let (code, stderr) = finish(child);

    assert_eq!(code, Some(expected_code), "stderr: {stderr}");
    assert!(stderr.contains("interrupted"), "stderr: {stderr}");
    assert!(
        snapshot_ids(&cli).is_empty(),
        "a stopped backup wrote a snapshot"
    );
    assert!(
        walk_files(&cli.repo.join("sessions")).is_empty(),
        "the stopped backup left its session heartbeat"
    );
    assert!(
        walk_files(&cli.repo.join("tmp")).is_empty(),
        "the stopped backup left a staged file"
    );
    assert!(
        !walk_files(&cli.repo.join("data")).is_empty(),
        "the packs already stored must be kept for the next run"
    );

    // The next run succeeds with nothing touched by hand.
    let dir = tempfile::tempdir().expect("test setup");
    std::fs::write(dir.path().join("f"), noise(3, 100_000)).expect("test setup");
    cli.backup(dir.path());
    check_clean(&cli);
}

#[test]
fn ctrl_c_during_a_backup_stops_in_order_and_exits_130() {
    stopped_in_order_by(Signal::SIGINT, 130);
}

#[test]
fn sigterm_during_a_backup_stops_in_order_and_exits_143() {
    stopped_in_order_by(Signal::SIGTERM, 143);
}

#[test]
fn a_second_ctrl_c_exits_at_once_while_the_backup_is_blocked() {
    let cli = small_packs();
    let (mut child, stdin) = stdin_backup(&cli);
    let lines = stderr_lines(&mut child);
    // Nothing is written: the backup blocks reading its input, where it cannot look at the
    // request, so only the second Ctrl-C can end it. Its session shows it is running.
    let deadline = Instant::now() + Duration::from_secs(60);
    while walk_files(&cli.repo.join("sessions")).is_empty() {
        assert!(Instant::now() < deadline, "the backup did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, Signal::SIGINT);
    loop {
        let said = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the first Ctrl-C says how to stop at once");
        if said.contains("press Ctrl-C again") {
            break;
        }
    }
    signal(&child, Signal::SIGINT);
    let (code, _) = finish(child);
    drop(stdin);
    assert_eq!(code, Some(130));
}

/// The lines the child writes to stderr, as they come.
fn stderr_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}
