//! Applying metadata once the content is written: owner, xattrs, mode, then times, in that
//! order (chown clears setuid bits; anything written changes times). Files and directories get
//! theirs through an open descriptor (`fchown`, `fsetxattr`, `fchmod`, `futimens`), so a link
//! swapped in meanwhile is never followed and the mode is exactly the snapshot's whatever the
//! umask. Symlinks, devices and FIFOs are not opened (that could block or have effects): their
//! owner and times are set with `AT_SYMLINK_NOFOLLOW`, and their mode and xattrs through
//! `/proc/self/fd` of a handle that names the entry itself.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags, chownat, fchmod,
    fchown, fsetxattr, fstat, futimens, openat, utimensat,
};

use super::at::{Dirs, Target, why_no_dir};
use super::plan::{DirEntry, Plan};
use super::report::{RestoreProblem, RestoreReport};
use kairn_format::tree::{Node, NodeKind, Timestamp};

fn timestamps(node: &Node) -> Timestamps {
    let spec = |t: Timestamp| Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos),
    };
    Timestamps {
        last_access: spec(node.atime),
        last_modification: spec(node.mtime),
    }
}

fn ids(node: &Node) -> (Option<Uid>, Option<Gid>) {
    (
        Some(Uid::from_raw_unchecked(node.uid)),
        Some(Gid::from_raw_unchecked(node.gid)),
    )
}

fn mode(node: &Node) -> Mode {
    Mode::from_raw_mode(node.mode & 0o7777)
}

/// Applies a file's or directory's metadata through its descriptor.
pub(crate) fn apply_fd(fd: BorrowedFd<'_>, node: &Node, owner: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if owner && let Err(e) = fchown(fd, ids(node).0, ids(node).1) {
        problems.push(format!("cannot set owner {}:{}: {e}", node.uid, node.gid));
    }
    for x in &node.xattrs {
        let name = OsStr::from_bytes(&x.name);
        if let Err(e) = fsetxattr(fd, name, &x.value, XattrFlags::empty()) {
            problems.push(xattr_problem(&x.name, e));
        }
    }
    if let Err(e) = fchmod(fd, mode(node)) {
        problems.push(format!("cannot set mode {:o}: {e}", node.mode));
    }
    if let Err(e) = futimens(fd, &timestamps(node)) {
        problems.push(format!("cannot set times: {e}"));
    }
    problems
}

fn xattr_problem(name: &[u8], e: impl std::fmt::Display) -> String {
    format!(
        "cannot set extended attribute {}: {e}",
        String::from_utf8_lossy(name)
    )
}

/// Applies a symlink's, device's or FIFO's metadata to `name` in `dir` without following it.
fn apply_at(dir: BorrowedFd<'_>, name: &OsStr, node: &Node, owner: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let (uid, gid) = ids(node);
    if owner && let Err(e) = chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW) {
        problems.push(format!("cannot set owner {}:{}: {e}", node.uid, node.gid));
    }
    // `/proc/self/fd/N/name` resolves the directory through its handle; `l*xattr` does not
    // follow `name` itself.
    let in_dir = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    for x in &node.xattrs {
        let xname = OsStr::from_bytes(&x.name);
        if let Err(e) = rustix::fs::lsetxattr(&in_dir, xname, &x.value, XattrFlags::empty()) {
            problems.push(xattr_problem(&x.name, e));
        }
    }
    if !matches!(node.kind, NodeKind::Symlink { .. })
        && let Err(e) = chmod_entry(dir, name, node)
    {
        problems.push(format!("cannot set mode {:o}: {e}", node.mode));
    }
    let flags = AtFlags::SYMLINK_NOFOLLOW;
    if let Err(e) = utimensat(dir, name, &timestamps(node), flags) {
        problems.push(format!("cannot set times: {e}"));
    }
    problems
}

/// Linux has no `lchmod`: the entry is opened as a path-only handle (which neither blocks nor
/// follows), checked not to be a link, and changed through that handle's `/proc` name.
fn chmod_entry(dir: BorrowedFd<'_>, name: &OsStr, node: &Node) -> std::io::Result<()> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let handle = openat(dir, name, flags, Mode::empty())?;
    if FileType::from_raw_mode(fstat(&handle)?.st_mode) == FileType::Symlink {
        return Err(std::io::Error::other("it was replaced by a symbolic link"));
    }
    let by_handle = format!("/proc/self/fd/{}", handle.as_raw_fd());
    Ok(rustix::fs::chmod(by_handle.as_str(), mode(node))?)
}

fn record(report: &mut RestoreReport, rel: &Path, problems: Vec<String>) {
    for message in problems {
        report.warnings.push(RestoreProblem {
            path: rel.to_path_buf(),
            message,
        });
    }
}

/// Sets the metadata of a batch's symlinks, devices and FIFOs (`others`: those created).
pub(crate) fn apply_others(
    dirs: &Dirs<'_>,
    plan: &Plan,
    others: &[usize],
    owner: bool,
    report: &mut RestoreReport,
) {
    for other in others.iter().map(|&i| &plan.others[i]) {
        let problems = match dirs.parent(&other.rel) {
            Ok((dir, name)) => apply_at(dir.as_fd(), name, &other.node, owner),
            Err(e) => vec![why_no_dir(&e)],
        };
        record(report, &other.rel, problems);
    }
}

/// Sets the metadata of every directory, deepest first (setting a directory's times before
/// writing into it would undo them), once everything below them is in place; those that could
/// not be created (in `report.errors`) are left alone.
pub(crate) fn apply_dirs(
    target: &Target,
    dirs: &[DirEntry],
    owner: bool,
    report: &mut RestoreReport,
) {
    let failed: std::collections::HashSet<PathBuf> =
        report.errors.iter().map(|e| e.path.clone()).collect();
    for dir in dirs.iter().rev() {
        if failed.contains(&dir.rel) {
            continue;
        }
        let fd = match target.dir(&dir.rel) {
            Ok(fd) => fd,
            Err(e) => {
                record(report, &dir.rel, vec![why_no_dir(&e)]);
                continue;
            }
        };
        let problems = match &dir.node {
            Some(node) => apply_fd(fd.as_fd(), node, owner),
            None => match fchmod(&fd, Mode::from_raw_mode(0o755)) {
                Ok(()) => Vec::new(),
                Err(e) => vec![format!("cannot set mode: {e}")],
            },
        };
        record(report, &dir.rel, problems);
    }
}
