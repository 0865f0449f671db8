//! Creating a plan's entries on disk, in the plan's order: directories, files of the right size
//! (holes until written), symlinks, devices and FIFOs; once the data is written, hard links,
//! and the removal of files that could not be restored. Every decision that depends on what is
//! at the target is made here: a file already in place is kept (resuming a restore), and a
//! non-directory in the way is replaced, never followed.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::stat::{Mode, SFlag, mknod};

use super::existing::already_in_place;
use super::fs::{clear_for_entry, create_file, make_dir};
use super::plan::{DirEntry, FileJob, OtherEntry, Plan, Step};
use super::report::{Outcome, RestoreProblem, RestoreReport};
use kairn_format::crypto::MasterKeys;
use kairn_format::error::{Error, Result, is_no_space};
use kairn_format::tree::{Node, NodeKind};

/// Creates every entry of the plan but hard links, and drops from the plan the content of the
/// files not to write. Fails only when the restore cannot go on (a directory cannot be made,
/// the target is full); other problems are recorded in `outcome`.
pub(crate) fn create_all(keys: &MasterKeys, plan: &mut Plan, outcome: &mut Outcome) -> Result<()> {
    let mut no_content = HashSet::new();
    for step in &plan.steps {
        match step {
            Step::Dir(i) => create_dir(&plan.dirs[*i])?,
            Step::File(i) => {
                if !create_one_file(keys, *i, &plan.files[*i], outcome)? {
                    no_content.insert(*i);
                }
            }
            Step::Other(i) => {
                if create_other(&plan.others[*i], outcome)? {
                    outcome.others.push(*i);
                }
            }
            Step::Skip { rel, why } => outcome.warnings.push(RestoreProblem {
                path: rel.clone(),
                message: why.clone(),
            }),
        }
    }
    plan.skip_content(&no_content);
    Ok(())
}

fn create_dir(dir: &DirEntry) -> Result<()> {
    make_dir(&dir.abs)
        .map_err(|e| Error::io(format!("cannot create directory {}", dir.abs.display()), e))
}

/// Creates file `i` unless it is already in place; true when its content is to be written.
fn create_one_file(
    keys: &MasterKeys,
    i: usize,
    job: &FileJob,
    outcome: &mut Outcome,
) -> Result<bool> {
    if already_in_place(keys, &job.abs, &job.node) {
        outcome.unchanged += 1;
        return Ok(false);
    }
    if let Err(e) = create_file(&job.abs, job.node.size()) {
        if is_no_space(&e) {
            return Err(Error::io("restore target is full", e));
        }
        outcome.fail(i, format!("cannot create file: {e}"));
        return Ok(false);
    }
    // Created all the same, as before: the failure removes it at the end.
    if let Some(message) = &job.missing {
        outcome.fail(i, message.clone());
    }
    Ok(true)
}

/// Creates a symlink, device or FIFO; true when it was created.
fn create_other(other: &OtherEntry, outcome: &mut Outcome) -> Result<bool> {
    match create_special(&other.abs, &other.node) {
        Ok(()) => Ok(true),
        Err(e) if is_no_space(&e) => Err(Error::io("restore target is full", e)),
        Err(e) => {
            outcome.warnings.push(RestoreProblem {
                path: other.rel.clone(),
                message: format!("cannot create: {e}"),
            });
            Ok(false)
        }
    }
}

/// Creates a symlink, device or FIFO at `path`.
fn create_special(path: &Path, node: &Node) -> std::io::Result<()> {
    clear_for_entry(path)?;
    let perm = Mode::from_bits_truncate(node.mode & 0o777);
    let res = match &node.kind {
        NodeKind::Symlink { target } => {
            return std::os::unix::fs::symlink(OsStr::from_bytes(target), path);
        }
        NodeKind::Fifo => nix::unistd::mkfifo(path, perm),
        NodeKind::BlockDevice { rdev } => mknod(path, SFlag::S_IFBLK, perm, *rdev),
        NodeKind::CharDevice { rdev } => mknod(path, SFlag::S_IFCHR, perm, *rdev),
        _ => return Ok(()),
    };
    res.map_err(std::io::Error::from)
}

/// After the data: removes failed files (so nothing wrong is left behind), creates hard links,
/// and counts what was restored.
pub(crate) fn finish(plan: &Plan, outcome: &mut Outcome) -> RestoreReport {
    let failures = outcome.take_failures();
    let mut report = RestoreReport {
        warnings: std::mem::take(&mut outcome.warnings),
        errors: plan.lost_dirs.clone(),
        unchanged: outcome.unchanged,
        ..Default::default()
    };
    for (i, job) in plan.files.iter().enumerate() {
        if let Some(message) = failures.get(&i) {
            let _ = std::fs::remove_file(&job.abs);
            report.errors.push(RestoreProblem {
                path: job.rel.clone(),
                message: message.clone(),
            });
        } else {
            report.files += 1;
            report.bytes += job.node.size();
        }
    }
    for link in &plan.links {
        if failures.contains_key(&link.original) {
            report.errors.push(RestoreProblem {
                path: link.rel.clone(),
                message: "hard link to a file that could not be restored".into(),
            });
            continue;
        }
        let linked = clear_for_entry(&link.abs)
            .and_then(|()| std::fs::hard_link(&plan.files[link.original].abs, &link.abs));
        match linked {
            Ok(()) => report.files += 1,
            Err(e) => report.errors.push(RestoreProblem {
                path: link.rel.clone(),
                message: format!("cannot create hard link: {e}"),
            }),
        }
    }
    report.dirs = plan.dirs.len() as u64;
    report.others = outcome.others.len() as u64;
    report
}
