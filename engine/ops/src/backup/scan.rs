//! A metadata-only walk of what a backup would visit, to give its progress display a total.
//! It applies the backup's own rules (filters, one file system, the repository left out), so
//! the totals match what the backup counts; it reads no file content but tag file headers.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::metadata::list_dir;
use super::options::BackupOptions;
use super::{accessible_paths, filters};
use kairn_format::error::Result;

/// What the scan found so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanTotals {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes of the regular files.
    pub bytes: u64,
}

/// How often the running totals are reported.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// Walks the backup paths of `opts` as a backup would, without reading content, reporting the
/// running totals to `report` now and then. Returns the final totals, or what was found when
/// `stop` became true. Unreadable entries are skipped silently: the backup warns about them.
pub fn scan_totals(
    opts: &BackupOptions,
    stop: &AtomicBool,
    report: &mut dyn FnMut(ScanTotals),
) -> Result<ScanTotals> {
    let filters = filters(opts)?;
    let repository = opts
        .repository_dir
        .as_ref()
        .and_then(|d| std::fs::metadata(d).ok())
        .map(|m| (m.dev(), m.ino()));
    let mut roots: Vec<PathBuf> = Vec::new();
    for p in accessible_paths(&opts.paths)? {
        // Sorted: an ancestor comes first, and the backup stores a path below it only once.
        if !roots.iter().any(|r| p.starts_with(r)) {
            roots.push(p);
        }
    }
    let mut totals = ScanTotals::default();
    let mut last = Instant::now();
    for root in roots {
        let Ok(meta) = std::fs::symlink_metadata(&root) else {
            continue;
        };
        let root_dev = meta.dev();
        let mut stack = vec![(root, meta)];
        while let Some((path, meta)) = stack.pop() {
            if stop.load(Ordering::Relaxed) {
                return Ok(totals);
            }
            if last.elapsed() >= REPORT_EVERY {
                report(totals);
                last = Instant::now();
            }
            if filters.too_large(meta.is_file(), meta.len()) {
                continue;
            }
            if meta.is_file() {
                totals.files += 1;
                totals.bytes += meta.len();
                continue;
            }
            if !meta.is_dir() || repository == Some((meta.dev(), meta.ino())) {
                continue;
            }
            totals.dirs += 1;
            if opts.one_file_system && meta.dev() != root_dev {
                continue;
            }
            let Ok(mut names) = list_dir(&path) else {
                continue;
            };
            filters.drop_marked(&path, &mut names);
            for name in names {
                let child = path.join(std::ffi::OsStr::from_bytes(&name));
                if filters.excludes_path(&child) {
                    continue;
                }
                if let Ok(m) = std::fs::symlink_metadata(&child) {
                    stack.push((child, m));
                }
            }
        }
    }
    report(totals);
    Ok(totals)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn totals_follow_the_filters() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/cache")).unwrap();
        std::fs::write(d.join("a/one"), vec![1u8; 10]).unwrap();
        std::fs::write(d.join("a/big"), vec![1u8; 1000]).unwrap();
        std::fs::write(d.join("a/skip.log"), vec![1u8; 7]).unwrap();
        std::fs::write(
            d.join("a/cache/CACHEDIR.TAG"),
            &super::super::CACHEDIR_TAG.as_bytes()[13..],
        )
        .unwrap();
        std::fs::write(d.join("a/cache/blob"), vec![1u8; 50]).unwrap();
        let mut opts = BackupOptions {
            paths: vec![d.join("a"), d.join("a/one")],
            ..Default::default()
        };
        let stop = AtomicBool::new(false);
        let all = scan_totals(&opts, &stop, &mut |_| {}).unwrap();
        assert_eq!((all.files, all.dirs), (5, 2));
        assert_eq!(all.bytes, 10 + 1000 + 7 + 50 + 43);
        opts.excludes = vec!["*.log".into()];
        opts.exclude_larger_than = Some(100);
        opts.exclude_if_present = vec![super::super::CACHEDIR_TAG.into()];
        let some = scan_totals(&opts, &stop, &mut |_| {}).unwrap();
        assert_eq!((some.files, some.bytes), (2, 10 + 43));
        stop.store(true, Ordering::Relaxed);
        assert_eq!(scan_totals(&opts, &stop, &mut |_| {}).unwrap().files, 0);
    }
}
