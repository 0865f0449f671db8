//! Applying metadata once the content is written: owner, xattrs, mode, then times, in that
//! order (chown clears setuid bits; anything written changes times).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use rayon::prelude::*;

use super::plan::Plan;
use super::report::{RestoreProblem, RestoreReport};
use kairn_format::tree::{Node, NodeKind, Timestamp};

fn timespec(t: Timestamp) -> TimeSpec {
    TimeSpec::new(t.secs, i64::from(t.nanos))
}

/// Applies a node's metadata to `path`, returning what could not be applied.
fn apply(path: &Path, node: &Node, owner: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let is_link = matches!(node.kind, NodeKind::Symlink { .. });
    if owner && let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)) {
        problems.push(format!("cannot set owner {}:{}: {e}", node.uid, node.gid));
    }
    for x in &node.xattrs {
        if let Err(e) = xattr::set(path, OsStr::from_bytes(&x.name), &x.value) {
            problems.push(format!(
                "cannot set extended attribute {}: {e}",
                String::from_utf8_lossy(&x.name)
            ));
        }
    }
    if !is_link
        && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode))
    {
        problems.push(format!("cannot set mode {:o}: {e}", node.mode));
    }
    if let Err(e) = utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &timespec(node.atime),
        &timespec(node.mtime),
        UtimensatFlags::NoFollowSymlink,
    ) {
        problems.push(format!("cannot set times: {e}"));
    }
    problems
}

fn record(report: &mut RestoreReport, rel: &Path, problems: Vec<String>) {
    for message in problems {
        report.warnings.push(RestoreProblem {
            path: rel.to_path_buf(),
            message,
        });
    }
}

/// Applies metadata to everything restored: files and specials first, directories deepest first.
/// `others` lists the specials (indexes into `plan.others`) that were created.
pub(crate) fn apply_all(plan: &Plan, others: &[usize], owner: bool, report: &mut RestoreReport) {
    let failed: std::collections::HashSet<PathBuf> =
        report.errors.iter().map(|e| e.path.clone()).collect();
    let file_problems: Vec<(PathBuf, Vec<String>)> = plan
        .files
        .par_iter()
        .filter(|job| !failed.contains(&job.rel))
        .map(|job| (job.rel.clone(), apply(&job.abs, &job.node, owner)))
        .collect();
    for (rel, problems) in file_problems {
        record(report, &rel, problems);
    }
    for other in others.iter().map(|&i| &plan.others[i]) {
        let problems = apply(&other.abs, &other.node, owner);
        record(report, &other.rel, problems);
    }
    for dir in plan.dirs.iter().rev() {
        if let Some(node) = &dir.node {
            let problems = apply(&dir.abs, node, owner);
            record(report, &dir.rel, problems);
        } else if let Err(e) =
            std::fs::set_permissions(&dir.abs, std::fs::Permissions::from_mode(0o755))
        {
            record(report, &dir.rel, vec![format!("cannot set mode: {e}")]);
        }
    }
}
