//! The engine work of one VolumeBackup or VolumeRestore: synchronous, run on a blocking thread.
//! Each job opens the repository on its own, so it holds its own writer session, exactly as a
//! separate `repo` process would; concurrent jobs on one node are as safe as concurrent CLIs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use engine::backend::Backend;
use engine::backup::resume::adopt_interrupted_packs;
use engine::backup::{BackupOptions, ParentChoice, backup};
use engine::format::snapshot::{Snapshot, Source, Summary};
use engine::id::SnapshotId;
use engine::index::Index;
use engine::locate::locate;
use engine::progress::Progress as _;
use engine::repo::Repository;
use engine::restore::{RestoreOptions, RestoreReport, restore};
use engine::session::Session;

/// How the agent reaches the repository. The password is never logged or shown: `Debug` hides it.
#[derive(Clone)]
pub struct RepoAccess {
    /// The storage.
    pub backend: Arc<dyn Backend>,
    /// The repository password (from a Secret).
    pub password: Arc<Vec<u8>>,
    /// The local cache of snapshots, indexes and tree packs, bounded by `cache_size`.
    pub cache_dir: Option<PathBuf>,
    /// The most the cache holds.
    pub cache_size: u64,
    /// Writer session expiry (repo-format.md §14.1).
    pub session_expiry: Duration,
    /// Open every handle in append-only mode, whatever the key: for a storage credential that
    /// cannot delete.
    pub append_only: bool,
}

impl std::fmt::Debug for RepoAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoAccess")
            .field("location", &self.backend.location())
            .field("password", &"<hidden>")
            .field("append_only", &self.append_only)
            .finish()
    }
}

impl RepoAccess {
    /// Opens the repository (key derivation included); append-only when the key is, or when
    /// the access says so.
    pub fn open(&self) -> engine::Result<Repository> {
        let (repo, skipped) = Repository::open_with_limit(
            self.backend.clone(),
            &self.password,
            engine::crypto::KdfLimit::default(),
        )?;
        for key in skipped {
            tracing::warn!(
                key = %key.id.short(),
                "key file not tried: its KDF cost is above the limit ({})",
                key.excess
            );
        }
        if self.append_only {
            repo.set_append_only();
        }
        if let Some(dir) = &self.cache_dir {
            repo.use_cache(dir, self.cache_size)?;
        }
        Ok(repo)
    }
}

/// Progress of one job, read by the status updater and the metrics, and its stop switch.
#[derive(Debug, Default)]
pub struct JobProgress {
    /// Bytes processed.
    pub bytes: AtomicU64,
    /// Bytes to process, when known (restores).
    pub total: AtomicU64,
    /// Files finished.
    pub files: AtomicU64,
    /// Set to cancel the job.
    pub stop: AtomicBool,
}

impl engine::progress::Progress for JobProgress {
    fn start(&self, _phase: &str, total: Option<u64>) {
        if let Some(t) = total {
            self.total.store(t, Ordering::Relaxed);
        }
    }
    fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
    fn file_done(&self, _path: &Path) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }
    fn warning(&self, path: &Path, message: &str) {
        tracing::warn!(path = %path.display(), "{message}");
    }
    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// One volume to back up.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Where the volume's files are, as the agent sees them.
    pub path: PathBuf,
    /// The volume's Kubernetes identity, recorded in the snapshot.
    pub source: Source,
    /// Snapshot tags.
    pub tags: Vec<String>,
    /// A block-mode volume: `path` is its device, read as one stream.
    pub block: bool,
    /// The cluster backup the snapshot is part of.
    pub group: Option<engine::format::snapshot::Group>,
}

/// What a finished backup reports.
#[derive(Debug, Clone)]
pub struct BackupDone {
    /// The new snapshot.
    pub id: SnapshotId,
    /// Its parent, when one was used.
    pub parent: Option<SnapshotId>,
    /// What the backup did.
    pub summary: Summary,
    /// Files that could not be read, or changed while read.
    pub warnings: Vec<String>,
}

/// The latest snapshot of this PVC, on any node and from any pod: the incremental parent is
/// keyed on cluster/namespace/PVC, so a rescheduled pod stays incremental.
pub fn parent_of(
    repo: &Repository,
    source: &Source,
    stored_as: &str,
) -> engine::Result<Option<SnapshotId>> {
    let path = format!("/{stored_as}");
    let found = engine::snapshots::scan(repo)?;
    log_skipped(&found.damaged);
    Ok(found
        .snapshots
        .into_iter()
        .filter(|(_, s)| same_volume(s, source) && s.paths == [path.clone()])
        .max_by(|a, b| a.1.time.cmp(&b.1.time))
        .map(|(id, _)| id))
}

fn same_volume(s: &Snapshot, source: &Source) -> bool {
    s.source.cluster == source.cluster
        && s.source.namespace == source.namespace
        && s.source.pvc == source.pvc
}

