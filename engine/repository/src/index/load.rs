//! Loading the index from the repository's index files: in parallel, each file added as soon
//! as it is decoded and then dropped; on top of a cached run when one covers some of them.

use std::collections::HashSet;
use std::sync::Mutex;

use rayon::prelude::*;

use super::location::SpillTo;
use super::run::build::is_spill_error;
use super::run::find_cached;
use super::table::{Index, IndexBuilder};
use crate::repo::Repository;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::IndexId;
use kairn_format::index::IndexFile;
use kairn_format::sync::lock;

impl Index {
    /// Loads every index file of the repository (in parallel), verifying each, and uses those
    /// no other file supersedes; spills to a run past the repository's memory bound.
    pub fn load(repo: &Repository) -> Result<Self> {
        load(repo)
    }
}

fn load(repo: &Repository) -> Result<Index> {
    // A file listed and then gone was deleted by a maintenance run, which stores its
    // replacement first: listing again finds that one.
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        match load_once(repo) {
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < ATTEMPTS => continue,
            other => return other,
        }
    }
    Err(Error::internal("index load attempts exhausted"))
}

/// One pass of [`load`]. Files that others supersede exist only briefly (a maintenance run
/// stores the replacement, then deletes them) or under a retention lock; when one is met, the
/// index is built again without them.
fn load_once(repo: &Repository) -> Result<Index> {
    let ids = repo.list_ids::<IndexFile>()?;
    let stored: HashSet<IndexId> = ids.iter().copied().collect();
    let spill_to = spill_to(repo);
    let cached = spill_to
        .as_ref()
        .filter(|to| to.keep)
        .and_then(|to| find_cached(&to.dir, to.key, &stored));
    let mut stale = None;
    if let Some(run) = cached {
        stale = run.path().map(std::path::Path::to_path_buf);
        let covered: HashSet<IndexId> = run.files().iter().copied().collect();
        let new: Vec<IndexId> = ids
            .iter()
            .filter(|i| !covered.contains(i))
            .copied()
            .collect();
        let builder = IndexBuilder::on_run(run, spill_to.clone());
        let (builder, superseded) = stream(repo, &new, &HashSet::new(), builder)?;
        // A new file superseding a stored one (a maintenance run since) makes the run stale.
        if !builder.overflowed() && !superseded.iter().any(|s| stored.contains(s)) {
            return builder.finish_loaded();
        }
    }
    let index = match build(repo, &ids, &stored, spill_to.clone()) {
        // The local disk cannot hold the run (full, read-only): the index is held in memory,
        // as below the bound. Slower to start and larger, but the operation goes on.
        Err(e) if spill_to.is_some() && is_spill_error(&e) => build(repo, &ids, &stored, None)?,
        other => other?,
    };
    // Built again: the run it replaces is of no more use to anyone.
    if let Some(path) = stale {
        let _ = std::fs::remove_file(path);
    }
    Ok(index)
}

/// Builds the index from every stored file, leaving out superseded ones.
fn build(
    repo: &Repository,
    ids: &[IndexId],
    stored: &HashSet<IndexId>,
    spill_to: Option<SpillTo>,
) -> Result<Index> {
    let builder = IndexBuilder::spilling(spill_to.clone());
    let (builder, superseded) = stream(repo, ids, &HashSet::new(), builder)?;
    if !superseded.iter().any(|s| stored.contains(s)) {
        return builder.finish_loaded();
    }
    drop(builder);
    let skip: HashSet<IndexId> = superseded.intersection(stored).copied().collect();
    let (mut builder, _) = stream(repo, ids, &skip, IndexBuilder::spilling(spill_to))?;
    // Accounted for: a run built now is not rebuilt for them while a lock keeps them.
    for id in skip {
        builder.add_file_id(id);
    }
    builder.finish_loaded()
}

/// Adds the files `ids` but `skip` to `builder`; returns it with every id the files read
/// supersede. A file that fails to load fails the pass, unless another supersedes it.
fn stream(
    repo: &Repository,
    ids: &[IndexId],
    skip: &HashSet<IndexId>,
    builder: IndexBuilder,
) -> Result<(IndexBuilder, HashSet<IndexId>)> {
    let builder = Mutex::new(builder);
    let superseded = Mutex::new(HashSet::new());
    let failed: Vec<(IndexId, Error)> = ids
        .par_iter()
        .filter(|id| !skip.contains(id))
        .filter_map(|id| match repo.load_file::<IndexFile>(id) {
            Ok(file) => {
                lock(&superseded).extend(file.supersedes.iter().copied());
                let mut builder = lock(&builder);
                builder.add_file(&file);
                builder.add_file_id(*id);
                None
            }
            Err(e) => Some((*id, e)),
        })
        .collect();
    let superseded = superseded
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // A damaged file that another supersedes does not matter: nothing reads it.
    if let Some((_, e)) = failed.into_iter().find(|(id, _)| !superseded.contains(id)) {
        return Err(e);
    }
    let builder = builder
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok((builder, superseded))
}

/// Where the repository's index spills, if it may.
fn spill_to(repo: &Repository) -> Option<SpillTo> {
    let at = repo.index_blobs_in_memory();
    if at == usize::MAX {
        return None;
    }
    let key = repo.local_cache_key();
    Some(match repo.index_run_dir() {
        Some(dir) => SpillTo {
            dir,
            key,
            at,
            keep: true,
        },
        None => SpillTo {
            dir: std::env::temp_dir().join(format!("kairn-index-{}", std::process::id())),
            key,
            at,
            keep: false,
        },
    })
}

/// The index files of a repository, as [`load_live_files`] found them.
pub struct IndexFiles {
    /// The files in use (superseded by no other), verified.
    pub live: Vec<(IndexId, IndexFile)>,
    /// Every index file stored, superseded ones too.
    pub all: Vec<IndexId>,
}

/// Every index file, verified, split into those in use and the ids of all files read: a file
/// another one supersedes is left out of the first (repo-format.md §11), because it may still
/// name packs that a prune deleted while the file itself was kept by a retention lock.
pub fn load_live_files(repo: &Repository) -> Result<IndexFiles> {
    // A file listed and then gone was deleted by a maintenance run, which stores its
    // replacement first: listing again finds that one.
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        match load_listed(repo) {
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < ATTEMPTS => continue,
            other => return other,
        }
    }
    Err(Error::internal("index load attempts exhausted"))
}

fn load_listed(repo: &Repository) -> Result<IndexFiles> {
    let ids = repo.list_ids::<IndexFile>()?;
    let loaded: Vec<(IndexId, Result<IndexFile>)> = ids
        .par_iter()
        .map(|id| (*id, repo.load_file::<IndexFile>(id)))
        .collect();
    let superseded: std::collections::HashSet<IndexId> = loaded
        .iter()
        .filter_map(|(_, f)| f.as_ref().ok())
        .flat_map(|f| f.supersedes.iter().copied())
        .collect();
    let mut live = Vec::with_capacity(loaded.len());
    for (id, file) in loaded {
        if superseded.contains(&id) {
            continue; // even a damaged one: nothing reads it
        }
        live.push((id, file?));
    }
    Ok(IndexFiles { live, all: ids })
}
