//! Random damage to random repository files: bit flips, truncation, deletion, duplication under
//! another name, and swapped contents. Under each, `check --read-data` reports it, and a restore
//! either gives a file back bit for bit or names it; no file is ever written with a wrong byte
//! without its path in the errors, and a restore that exits 0 gave back everything.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use kairn_e2e::{Cli, Rng, code, noise, walk_files};

/// Every kind of file under every kind of damage, four times over.
const TRIALS: u64 = 100;
const KINDS: [&str; 5] = ["config", "keys", "snapshots", "index", "data"];

#[derive(Debug, Clone, Copy)]
enum Damage {
    BitFlip,
    Truncate,
    Delete,
    Duplicate,
    Swap,
}

/// A repository with two snapshots; returns it, the source, and the id of the second snapshot.
fn pristine() -> (Cli, PathBuf, String) {
    let cli = Cli::init_with(&[&["--pack-size-mib", "1"][..], &kairn_e2e::SMALL_CHUNKS].concat());
    let src = cli.dir.path().join("src");
    for d in 0..3u64 {
        let dir = src.join(format!("dir{d}"));
        fs::create_dir_all(&dir).expect("dir");
        for i in 0..5u64 {
            let len = 1_000 + ((d * 5 + i) * 97_003 % 400_000) as usize;
            fs::write(dir.join(format!("f{i}")), noise(d * 10 + i, len)).expect("write");
        }
    }
    fs::write(src.join("small"), b"small file").expect("write");
    cli.backup(&src);
    fs::write(src.join("dir1/f0"), noise(999, 300_000)).expect("write");
    let id = cli.backup(&src);
    (cli, src, id)
}

/// The repository files damage may hit: everything but the (empty) directories.
fn repository_files(repo: &Path) -> Vec<PathBuf> {
    walk_files(repo)
        .into_iter()
        .filter(|p| !p.strip_prefix(repo).is_ok_and(|r| r.starts_with("tmp")))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .args(["-a", "--"])
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

/// Damages `file` (`files` are the others of its kind); returns what was done, for messages.
fn damage(rng: &mut Rng, repo: &Path, files: &[PathBuf], file: &Path, how: Damage) -> String {
    let rel = file
        .strip_prefix(repo)
        .expect("inside")
        .display()
        .to_string();
    match how {
        Damage::BitFlip => {
            let mut bytes = fs::read(file).expect("read");
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
            fs::write(file, bytes).expect("write");
            format!("flipped a bit at {at} of {rel}")
        }
        Damage::Truncate => {
            let len = fs::metadata(file).expect("stat").len();
            let keep = rng.below(len);
            fs::OpenOptions::new()
                .write(true)
                .open(file)
                .and_then(|f| f.set_len(keep))
                .expect("truncate");
            format!("truncated {rel} to {keep} of {len} bytes")
        }
        Damage::Delete => {
            fs::remove_file(file).expect("delete");
            format!("deleted {rel}")
        }
        Damage::Duplicate => {
            let name = format!(
                "{:016x}{:016x}{:016x}{:016x}",
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64()
            );
            // Packs fan out into directories by the first two digits of their names.
            let copy = if file.strip_prefix(repo).is_ok_and(|r| r.starts_with("data")) {
                let dir = repo.join("data").join(&name[..2]);
                fs::create_dir_all(&dir).expect("fan-out dir");
                dir.join(&name)
            } else {
                file.with_file_name(&name)
            };
            fs::copy(file, &copy).expect("copy");
            format!("copied {rel} to {name}")
        }
        Damage::Swap => {
            let other = files
                .iter()
                .find(|p| p.as_path() != file)
                .expect("a second file of the kind");
            let a = fs::read(file).expect("read");
            let b = fs::read(other).expect("read");
            fs::write(file, b).expect("write");
            fs::write(other, a).expect("write");
            format!(
                "swapped {rel} with {}",
                other.strip_prefix(repo).expect("inside").display()
            )
        }
    }
}

fn sources(src: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walk_files(src)
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).expect("read");
            (p.strip_prefix(src).expect("inside").to_path_buf(), bytes)
        })
        .collect()
}

