//! `--dry-run`: the same batches (`walk.rs`) and the same decisions (`inspect.rs`) as a real
//! run, recorded instead of carried out. Nothing is written: the target is not even created
//! (when it is missing, everything would be new), no temporary is made or removed, and files
//! are read back without changing their access time where the kernel lets us.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::at::{Dirs, Target};
use super::inspect::{Decisions, Rules, decide_batch};
use super::plan::{Original, Plan, Step};
use super::policy::{Action, BLOCKED};
use super::report::{Change, ChangeAction, RestoreProblem, RestoreReport};
use super::walk::Planner;
use crate::progress::Progress;
use kairn_format::error::{Error, Result};
use kairn_repository::index::Index;
use kairn_repository::locate::Located;
use kairn_repository::repo::Repository;

/// Plans the restore of `start` into `target` and reports what it would change.
pub(crate) fn dry_run(
    repo: &Repository,
    index: &Index,
    start: &Located,
    target: &Path,
    rules: &Rules<'_>,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let handle = match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("cannot stat target", e)),
        Ok(meta) => {
            super::check_target(target, &meta)?;
            Some(
                Target::open(target)
                    .map_err(|e| Error::io(format!("cannot open {}", target.display()), e))?,
            )
        }
    };
    let dirs = handle.as_ref().map(Dirs::new);
    let mut report = RestoreReport::default();
    let mut skipped_originals = HashSet::new();
    let mut planner =
        Planner::new(repo, index, start, rules.filters).with_listing_names(rules.delete);
    progress.start("plan", None);
    while let Some(plan) = planner.next_batch()? {
        if progress.should_stop() {
            return Err(Error::canceled());
        }
        let decided = decide_batch(repo.keys(), dirs.as_ref(), &plan, rules);
        record(&plan, &decided, &mut skipped_originals, &mut report);
    }
    progress.finish();
    Ok(report)
}

fn change(report: &mut RestoreReport, path: &Path, action: ChangeAction, dir: bool) {
    report.changes.push(Change {
        path: path.to_path_buf(),
        action,
        dir,
    });
}

/// Counts one entry as the real run would, and lists it unless it is already in place.
fn count(report: &mut RestoreReport, rel: &Path, action: Action, dir: bool) -> bool {
    match action {
        Action::New => change(report, rel, ChangeAction::New, dir),
        Action::Replace => {
            report.replaced += 1;
            change(report, rel, ChangeAction::Replace, dir);
        }
        Action::Keep { .. } => {}
        Action::Skip => {
            report.skipped += 1;
            change(report, rel, ChangeAction::Skip, dir);
            return false;
        }
        Action::Blocked => {
            change(report, rel, ChangeAction::Blocked, dir);
            report.errors.push(RestoreProblem {
                path: rel.to_path_buf(),
                message: BLOCKED.into(),
            });
            return false;
        }
    }
    true
}

/// Records one batch's decisions in the report, in the plan's order.
fn record(
    plan: &Plan,
    decided: &Decisions,
    skipped_originals: &mut HashSet<usize>,
    report: &mut RestoreReport,
) {
    report.errors.extend(plan.lost_dirs.iter().cloned());
    report.dirs += plan.dirs.len() as u64;
    for (step, action) in plan.steps.iter().zip(&decided.steps) {
        match step {
            Step::Dir(i) => {
                count(report, &plan.dirs[*i].rel, *action, true);
            }
            Step::File(i) => {
                let job = &plan.files[*i];
                if *action == Action::Skip && job.node.links > 1 {
                    skipped_originals.insert(plan.first_file + i);
                }
                if !count(report, &job.rel, *action, false) {
                    continue;
                }
                report.files += 1;
                if matches!(action, Action::Keep { .. }) {
                    report.unchanged += 1;
                    continue;
                }
                report.bytes += job.node.size();
                if let Some(message) = &job.missing {
                    report.errors.push(RestoreProblem {
                        path: job.rel.clone(),
                        message: message.clone(),
                    });
                }
            }
            Step::Other(i) => {
                if count(report, &plan.others[*i].rel, *action, false) {
                    report.others += 1;
                }
            }
            Step::Skip { rel, why } => report.warnings.push(RestoreProblem {
                path: rel.clone(),
                message: why.clone(),
            }),
        }
    }
    for (link, action) in plan.links.iter().zip(&decided.links) {
        let number = match &link.original {
            Original::InBatch(i) => plan.first_file + i,
            Original::Earlier { file, .. } => *file,
        };
        if skipped_originals.contains(&number) && *action != Action::Skip {
            report.skipped += 1;
            change(report, &link.rel, ChangeAction::Skip, false);
            continue;
        }
        if count(report, &link.rel, *action, false) {
            report.files += 1;
        }
    }
    for rel in &decided.deletes {
        change(report, rel, ChangeAction::Delete, false);
        report.deleted.push(PathBuf::from(rel));
    }
}
