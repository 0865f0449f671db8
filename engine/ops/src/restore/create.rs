//! Creating a batch's entries on disk: directories first, in the walk's order (parents before
//! children), then, on every core, the temporaries that files are written into (of the right
//! size: holes until written), symlinks, devices and FIFOs, as the batch's decisions say
//! (`inspect.rs`, `policy.rs`): a file already in place is kept (resuming a restore), one the
//! `--overwrite` policy leaves is left, a non-directory in the way is replaced, never followed,
//! and an interrupted run's temporaries are removed from each directory that existed already.
//! Every entry is made relative to its directory's handle (`at.rs`).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, mknodat, statat, symlinkat};

use super::at::{Dirs, why_no_dir};
use super::fs::{clear_for_entry, create_temp, make_dir, remove_leftover_temps, remove_tree};
use super::inspect::Decisions;
use super::plan::{DirEntry, FileJob, OtherEntry, Plan, Step};
use super::policy::{Action, BLOCKED};
use super::report::{Outcome, RestoreProblem, RestoreReport};
use crate::progress::Progress;
use kairn_format::error::is_no_space;
use kairn_format::tree::{Node, NodeKind};

/// Why a file was not even tried.
pub(crate) const TARGET_FULL: &str = "not restored: the restore target is full";

/// What became of one file, symlink, device or FIFO.
enum Made {
    /// A temporary to fill; whether it replaces something.
    Temp(usize, bool),
    /// Already in place with this content: nothing to write; whether to set its metadata.
    InPlace(usize, u64, bool),
    /// Not created: nothing to write (the reason is in the outcome).
    NoContent(usize),
    /// Left as it is by the policy.
    Left(usize),
    /// A symlink, device or FIFO: made (whether over something), or why not.
    Other(usize, Result<bool, String>),
    /// A symlink, device or FIFO left as it is: by the policy, or as it is the snapshot's.
    OtherLeft {
        skipped: bool,
    },
    Warned(RestoreProblem),
}

/// Creates every entry of the batch but hard links, as `decided` says, and drops from the
/// batch the content of the files not to write. Problems (a directory that cannot be made or
/// vanished, a full target) are recorded in `outcome` and the restore goes on with the rest.
pub(crate) fn create_all(
    dirs: &Dirs<'_>,
    plan: &mut Plan,
    decided: &Decisions,
    outcome: &mut Outcome,
    progress: &dyn Progress,
) {
    for (step, action) in plan.steps.iter().zip(&decided.steps) {
        if let Step::Dir(i) = step {
            create_dir(dirs, &plan.dirs[*i], *action, outcome);
        }
    }
    let shared: &Outcome = outcome;
    let made: Vec<Made> = plan
        .steps
        .par_iter()
        .zip(&decided.steps)
        .filter_map(|(step, action)| match step {
            Step::Dir(_) => None,
            Step::File(i) => {
                let job = &plan.files[*i];
                Some(create_one_file(
                    dirs,
                    plan.first_file,
                    *i,
                    job,
                    *action,
                    shared,
                ))
            }
            Step::Other(i) => Some(match action {
                Action::Skip => Made::OtherLeft { skipped: true },
                Action::Keep { .. } => Made::OtherLeft { skipped: false },
                _ => Made::Other(*i, create_other(dirs, &plan.others[*i], *action, shared)),
            }),
            Step::Skip { rel, why } => Some(Made::Warned(RestoreProblem {
                path: rel.clone(),
                message: why.clone(),
            })),
        })
        .collect();
    let mut no_content = HashSet::new();
    for made in made {
        match made {
            Made::Temp(i, replacing) => {
                outcome.temps.insert(i);
                if replacing {
                    outcome.replacing.insert(i);
                }
            }
            Made::InPlace(i, bytes, meta) => {
                outcome.unchanged += 1;
                progress.bytes(bytes);
                no_content.insert(i);
                if !meta {
                    outcome.untouched.insert(i);
                }
            }
            Made::NoContent(i) => {
                no_content.insert(i);
            }
            Made::Left(i) => {
                progress.bytes(plan.files[i].data_bytes());
                outcome.skipped.insert(i);
                no_content.insert(i);
            }
            Made::Other(i, Ok(replaced)) => {
                outcome.others.push(i);
                outcome.others_replaced += u64::from(replaced);
            }
            Made::Other(i, Err(message)) => outcome.warnings.push(RestoreProblem {
                path: plan.others[i].rel.clone(),
                message,
            }),
            Made::OtherLeft { skipped } => outcome.others_skipped += u64::from(skipped),
            Made::Warned(problem) => outcome.warnings.push(problem),
        }
    }
    plan.skip_content(&no_content);
}

