//! Putting files in place once their content is written (and verified, with `verify`): each
//! complete temporary gets the file's metadata through its descriptor and is then renamed to
//! its name in the same directory, so a name never shows a half-written file; the temporary
//! of a file that failed is removed. Hard links follow, once the file they name is in place.

use std::collections::{BTreeMap, HashSet};
use std::os::fd::AsFd;
use std::path::Path;

use rayon::prelude::*;
use rustix::fs::{AtFlags, linkat, renameat};

use super::at::{Dirs, why_no_dir};
use super::create::clear_dir_in_way;
use super::fs::{clear_for_entry, clear_non_dir, open_file, remove_temp};
use super::meta::apply_fd;
use super::plan::{FileJob, Original, Plan};
use super::policy::{Action, BLOCKED};
use super::report::{Outcome, RestoreProblem, RestoreReport};

/// What became of one file that did not fail before.
enum Placed {
    /// In place; metadata that could not be applied.
    Done(Vec<String>),
    /// Could not be put in place.
    Failed(String),
}

/// Clears what a failed file left: its temporary, and a leftover under its name that would pass
/// for the snapshot's. A file the restore was to replace (restoring over live data) is the
/// user's and stays as it was; the failure names it.
fn drop_failed(dirs: &Dirs<'_>, plan: &Plan, outcome: &Outcome, i: usize, temp: bool) {
    let Ok((dir, name)) = dirs.parent(&plan.files[i].rel) else {
        return;
    };
    if temp {
        let temp = dirs.target().temp_name(plan.first_file + i);
        remove_temp(dir.as_fd(), &temp);
    }
    if !outcome.had_existing(i) {
        let _ = clear_non_dir(dir.as_fd(), name);
    }
}

/// Renames complete files into place, removes failed temporaries, creates hard links, and
/// counts what was restored.
pub(crate) fn finish(
    dirs: &Dirs<'_>,
    plan: &Plan,
    links: &[Action],
    outcome: &mut Outcome,
    owner: bool,
    originals: &mut Originals,
) -> RestoreReport {
    let mut failures = outcome.take_failures();
    let applied = outcome.take_meta_applied();
    let placed: Vec<(usize, Placed)> = plan
        .files
        .par_iter()
        .enumerate()
        .filter_map(|(i, job)| {
            if outcome.skipped.contains(&i) {
                return None;
            }
            if outcome.untouched.contains(&i) {
                return Some((i, Placed::Done(Vec::new())));
            }
            let temp = outcome.temps.contains(&i);
            if failures.contains_key(&i) {
                drop_failed(dirs, plan, outcome, i, temp);
                return None;
            }
            let meta = match applied.get(&i) {
                Some(problems) => Meta::Applied(problems.clone()),
                None => Meta::Apply { owner },
            };
            Some((i, place(dirs, plan.first_file + i, job, temp, meta)))
        })
        .collect();
    let mut report = RestoreReport {
        warnings: std::mem::take(&mut outcome.warnings),
        errors: plan.lost_dirs.clone(),
        unchanged: outcome.unchanged,
        verified: outcome.verified,
        out_of_space: outcome.is_full(),
        replaced: outcome.others_replaced,
        skipped: outcome.skipped.len() as u64 + outcome.others_skipped,
        ..Default::default()
    };
    report.errors.append(&mut outcome.errors);
    for (i, placed) in placed {
        let job = &plan.files[i];
        match placed {
            Placed::Done(problems) => {
                report.files += 1;
                report.replaced += u64::from(outcome.replacing.contains(&i));
                report.bytes += job.node.size();
                report
                    .warnings
                    .extend(problems.into_iter().map(|message| RestoreProblem {
                        path: job.rel.clone(),
                        message,
                    }));
            }
            Placed::Failed(message) => {
                failures.insert(i, message);
            }
        }
    }
    for &i in &outcome.skipped {
        if plan.files[i].node.links > 1 {
            originals.skipped.insert(plan.first_file + i);
        }
    }
    for (i, message) in &failures {
        if plan.files[*i].node.links > 1 {
            originals.failed.insert(plan.first_file + *i);
        }
        let kept = if outcome.had_existing(*i) {
            "; the file already there was left as it was"
        } else {
            ""
        };
        report.errors.push(RestoreProblem {
            path: plan.files[*i].rel.clone(),
            message: format!("{message}{kept}"),
        });
    }
    let batch = Batch {
        plan,
        links,
        failures: &failures,
        skipped: &outcome.skipped,
    };
    link_all(dirs, &batch, originals, &mut report);
    report.dirs = plan.dirs.len() as u64;
    report.others = outcome.others.len() as u64;
    report
}

