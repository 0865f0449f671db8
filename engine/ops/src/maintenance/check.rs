//! `check`: verify the repository's structure and, with `read_data`, every stored byte.
//!
//! Structure: every index file decrypts; every pack the index names exists with the indexed
//! size; every snapshot decrypts and every tree and data blob it references is indexed and
//! every tree decodes. Data: every pack hashes to its name, its header decrypts and agrees with
//! the index, and every blob decrypts, decompresses and hashes to its id.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use crate::maintenance::reachable::walk;
use crate::progress::Progress;
use kairn_format::FileKind;
use kairn_format::error::{ErrorKind, Result};
use kairn_format::id::BlobKind;
use kairn_format::id::{BlobId, PackId, SnapshotId};
use kairn_format::index::IndexFile;
use kairn_format::pack::read_header_from_bytes;
use kairn_format::snapshot::Snapshot;
use kairn_format::tree::{Extent, NodeKind};
use kairn_repository::files::verify_name;
use kairn_repository::index::{Index, IndexBuilder};
use kairn_repository::read::load_tree;
use kairn_repository::read::pack::PackSpan;
use kairn_repository::repo::Repository;

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Read and verify every pack.
    pub read_data: bool,
    /// Read and verify only these packs (implies reading data).
    pub subset: Option<Subset>,
}

/// Which packs `--read-data-subset` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    /// Group `n` of `m` (1-based): the packs whose id, as a number, is `n - 1` modulo `m`. The
    /// `m` groups together cover every pack, so `m` runs check everything.
    Group {
        /// Which group.
        n: u32,
        /// How many groups.
        m: u32,
    },
    /// A random share of the packs, in percent.
    Percent(f64),
    /// Random packs up to this many bytes.
    Bytes(u64),
}

impl std::str::FromStr for Subset {
    type Err = kairn_format::error::Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            kairn_format::error::Error::invalid(format!(
                "bad subset {s:?}: use N/M (like 2/5), P% (like 10%) or a size (like 500M)"
            ))
        };
        if let Some((n, m)) = s.split_once('/') {
            let (n, m): (u32, u32) = (n.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if n == 0 || m == 0 || n > m {
                return Err(bad());
            }
            return Ok(Self::Group { n, m });
        }
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(Self::Percent(p));
        }
        kairn_format::units::parse_size(s)
            .map(Self::Bytes)
            .ok_or_else(bad)
    }
}

impl Subset {
    /// The positions of the chosen packs among `packs`.
    fn choose(&self, packs: &[(PackId, u64)]) -> Vec<u32> {
        use rand::seq::SliceRandom;
        let all = 0..packs.len() as u32;
        match *self {
            Self::Group { n, m } => all
                .filter(|&i| {
                    let id = &packs[i as usize].0.0.0;
                    u32::from_be_bytes([id[0], id[1], id[2], id[3]]) % m == n - 1
                })
                .collect(),
            Self::Percent(p) => {
                let mut v: Vec<u32> = all.collect();
                v.shuffle(&mut rand::rng());
                let keep = ((v.len() as f64 * p / 100.0).ceil() as usize).min(v.len());
                v.truncate(keep);
                v
            }
            Self::Bytes(limit) => {
                let mut v: Vec<u32> = all.collect();
                v.shuffle(&mut rand::rng());
                let mut total = 0u64;
                v.into_iter()
                    .take_while(|&i| {
                        let fits = total < limit;
                        total += packs[i as usize].1;
                        fits
                    })
                    .collect()
            }
        }
    }
}

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong, naming the object.
    pub message: String,
    /// Snapshots that lose data because of it (short ids), when known.
    pub snapshots: Vec<String>,
}

