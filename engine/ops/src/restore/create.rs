//! Creating a plan's entries on disk, in the plan's order: directories, the temporaries that
//! files are written into (of the right size: holes until written), symlinks, devices and
//! FIFOs. Every decision that depends on what is at the target is made here: a file already in
//! place is kept (resuming a restore), a non-directory in the way is replaced, never followed,
//! and an interrupted run's temporaries are removed from each directory that existed already.
//! Every entry is made relative to its directory's handle (`at.rs`).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, mknodat, statat, symlinkat};

use super::at::{Target, why_no_dir};
use super::existing::already_in_place;
use super::fs::{clear_for_entry, create_temp, make_dir, remove_leftover_temps};
use super::plan::{DirEntry, FileJob, OtherEntry, Plan, Step};
use super::report::{Outcome, RestoreProblem};
use kairn_format::crypto::MasterKeys;
use kairn_format::error::is_no_space;
use kairn_format::tree::{Node, NodeKind};

/// Why a file was not even tried.
pub(crate) const TARGET_FULL: &str = "not restored: the restore target is full";

/// Creates every entry of the plan but hard links, and drops from the plan the content of the
/// files not to write. Problems (a directory that cannot be made or vanished, a full target)
/// are recorded in `outcome` and the restore goes on with the rest.
pub(crate) fn create_all(
    keys: &MasterKeys,
    target: &Target,
    plan: &mut Plan,
    outcome: &mut Outcome,
) {
    let mut no_content = HashSet::new();
    for step in &plan.steps {
        match step {
            Step::Dir(i) => create_dir(target, &plan.dirs[*i], outcome),
            Step::File(i) => {
                if !create_one_file(keys, target, *i, &plan.files[*i], outcome) {
                    no_content.insert(*i);
                }
            }
            Step::Other(i) => {
                if create_other(target, &plan.others[*i], outcome) {
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
}

fn create_dir(target: &Target, dir: &DirEntry, outcome: &mut Outcome) {
    let made = target.parent(&dir.rel).map_err(|e| why_no_dir(&e));
    let made = made.and_then(|(parent, name)| {
        let created = make_dir(parent.as_fd(), name).map_err(|e| {
            if is_no_space(&e) {
                outcome.set_full();
            }
            format!("cannot create directory: {e}")
        })?;
        if !created && let Ok(existing) = target.dir(&dir.rel) {
            // Best effort: a temporary left behind is hidden and never taken for a file.
            let _ = remove_leftover_temps(existing.as_fd());
        }
        Ok(())
    });
    if let Err(message) = made {
        outcome.errors.push(RestoreProblem {
            path: dir.rel.clone(),
            message,
        });
    }
}

/// Creates file `i`'s temporary unless the file is already in place; true when its content is
/// to be written.
fn create_one_file(
    keys: &MasterKeys,
    target: &Target,
    i: usize,
    job: &FileJob,
    outcome: &mut Outcome,
) -> bool {
    let (dir, name) = match target.parent(&job.rel) {
        Ok(found) => found,
        Err(e) => {
            outcome.fail(i, why_no_dir(&e));
            return false;
        }
    };
    if already_in_place(keys, dir.as_fd(), name, &job.node) {
        outcome.unchanged += 1;
        return false;
    }
    if let Some(message) = &job.missing {
        outcome.fail(i, message.clone());
        return false;
    }
    if outcome.is_full() {
        outcome.fail(i, TARGET_FULL.into());
        return false;
    }
    if is_dir(dir.as_fd(), name) {
        outcome.fail(i, "cannot create file: a directory is in the way".into());
        return false;
    }
    if let Err(e) = create_temp(dir.as_fd(), &target.temp_name(i), job.node.size()) {
        if is_no_space(&e) {
            outcome.set_full();
        }
        outcome.fail(i, format!("cannot create file: {e}"));
        return false;
    }
    outcome.temps.insert(i);
    true
}

fn is_dir(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// Creates a symlink, device or FIFO; true when it was created.
fn create_other(target: &Target, other: &OtherEntry, outcome: &mut Outcome) -> bool {
    let created = target
        .parent(&other.rel)
        .map_err(|e| why_no_dir(&e))
        .and_then(|(dir, name)| {
            create_special(dir.as_fd(), name, &other.node).map_err(|e| {
                if is_no_space(&e) {
                    outcome.set_full();
                }
                format!("cannot create: {e}")
            })
        });
    match created {
        Ok(()) => true,
        Err(message) => {
            outcome.warnings.push(RestoreProblem {
                path: other.rel.clone(),
                message,
            });
            false
        }
    }
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