/// Makes a directory (an existing one is kept, and a killed run's temporaries removed from it).
fn create_dir(dirs: &Dirs<'_>, dir: &DirEntry, action: Action, outcome: &mut Outcome) {
    let made = dirs.parent(&dir.rel).map_err(|e| why_no_dir(&e));
    let made = made.and_then(|(parent, name)| {
        let created = make_dir(parent.as_fd(), name).map_err(|e| {
            if is_no_space(&e) {
                outcome.set_full();
            }
            format!("cannot create directory: {e}")
        })?;
        if !created && let Ok(existing) = dirs.target().dir(&dir.rel) {
            let _ = remove_leftover_temps(existing.as_fd());
        }
        Ok(())
    });
    match made {
        Ok(()) => outcome.others_replaced += u64::from(action == Action::Replace),
        Err(message) => outcome.errors.push(RestoreProblem {
            path: dir.rel.clone(),
            message,
        }),
    }
}

/// Creates file `i`'s temporary, unless the file is in place already, left by the policy, or
/// cannot be restored.
fn create_one_file(
    dirs: &Dirs<'_>,
    first_file: usize,
    i: usize,
    job: &FileJob,
    action: Action,
    outcome: &Outcome,
) -> Made {
    let failed = |message: String| {
        outcome.fail(i, message);
        Made::NoContent(i)
    };
    match action {
        Action::Skip => return Made::Left(i),
        Action::Keep { meta } => return Made::InPlace(i, job.data_bytes(), meta),
        Action::Blocked => return failed(BLOCKED.into()),
        Action::Replace => outcome.replaces_existing(i),
        Action::New => {}
    }
    let (dir, name) = match dirs.parent(&job.rel) {
        Ok(found) => found,
        Err(e) => return failed(why_no_dir(&e)),
    };
    if let Some(message) = &job.missing {
        return failed(message.clone());
    }
    if outcome.is_full() {
        return failed(TARGET_FULL.into());
    }
    // A directory in the way (empty, or with --delete) goes now: the rename cannot replace it.
    if action == Action::Replace
        && let Err(e) = clear_dir_in_way(dir.as_fd(), name)
    {
        return failed(format!("cannot remove the directory in the way: {e}"));
    }
    let temp = dirs.target().temp_name(first_file + i);
    if let Err(e) = create_temp(dir.as_fd(), &temp, job.size_to_set()) {
        if is_no_space(&e) {
            outcome.set_full();
        }
        return failed(format!("cannot create file: {e}"));
    }
    Made::Temp(i, action == Action::Replace)
}

/// Removes the directory at `name`, if one is there, with everything in it (never following a
/// link). Only called where the decision allows it: an empty directory, or `--delete`.
pub(crate) fn clear_dir_in_way(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<()> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            remove_tree(dir, name).map(|_| ())
        }
        _ => Ok(()),
    }
}

/// Creates a symlink, device or FIFO, or says why it could not.
fn create_other(
    dirs: &Dirs<'_>,
    other: &OtherEntry,
    action: Action,
    outcome: &Outcome,
) -> Result<bool, String> {
    if action == Action::Blocked {
        return Err(BLOCKED.into());
    }
    dirs.parent(&other.rel)
        .map_err(|e| why_no_dir(&e))
        .and_then(|(dir, name)| {
            let replace = action == Action::Replace;
            let cleared = if replace {
                clear_dir_in_way(dir.as_fd(), name)
            } else {
                Ok(())
            };
            cleared
                .and_then(|()| create_special(dir.as_fd(), name, &other.node))
                .map(|()| replace)
                .map_err(|e| {
                    if is_no_space(&e) {
                        outcome.set_full();
                    }
                    format!("cannot create: {e}")
                })
        })
}

/// Creates a symlink, device or FIFO as `name` in `dir`.
fn create_special(dir: BorrowedFd<'_>, name: &OsStr, node: &Node) -> std::io::Result<()> {
    clear_for_entry(dir, name)?;
    // Owner-only until its metadata is applied at the end, whatever the umask.
    let perm = Mode::from_raw_mode(node.mode & 0o700);
    let res = match &node.kind {
        NodeKind::Symlink { target } => symlinkat(OsStr::from_bytes(target), dir, name),
        NodeKind::Fifo => mknodat(dir, name, FileType::Fifo, perm, 0),
        NodeKind::BlockDevice { rdev } => mknodat(dir, name, FileType::BlockDevice, perm, *rdev),
        NodeKind::CharDevice { rdev } => mknodat(dir, name, FileType::CharacterDevice, perm, *rdev),
        _ => return Ok(()),
    };
    res.map_err(std::io::Error::from)
}

/// `--delete`: removes each path (a directory with everything in it, a symlink as a link),
/// recording what went, and as a warning what could not.
pub(crate) fn delete_all(dirs: &Dirs<'_>, deletes: &[PathBuf], report: &mut RestoreReport) {
    for rel in deletes {
        let removed = dirs
            .parent(rel)
            .map_err(|e| why_no_dir(&e))
            .and_then(|(dir, name)| {
                remove_tree(dir.as_fd(), name).map_err(|e| format!("cannot delete: {e}"))
            });
        match removed {
            Ok(0) => {}
            Ok(_) => report.deleted.push(rel.clone()),
            Err(message) => report.warnings.push(RestoreProblem {
                path: rel.clone(),
                message,
            }),
        }
    }
}
