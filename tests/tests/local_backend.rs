//! The local backend against what a hostile or careless user can put in a repository directory:
//! a FIFO or a symbolic link in place of a pack, and a umask that would share the files
//! (issue 17 §3, §5).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kairn_e2e::{CHEAP_KDF, Cli, code, noise, repo_bin, small_packs};

/// Long enough for any honest run; a regression that hangs fails here instead of hanging CI.
const KILL_AFTER: Duration = Duration::from_secs(120);

/// Runs `cmd`, killing it (and failing) if it outlives [`KILL_AFTER`].
fn run_or_kill(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(KILL_AFTER) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("the command still ran after {KILL_AFTER:?}: it hangs");
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A repository with one snapshot of a few MB, and the path of one of its packs.
fn repo_with_a_pack() -> (Cli, PathBuf) {
    let cli = small_packs();
    let vol = cli.dir.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("data"), noise(7, 3 << 20)).unwrap();
    cli.backup(&vol);
    let pack = cli.files("data").into_iter().next().unwrap();
    (cli, pack)
}

#[test]
fn a_fifo_in_place_of_a_pack_is_reported_and_never_hangs() {
    let (cli, pack) = repo_with_a_pack();
    fs::remove_file(&pack).unwrap();
    nix::unistd::mkfifo(&pack, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let target = cli.dir.path().join("target");
    let mut restore = cli.cmd();
    restore.args(["restore", "latest", "--target"]).arg(&target);
    let out = run_or_kill(restore);
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("not a regular file: a FIFO"),
        "{}",
        text(&out)
    );
    let mut check = cli.cmd();
    check.args(["check", "--read-data"]);
    let out = run_or_kill(check);
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("not a regular file: a FIFO"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_symlink_in_place_of_a_pack_is_not_followed() {
    let (cli, pack) = repo_with_a_pack();
    // A size no pack here has, so that its appearance in any output would give it away.
    let secret = cli.dir.path().join("secret");
    fs::write(&secret, vec![0u8; 7_654_321]).unwrap();
    fs::remove_file(&pack).unwrap();
    std::os::unix::fs::symlink(&secret, &pack).unwrap();
    for args in [&["check"][..], &["check", "--read-data"][..]] {
        let mut check = cli.cmd();
        check.args(args);
        let out = run_or_kill(check);
        let said = text(&out);
        assert_ne!(code(&out), 0, "{said}");
        assert!(said.contains("a symbolic link"), "{said}");
        for size in ["7654321", "7.3 MiB", "7.30 MiB", "7.6 MB"] {
            assert!(!said.contains(size), "the target's size leaked: {said}");
        }
    }
    // A FIFO outside, behind a link: following it would block the reader forever.
    fs::remove_file(&pack).unwrap();
    let fifo = cli.dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::os::unix::fs::symlink(&fifo, &pack).unwrap();
    let mut check = cli.cmd();
    check.args(["check", "--read-data"]);
    let out = run_or_kill(check);
    assert!(text(&out).contains("a symbolic link"), "{}", text(&out));
}

/// Runs `repo ARGS` on `cli`'s repository under umask 000.
fn under_umask_000(cli: &Cli, args: &[&str]) -> Output {
    let out = Command::new("sh")
        .args(["-c", "umask 000 && exec \"$@\"", "sh"])
        .arg(repo_bin())
        .arg("-r")
        .arg(&cli.repo)
        .arg("--password-file")
        .arg(&cli.password_file)
        .args(args)
        .env("XDG_CACHE_HOME", cli.dir.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "repo {args:?}: {}", text(&out));
    out
}

fn assert_private(dir: &Path) -> usize {
    let mut files = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
            files += assert_private(&path);
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
            files += 1;
        }
    }
    files
}

#[test]
fn repository_files_are_private_whatever_the_umask() {
    let cli = Cli::uninitialised();
    let vol = cli.dir.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("a"), noise(1, 100_000)).unwrap();
    let mut init = vec!["init"];
    init.extend_from_slice(&CHEAP_KDF);
    under_umask_000(&cli, &init);
    under_umask_000(&cli, &["backup", vol.to_str().unwrap()]);
    let mut add_key = vec![
        "key",
        "add",
        "--new-password-file",
        cli.password_file.to_str().unwrap(),
    ];
    add_key.extend_from_slice(&CHEAP_KDF);
    under_umask_000(&cli, &add_key);
    under_umask_000(&cli, &["forget", "--keep-last", "1", "--prune"]);
    let mode = fs::metadata(&cli.repo).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "the repository directory is {mode:o}");
    // config, two keys, a snapshot, an index file, packs.
    assert!(assert_private(&cli.repo) >= 6);
}
