//! Looking at the target before a batch is carried out: what stands at each entry's place
//! (`policy::Existing`), and with `--delete` what each restored directory holds that the
//! snapshot lacks; then the pure decisions of `policy.rs` for all of it. Nothing here changes
//! the target: files are read back with `O_NOATIME` where allowed, and nothing is opened
//! through a symlink (every directory is reached as `at.rs` does). A dry run is this, listed.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, fgetxattr, readlinkat, statat};

use super::at::Dirs;
use super::existing::holds;
use super::fs::{names, open_to_check};
use super::plan::{Filters, Plan, Step};
use super::policy::{Action, Existing, Kind, Overwrite, decide, deletions, wants_content};
use kairn_format::crypto::MasterKeys;
use kairn_format::tree::{Node, NodeKind, Timestamp};

/// How existing entries are treated.
pub(crate) struct Rules<'a> {
    pub policy: Overwrite,
    pub delete: bool,
    /// Owners are restored, so an owner that differs is a change (`if-changed`).
    pub owner: bool,
    pub filters: &'a Filters,
}

/// What a batch does at each place: one action per step (a `Step::Skip`'s is unused) and per
/// hard link, in the plan's order, and what `--delete` removes.
pub(crate) struct Decisions {
    pub steps: Vec<Action>,
    pub links: Vec<Action>,
    pub deletes: Vec<PathBuf>,
}

/// Looks at the target (`None`: it does not exist yet, so everything is new) and decides.
pub(crate) fn decide_batch(
    keys: &MasterKeys,
    dirs: Option<&Dirs<'_>>,
    plan: &Plan,
    rules: &Rules<'_>,
) -> Decisions {
    let steps = plan
        .steps
        .par_iter()
        .map(|step| {
            let (rel, node) = match step {
                Step::Dir(i) => {
                    let dir = &plan.dirs[*i];
                    let mtime = dir.node.as_ref().map(|n| n.mtime).unwrap_or_default();
                    let there = look(keys, dirs, &dir.rel, None, true, rules);
                    return decide(rules.policy, rules.delete, Kind::Dir, mtime, &there);
                }
                Step::File(i) => (&plan.files[*i].rel, &plan.files[*i].node),
                Step::Other(i) => (&plan.others[*i].rel, &plan.others[*i].node),
                Step::Skip { .. } => return Action::New,
            };
            let kind = match node.kind {
                NodeKind::File { .. } => Kind::File,
                NodeKind::Symlink { .. } => Kind::Symlink,
                _ => Kind::Other,
            };
            let there = look(keys, dirs, rel, Some(node), false, rules);
            decide(rules.policy, rules.delete, kind, node.mtime, &there)
        })
        .collect();
    let links = plan
        .links
        .par_iter()
        .map(|link| {
            let there = look(keys, dirs, &link.rel, None, false, rules);
            decide(rules.policy, rules.delete, Kind::Link, link.mtime, &there)
        })
        .collect();
    let mut deletes = Vec::new();
    if let Some(dirs) = dirs {
        for listed in &plan.listed {
            let Ok(dir) = dirs.target().dir(&listed.rel) else {
                continue;
            };
            if let Ok(present) = names(dir.as_fd()) {
                deletes.extend(deletions(listed, &present, rules.filters));
            }
        }
    }
    Decisions {
        steps,
        links,
        deletes,
    }
}

fn timestamp(secs: i64, nanos: u64) -> Timestamp {
    Timestamp {
        secs,
        nanos: u32::try_from(nanos).unwrap_or(0),
    }
}

/// What stands at `rel`; `node` is the snapshot's entry there (`None` for a directory or a
/// hard link, whose existing content never decides anything), `dir_wanted` when it is a
/// directory.
fn look(
    keys: &MasterKeys,
    dirs: Option<&Dirs<'_>>,
    rel: &Path,
    node: Option<&Node>,
    dir_wanted: bool,
    rules: &Rules<'_>,
) -> Existing {
    // A parent that cannot be opened (missing, or a non-directory the run replaces) holds
    // nothing yet.
    let Some((dir, name)) = dirs.and_then(|d| d.parent(rel).ok()) else {
        return Existing::Absent;
    };
    let Ok(st) = statat(dir.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) else {
        return Existing::Absent;
    };
    let mtime = timestamp(st.st_mtime, st.st_mtime_nsec);
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Existing::Dir {
            mtime,
            // Only asked when a non-directory goes there.
            empty: !dir_wanted && is_empty(dirs, rel),
        },
        FileType::RegularFile => match node {
            Some(node) if wants_content(rules.policy, node.mtime, mtime) => {
                let (content, meta) = check_file(keys, dir.as_fd(), name, node, rules);
                Existing::File {
                    mtime,
                    content: Some(content),
                    meta,
                }
            }
            _ => Existing::File {
                mtime,
                content: None,
                meta: false,
            },
        },
        FileType::Symlink => Existing::Symlink {
            mtime,
            same: match node.map(|n| &n.kind) {
                Some(NodeKind::Symlink { target }) => readlinkat(dir.as_fd(), name, Vec::new())
                    .is_ok_and(|t| t.as_bytes() == target.as_slice()),
                _ => false,
            },
        },
        _ => Existing::Other { mtime },
    }
}

fn is_empty(dirs: Option<&Dirs<'_>>, rel: &Path) -> bool {
    dirs.and_then(|d| d.target().dir(rel).ok())
        .and_then(|fd| names(fd.as_fd()).ok())
        .is_some_and(|n| n.is_empty())
}

/// Whether a regular file holds the snapshot's content, and (for `if-changed` only, which is
/// the one policy asking) whether its metadata is the snapshot's: mode, mtime, the owner when
/// owners are restored, and each extended attribute. Access times are not compared: reading
/// a file may change its own.
fn check_file(
    keys: &MasterKeys,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    node: &Node,
    rules: &Rules<'_>,
) -> (bool, bool) {
    let Ok(mut file) = open_to_check(dir, name) else {
        return (false, false);
    };
    let content = holds(keys, &mut file, node);
    let meta = content && rules.policy == Overwrite::IfChanged && same_meta(&file, node, rules);
    (content, meta)
}

fn same_meta(file: &std::fs::File, node: &Node, rules: &Rules<'_>) -> bool {
    let Ok(st) = rustix::fs::fstat(file) else {
        return false;
    };
    let same_owner = !rules.owner || (st.st_uid == node.uid && st.st_gid == node.gid);
    st.st_mode & 0o7777 == node.mode & 0o7777
        && timestamp(st.st_mtime, st.st_mtime_nsec) == node.mtime
        && same_owner
        && node.xattrs.iter().all(|x| {
            let mut buf = vec![0u8; x.value.len() + 1];
            matches!(fgetxattr(file, OsStr::from_bytes(&x.name), &mut buf),
                     Ok(n) if buf[..n] == x.value[..])
        })
}
