//! Property test through the engine API: random trees, edited at random across several
//! snapshots. Every snapshot, restored at the end, equals the tree as it was when it was taken.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::backup::{BackupOptions, backup};
use engine::chunker::ChunkerParams;
use engine::crypto::KdfParams;
use engine::index::Index;
use engine::locate::locate;
use engine::progress::NoProgress;
use engine::repo::{InitOptions, Repository};
use engine::restore::{RestoreOptions, restore};
use kairn_e2e::{assert_same, noise, scan};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Write {
        dir: u8,
        name: u8,
        seed: u64,
        len: usize,
    },
    Append {
        pick: u16,
        len: usize,
    },
    Overwrite {
        pick: u16,
        at: u16,
        len: usize,
    },
    Truncate {
        pick: u16,
        to: u16,
    },
    Remove {
        pick: u16,
    },
    Mkdir {
        dir: u8,
    },
    Symlink {
        dir: u8,
        name: u8,
    },
    Chmod {
        pick: u16,
        mode: u16,
    },
    HardLink {
        pick: u16,
        name: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, any::<u8>(), any::<u64>(), prop_oneof![0usize..100, 0usize..400_000]).prop_map(|(dir, name, seed, len)| Op::Write { dir, name, seed, len }),
        2 => (any::<u16>(), 0usize..100_000).prop_map(|(pick, len)| Op::Append { pick, len }),
        2 => (any::<u16>(), any::<u16>(), 1usize..5000).prop_map(|(pick, at, len)| Op::Overwrite { pick, at, len }),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(pick, to)| Op::Truncate { pick, to }),
        1 => any::<u16>().prop_map(|pick| Op::Remove { pick }),
        1 => (0u8..6).prop_map(|dir| Op::Mkdir { dir }),
        1 => (0u8..6, any::<u8>()).prop_map(|(dir, name)| Op::Symlink { dir, name }),
        1 => (any::<u16>(), 0u16..0o7777).prop_map(|(pick, mode)| Op::Chmod { pick, mode }),
        1 => (any::<u16>(), any::<u8>()).prop_map(|(pick, name)| Op::HardLink { pick, name }),
    ]
}

fn dir_path(root: &Path, dir: u8) -> PathBuf {
    match dir {
        0 => root.to_path_buf(),
        1 => root.join("a"),
        2 => root.join("a/b"),
        3 => root.join("c"),
        4 => root.join("c/d/e"),
        _ => root.join(std::ffi::OsStr::new("n\u{e9}")),
    }
}

fn files(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = scan_paths(root)
        .into_iter()
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
        .collect();
    out.sort();
    out
}

fn scan_paths(root: &Path) -> Vec<PathBuf> {
    kairn_e2e::walk_files(root)
}

fn apply(root: &Path, op: &Op) {
    use std::os::unix::fs::PermissionsExt;
    let pick = |i: u16| {
        let all = files(root);
        (!all.is_empty()).then(|| all[i as usize % all.len()].clone())
    };
    match *op {
        Op::Write {
            dir,
            name,
            seed,
            len,
        } => {
            let d = dir_path(root, dir);
            fs::create_dir_all(&d).unwrap();
            let p = d.join(format!("f{name}"));
            if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                return;
            }
            let _ = fs::remove_file(&p);
            fs::write(p, noise(seed, len)).unwrap();
        }
        Op::Append { pick: i, len } => {
            if let Some(p) = pick(i) {
                use std::io::Write;
                fs::OpenOptions::new()
                    .append(true)
                    .open(p)
                    .unwrap()
                    .write_all(&noise(len as u64, len))
                    .unwrap();
            }
        }
        Op::Overwrite { pick: i, at, len } => {
            if let Some(p) = pick(i) {
                use std::os::unix::fs::FileExt;
                let size = fs::metadata(&p).unwrap().len();
                let at = if size == 0 { 0 } else { u64::from(at) % size };
                fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .write_all_at(&noise(at, len), at)
                    .unwrap();
            }
        }
        Op::Truncate { pick: i, to } => {
            if let Some(p) = pick(i) {
                fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(u64::from(to))
                    .unwrap();
            }
        }
        Op::Remove { pick: i } => {
            if let Some(p) = pick(i) {
                fs::remove_file(p).unwrap();
            }
        }
        Op::Mkdir { dir } => fs::create_dir_all(dir_path(root, dir)).unwrap(),
        Op::Symlink { dir, name } => {
            let d = dir_path(root, dir);
            fs::create_dir_all(&d).unwrap();
            let p = d.join(format!("l{name}"));
            let _ = fs::remove_file(&p);
            std::os::unix::fs::symlink(format!("target-{name}"), p).unwrap();
        }
        Op::Chmod { pick: i, mode } => {
            if let Some(p) = pick(i) {
                // Keep the owner able to read, so the source stays readable for the comparison.
                fs::set_permissions(p, fs::Permissions::from_mode(u32::from(mode) | 0o600))
                    .unwrap();
            }
        }
        Op::HardLink { pick: i, name } => {
            if let Some(p) = pick(i) {
                let link = root.join(format!("h{name}"));
                if link.symlink_metadata().is_err() {
                    fs::hard_link(p, link).unwrap();
                }
            }
        }
    }
}

fn repo() -> Repository {
    let backend = Arc::new(engine::backend::OpendalBackend::memory().unwrap());
    let opts = InitOptions {
        chunk_sizes: ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        },
        compression_level: 1,
        pack_size: 1 << 20,
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    Repository::init(backend, b"pw", &opts).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 50, ..ProptestConfig::default() })]

    #[test]
    fn every_snapshot_restores_as_it_was(rounds in prop::collection::vec(prop::collection::vec(op(), 1..12), 2..5)) {
        let work = tempfile::tempdir().unwrap();
        let src = work.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let repo = repo();
        let mut taken = Vec::new();
        for ops in &rounds {
            for op in ops {
                apply(&src, op);
            }
            let session = repo.begin_session("backup", engine::session::DEFAULT_EXPIRY).unwrap();
            let index = Index::load(&repo).unwrap();
            let opts = BackupOptions { paths: vec![src.clone()], ..Default::default() };
            let outcome = backup(&repo, &session, &index, &opts, &NoProgress).unwrap();
            session.end().unwrap();
            prop_assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
            taken.push((outcome.snapshot.tree, scan(&src)));
        }
        let index = Index::load(&repo).unwrap();
        for (i, (tree, expected)) in taken.iter().enumerate() {
            let target = work.path().join(format!("restore-{i}"));
            let start = locate(&repo, &index, *tree, src.to_str().unwrap()).unwrap();
            let report = restore(&repo, &index, &start, &target, &RestoreOptions { verify: true, ..Default::default() }, &NoProgress).unwrap();
            prop_assert!(report.errors.is_empty(), "{:?}", report.errors);
            assert_same(expected, &scan(&target));
        }
    }
}
