//! The types a backup is asked with and answers with, apart from the walk that uses them.

use std::path::PathBuf;

use kairn_format::id::SnapshotId;
use kairn_format::snapshot::{Snapshot, Source};
use kairn_repository::snapshots::UnreadableFile;

/// A problem with one source entry; the backup goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The entry.
    pub path: PathBuf,
    /// What happened.
    pub message: String,
}

/// Which snapshot to compare against to skip unchanged files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The latest snapshot of the same host, paths and source identity.
    #[default]
    Latest,
    /// None: read every file.
    None,
    /// This snapshot.
    Snapshot(SnapshotId),
}

/// What a file was against the parent snapshot, as a backup reports it
/// ([`crate::progress::Progress::file_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileChange {
    /// Not in the parent (or no parent).
    New,
    /// In the parent, and read again because its metadata changed.
    Modified,
    /// In the parent with the same metadata: taken from it without reading.
    Unchanged,
}

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Paths to back up; made absolute.
    pub paths: Vec<PathBuf>,
    /// Exclude patterns.
    pub excludes: Vec<String>,
    /// Exclude patterns matched ignoring case (restic's `--iexclude`).
    pub iexcludes: Vec<String>,
    /// Leave out regular files larger than this many bytes.
    pub exclude_larger_than: Option<u64>,
    /// Leave out the contents of every directory that holds one of these tag files, all but
    /// the tag file itself: `NAME`, or `NAME:HEADER` when the file must begin with `HEADER`
    /// ([`super::CACHEDIR_TAG`] is restic's `--exclude-caches`).
    pub exclude_if_present: Vec<String>,
    /// Do not descend into other filesystems.
    pub one_file_system: bool,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// Host name to record; the machine's when `None`.
    pub host: Option<String>,
    /// Change-detection parent.
    pub parent: ParentChoice,
    /// Source identity (Kubernetes volume and so on).
    pub source: Source,
    /// Store the one backup path under this name at the snapshot's root (`/NAME`) instead of
    /// under its real path. A volume mounted at a path that changes with every pod (the
    /// kubelet's `pods/<uid>/volumes/...`) keeps one path across snapshots this way, so the
    /// parent's entries line up and unchanged files are not read again.
    pub stored_as: Option<String>,
    /// The cluster backup the snapshot is part of.
    pub group: Option<kairn_format::snapshot::Group>,
    /// The directory of a local repository being written: left out, with a note, wherever the
    /// backup paths reach it, so that a repository is never backed up into itself.
    pub repository_dir: Option<PathBuf>,
}

/// What a backup produced.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// The new snapshot's id.
    pub id: SnapshotId,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Entries that could not be read, or changed while read.
    pub warnings: Vec<Warning>,
    /// Entries left out on purpose (the repository itself), with why.
    pub notes: Vec<Warning>,
    /// Snapshot files skipped as damaged while looking for the parent: the caller warns.
    pub skipped_snapshots: Vec<UnreadableFile>,
}
