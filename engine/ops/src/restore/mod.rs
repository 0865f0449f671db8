//! Restore, in batches of a few thousand entries (`walk.rs`), so that memory does not grow
//! with the tree. For each batch, a plan (data only, paths relative to the target, every
//! needed blob grouped by pack: `plan.rs`); then a look at what the target holds at each place
//! and the decisions of the `--overwrite` policy and `--delete` (`inspect.rs`, pure rules in
//! `policy.rs`). A dry run records those decisions and stops there (`dry.rs`); a real run
//! carries out the very same ones: what `--delete` removes goes, the batch's entries are
//! created on disk (`create.rs`), each pack range is fetched once and its blobs written with
//! positioned writes (`write.rs`), (with `verify`) read back, and each complete file is put in
//! place with its metadata and its hard links made (`place.rs`), and the metadata of the other
//! entries set.
//! Directories' metadata is set last, deepest first (`meta.rs`). Only this file calls the
//! steps.
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
mod dry;
mod existing;
mod fs;
mod inspect;
mod meta;
mod place;
mod plan;
mod policy;
mod report;
mod verify;
mod walk;
#[cfg(test)]
mod walk_tests;
mod write;

pub use at::write_file_beneath;
pub use policy::Overwrite;
pub use report::{Change, ChangeAction, RestoreProblem, RestoreReport};

use std::path::Path;

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
    /// What to do with entries that already exist in the target (`policy.rs`).
    pub overwrite: Overwrite,
    /// Remove what the restored directories of the target hold and the snapshot lacks (only
    /// what the include and exclude patterns select).
    pub delete: bool,
    /// Change nothing: list in the report what a run would do (`dry.rs`).
    pub dry_run: bool,
}

/// Names of the probe that checks the target is writable: never taken for the user's files.
pub(crate) const PROBE_PREFIX: &str = ".kairn-restore-probe-";

/// Restores what `start` names into `target`.
pub fn restore(
    repo: &Repository,
    index: &Index,
    start: &Located,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let filters = plan::Filters::new(&opts.include, &opts.exclude)?;
    let owner = opts
        .owner
        .unwrap_or_else(kairn_repository::sysinfo::is_root);
    let rules = inspect::Rules {
        policy: opts.overwrite,
        delete: opts.delete,
        owner,
        filters: &filters,
    };
    if opts.dry_run {
        let mut report = dry::dry_run(repo, index, start, target, &rules, progress)?;
        (report.unmatched_include, report.unmatched_exclude) = filters.unmatched();
        return Ok(report);
    }
    std::fs::create_dir_all(target)
        .map_err(|e| Error::io(format!("cannot create {}", target.display()), e))?;
    let meta = std::fs::symlink_metadata(target).map_err(|e| Error::io("cannot stat target", e))?;
    check_target(target, &meta)?;
    // Opened without following a link: one swapped in since the check above is refused here.
    let handle = at::Target::open(target)
        .map_err(|e| Error::io(format!("cannot open {}", target.display()), e))?;
    probe_writable(&handle, target)?;
    // Best effort: a killed run's temporaries are hidden, and never taken for files.
    let _ = fs::remove_leftover_temps(handle.root());

    progress.start("plan", None);
    let total = walk::content_bytes(repo, index, start, &filters);
    let mut run = Run {
        repo,
        handle: &handle,
        opts,
        owner,
        progress,
        rules: &rules,
        report: RestoreReport::default(),
        dirs: Vec::new(),
        originals: place::Originals::default(),
    };
    let mut planner =
        walk::Planner::new(repo, index, start, &filters).with_listing_names(opts.delete);
    let mut first = true;
    while let Some(batch) = planner.next_batch()? {
        run.batch(batch, &mut first, total)?;
    }
    if first {
        // Nothing to create or write: the stages still start and end for whoever watches.
        progress.finish();
        progress.start("restore", Some(0));
    }
    progress.finish();
    let Run {
        mut report, dirs, ..
    } = run;
    report.dirs = dirs.len() as u64;
    meta::apply_dirs(&handle, &dirs, owner, &mut report);
    (report.unmatched_include, report.unmatched_exclude) = filters.unmatched();
    Ok(report)
}

