//! What to do with each entry of a restore, given what already stands at its place in the
//! target: the `--overwrite` policy and `--delete`, as pure decisions. What stands there is
//! found by `inspect.rs`; the real run (`create.rs`, `place.rs`) and a dry run carry out or
//! list the same decisions, so a dry run shows exactly what a run would do.
//!
//! The rules follow restic 0.17, with one difference: the content of an existing file is always
//! checked by hashing it against the snapshot's blob ids, never guessed from size and time.
//!
//! - A directory of the snapshot is always made: an existing directory is kept (and gets the
//!   snapshot's metadata), anything else there is replaced by it, whatever the policy.
//! - Any other entry (file, symlink, device, FIFO, hard link) where nothing stands is made.
//! - Where something stands: `never` leaves it; `if-newer` leaves it unless the snapshot's
//!   mtime is later than its own; otherwise a file whose content is already the snapshot's is
//!   not written again (`always` then sets its metadata; `if-changed` only when it differs), a
//!   symlink already pointing where the snapshot's does, with its mtime, is left (`if-changed`),
//!   and anything else is replaced.
//! - A directory standing where a non-directory goes is replaced when it is empty, or with
//!   `--delete` (with everything in it); otherwise the entry is not restored.
//! - `--delete` removes what a restored directory of the target holds and the snapshot's
//!   directory does not, when the include and exclude patterns select it.

use std::path::PathBuf;

use super::at::TEMP_PREFIX;
use super::plan::{Filters, Listed};
use kairn_format::tree::Timestamp;

/// What `restore` does with an entry that already exists in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overwrite {
    /// Replace every existing entry. A file whose content is already the snapshot's (checked
    /// by hashing) is not written again, but its metadata is set.
    #[default]
    Always,
    /// Replace an existing entry only when its content or metadata differs from the snapshot's.
    IfChanged,
    /// Replace an existing entry only when the snapshot's mtime is later than its own.
    IfNewer,
    /// Never replace an existing entry.
    Never,
}

impl Overwrite {
    /// The name users give (`--overwrite NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::IfChanged => "if-changed",
            Self::IfNewer => "if-newer",
            Self::Never => "never",
        }
    }
}

/// What stands at an entry's place in the target, as far as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Existing {
    Absent,
    Dir {
        mtime: Timestamp,
        empty: bool,
    },
    /// A regular file. `content`: whether it holds exactly the snapshot's content (`None`: not
    /// read, the policy leaves it anyway). `meta`: whether its mode, mtime, owner (when owners
    /// are restored) and extended attributes are the snapshot's.
    File {
        mtime: Timestamp,
        content: Option<bool>,
        meta: bool,
    },
    /// A symlink; `same`: it points where the snapshot's symlink does.
    Symlink {
        mtime: Timestamp,
        same: bool,
    },
    /// A device, FIFO or socket.
    Other {
        mtime: Timestamp,
    },
}

impl Existing {
    fn mtime(&self) -> Option<Timestamp> {
        match *self {
            Self::Absent => None,
            Self::Dir { mtime, .. }
            | Self::File { mtime, .. }
            | Self::Symlink { mtime, .. }
            | Self::Other { mtime } => Some(mtime),
        }
    }
}

/// What happens to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing stands there: it is made.
    New,
    /// Something else stands there: it is removed and the entry made.
    Replace,
    /// It is there already with the snapshot's content: not written; `meta`: its metadata is
    /// set (a file or directory), else it is not touched at all.
    Keep { meta: bool },
    /// Something stands there and the policy leaves it.
    Skip,
    /// A directory with entries stands where a non-directory goes, and `--delete` is off.
    Blocked,
}

/// Why a blocked entry is not restored.
pub(crate) const BLOCKED: &str =
    "a directory with entries is in the way (--delete replaces it with the snapshot's entry)";

/// Whether `new` counts as newer than `old` for `if-newer`.
fn newer(new: Timestamp, old: Timestamp) -> bool {
    new > old
}

/// Whether to read an existing regular file's content: only when the decision may depend on it.
pub(crate) fn wants_content(
    policy: Overwrite,
    snapshot_mtime: Timestamp,
    mtime: Timestamp,
) -> bool {
    match policy {
        Overwrite::Never => false,
        Overwrite::IfNewer => newer(snapshot_mtime, mtime),
        Overwrite::Always | Overwrite::IfChanged => true,
    }
}

/// The kind of entry the snapshot has at a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    /// A second name of a hard-linked file.
    Link,
    Symlink,
    /// A device or FIFO.
    Other,
}

