//! Restore: plan the whole restore first (every entry, and every needed blob grouped by pack:
//! data only, paths relative to the target, `plan.rs`), create the entries on disk
//! (`create.rs`), then fetch each pack once and write its blobs with positioned writes
//! (`write.rs`), then (with `verify`) read back, then put each complete file in place with its
//! metadata and create hard links (`place.rs`), then set the metadata of the other entries and
//! of directories, deepest first (`meta.rs`). The steps share the plan and the report types;
//! only this file calls them.
//!
//! Safety against a hostile repository: names were validated when trees were decoded, and every
//! entry is made from such names below the target.
//!
//! Safety against whoever else writes the target while the restore runs (a tenant's pod in the
//! volume the node agent restores into): the target is opened once, and every directory is
//! reached from that handle without following a symlink (`at.rs`); every entry is created, and
//! its metadata set, relative to its directory's handle or through its own descriptor, never by
//! a path that a swapped-in link could redirect. A directory that vanishes or is replaced is
//! reported for the entries under it, and the rest is restored.
//!
//! No half-written file under its name: a regular file is written into a temporary named
//! `.kairn-part-<run>-<n>` in its own directory and renamed to its name only once its content is
//! complete (and verified, with `verify`). A failed file's temporary is removed; a killed run's
//! temporaries are removed by the next run from every directory it restores into. A full target
//! names every file it could not complete.

mod at;
mod create;
mod existing;
mod fs;
mod meta;
mod place;
mod plan;
mod report;
mod verify;
mod write;

pub use at::write_file_beneath;
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
    // Opened without following a link: one swapped in since the check above is refused here.
    let handle = at::Target::open(target)
        .map_err(|e| Error::io(format!("cannot open {}", target.display()), e))?;
    probe_writable(&handle, target)?;
    // Best effort: a killed run's temporaries are hidden, and never taken for files.
    let _ = fs::remove_leftover_temps(handle.root());
    let filters = plan::Filters {
        include: Excludes::new(&opts.include)?,
        exclude: Excludes::new(&opts.exclude)?,
    };
    let owner = opts
        .owner
        .unwrap_or_else(kairn_repository::sysinfo::is_root);

    // Creating the entries stays in the "plan" stage, where it always was for the user.
    progress.start("plan", None);
    let mut plan = plan::build(repo, index, start, &filters)?;
    let mut outcome = report::Outcome::default();
    create::create_all(repo.keys(), &handle, &mut plan, &mut outcome);
    progress.finish();

    progress.start("restore", Some(plan.total_bytes()));
    if let Err(e) = write::execute(repo, index, &handle, &plan, &outcome, progress) {
        // Canceled: no temporary of this run stays behind.
        for &i in &outcome.temps {
            if let Ok((dir, _)) = handle.parent(&plan.files[i].rel) {
                fs::remove_temp(std::os::fd::AsFd::as_fd(&dir), &handle.temp_name(i));
            }
        }
        return Err(e);
    }
    progress.finish();

    // Verify before metadata: reading must not disturb the access times restored afterwards.
    if opts.verify {
        let to_check = plan
            .files
            .iter()
            .enumerate()
            .filter(|(i, _)| !outcome.failed(*i));
        progress.start(
            "verify",
            Some(to_check.map(|(_, job)| job.node.size()).sum()),
        );
        verify::verify_all(repo, &handle, &plan, &mut outcome, progress);
        progress.finish();
    }
    let mut report = place::finish(&handle, &plan, &mut outcome, owner);
    meta::apply_rest(&handle, &plan, &outcome.others, owner, &mut report);
    Ok(report)
}

/// Fails at once, before anything is read from the repository, when nothing can be created in
/// the target (a read-only filesystem, no permission, a full disk), instead of reporting every
/// file as failed.
fn probe_writable(handle: &at::Target, target: &Path) -> Result<()> {
    let probe = format!(
        ".kairn-restore-probe-{}",
        hex::encode(kairn_format::crypto::random_bytes::<8>())
    );
    let cannot = |e: std::io::Error| {
        Error::io(
            format!("cannot write to the restore target {}", target.display()),
            e,
        )
    };
    fs::create_temp(handle.root(), std::ffi::OsStr::new(&probe), 0).map_err(cannot)?;
    rustix::fs::unlinkat(handle.root(), probe.as_str(), rustix::fs::AtFlags::empty())
        .map_err(|e| cannot(e.into()))
}