/// Restores the latest snapshot; every file comes back right, or is named, or (when restore
/// could not start at all) is absent.
fn restore_names_what_it_cannot_give_back(cli: &Cli, src: &Path, id: &str, label: &str) -> i32 {
    let expected = sources(src);
    let target = tempfile::tempdir().expect("tempdir");
    let spec = format!("{id}:{}", src.display());
    let out = cli.run(&[
        "restore",
        &spec,
        "--target",
        target.path().to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{label}: {err}");
    let rc = code(&out);
    for (rel, want) in &expected {
        let path = target.path().join(rel);
        let named = err.contains(&rel.display().to_string());
        match fs::read(&path) {
            Ok(got) if &got == want => {}
            Ok(_) => assert!(
                named,
                "{label}: {} has wrong bytes, silently\n{err}",
                rel.display()
            ),
            Err(_) => assert!(
                named || rc != 0,
                "{label}: {} is missing, silently (exit {rc})\n{err}",
                rel.display()
            ),
        }
    }
    if rc == 0 {
        assert_eq!(
            sources(target.path()),
            expected,
            "{label}: exit 0 must mean everything"
        );
    }
    rc
}

#[test]
fn random_damage_is_reported_by_check_and_never_restored_silently() {
    let (pristine_cli, src, id) = pristine();
    let mut rng = Rng(0xdead_beef);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for trial in 0..TRIALS {
        let work = tempfile::tempdir().expect("tempdir");
        let repo = work.path().join("repo");
        copy_dir(&pristine_cli.repo, &repo);
        let mut cli = Cli::uninitialised();
        cli.repo = repo.clone();
        fs::copy(&pristine_cli.password_file, &cli.password_file).expect("password");

        let files = repository_files(&repo);
        let kind = KINDS[(trial % 5) as usize].to_string();
        let of_kind = |p: &PathBuf| p.strip_prefix(&repo).is_ok_and(|r| r.starts_with(&kind));
        let candidates: Vec<&PathBuf> = files.iter().filter(|p| of_kind(p)).collect();
        let file = candidates[rng.below(candidates.len() as u64) as usize];
        let how = match (trial / 5) % 5 {
            0 => Damage::BitFlip,
            1 => Damage::Truncate,
            2 => Damage::Delete,
            // `config` has a fixed name: a copy under another is not a repository file.
            3 if kind != "config" => Damage::Duplicate,
            4 if candidates.len() > 1 => Damage::Swap,
            _ => Damage::BitFlip,
        };
        let same_kind: Vec<PathBuf> = candidates.into_iter().cloned().collect();
        let what = damage(&mut rng, &repo, &same_kind, file, how);
        let label = format!("trial {trial}: {what}");
        *seen.entry(format!("{kind} {how:?}")).or_default() += 1;

        let check = cli.run(&["--json", "check", "--read-data"]);
        let check_err = String::from_utf8_lossy(&check.stderr).into_owned();
        assert!(!check_err.contains("panicked"), "{label}: {check_err}");
        let harmless_copy = matches!(how, Damage::Duplicate) && kind == "data";
        match (how, kind.as_str()) {
            // A deleted snapshot cannot be told from a forgotten one (RELIABILITY.md): restoring
            // it by id fails, below. Append-only keys and Object Lock are the defence.
            (Damage::Delete, "snapshots") => {}
            // A pack under a second name is an unindexed pack: reported; prune removes it.
            (Damage::Duplicate, "data") => {
                let report: serde_json::Value =
                    serde_json::from_slice(&check.stdout).expect("check json");
                assert!(
                    report["unindexed_packs"].as_u64() >= Some(1),
                    "{label}: {report}"
                );
            }
            _ => assert_ne!(code(&check), 0, "{label}: check saw nothing\n{check_err}"),
        }
        let rc = restore_names_what_it_cannot_give_back(&cli, &src, &id, &label);
        // Damage to index files only costs the index: rebuilt from the packs, everything is back.
        if kind == "index" && !harmless_copy {
            let out = cli.run(&["repair", "index"]);
            assert_eq!(
                code(&out),
                0,
                "{label}: repair index\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                restore_names_what_it_cannot_give_back(&cli, &src, &id, &label),
                0,
                "{label}: after repair index (first restore exited {rc})"
            );
        }
    }
    eprintln!("damage done: {seen:?}");
}