/// What `check` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Distinct trees walked.
    pub trees: u64,
    /// Packs read (with `read_data`).
    pub packs_read: u64,
    /// Blobs decrypted and verified (with `read_data`).
    pub blobs_verified: u64,
    /// Packs in storage that no index names: left by an interrupted writer, or being written
    /// by a running one. Harmless; prune removes them.
    pub unindexed_packs: u64,
    /// Packs named by more than one index file (left by an interrupted prune; harmless).
    pub duplicate_packs: u64,
    /// Everything wrong.
    pub problems: Vec<Problem>,
}

fn problem(message: String) -> Problem {
    Problem {
        message,
        snapshots: Vec::new(),
    }
}

/// Checks the repository.
pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    check_key_files(repo, &mut report)?;
    check_session_files(repo, &mut report)?;
    progress.start("index", None);
    let mut builder = IndexBuilder::default();
    let mut listings: HashMap<PackId, u32> = HashMap::new();
    for id in repo.list_ids::<IndexFile>()? {
        match repo.load_file::<IndexFile>(&id) {
            Ok(file) => {
                for p in &file.packs {
                    *listings.entry(p.id).or_default() += 1;
                }
                builder.add_file(&file)
            }
            Err(e) => report
                .problems
                .push(problem(format!("index file {}: {e}", id.short()))),
        }
    }
    let index = builder.finish();
    let stored: HashMap<String, u64> = repo.backend().list(FileKind::Pack)?.into_iter().collect();
    let indexed: HashSet<String> = index.packs().iter().map(|(p, _)| p.to_hex()).collect();
    let mut bad_packs: HashSet<PackId> = HashSet::new();
    for (pack, size) in index.packs() {
        match stored.get(&pack.to_hex()) {
            None => {
                report
                    .problems
                    .push(problem(format!("pack {} is missing", pack.short())));
                bad_packs.insert(*pack);
            }
            Some(s) if s != size => {
                // A listing gives 0 for what is not a regular file; the backend says what it is.
                let text = match repo.backend().size(FileKind::Pack, &pack.to_hex()) {
                    Err(e) if e.kind() == ErrorKind::Corrupt => e.to_string(),
                    _ => format!("pack {} has {s} bytes, the index says {size}", pack.short()),
                };
                report.problems.push(problem(text));
                bad_packs.insert(*pack);
            }
            Some(_) => {}
        }
    }
    report.unindexed_packs = stored.keys().filter(|p| !indexed.contains(*p)).count() as u64;
    report.duplicate_packs = listings.values().filter(|n| **n > 1).count() as u64;
    progress.finish();

    progress.start("snapshots", None);
    check_snapshots(repo, &index, &bad_packs, &mut report)?;
    progress.finish();

    if opts.read_data || opts.subset.is_some() {
        let chosen: Vec<u32> = match &opts.subset {
            Some(subset) => subset.choose(index.packs()),
            None => (0..index.packs().len() as u32).collect(),
        };
        let chosen: Vec<u32> = chosen
            .into_iter()
            .filter(|&i| !bad_packs.contains(&index.pack(i).0))
            .collect();
        let total: u64 = chosen.iter().map(|&i| index.pack(i).1).sum();
        progress.start("read data", Some(total));
        let damaged = read_data(repo, &index, &chosen, &mut report, progress);
        progress.finish();
        if !damaged.is_empty() {
            attach_snapshots(repo, &index, damaged, &mut report)?;
        }
    }
    Ok(report)
}

/// Every key file must hash to its name and decode: a damaged one is a password that no
/// longer opens the repository.
fn check_key_files(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    for (name, _) in repo.backend().list(FileKind::Key)? {
        let verdict = repo.backend().read(FileKind::Key, &name).and_then(|bytes| {
            verify_name(FileKind::Key, &name, &bytes)?;
            kairn_format::keyfile::KeyFile::decode(&bytes)
        });
        if let Err(e) = verdict {
            let short = name.get(..8).unwrap_or(&name);
            report.problems.push(problem(format!("key {short}: {e}")));
        }
    }
    Ok(())
}