/// Decides what to do with an entry of kind `kind` and mtime `mtime` in the snapshot, given
/// what stands at its place.
pub(crate) fn decide(
    policy: Overwrite,
    delete: bool,
    kind: Kind,
    mtime: Timestamp,
    existing: &Existing,
) -> Action {
    if kind == Kind::Dir {
        return match existing {
            Existing::Absent => Action::New,
            Existing::Dir { .. } => Action::Keep { meta: true },
            _ => Action::Replace,
        };
    }
    let Some(there) = existing.mtime() else {
        return Action::New;
    };
    match policy {
        Overwrite::Never => return Action::Skip,
        Overwrite::IfNewer if !newer(mtime, there) => return Action::Skip,
        _ => {}
    }
    match (existing, kind) {
        (Existing::Dir { empty, .. }, _) => {
            if *empty || delete {
                Action::Replace
            } else {
                Action::Blocked
            }
        }
        (
            Existing::File {
                content: Some(true),
                meta,
                ..
            },
            Kind::File,
        ) => Action::Keep {
            meta: policy != Overwrite::IfChanged || !meta,
        },
        (Existing::Symlink { same: true, .. }, Kind::Symlink)
            if policy == Overwrite::IfChanged && there == mtime =>
        {
            Action::Keep { meta: false }
        }
        _ => Action::Replace,
    }
}

/// Names a restore may leave in a directory while it runs: never the snapshot's or the user's.
fn ours(name: &[u8]) -> bool {
    name.starts_with(TEMP_PREFIX.as_bytes()) || name.starts_with(super::PROBE_PREFIX.as_bytes())
}

