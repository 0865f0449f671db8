//! Crash safety, by killing real `repo` processes with SIGKILL during backup, forget, prune and
//! repair:
//! - at every point where a command changes the repository, one after another: with
//!   `KAIRN_FAULTS=kill-after=N` the process sends itself SIGKILL right after its N-th write,
//!   exclusive create or delete, for N = 1, 2, ... until the command gets to its end;
//! - at random moments chosen by the test, mid-request included.
//!
//! After every kill: `repo check` is clean, the next backup succeeds, and (at the end of each
//! sweep) every snapshot ever reported as written restores bit for bit, or was forgotten.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use kairn_e2e::{Cli, Rng, code, contents, noise, restored, small_packs, snapshot_ids};

/// The issue asks for at least this many kill points per run.
const MIN_KILL_POINTS: usize = 200;

/// Short, so that the sessions of killed writers go stale within the run and prunes sweep.
const SESSION_EXPIRY: &str = "6";

type Contents = BTreeMap<PathBuf, [u8; 32]>;

struct Harness {
    cli: Cli,
    src: PathBuf,
    /// Snapshots reported as written (by a backup that exited 0), with what they hold.
    reported: BTreeMap<String, Contents>,
    /// Kill points per command.
    kills: BTreeMap<&'static str, usize>,
    rng: Rng,
    generation: u64,
}

