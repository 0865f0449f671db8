//! `--verify`: re-read every restored file and check each blob id and the file size.

use std::fs::File;
use std::os::unix::fs::FileExt;

use rayon::prelude::*;

use super::plan::Plan;
use super::report::{RestoreProblem, RestoreReport};
use crate::progress::Progress;
use kairn_format::tree::{Extent, NodeKind};
use kairn_repository::repo::Repository;

pub(crate) fn verify_all(
    repo: &Repository,
    plan: &Plan,
    report: &mut RestoreReport,
    progress: &dyn Progress,
) {
    let failed: std::collections::HashSet<_> =
        report.errors.iter().map(|e| e.path.clone()).collect();
    let problems: Vec<RestoreProblem> = plan
        .files
        .par_iter()
        .filter(|job| !failed.contains(&job.rel))
        .filter_map(|job| {
            let NodeKind::File { size, content } = &job.node.kind else {
                return None;
            };
            let result = verify_file(repo, &job.abs, *size, content, progress);
            result.err().map(|message| RestoreProblem {
                path: job.rel.clone(),
                message,
            })
        })
        .collect();
    let checked = plan
        .files
        .iter()
        .filter(|job| !failed.contains(&job.rel))
        .count();
    report.verified = checked.saturating_sub(problems.len()) as u64;
    report.errors.extend(problems);
}

fn verify_file(
    repo: &Repository,
    path: &std::path::Path,
    size: u64,
    content: &[Extent],
    progress: &dyn Progress,
) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("verify: cannot open: {e}"))?;
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