/// What `--delete` removes from the directory `listed` when the target's directory holds
/// `present`: each name the snapshot lacks there that the patterns select (an excluded name,
/// or with include patterns one they do not match, stays), sorted.
pub(crate) fn deletions(listed: &Listed, present: &[Vec<u8>], filters: &Filters) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut out: Vec<PathBuf> = present
        .iter()
        .filter(|name| !listed.names.contains(*name) && !ours(name))
        .map(|name| listed.rel.join(std::ffi::OsStr::from_bytes(name)))
        .filter(|rel| filters.selects(rel, listed.included))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn at(secs: i64) -> Timestamp {
        Timestamp { secs, nanos: 0 }
    }

    fn existing_file(mtime: i64, content: Option<bool>, meta: bool) -> Existing {
        Existing::File {
            mtime: at(mtime),
            content,
            meta,
        }
    }

    use Action::*;
    use Overwrite::*;

    fn file(policy: Overwrite, delete: bool, mtime: i64, existing: &Existing) -> Action {
        decide(policy, delete, Kind::File, at(mtime), existing)
    }

    #[test]
    fn a_missing_entry_is_made_under_every_policy() {
        for policy in [Always, IfChanged, IfNewer, Never] {
            for kind in [
                Kind::Dir,
                Kind::File,
                Kind::Link,
                Kind::Symlink,
                Kind::Other,
            ] {
                assert_eq!(decide(policy, false, kind, at(5), &Existing::Absent), New);
            }
        }
    }

    #[test]
    fn each_policy_decides_an_existing_file() {
        let same = existing_file(5, Some(true), true);
        let same_content_other_meta = existing_file(5, Some(true), false);
        let changed = existing_file(5, Some(false), false);
        assert_eq!(file(Always, false, 5, &same), Keep { meta: true });
        assert_eq!(file(Always, false, 5, &changed), Replace);
        assert_eq!(file(IfChanged, false, 5, &same), Keep { meta: false });
        assert_eq!(
            file(IfChanged, false, 5, &same_content_other_meta),
            Keep { meta: true }
        );
        assert_eq!(file(IfChanged, false, 5, &changed), Replace);
        assert_eq!(file(Never, false, 5, &changed), Skip);
        assert_eq!(file(Never, true, 5, &same), Skip);
    }

    #[test]
    fn if_newer_compares_the_snapshot_mtime_with_the_existing_one() {
        let older_there = existing_file(4, Some(false), false);
        let newer_there = existing_file(6, None, false);
        let same_time = existing_file(5, None, false);
        assert_eq!(file(IfNewer, false, 5, &older_there), Replace);
        assert_eq!(file(IfNewer, false, 5, &newer_there), Skip);
        assert_eq!(file(IfNewer, false, 5, &same_time), Skip);
        let identical = existing_file(4, Some(true), true);
        assert_eq!(file(IfNewer, false, 5, &identical), Keep { meta: true });
        assert!(wants_content(IfNewer, at(5), at(4)));
        assert!(!wants_content(IfNewer, at(5), at(5)));
        assert!(!wants_content(Never, at(5), at(4)));
        assert!(wants_content(IfChanged, at(1), at(9)));
    }

    #[test]
    fn directories_always_win_and_a_full_one_in_the_way_needs_delete() {
        let there = Existing::Dir {
            mtime: at(9),
            empty: false,
        };
        for policy in [Always, IfChanged, IfNewer, Never] {
            let dir = |e: &Existing| decide(policy, false, Kind::Dir, at(5), e);
            assert_eq!(dir(&there), Keep { meta: true });
            assert_eq!(dir(&existing_file(9, None, false)), Replace);
        }
        let empty = Existing::Dir {
            mtime: at(1),
            empty: true,
        };
        assert_eq!(file(Always, false, 10, &there), Blocked);
        assert_eq!(file(Always, true, 10, &there), Replace);
        assert_eq!(file(Always, false, 5, &empty), Replace);
        assert_eq!(file(Never, true, 10, &there), Skip);
        assert_eq!(file(IfNewer, true, 5, &there), Skip);
    }

    #[test]
    fn links_and_symlinks() {
        let same = existing_file(5, Some(true), true);
        assert_eq!(decide(IfChanged, false, Kind::Link, at(5), &same), Replace);
        assert_eq!(decide(Never, false, Kind::Link, at(5), &same), Skip);
        let same_link = Existing::Symlink {
            mtime: at(5),
            same: true,
        };
        let other_link = Existing::Symlink {
            mtime: at(5),
            same: false,
        };
        let symlink = |p: Overwrite, e: &Existing| decide(p, false, Kind::Symlink, at(5), e);
        assert_eq!(symlink(IfChanged, &same_link), Keep { meta: false });
        assert_eq!(symlink(Always, &same_link), Replace);
        assert_eq!(symlink(IfChanged, &other_link), Replace);
        let fifo = Existing::Other { mtime: at(1) };
        assert_eq!(file(IfChanged, false, 5, &fifo), Replace);
        assert_eq!(decide(IfChanged, false, Kind::Other, at(5), &fifo), Replace);
    }

    #[test]
    fn delete_takes_only_selected_names_the_snapshot_lacks() {
        let filters = Filters::new(&["/d/keep*".into()], &["*.log".into()]).unwrap();
        let listed = Listed {
            rel: PathBuf::from("d"),
            names: HashSet::from([b"in-snapshot".to_vec()]),
            included: false,
        };
        let present: Vec<Vec<u8>> = [
            "in-snapshot",
            "keep-extra",
            "other",
            "keep.log",
            ".kairn-part-abc-1",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        assert_eq!(
            deletions(&listed, &present, &filters),
            [PathBuf::from("d/keep-extra")]
        );
        let all = Filters::new(&[], &[]).unwrap();
        let included = Listed {
            included: true,
            ..listed
        };
        assert_eq!(
            deletions(&included, &present, &all),
            [
                PathBuf::from("d/keep-extra"),
                PathBuf::from("d/keep.log"),
                PathBuf::from("d/other")
            ]
        );
    }

    #[test]
    fn a_pattern_that_matches_nothing_in_the_snapshot_is_reported() {
        let filters = Filters::new(
            &["/data/www".into(), "/www".into()],
            &["*.tmp".into(), "*.bak".into()],
        )
        .unwrap();
        assert_eq!(
            filters.admit(std::path::Path::new("www"), false),
            Some(true)
        );
        assert_eq!(filters.admit(std::path::Path::new("www/a.tmp"), true), None);
        // Only the snapshot's entries count: a path of the target selected for --delete does not.
        assert!(filters.selects(std::path::Path::new("x.bak.d/data/www"), true));
        assert_eq!(
            filters.unmatched(),
            (vec!["/data/www".to_string()], vec!["*.bak".to_string()])
        );
    }

    #[test]
    fn deleting_a_tree_removes_a_symlink_in_it_and_not_what_it_points_to() {
        use std::os::fd::AsFd;
        let target = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"x").unwrap();
        std::fs::create_dir_all(target.path().join("d/e")).unwrap();
        std::fs::write(target.path().join("d/e/f"), b"y").unwrap();
        std::os::unix::fs::symlink(outside.path(), target.path().join("d/link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), target.path().join("top")).unwrap();
        let root = std::fs::File::open(target.path()).unwrap();
        let gone = |name: &str| super::super::fs::remove_tree(root.as_fd(), name.as_ref()).unwrap();
        assert_eq!(gone("top"), 1);
        assert_eq!(gone("d"), 4);
        assert_eq!(gone("d"), 0);
        assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
        assert_eq!(std::fs::read(outside.path().join("keep")).unwrap(), b"x");
    }
}
