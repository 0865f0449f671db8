//! Restore: plan the whole restore first (every entry, and every needed blob grouped by pack:
//! data only, `plan.rs`), create the entries on disk (`create.rs`), then fetch each pack once
//! and write its blobs into place with positioned writes (`write.rs`), then create hard links
//! and remove what failed, then (with `verify`) read back, then set metadata, deepest first
//! (`meta.rs`). The steps share the plan and the report types; only this file calls them.
//!
//! Safety against a hostile repository: names were validated when trees were decoded, every
//! path is built from such names below the target, existing non-directories in the way are
//! replaced rather than followed, and files are opened with `O_NOFOLLOW`.

mod create;
mod existing;
mod fs;
mod meta;
mod plan;
mod report;
mod verify;
mod write;

pub use report::{RestoreProblem, RestoreReport};

use std::path::Path;

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
    if meta.file_type().is_symlink() {
        // A link at the target is not followed (it could lead anywhere), and saying "not a
        // directory" about a link to a directory only confused.
        let to = std::fs::read_link(target)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "target {} is a symbolic link{to}: restore does not follow links at its target; \
                 give the directory's own path",
                target.display()
            ),
        ));
    }
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

    // Creating the entries stays in the "plan" stage, where it always was for the user.
    progress.start("plan", None);
    let mut plan = plan::build(repo, index, start, target, &filters)?;
    let mut outcome = report::Outcome::default();
    create::create_all(repo.keys(), &mut plan, &mut outcome)?;
    progress.finish();

    progress.start("restore", Some(plan.total_bytes()));
    write::execute(repo, index, &plan, &outcome, progress)?;
    progress.finish();

    let mut report = create::finish(&plan, &mut outcome);
    // Verify before metadata: reading must not disturb the access times restored afterwards.
    if opts.verify {
        progress.start("verify", Some(report.bytes));
        verify::verify_all(repo, &plan, &mut report, progress);
        progress.finish();
    }
    meta::apply_all(&plan, &outcome.others, owner, &mut report);
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
