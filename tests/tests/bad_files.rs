//! One bad file stops nothing else (issue 17 §3): a damaged snapshot file, junk in `sessions/`
//! or `garbage/`, and a planted key file with a huge KDF cost are each skipped with a word,
//! reported by `check`, and removable with the tool itself.

use std::fs;
use std::path::{Path, PathBuf};

use kairn_e2e::{Cli, code, noise};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stores `bytes` in the repository directory `dir` under the hash of its bytes, as a writer
/// would name it: only its content is wrong. Returns the name.
fn plant(cli: &Cli, dir: &str, bytes: &[u8]) -> String {
    let name = blake3::hash(bytes).to_hex().to_string();
    fs::create_dir_all(cli.repo.join(dir)).unwrap();
    fs::write(cli.repo.join(dir).join(&name), bytes).unwrap();
    name
}

/// Flips one bit in the middle of a file.
fn flip_bit(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn source(cli: &Cli, seed: u64) -> PathBuf {
    let src = cli.dir.path().join(format!("src{seed}"));
    fs::create_dir_all(&src).unwrap();
    for i in 0..3 {
        fs::write(src.join(format!("f{i}")), noise(seed * 10 + i, 50_000)).unwrap();
    }
    src
}

#[test]
fn a_damaged_snapshot_file_is_skipped_reported_and_removable() {
    let cli = Cli::init();
    let src = source(&cli, 1);
    let good = cli.backup(&src);
    fs::write(src.join("f0"), noise(99, 50_000)).unwrap();
    let flipped = cli.backup(&src);
    flip_bit(&cli.repo.join("snapshots").join(&flipped));
    let junk = plant(&cli, "snapshots", b"not a snapshot at all");

    let out = cli.run(&["snapshots"]);
    assert_eq!(code(&out), 0, "snapshots: {}", stderr(&out));
    assert!(stdout(&out).contains(&good[..8]), "{}", stdout(&out));
    for bad in [&flipped, &junk] {
        assert!(
            stderr(&out).contains(&format!("warning: skipped snapshot {}", &bad[..8])),
            "snapshots must warn about {bad}: {}",
            stderr(&out)
        );
    }

    // The parent lookup skips them too: the new backup is incremental on the good one.
    let out = cli.run(&["--json", "backup", src.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "backup: {}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: skipped snapshot"),
        "{}",
        stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["parent"].as_str(), Some(good.as_str()), "{v}");

    let out = cli.run(&["check"]);
    assert_eq!(code(&out), 4, "check: {}{}", stdout(&out), stderr(&out));
    for bad in [&flipped, &junk] {
        assert!(stdout(&out).contains(&bad[..8]), "{}", stdout(&out));
    }

    let out = cli.run(&["forget", &flipped[..12]]);
    assert_eq!(code(&out), 0, "forget: {}", stderr(&out));
    assert!(!cli.repo.join("snapshots").join(&flipped).exists());

    let out = cli.run(&["repair", "snapshots"]);
    assert_eq!(code(&out), 0, "repair snapshots: {}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("removed damaged snapshot file {}", &junk[..8])),
        "{}",
        stdout(&out)
    );
    assert!(!cli.repo.join("snapshots").join(&junk).exists());
    let out = cli.run(&["check"]);
    assert_eq!(code(&out), 0, "check: {}{}", stdout(&out), stderr(&out));
}

#[test]
fn junk_in_sessions_and_garbage_is_reported_held_back_then_skipped_and_removable() {
    let cli = Cli::init();
    let first = cli.backup(&source(&cli, 1));
    cli.backup(&source(&cli, 2));
    cli.ok(&["forget", &first]);
    let session_junk = plant(&cli, "sessions", b"junk heartbeat");
    let garbage_junk = plant(&cli, "garbage", b"junk garbage list");
    let packs_before = cli.files("data").len();

    let out = cli.run(&["check"]);
    assert_eq!(code(&out), 4, "check: {}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!("session file {}", &session_junk[..8]))
            && stdout(&out).contains(&format!("garbage list {}", &garbage_junk[..8])),
        "{}",
        stdout(&out)
    );

    // Young, the unreadable heartbeat may be a live writer's: nothing is deleted.
    let out = cli.run(&["--json", "prune"]);
    assert_eq!(code(&out), 0, "prune: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(v["held_back_until"].is_i64(), "{v}");
    assert_eq!(v["deleted_packs"], 0, "{v}");
    assert_eq!(cli.files("data").len(), packs_before);

    // Older than the session expiry by storage time, it holds nothing back.
    let old =
        filetime::FileTime::from_unix_time(filetime::FileTime::now().unix_seconds() - 7200, 0);
    filetime::set_file_mtime(cli.repo.join("sessions").join(&session_junk), old).unwrap();
    let out = cli.run(&["prune"]);
    assert_eq!(code(&out), 0, "prune: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("unreadable session file {}", &session_junk[..8]))
            && text.contains(&format!(
                "skipped unreadable garbage list {}",
                &garbage_junk[..8]
            )),
        "{text}"
    );
    assert!(cli.files("data").len() < packs_before, "{text}");

    let listed = cli.ok(&["repair", "sessions"]);
    assert!(
        listed.contains(&session_junk[..8]) && listed.contains(&garbage_junk[..8]),
        "{listed}"
    );
    for junk in [&session_junk, &garbage_junk] {
        let out = cli.run(&["repair", "sessions", "--remove", &junk[..10]]);
        assert_eq!(code(&out), 0, "repair sessions --remove: {}", stderr(&out));
    }
    assert!(!cli.repo.join("sessions").join(&session_junk).exists());
    assert!(!cli.repo.join("garbage").join(&garbage_junk).exists());
    let out = cli.run(&["check"]);
    assert_eq!(code(&out), 0, "check: {}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("no problems found"));
}

/// A copy of a key file with other KDF costs, stored under its own hash: what an attacker with
/// write access to `keys/` can plant. It never opens, but each try costs what it asks.
fn plant_key_with_cost(cli: &Cli, template: &Path, memory_kib: u64) -> String {
    let mut key: serde_json::Value = serde_json::from_slice(&fs::read(template).unwrap()).unwrap();
    key["kdf_params"]["memory_kib"] = memory_kib.into();
    plant(cli, "keys", &serde_json::to_vec_pretty(&key).unwrap())
}

#[test]
fn key_files_above_the_kdf_limit_are_skipped_with_a_warning_and_the_flag_raises_it() {
    let cli = Cli::init();
    let first_key = cli.files("keys").pop().unwrap();
    // A planted key asking for 1 GiB is skipped under the default limit, with a warning.
    let planted = plant_key_with_cost(&cli, &first_key, 1 << 20);
    let out = cli.run(&["snapshots"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("key file {} was not tried", &planted[..8]))
            && stderr(&out).contains("memory 1024 MiB > 256 MiB"),
        "{}",
        stderr(&out)
    );

    let second_password = cli.dir.path().join("second");
    fs::write(&second_password, "second password\n").unwrap();
    // A second key of 2 MiB, made under a limit raised to allow it.
    let keys_before = names(&cli.repo.join("keys"));
    let _ = fs::remove_file(cli.repo.join("keys").join(&planted));
    cli.ok(&[
        "--max-kdf-memory",
        "2",
        "key",
        "add",
        "--new-password-file",
        second_password.to_str().unwrap(),
        "--kdf-memory-kib",
        "2048",
        "--kdf-iterations",
        "1",
    ]);
    let second = names(&cli.repo.join("keys"))
        .into_iter()
        .find(|k| !keys_before.contains(k))
        .unwrap();
    let as_second = Cli {
        dir: tempfile::tempdir().unwrap(),
        repo: cli.repo.clone(),
        password_file: second_password.clone(),
        extra: Vec::new(),
    };
    let with_second = |args: &[&str]| as_second.run(args);

    // Under a 1 MiB limit the 2 MiB key is not tried: the message says so, not just "wrong".
    let out = with_second(&["--max-kdf-memory", "1", "snapshots"]);
    assert_eq!(code(&out), 12, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not tried because their KDF cost is above the limit"),
        "{}",
        stderr(&out)
    );
    // Raised to 2 MiB, it opens.
    let out = with_second(&["--max-kdf-memory", "2", "snapshots"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The first key still opens under the low limit, with a warning naming the skipped one.
    let out = cli.run(&["--max-kdf-memory", "1", "snapshots"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("key file {} was not tried", &second[..8])),
        "{}",
        stderr(&out)
    );

    // `init` and `key add` refuse to make a key that opening would skip.
    let out = cli.run(&["key", "add", "--kdf-memory-kib", "1048576"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}