/// Every session file and garbage list must be readable: prune skips one that is not (and
/// holds back its deletions while an unreadable session file is young), so it is damage.
fn check_session_files(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    let sessions = kairn_repository::session::registry::scan_sessions(repo.files())?;
    for u in sessions.unreadable {
        report.problems.push(problem(format!(
            "session file {}: {}; `repo repair sessions --remove {}` removes it",
            short_name(&u.file.name),
            u.file.reason,
            short_name(&u.file.name)
        )));
    }
    for u in kairn_repository::garbage::scan(repo)?.unreadable {
        report.problems.push(problem(format!(
            "garbage list {}: {}; `repo repair sessions --remove {}` removes it",
            short_name(&u.name),
            u.reason,
            short_name(&u.name)
        )));
    }
    Ok(())
}

/// A stored name shortened for messages, as ids are.
fn short_name(name: &str) -> &str {
    name.get(..8).unwrap_or(name)
}

/// Names the snapshots that use the blobs each read-data problem damaged.
fn attach_snapshots(
    repo: &Repository,
    index: &Index,
    damaged: Vec<(String, Vec<BlobId>)>,
    report: &mut CheckReport,
) -> Result<()> {
    let wanted: HashSet<BlobId> = damaged
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    let mut users: HashMap<BlobId, BTreeSet<String>> = HashMap::new();
    // Damaged snapshot files are reported by `check_snapshots`; here only readable ones count.
    for (snap_id, snap) in kairn_repository::snapshots::scan(repo)?.snapshots {
        walk(repo, index, snap.tree, &mut HashSet::new(), false, |id| {
            if wanted.contains(&id) {
                users.entry(id).or_default().insert(snap_id.short());
            }
        })?;
    }
    for (message, blobs) in damaged {
        let snapshots: BTreeSet<String> = blobs
            .iter()
            .filter_map(|b| users.get(b))
            .flatten()
            .cloned()
            .collect();
        report.problems.push(Problem {
            message,
            snapshots: snapshots.into_iter().collect(),
        });
    }
    Ok(())
}

