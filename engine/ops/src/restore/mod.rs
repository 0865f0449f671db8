//! Restore: plan the whole restore first (create the entries, then group every needed blob by
//! pack), then fetch each pack once and write its blobs into place with positioned writes, then
//! set metadata, deepest first.
//!
//! Safety against a hostile repository: names were validated when trees were decoded, every
//! path is built from such names below the target, existing non-directories in the way are
//! replaced rather than followed, and files are opened with `O_NOFOLLOW`.

mod existing;
mod fs;
mod meta;
mod plan;
mod verify;
mod write;

use std::path::{Path, PathBuf};

use crate::backup::Excludes;
use crate::progress::Progress;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_repository::index::Index;
use kairn_repository::locate::Located;
use kairn_repository::repo::Repository;

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore only paths matching these patterns (and what is below them).
    pub include: Vec<String>,
    /// Skip paths matching these patterns.
    pub exclude: Vec<String>,
    /// Re-read every written file and check its blob ids.
    pub verify: bool,
    /// Restore owners; `None` means "when running as root".
    pub owner: Option<bool>,
}

/// One entry that was not (fully) restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreProblem {
    /// Path below the target.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// Regular files restored completely.
    pub files: u64,
    /// Of those, files that were already in place with the right content, and not written.
    pub unchanged: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks, devices and FIFOs.
    pub others: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Files verified after writing (with `verify`).
    pub verified: u64,
    /// Entries whose content could not be restored (removed, never left wrong).
    pub errors: Vec<RestoreProblem>,
    /// Metadata that could not be applied (xattrs, ownership, devices without privileges).
    pub warnings: Vec<RestoreProblem>,
}

/// Restores what `start` names into `target`.
pub fn restore(
    repo: &Repository,
    index: &Index,
    start: &Located,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    std::fs::create_dir_all(target)
        .map_err(|e| Error::io(format!("cannot create {}", target.display()), e))?;
    let meta = std::fs::symlink_metadata(target).map_err(|e| Error::io("cannot stat target", e))?;
    if !meta.is_dir() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("target {} is not a directory", target.display()),
        ));
    }
    probe_writable(target)?;
    let filters = plan::Filters {
        include: Excludes::new(&opts.include)?,
        exclude: Excludes::new(&opts.exclude)?,
    };
    let owner = opts
        .owner
        .unwrap_or_else(kairn_repository::sysinfo::is_root);

    progress.start("plan", None);
    let mut plan = plan::build(repo, index, start, target, &filters)?;
    progress.finish();

    progress.start("restore", Some(plan.total_bytes()));
    write::execute(repo, index, &mut plan, progress)?;
    progress.finish();

    let mut report = plan.finish_files()?;
    // Verify before metadata: reading must not disturb the access times restored afterwards.
    if opts.verify {
        progress.start("verify", Some(report.bytes));
        verify::verify_all(repo, &plan, &mut report, progress);
        progress.finish();
    }
    meta::apply_all(&plan, owner, &mut report);
    Ok(report)
}

/// Fails at once, before anything is read from the repository, when nothing can be created in
/// the target (a read-only filesystem, no permission, a full disk), instead of reporting every
/// file as failed.
fn probe_writable(target: &Path) -> Result<()> {
    let probe = target.join(format!(
        ".kairn-restore-probe-{}",
        hex::encode(kairn_format::crypto::random_bytes::<8>())
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| {
            Error::io(
                format!("cannot write to the restore target {}", target.display()),
                e,
            )
        })?;
    std::fs::remove_file(&probe).map_err(|e| {
        Error::io(
            format!("cannot write to the restore target {}", target.display()),
            e,
        )
    })
}
