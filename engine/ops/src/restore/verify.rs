//! `--verify`: re-read every restored file and check each blob id and the file size.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use rayon::prelude::*;

use super::at::{Dirs, why_no_dir};
use super::fs::open_file;
use super::plan::Plan;
use super::report::Outcome;
use crate::progress::Progress;
use kairn_format::tree::{Extent, NodeKind};
use kairn_repository::repo::Repository;

/// Checks every file not failed yet (nor left by the `--overwrite` policy): a written one in its
/// temporary, before it is put in place.
pub(crate) fn verify_all(
    repo: &Repository,
    dirs: &Dirs<'_>,
    plan: &Plan,
    outcome: &mut Outcome,
    progress: &dyn Progress,
) {
    let checked: Vec<(usize, Result<(), String>)> = plan
        .files
        .par_iter()
        .enumerate()
        .filter(|(i, _)| !outcome.failed(*i) && !outcome.skipped.contains(i))
        .filter_map(|(i, job)| {
            let NodeKind::File { size, content } = &job.node.kind else {
                return None;
            };
            let opened = dirs.parent(&job.rel).map_err(|e| why_no_dir(&e));
            let opened = opened.and_then(|(dir, name)| {
                let temp = dirs.target().temp_name(plan.first_file + i);
                let current = if outcome.temps.contains(&i) {
                    temp.as_os_str()
                } else {
                    name
                };
                open_file(dir.as_fd(), current, false)
                    .map_err(|e| format!("verify: cannot open: {e}"))
            });
            let result = opened.and_then(|file| verify_file(repo, &file, *size, content, progress));
            Some((i, result))
        })
        .collect();
    for (i, result) in checked {
        match result {
            Ok(()) => outcome.verified += 1,
            Err(message) => outcome.fail(i, message),
        }
    }
}

fn verify_file(
    repo: &Repository,
    file: &File,
    size: u64,
    content: &[Extent],
    progress: &dyn Progress,
) -> Result<(), String> {
    let actual = file.metadata().map_err(|e| format!("verify: {e}"))?.len();
    if actual != size {
        return Err(format!("verify: size is {actual}, expected {size}"));
    }
    let mut buf = Vec::new();
    let mut offset = 0u64;
    for extent in content {
        if let Extent::Data { id, len } = extent {
            buf.resize(*len as usize, 0);
            file.read_exact_at(&mut buf, offset)
                .map_err(|e| format!("verify: read failed: {e}"))?;
            if repo.keys().data_id(&buf) != *id {
                return Err(format!(
                    "verify: content at offset {offset} does not match blob {}",
                    id.short()
                ));
            }
            progress.bytes(u64::from(*len));
        }
        offset += extent.len();
    }
    Ok(())
}