fn killed(out: &Output) -> bool {
    out.status.signal() == Some(9)
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Harness {
    fn new(seed: u64) -> Self {
        let cli = small_packs();
        let src = cli.dir.path().join("volume");
        std::fs::create_dir_all(&src).expect("source");
        let mut h = Self {
            cli,
            src,
            reported: BTreeMap::new(),
            kills: BTreeMap::new(),
            rng: Rng(seed),
            generation: 0,
        };
        for i in 0..6 {
            h.write_file(i);
        }
        h.backup();
        h
    }

    fn run(&self, args: &[&str], faults: Option<&str>) -> Output {
        let mut cmd = self.cli.cmd();
        cmd.args(args).env("KAIRN_SESSION_EXPIRY", SESSION_EXPIRY);
        if let Some(f) = faults {
            cmd.env("KAIRN_FAULTS", f);
        }
        cmd.output().expect("run repo")
    }

    fn write_file(&mut self, slot: u64) {
        self.generation += 1;
        let len = 150_000 + self.rng.below(400_000) as usize;
        let seed = self.generation * 1_000_003 + slot;
        std::fs::write(self.src.join(format!("f{slot}")), noise(seed, len)).expect("write");
    }

    /// About 1.5 MB of new data: a few packs' worth.
    fn change_source(&mut self) {
        for _ in 0..3 {
            let slot = self.rng.below(8);
            self.write_file(slot);
        }
        if self.rng.below(4) == 0 {
            let _ = std::fs::remove_file(self.src.join(format!("f{}", self.rng.below(8))));
        }
    }

    /// A backup that must succeed; its snapshot joins the reported ones.
    fn backup(&mut self) {
        let out = self.run(
            &["--json", "backup", self.src.to_str().expect("utf-8")],
            None,
        );
        assert_eq!(code(&out), 0, "backup failed: {}", describe(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let id = v["snapshot"].as_str().expect("snapshot id").to_string();
        self.reported.insert(id, contents(&self.src));
    }

    fn check(&self, read_data: bool, after: &str) {
        let args: &[&str] = if read_data {
            &["check", "--read-data"]
        } else {
            &["check"]
        };
        let out = self.run(args, None);
        assert_eq!(code(&out), 0, "check after {after}: {}", describe(&out));
    }

    /// What every kill must leave: a repository that checks clean and takes the next backup.
    fn after_kill(&mut self, command: &'static str, point: &str) {
        *self.kills.entry(command).or_default() += 1;
        self.check(false, &format!("{command} killed at {point}"));
        self.change_source();
        self.backup();
    }

    /// Runs `args` killed after its 1st, 2nd, ... change, until it completes. `prepare` runs
    /// before each attempt and returns the arguments.
    fn sweep(&mut self, command: &'static str, mut prepare: impl FnMut(&mut Self) -> Vec<String>) {
        for n in 1.. {
            let args = prepare(self);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = self.run(&args, Some(&format!("kill-after={n}")));
            if !killed(&out) {
                assert_eq!(
                    code(&out),
                    0,
                    "{command} after {n} changes: {}",
                    describe(&out)
                );
                self.forgotten_are_gone();
                return;
            }
            self.forgotten_are_gone();
            self.after_kill(command, &format!("change {n}"));
            assert!(n < 500, "{command} never completed");
        }
    }

    /// Kills `args` at random moments within the time an uninterrupted run takes.
    fn random_kills(
        &mut self,
        command: &'static str,
        times: usize,
        mut prepare: impl FnMut(&mut Self) -> Vec<String>,
    ) {
        let mut typical = Duration::from_millis(200);
        for _ in 0..times {
            let args = prepare(self);
            let mut cmd = self.cli.cmd();
            cmd.args(&args)
                .env("KAIRN_SESSION_EXPIRY", SESSION_EXPIRY)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let started = Instant::now();
            let mut child = cmd.spawn().expect("spawn repo");
            let at = typical.mul_f64(self.rng.below(1000) as f64 / 1000.0);
            std::thread::sleep(at);
            let _ = child.kill();
            let status = child.wait().expect("wait");
            self.forgotten_are_gone();
            if status.signal() == Some(9) {
                self.after_kill(command, &format!("{} ms", at.as_millis()));
            } else {
                assert_eq!(status.code(), Some(0), "{command} {args:?}");
                typical = started.elapsed();
                if command == "backup" {
                    // Completed before the kill, so not reported: what it wrote must still
                    // check clean, and the source is backed up again below.
                    self.change_source();
                    self.backup();
                }
            }
        }
    }

    /// Reported snapshots that are no longer listed were forgotten on purpose; drop them.
    fn forgotten_are_gone(&mut self) {
        let listed: std::collections::BTreeSet<String> =
            snapshot_ids(&self.cli).into_iter().collect();
        self.reported.retain(|id, _| listed.contains(id));
    }

    fn oldest(&self, n: usize) -> Vec<String> {
        self.reported.keys().take(n).cloned().collect()
    }

    /// Restores every reported snapshot and compares it with the source as it was.
    fn verify_all(&self, after: &str) {
        self.check(true, after);
        for (id, expected) in &self.reported {
            let got = restored(&self.cli, id, &self.src);
            assert_eq!(&got, expected, "snapshot {id} after {after}");
        }
    }
}

fn backup_args(h: &mut Harness) -> Vec<String> {
    h.change_source();
    vec!["backup".into(), h.src.to_str().expect("utf-8").into()]
}

/// Forgets the two oldest reported snapshots; only ever forgets reported ones that the test
/// drops from its expectations once they are gone.
fn forget_args(h: &mut Harness) -> Vec<String> {
    let mut args = vec!["forget".to_string()];
    args.extend(h.oldest(2));
    args
}

/// Forgets some snapshots first (uninterrupted), so that the prune has something to remove.
fn prune_args(h: &mut Harness) -> Vec<String> {
    let ids = h.oldest(2);
    if h.reported.len() > 4 {
        let mut args: Vec<&str> = vec!["forget"];
        args.extend(ids.iter().map(String::as_str));
        let out = h.run(&args, None);
        assert_eq!(code(&out), 0, "forget: {}", describe(&out));
        h.forgotten_are_gone();
    }
    vec!["prune".into(), "--max-unused".into(), "0".into()]
}

fn repair_args(_: &mut Harness) -> Vec<String> {
    vec!["repair".into(), "index".into()]
}

#[test]
fn sigkill_at_every_change_and_at_random_moments_never_loses_a_reported_snapshot() {
    let mut h = Harness::new(0x5eed_c0de);
    let mut round = 0;
    while h.kills.values().sum::<usize>() < MIN_KILL_POINTS {
        round += 1;
        assert!(round <= 12, "too few kill points per round: {:?}", h.kills);
        h.sweep("backup", backup_args);
        h.verify_all("the backup sweep");
        h.sweep("forget", forget_args);
        h.sweep("prune", prune_args);
        h.verify_all("the prune sweep");
        h.sweep("repair", repair_args);
        h.random_kills("backup", 4, backup_args);
        h.random_kills("prune", 2, prune_args);
        h.verify_all(&format!("round {round}"));
    }
    // Let the killed writers' sessions go stale; then a prune deletes everything unused, and
    // what is left still restores.
    std::thread::sleep(Duration::from_secs(7));
    let out = h.run(&["prune", "--max-unused", "0", "--wait"], None);
    assert_eq!(code(&out), 0, "final prune: {}", describe(&out));
    h.verify_all("the final prune");
    eprintln!(
        "kill points: {} in {round} rounds ({:?}); {} snapshots verified",
        h.kills.values().sum::<usize>(),
        h.kills,
        h.reported.len()
    );
}

/// A killed backup leaves packs that no index names yet (§14). The next backup of the same data
/// must not upload them again: it finds them, indexes them, and reuses their blobs.
#[test]
fn a_rerun_backup_uploads_no_pack_that_is_already_stored() {
    let h = Harness::new(7);
    let big = h.cli.dir.path().join("big");
    std::fs::create_dir_all(&big).expect("dir");
    for i in 0..6 {
        std::fs::write(big.join(format!("b{i}")), noise(900 + i, 1_500_000)).expect("write");
    }
    let packs = |h: &Harness| -> std::collections::BTreeSet<PathBuf> {
        h.cli.files("data").into_iter().collect()
    };
    let before = packs(&h);
    // Kill after a few packs were written, before any index or snapshot.
    let out = h.run(
        &["backup", big.to_str().expect("utf-8")],
        Some("kill-after=5"),
    );
    assert!(killed(&out), "{}", describe(&out));
    let left: Vec<PathBuf> = packs(&h).difference(&before).cloned().collect();
    assert!(left.len() >= 3, "the killed backup stored packs: {left:?}");
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .expect("stat")
            .modified()
            .expect("mtime")
    };
    let left_stamps: Vec<_> = left.iter().map(|p| stamp(p)).collect();

    let v = h.cli.json(&["backup", big.to_str().expect("utf-8")]);
    let id = v["snapshot"].as_str().expect("id").to_string();
    for (p, t) in left.iter().zip(&left_stamps) {
        assert!(p.exists(), "{} was removed", p.display());
        assert_eq!(stamp(p), *t, "{} was written again", p.display());
    }
    // The data is incompressible noise, so each adopted pack spares its size in new bytes.
    let total: u64 = 6 * 1_500_000;
    let adopted: u64 = left
        .iter()
        .map(|p| std::fs::metadata(p).expect("stat").len())
        .sum();
    let new_raw = v["summary"]["new_bytes_raw"]
        .as_u64()
        .expect("new_bytes_raw");
    assert!(
        new_raw + adopted <= total + 64 * 1024,
        "the rerun stored {new_raw} new bytes beside {adopted} bytes in {} adopted packs",
        left.len()
    );
    assert_eq!(restored(&h.cli, &id, &big), contents(&big));
    h.check(true, "the rerun");
}

/// A restore that stopped part-way (here: first only one directory, then a run killed at a
/// random moment) is run again: files already in place with the right content are not written
/// again, and the result is the whole snapshot.
#[test]
fn a_rerun_restore_skips_the_files_already_in_place() {
    let h = Harness::new(11);
    let src = &h.src;
    let sub = src.join("sub");
    std::fs::create_dir_all(&sub).expect("dir");
    for i in 0..20 {
        std::fs::write(sub.join(format!("s{i}")), noise(500 + i, 200_000)).expect("write");
    }
    let id = h.cli.backup(src);
    let all = contents(src);
    let target = h.cli.dir.path().join("restore");
    let spec = format!("{id}:{}", src.display());
    let restore = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "restore",
            &spec,
            "--target",
            target.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        h.cli.json(&args)
    };
    let first = restore(&["--include", "/sub"]);
    assert_eq!(first["unchanged"], 0);
    assert_eq!(first["files"], 20);
    // A file changed in the target since is not "in place": it is written again.
    std::fs::write(target.join("sub/s3"), b"changed").expect("write");
    let second = restore(&[]);
    assert_eq!(second["unchanged"], 19, "{second}");
    assert_eq!(contents(&target), all);

    // Killed at a random moment, then run again: the whole snapshot, whatever was done.
    let target2 = h.cli.dir.path().join("restore2");
    let mut child = h
        .cli
        .cmd()
        .args([
            "restore",
            &spec,
            "--target",
            target2.to_str().expect("utf-8"),
        ])
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(150));
    let _ = child.kill();
    let _ = child.wait();
    h.cli.ok(&[
        "restore",
        &spec,
        "--target",
        target2.to_str().expect("utf-8"),
    ]);
    assert_eq!(contents(&target2), all);
}
