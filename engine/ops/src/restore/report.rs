//! What a restore did: the public report, and what the steps on disk record on the way to it.
//! Its own file so that every step can record into it while `mod.rs`, which calls the steps,
//! only re-exports it: the dependencies between the files of `restore/` point one way.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

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
    /// The target filled up: the files in `errors` were not restored for want of space.
    pub out_of_space: bool,
    /// Entries that replaced something else at their place (other content, another kind).
    pub replaced: u64,
    /// Existing entries the `--overwrite` policy left as they were (not counted in `files`).
    pub skipped: u64,
    /// What `--delete` removed (a directory, with everything in it, once).
    pub deleted: Vec<PathBuf>,
    /// Include, then exclude patterns that matched no entry of the snapshot.
    pub unmatched_include: Vec<String>,
    pub unmatched_exclude: Vec<String>,
    /// A dry run: every change the run would make (entries already in place are only counted,
    /// in `unchanged`). Empty for a real run.
    pub changes: Vec<Change>,
}

/// One change a dry run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Path below the target.
    pub path: PathBuf,
    pub action: ChangeAction,
    /// A directory.
    pub dir: bool,
}

/// What a run would do at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    /// Nothing is there: the entry would be made.
    New,
    /// Something else is there: it would be replaced.
    Replace,
    /// `--delete`: the snapshot lacks it; it would be removed.
    Delete,
    /// Something is there and the `--overwrite` policy leaves it.
    Skip,
    /// A directory with entries is in the way, and `--delete` is off: not restored.
    Blocked,
}

impl ChangeAction {
    /// The word shown for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Replace => "replace",
            Self::Delete => "delete",
            Self::Skip => "skip",
            Self::Blocked => "blocked",
        }
    }
}

/// What creating the entries and writing the data found, before it becomes a [`RestoreReport`].
/// The plan itself stays unchanged data; everything that depends on the target lands here.
#[derive(Default)]
pub(crate) struct Outcome {
    /// File index → why it could not be restored. A mutex: pack workers fail files in parallel.
    failures: Mutex<BTreeMap<usize, String>>,
    /// Files already in place with the right content: nothing to write.
    pub unchanged: u64,
    /// Entries skipped or not created, in the order the plan lists them.
    pub warnings: Vec<RestoreProblem>,
    /// Indexes into the plan's `others` of the entries created: only they get metadata.
    pub others: Vec<usize>,
    /// Entries other than files that could not be restored (a directory that vanished).
    pub errors: Vec<RestoreProblem>,
    /// Files (indexes in the batch) written into a temporary, renamed into place when complete.
    pub temps: HashSet<usize>,
    /// Files verified after writing (with `verify`).
    pub verified: u64,
    /// Files the policy left as they were: neither written nor given metadata.
    pub skipped: HashSet<usize>,
    /// Files already in place whose metadata is already the snapshot's: not touched at all.
    pub untouched: HashSet<usize>,
    /// Files that replace something else at their place.
    pub replacing: HashSet<usize>,
    /// Entries other than files left by the policy, and those replacing something.
    pub others_skipped: u64,
    pub others_replaced: u64,
    /// Set once the target is found full: what is left is failed without being tried.
    full: AtomicBool,
    /// Files whose metadata the write of their last byte already applied, with what could
    /// not be applied: putting them in place is then only a rename.
    early_meta: Mutex<BTreeMap<usize, Vec<String>>>,
    /// Files that stand in the target with other content and are being replaced: if their
    /// restore fails, what is there stays (it is the user's, and only a complete file is ever
    /// renamed over it).
    replacing_existing: Mutex<HashSet<usize>>,
}

impl Outcome {
    /// Records that file `file` replaces an existing file of other content.
    pub fn replaces_existing(&self, file: usize) {
        self.replacing_existing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(file);
    }

    /// True when file `file` was to replace an existing file.
    pub fn had_existing(&self, file: usize) -> bool {
        self.replacing_existing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&file)
    }

    /// Records why file `file` failed; the first reason is the one reported.
    pub fn fail(&self, file: usize, message: String) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(file)
            .or_insert(message);
    }

    pub fn failed(&self, file: usize) -> bool {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&file)
    }

    pub fn set_full(&self) {
        self.full.store(true, Ordering::Relaxed);
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Records that file `file`'s metadata is applied, with its problems.
    pub fn meta_applied(&self, file: usize, problems: Vec<String>) {
        self.early_meta
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(file, problems);
    }

    /// Takes the files whose metadata is applied, by file index.
    pub fn take_meta_applied(&mut self) -> BTreeMap<usize, Vec<String>> {
        std::mem::take(
            self.early_meta
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Takes the failures recorded so far, by file index.
    pub fn take_failures(&mut self) -> BTreeMap<usize, String> {
        std::mem::take(
            self.failures
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}