/// Backs up one volume: resumes an interrupted run's packs, picks the PVC's parent, and stores
/// the volume as `/<pvc>`.
pub fn run_backup(
    access: &RepoAccess,
    req: &BackupRequest,
    progress: &JobProgress,
) -> engine::Result<BackupDone> {
    in_writer_session(access, |repo, session, index| {
        backup_in_session(repo, session, index, req, progress)
    })
}

/// Runs `f` in a writer session of its own (as a separate `repo` process would hold), with an
/// interrupted backup's packs adopted first; the session ends whatever `f` returns.
pub fn in_writer_session<T>(
    access: &RepoAccess,
    f: impl FnOnce(&Repository, &Session, &Index) -> engine::Result<T>,
) -> engine::Result<T> {
    let repo = access.open()?;
    let session = repo.begin_session("backup", access.session_expiry)?;
    let result = (|| {
        let mut index = Index::load(&repo)?;
        if adopt_interrupted_packs(&repo, &session, &index, access.session_expiry)?.packs > 0 {
            index = Index::load(&repo)?;
        }
        f(&repo, &session, &index)
    })();
    let ended = session.end();
    let value = result?;
    ended?;
    Ok(value)
}

fn backup_in_session(
    repo: &Repository,
    session: &Session,
    index: &Index,
    req: &BackupRequest,
    progress: &JobProgress,
) -> engine::Result<BackupDone> {
    let stored_as = req
        .source
        .pvc
        .clone()
        .unwrap_or_else(|| "volume".to_string());
    if req.block {
        return block_backup(repo, session, index, req, &stored_as, progress);
    }
    let parent = parent_of(repo, &req.source, &stored_as)?;
    let opts = BackupOptions {
        paths: vec![req.path.clone()],
        tags: req.tags.clone(),
        host: req.source.node.clone(),
        parent: parent.map_or(ParentChoice::None, ParentChoice::Snapshot),
        source: req.source.clone(),
        stored_as: Some(stored_as),
        group: req.group.clone(),
        ..Default::default()
    };
    let outcome = backup(repo, session, index, &opts, progress)?;
    Ok(BackupDone {
        id: outcome.id,
        parent: outcome.snapshot.parent,
        summary: outcome.snapshot.summary,
        warnings: outcome
            .warnings
            .iter()
            .map(|w| format!("{}: {}", w.path.display(), w.message))
            .collect(),
    })
}

/// Backs up a block device as one file: all-zero chunks become holes, and chunks already in
/// the repository (unchanged ranges) are not stored again.
fn block_backup(
    repo: &Repository,
    session: &Session,
    index: &Index,
    req: &BackupRequest,
    stored_as: &str,
    progress: &JobProgress,
) -> engine::Result<BackupDone> {
    let mut device = std::fs::File::open(&req.path)
        .map_err(|e| engine::Error::io(format!("cannot open {}", req.path.display()), e))?;
    let opts = BackupOptions {
        tags: req.tags.clone(),
        host: req.source.node.clone(),
        source: Source {
            kind: engine::format::snapshot::SourceKind::BlockDevice,
            ..req.source.clone()
        },
        group: req.group.clone(),
        ..Default::default()
    };
    let outcome = engine::backup::backup_stream(
        repo,
        session,
        index,
        &mut device,
        stored_as,
        &opts,
        progress,
    )?;
    Ok(BackupDone {
        id: outcome.id,
        parent: None,
        summary: outcome.snapshot.summary,
        warnings: Vec::new(),
    })
}

/// Which snapshot to restore: an id (or unique prefix), or `latest` of a PVC.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// `latest` or a snapshot id.
    pub snapshot: String,
    /// With `latest`: the volume whose newest snapshot is meant.
    pub source: Source,
    /// The directory to restore into.
    pub target: PathBuf,
    /// For a tenant's restore: the only namespace whose volume snapshots it may reach (of
    /// `source.cluster`); `None` for the agents' own namespace, which may reach any.
    pub tenant: Option<String>,
}

/// True when `snap` is a volume snapshot of namespace `ns` in `cluster`: all that a tenant of
/// `ns` may restore. etcd snapshots and manifests hold the whole cluster.
pub fn tenant_may_read(snap: &Snapshot, ns: &str, cluster: Option<&str>) -> bool {
    use engine::format::snapshot::SourceKind;
    matches!(
        snap.source.kind,
        SourceKind::Filesystem | SourceKind::BlockDevice
    ) && snap.source.namespace.as_deref() == Some(ns)
        && snap.source.pvc.is_some()
        && snap.source.cluster.as_deref() == cluster
}