/// Refuses a target that is a symlink or not a directory.
fn check_target(target: &Path, meta: &std::fs::Metadata) -> Result<()> {
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
    Ok(())
}

/// One restore, carried out a batch at a time (`walk.rs`).
struct Run<'r> {
    repo: &'r Repository,
    handle: &'r at::Target,
    opts: &'r RestoreOptions,
    owner: bool,
    progress: &'r dyn Progress,
    rules: &'r inspect::Rules<'r>,
    report: RestoreReport,
    /// Every directory so far, in creation order: their metadata is set at the very end.
    dirs: Vec<plan::DirEntry>,
    /// The numbers of hard-linked files not restored, for their names in later batches.
    originals: place::Originals,
}

impl Run<'_> {
    /// Creates a batch's entries, writes its content, verifies it (with `verify`), then puts
    /// each complete file in place with its metadata. The first batch's creation belongs to
    /// the "plan" stage (where creating entries always was for the user); the "restore" stage
    /// then covers the rest, with verification counted in its total.
    fn batch(&mut self, mut plan: plan::Plan, first: &mut bool, total: u64) -> Result<()> {
        if self.progress.should_stop() {
            return Err(Error::canceled());
        }
        let mut outcome = report::Outcome::default();
        if self.report.out_of_space {
            outcome.set_full();
        }
        let dirs = at::Dirs::new(self.handle);
        let decided = inspect::decide_batch(self.repo.keys(), Some(&dirs), &plan, self.rules);
        drop(dirs);
        let dirs = at::Dirs::new(self.handle);
        create::delete_all(&dirs, &decided.deletes, &mut self.report);
        create::create_all(&dirs, &mut plan, &decided, &mut outcome, self.progress);
        drop(dirs);
        if std::mem::take(first) {
            self.progress.finish();
            let verify_bytes = if self.opts.verify { total } else { 0 };
            self.progress.start("restore", Some(total + verify_bytes));
        }
        let dirs = at::Dirs::new(self.handle);
        let meta = (!self.opts.verify).then_some(self.owner);
        if let Err(e) = write::execute(self.repo, &dirs, &plan, &outcome, meta, self.progress) {
            // Canceled: no temporary of this run stays behind.
            for &i in &outcome.temps {
                if let Ok((dir, _)) = dirs.parent(&plan.files[i].rel) {
                    let temp = self.handle.temp_name(plan.first_file + i);
                    fs::remove_temp(std::os::fd::AsFd::as_fd(&dir), &temp);
                }
            }
            return Err(e);
        }
        drop(dirs);
        // Verify before metadata: reading must not disturb the access times restored after.
        if self.opts.verify {
            let dirs = at::Dirs::new(self.handle);
            verify::verify_all(self.repo, &dirs, &plan, &mut outcome, self.progress);
        }
        let dirs = at::Dirs::new(self.handle);
        let mut report = place::finish(
            &dirs,
            &plan,
            &decided.links,
            &mut outcome,
            self.owner,
            &mut self.originals,
        );
        meta::apply_others(&dirs, &plan, &outcome.others, self.owner, &mut report);
        self.merge(report);
        self.dirs.append(&mut plan.dirs);
        Ok(())
    }

    fn merge(&mut self, batch: RestoreReport) {
        let total = &mut self.report;
        total.files += batch.files;
        total.unchanged += batch.unchanged;
        total.others += batch.others;
        total.bytes += batch.bytes;
        total.verified += batch.verified;
        total.out_of_space |= batch.out_of_space;
        total.replaced += batch.replaced;
        total.skipped += batch.skipped;
        total.errors.extend(batch.errors);
        total.warnings.extend(batch.warnings);
    }
}

/// Fails at once, before anything is read from the repository, when nothing can be created in
/// the target (a read-only filesystem, no permission, a full disk), instead of reporting every
/// file as failed.
fn probe_writable(handle: &at::Target, target: &Path) -> Result<()> {
    let probe = format!(
        "{PROBE_PREFIX}{}",
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