/// A file's metadata: applied already when its last byte was written, or still to apply.
enum Meta {
    Applied(Vec<String>),
    Apply { owner: bool },
}

/// Applies file `i`'s metadata (unless done) and, when it was written into a temporary,
/// renames it into place.
fn place(dirs: &Dirs<'_>, number: usize, job: &FileJob, temp: bool, meta: Meta) -> Placed {
    let (dir, name) = match dirs.parent(&job.rel) {
        Ok(found) => found,
        Err(e) => return Placed::Failed(why_no_dir(&e)),
    };
    let temp_name = dirs.target().temp_name(number);
    let current = if temp { temp_name.as_os_str() } else { name };
    let problems = match meta {
        Meta::Applied(problems) => problems,
        Meta::Apply { owner } => match open_file(dir.as_fd(), current, false) {
            Ok(file) => apply_fd(file.as_fd(), &job.node, owner),
            Err(e) if temp => {
                remove_temp(dir.as_fd(), &temp_name);
                return Placed::Failed(format!("its temporary file vanished: {e}"));
            }
            Err(e) => vec![format!("cannot open to set metadata: {e}")],
        },
    };
    if temp && let Err(e) = renameat(&dir, &temp_name, &dir, name) {
        remove_temp(dir.as_fd(), &temp_name);
        return Placed::Failed(format!("cannot put in place: {e}"));
    }
    Placed::Done(problems)
}

/// Hard-linked files of the whole restore whose first name was not restored: it failed, or
/// the policy left what stood there (a later name must not link to that).
#[derive(Default)]
pub(crate) struct Originals {
    pub failed: HashSet<usize>,
    pub skipped: HashSet<usize>,
}

struct Batch<'a> {
    plan: &'a Plan,
    links: &'a [Action],
    failures: &'a BTreeMap<usize, String>,
    skipped: &'a HashSet<usize>,
}

fn link_all(dirs: &Dirs<'_>, batch: &Batch<'_>, originals: &Originals, report: &mut RestoreReport) {
    let plan = batch.plan;
    for (link, action) in plan.links.iter().zip(batch.links) {
        let (failed, skipped, original) = match &link.original {
            Original::InBatch(i) => (
                batch.failures.contains_key(i),
                batch.skipped.contains(i),
                &plan.files[*i].rel,
            ),
            Original::Earlier { file, rel } => (
                originals.failed.contains(file),
                originals.skipped.contains(file),
                rel,
            ),
        };
        let problem = |message: &str| RestoreProblem {
            path: link.rel.clone(),
            message: message.into(),
        };
        if *action == Action::Skip {
            report.skipped += 1;
            continue;
        }
        if *action == Action::Blocked {
            report.errors.push(problem(BLOCKED));
            continue;
        }
        if failed {
            report
                .errors
                .push(problem("hard link to a file that could not be restored"));
            continue;
        }
        if skipped {
            report.skipped += 1;
            report.warnings.push(problem(
                "not linked: the file it is a hard link of was left as it was by --overwrite",
            ));
            continue;
        }
        match hard_link(dirs, original, &link.rel) {
            Ok(()) => {
                report.files += 1;
                report.replaced += u64::from(*action == Action::Replace);
            }
            Err(message) => report.errors.push(RestoreProblem {
                path: link.rel.clone(),
                message,
            }),
        }
    }
}

fn hard_link(dirs: &Dirs<'_>, original: &Path, link: &Path) -> Result<(), String> {
    let (from_dir, from_name) = dirs.parent(original).map_err(|e| why_no_dir(&e))?;
    let (to_dir, to_name) = dirs.parent(link).map_err(|e| why_no_dir(&e))?;
    clear_dir_in_way(to_dir.as_fd(), to_name)
        .and_then(|()| clear_for_entry(to_dir.as_fd(), to_name))
        .and_then(|()| {
            Ok(linkat(
                &from_dir,
                from_name,
                &to_dir,
                to_name,
                AtFlags::empty(),
            )?)
        })
        .map_err(|e| format!("cannot create hard link: {e}"))
}
