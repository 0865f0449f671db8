//! Creating a batch's entries on disk: directories first, in the walk's order (parents before
//! children), then, on every core, the temporaries that files are written into (of the right
//! size: holes until written), symlinks, devices and FIFOs. Every decision that depends on what
//! is at the target is made here: a file already in place is kept (resuming a restore), a
//! non-directory in the way is replaced, never followed, and an interrupted run's temporaries
//! are removed from each directory that existed already. Every entry is made relative to its
//! directory's handle (`at.rs`).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, mknodat, statat, symlinkat};

use super::at::{Dirs, why_no_dir};
use super::existing::already_in_place;
use super::fs::{clear_for_entry, create_temp, make_dir, remove_leftover_temps};
use super::plan::{DirEntry, FileJob, OtherEntry, Plan, Step};
use super::report::{Outcome, RestoreProblem};
use crate::progress::Progress;
use kairn_format::crypto::MasterKeys;
use kairn_format::error::is_no_space;
use kairn_format::tree::{Node, NodeKind};

/// Why a file was not even tried.
pub(crate) const TARGET_FULL: &str = "not restored: the restore target is full";

/// What became of one file, symlink, device or FIFO.
enum Made {
    /// A temporary to fill.
    Temp(usize),
    /// Already in place with this content: nothing to write.
    InPlace(usize, u64),
    /// Not created: nothing to write (the reason is in the outcome).
    NoContent(usize),
    Other(usize, Result<(), String>),
    Skipped(RestoreProblem),
}

/// Creates every entry of the batch but hard links, and drops from the batch the content of
/// the files not to write. Problems (a directory that cannot be made or vanished, a full
/// target) are recorded in `outcome` and the restore goes on with the rest.
pub(crate) fn create_all(
    keys: &MasterKeys,
    dirs: &Dirs<'_>,
    plan: &mut Plan,
    outcome: &mut Outcome,
    progress: &dyn Progress,
) {
    for step in &plan.steps {
        if let Step::Dir(i) = step {
            create_dir(dirs, &plan.dirs[*i], outcome);
        }
    }
    let shared: &Outcome = outcome;
    let made: Vec<Made> = plan
        .steps
        .par_iter()
        .filter_map(|step| match step {
            Step::Dir(_) => None,
            Step::File(i) => {
                let job = &plan.files[*i];
                Some(create_one_file(
                    keys,
                    dirs,
                    plan.first_file,
                    *i,
                    job,
                    shared,
                ))
            }
            Step::Other(i) => Some(Made::Other(
                *i,
                create_other(dirs, &plan.others[*i], shared),
            )),
            Step::Skip { rel, why } => Some(Made::Skipped(RestoreProblem {
                path: rel.clone(),
                message: why.clone(),
            })),
        })
        .collect();
    let mut no_content = HashSet::new();
    for made in made {
        match made {
            Made::Temp(i) => {
                outcome.temps.insert(i);
            }
            Made::InPlace(i, bytes) => {
                outcome.unchanged += 1;
                progress.bytes(bytes);
                no_content.insert(i);
            }
            Made::NoContent(i) => {
                no_content.insert(i);
            }
            Made::Other(i, Ok(())) => outcome.others.push(i),
            Made::Other(i, Err(message)) => outcome.warnings.push(RestoreProblem {
                path: plan.others[i].rel.clone(),
                message,
            }),
            Made::Skipped(problem) => outcome.warnings.push(problem),
        }
    }
    plan.skip_content(&no_content);
}

/// Makes a directory (an existing one is kept, and a killed run's temporaries removed from it).
fn create_dir(dirs: &Dirs<'_>, dir: &DirEntry, outcome: &mut Outcome) {
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
    if let Err(message) = made {
        outcome.errors.push(RestoreProblem {
            path: dir.rel.clone(),
            message,
        });
    }
}

/// Creates file `i`'s temporary, unless the file is in place already or cannot be restored.
fn create_one_file(
    keys: &MasterKeys,
    dirs: &Dirs<'_>,
    first_file: usize,
    i: usize,
    job: &FileJob,
    outcome: &Outcome,
) -> Made {
    let (dir, name) = match dirs.parent(&job.rel) {
        Ok(found) => found,
        Err(e) => {
            outcome.fail(i, why_no_dir(&e));
            return Made::NoContent(i);
        }
    };
    // One look at what is there: most names are new, and then neither reading back nor
    // checking for a directory in the way costs a call.
    let existing = statat(dir.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| FileType::from_raw_mode(st.st_mode));
    if existing == Some(FileType::RegularFile)
        && already_in_place(keys, dir.as_fd(), name, &job.node)
    {
        return Made::InPlace(i, job.data_bytes());
    }
    let failed = |message: String| {
        outcome.fail(i, message);
        Made::NoContent(i)
    };
    if let Some(message) = &job.missing {
        return failed(message.clone());
    }
    if outcome.is_full() {
        return failed(TARGET_FULL.into());
    }
    if existing == Some(FileType::Directory) {
        return failed("cannot create file: a directory is in the way".into());
    }
    let temp = dirs.target().temp_name(first_file + i);
    if let Err(e) = create_temp(dir.as_fd(), &temp, job.size_to_set()) {
        if is_no_space(&e) {
            outcome.set_full();
        }
        return failed(format!("cannot create file: {e}"));
    }
    Made::Temp(i)
}

/// Creates a symlink, device or FIFO, or says why it could not.
fn create_other(dirs: &Dirs<'_>, other: &OtherEntry, outcome: &Outcome) -> Result<(), String> {
    dirs.parent(&other.rel)
        .map_err(|e| why_no_dir(&e))
        .and_then(|(dir, name)| {
            create_special(dir.as_fd(), name, &other.node).map_err(|e| {
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