/// Restores a volume snapshot's `/NAME` entry into the target directory: its files, and the
/// volume root's own owner, mode and times.
pub fn run_restore(
    access: &RepoAccess,
    req: &RestoreRequest,
    progress: &JobProgress,
) -> engine::Result<(SnapshotId, RestoreReport)> {
    let repo = access.open()?;
    let index = Index::load(&repo)?;
    let visible = |s: &Snapshot| {
        req.tenant
            .as_deref()
            .is_none_or(|ns| tenant_may_read(s, ns, req.source.cluster.as_deref()))
    };
    let (id, snap) = if req.snapshot == "latest" {
        repo.load_snapshots()?
            .into_iter()
            .filter(|(_, s)| same_volume(s, &req.source) && visible(s))
            .max_by(|a, b| a.1.time.cmp(&b.1.time))
            .ok_or_else(|| {
                engine::Error::new(
                    engine::ErrorKind::NotFound,
                    "there is no snapshot of that PVC yet",
                )
            })?
    } else {
        engine::snapshots::find_visible(&repo, &req.snapshot, visible)?
    };
    let path = match snap.paths.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(engine::Error::invalid(format!(
                "snapshot {} holds {} paths, not one volume",
                id.short(),
                snap.paths.len()
            )));
        }
    };
    let start = locate(&repo, &index, snap.tree, &path)?;
    if snap.source.kind == engine::format::snapshot::SourceKind::BlockDevice {
        return block_restore(&repo, &index, &start, &req.target, progress).map(|r| (id, r));
    }
    let report = restore(
        &repo,
        &index,
        &start,
        &req.target,
        &RestoreOptions::default(),
        progress,
    )?;
    Ok((id, report))
}

/// Writes a block-volume snapshot onto a device (in place, its size kept) or into a file.
fn block_restore(
    repo: &Repository,
    index: &Index,
    start: &engine::locate::Located,
    target: &Path,
    progress: &JobProgress,
) -> engine::Result<RestoreReport> {
    use std::io::Write;
    use std::os::unix::fs::FileTypeExt;
    let engine::locate::Located::Node(node) = start else {
        return Err(engine::Error::invalid("a block snapshot holds one file"));
    };
    let size = match &node.kind {
        engine::format::tree::NodeKind::File { size, .. } => *size,
        _ => return Err(engine::Error::invalid("a block snapshot holds one file")),
    };
    let is_device = std::fs::metadata(target).is_ok_and(|m| m.file_type().is_block_device());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(!is_device)
        .truncate(!is_device)
        .open(target)
        .map_err(|e| {
            engine::Error::io(format!("cannot open {} for writing", target.display()), e)
        })?;
    progress.start("restore", Some(size));
    let mut out = std::io::BufWriter::with_capacity(4 << 20, &file);
    engine::inspect::dump::dump_file(repo, index, node, &mut out)?;
    out.flush()
        .map_err(|e| engine::Error::io(format!("cannot write {}", target.display()), e))?;
    drop(out);
    file.sync_all()
        .map_err(|e| engine::Error::io(format!("cannot sync {}", target.display()), e))?;
    progress.bytes(size);
    Ok(RestoreReport {
        files: 1,
        bytes: size,
        ..Default::default()
    })
}

/// Applies a schedule's retention to the snapshots it made (of one PVC when `stored_as` names
/// it; the engine groups Kubernetes snapshots by volume, whatever node took them, and decides
/// cluster backups whole). Returns how many were forgotten. The data they alone held is freed
/// by the next prune: the maintenance workload's (`kairn-maintenance`), or an operator's.
pub fn apply_retention(
    access: &RepoAccess,
    schedule_tag: &str,
    stored_as: Option<&str>,
    policy: engine::retention::RetentionPolicy,
) -> engine::Result<usize> {
    let repo = access.open()?;
    retention_in(
        &repo,
        access.session_expiry,
        schedule_tag,
        stored_as,
        policy,
    )
}

/// [`apply_retention`] in a repository already open: the maintenance workload applies many
/// schedules' retention in one pass, with one key derivation.
pub fn retention_in(
    repo: &Repository,
    session_expiry: Duration,
    schedule_tag: &str,
    stored_as: Option<&str>,
    policy: engine::retention::RetentionPolicy,
) -> engine::Result<usize> {
    let opts = engine::forget::ForgetOptions {
        policy,
        filter: engine::snapshots::SnapshotFilter {
            tags: vec![schedule_tag.to_string()],
            paths: stored_as.map(|s| vec![format!("/{s}")]).unwrap_or_default(),
            ..Default::default()
        },
        ..Default::default()
    };
    // The session's heartbeats give the storage time that retention locks are judged by.
    let session = repo.begin_session("forget", session_expiry)?;
    let result = engine::forget::forget(repo, &session, &opts);
    let ended = session.end();
    let report = result?;
    log_skipped(&report.skipped);
    ended?;
    Ok(report.removed.len())
}

/// Logs the snapshot files skipped because they cannot be read: the agent goes on without
/// them, and an operator removes them with `repo forget ID` or `repo repair snapshots`.
pub fn log_skipped(skipped: &[engine::snapshots::UnreadableFile]) {
    for f in skipped {
        tracing::warn!(
            snapshot = %f.name,
            "skipped a snapshot file that cannot be read: {}; `repo forget` or `repo repair snapshots` removes it",
            f.reason
        );
    }
}