fn check_snapshots(
    repo: &Repository,
    index: &Index,
    bad_packs: &HashSet<PackId>,
    report: &mut CheckReport,
) -> Result<()> {
    let mut seen_trees: HashSet<BlobId> = HashSet::new();
    // Problem message -> snapshots affected.
    let mut found: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (name, _) in repo.backend().list(FileKind::Snapshot)? {
        report.snapshots += 1;
        let Ok(id) = name.parse::<SnapshotId>() else {
            report.problems.push(problem(format!(
                "snapshot file {name:?}: its name is not a snapshot id; `repo repair snapshots` removes it"
            )));
            continue;
        };
        let snap = match repo.load_file::<Snapshot>(&id) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                report.problems.push(problem(format!(
                    "snapshot {}: {e}; `repo repair snapshots` or `repo forget {}` removes it",
                    id.short(),
                    id.short()
                )));
                continue;
            }
        };
        walk_snapshot(
            repo,
            index,
            bad_packs,
            id,
            snap.tree,
            &mut seen_trees,
            &mut found,
            report,
        )?;
    }
    let mut problems: Vec<Problem> = found
        .into_iter()
        .map(|(message, snaps)| Problem {
            message,
            snapshots: snaps.into_iter().collect(),
        })
        .collect();
    problems.sort_by(|a, b| a.message.cmp(&b.message));
    report.problems.extend(problems);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn walk_snapshot(
    repo: &Repository,
    index: &Index,
    bad_packs: &HashSet<PackId>,
    snap: SnapshotId,
    root: BlobId,
    seen: &mut HashSet<BlobId>,
    found: &mut HashMap<String, BTreeSet<String>>,
    report: &mut CheckReport,
) -> Result<()> {
    let mut note = |message: String| {
        found.entry(message).or_default().insert(snap.short());
    };
    let locate = |id: &BlobId, kind: BlobKind| -> std::result::Result<(), String> {
        match index.get(id) {
            None => Err(format!("{kind:?} blob {} is not in the index", id.short()).to_lowercase()),
            Some(loc) if bad_packs.contains(&index.pack(loc.pack).0) => Err(format!(
                "{kind:?} blob {} is in damaged or missing pack {}",
                id.short(),
                index.pack(loc.pack).0.short()
            )
            .to_lowercase()),
            Some(_) => Ok(()),
        }
    };
    // Trees already seen were checked with all their blobs; their problems are recorded against
    // the first snapshot only, which is enough to name a damaged tree.
    let mut stack = vec![root];
    while let Some(tree_id) = stack.pop() {
        if !seen.insert(tree_id) {
            continue;
        }
        report.trees += 1;
        if let Err(m) = locate(&tree_id, BlobKind::Tree) {
            note(m);
            continue;
        }
        let tree = match load_tree(repo, index, &tree_id) {
            Ok(t) => t,
            Err(e) => {
                note(format!("tree {}: {e}", tree_id.short()));
                continue;
            }
        };
        for node in &tree.nodes {
            match &node.kind {
                NodeKind::Dir { subtree } => stack.push(*subtree),
                NodeKind::File { content, .. } => {
                    for e in content {
                        if let Extent::Data { id, .. } = e
                            && let Err(m) = locate(id, BlobKind::Data)
                        {
                            note(m);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Reads the chosen packs and verifies every blob; returns each problem with the blobs it
/// damaged.
fn read_data(
    repo: &Repository,
    index: &Index,
    chosen: &[u32],
    report: &mut CheckReport,
    progress: &dyn Progress,
) -> Vec<(String, Vec<BlobId>)> {
    // Index entries per pack, to compare with each pack's own header.
    let mut by_pack: HashMap<u32, Vec<(BlobId, kairn_repository::index::BlobLocation)>> =
        HashMap::new();
    for (id, loc) in index.iter() {
        by_pack.entry(loc.pack).or_default().push((id, loc));
    }
    let problems = Mutex::new(Vec::new());
    let verified = std::sync::atomic::AtomicU64::new(0);
    let read = std::sync::atomic::AtomicU64::new(0);
    chosen.par_iter().for_each(|&pos| {
        let (pack, size) = index.pack(pos);
        let indexed: Vec<BlobId> = by_pack
            .get(&pos)
            .map(|v| v.iter().map(|(id, _)| *id).collect())
            .unwrap_or_default();
        let fail_blobs = |m: String, blobs: Vec<BlobId>| {
            problems
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((m, blobs))
        };
        let fail = |m: String| fail_blobs(m, indexed.clone());
        let mut span = match PackSpan::read_whole(repo, pack) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                progress.bytes(size);
                return fail(e.to_string());
            }
            Err(e) => return fail(format!("pack {}: {e}", pack.short())),
        };
        read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        progress.bytes(size);
        let header = match read_header_from_bytes(repo.keys(), span.bytes()) {
            Ok(h) => h,
            Err(e) => return fail(format!("pack {} header: {e}", pack.short())),
        };
        let in_header: HashMap<BlobId, _> = header.entries.iter().map(|e| (e.id, e)).collect();
        for (id, loc) in by_pack.get(&pos).map(Vec::as_slice).unwrap_or_default() {
            match in_header.get(id) {
                Some(e)
                    if e.offset == loc.offset && e.length == loc.length && e.kind == loc.kind => {}
                _ => fail_blobs(
                    format!(
                        "blob {} is not where the index says in pack {}",
                        id.short(),
                        pack.short()
                    ),
                    vec![*id],
                ),
            }
        }
        for e in &header.entries {
            match span.open(repo.keys(), e) {
                Ok(_) => {
                    verified.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(err) => fail_blobs(
                    format!("pack {}, blob {}: {err}", pack.short(), e.id.short()),
                    vec![e.id],
                ),
            }
        }
    });
    report.packs_read = read.into_inner();
    report.blobs_verified = verified.into_inner();
    problems
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
