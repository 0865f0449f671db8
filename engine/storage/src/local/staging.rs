//! Staged files left in `tmp/` by writers that died mid-write, and the rule that removes them.
//!
//! A staged file is stale when its storage time is older than the session expiry, measured
//! against the storage's own "now" (the time of a probe file written there), never a local
//! clock. A live writer rewrites its staged file continuously and renames it within one write,
//! so its file is always younger than that; and a writer that did stall longer than the expiry
//! only loses its rename (`ENOENT`), never an object: nothing refers to a staged file.

use std::fs;
use std::path::Path;
use std::time::Duration;

use kairn_format::error::{Error, Result};

/// A file in `tmp/`: its name and its storage time in milliseconds since the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedFile {
    /// The file name inside `tmp/`.
    pub name: String,
    /// Last modification, in the storage's time.
    pub modified_ms: i64,
}

/// The staged files older than `max_age` at storage time `now_ms`. A file from the storage's
/// future (a clock stepped back) is young, never stale.
pub fn stale_staged_files(files: &[StagedFile], now_ms: i64, max_age: Duration) -> Vec<&str> {
    let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    files
        .iter()
        .filter(|f| now_ms.saturating_sub(f.modified_ms) > max_age_ms)
        .map(|f| f.name.as_str())
        .collect()
}

/// Removes the stale staged files in `tmp`; returns how many went.
pub(super) fn remove_stale(tmp: &Path, max_age: Duration) -> Result<u64> {
    let now_ms = storage_now(tmp)?;
    let files = staged_files(tmp)?;
    let mut removed = 0;
    for name in stale_staged_files(&files, now_ms, max_age) {
        match fs::remove_file(tmp.join(name)) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // its writer renamed it
            Err(e) => return Err(Error::io(format!("cannot remove tmp/{name}"), e)),
        }
    }
    Ok(removed)
}

/// The storage's time now: that of an empty probe file, which needs no data blocks and so can
/// be made on a full disk.
fn storage_now(tmp: &Path) -> Result<i64> {
    let probe = tmp.join(format!("now.{:016x}", rand::random::<u64>()));
    let file = super::fsops::create_new(&probe)?;
    let meta = file.metadata();
    drop(file);
    let _ = fs::remove_file(&probe);
    let meta = meta.map_err(|e| Error::io(format!("cannot stat {}", probe.display()), e))?;
    super::fsops::millis(&meta)
}

fn staged_files(tmp: &Path) -> Result<Vec<StagedFile>> {
    let entries = match fs::read_dir(tmp) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("cannot list {}", tmp.display()), e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", tmp.display()), e))?;
        // Only files: a directory in tmp/ is no writer's, and removing it is not this rule's.
        let meta = match entry.metadata() {
            Ok(meta) if !meta.is_dir() => meta,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("cannot stat {}", tmp.display()), e)),
        };
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        files.push(StagedFile {
            name,
            modified_ms: super::fsops::millis(&meta)?,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(name: &str, modified_ms: i64) -> StagedFile {
        StagedFile {
            name: name.into(),
            modified_ms,
        }
    }

    #[test]
    fn only_files_older_than_the_expiry_in_storage_time_are_stale() {
        let expiry = Duration::from_secs(60);
        let now = 1_800_000_000_000;
        let files = [
            file("old", now - 61_000),
            file("exactly-expiry", now - 60_000),
            file("young", now - 1_000),
            file("future", now + 3_600_000),
        ];
        assert_eq!(stale_staged_files(&files, now, expiry), vec!["old"]);
    }

    #[test]
    fn a_live_writers_file_is_never_stale_whatever_the_local_clock() {
        // Storage time is all that counts: a file written at the storage's "now" is young
        // even when the expiry is zero.
        let files = [file("writing", 5_000)];
        assert!(stale_staged_files(&files, 5_000, Duration::ZERO).is_empty());
    }

    #[test]
    fn remove_stale_removes_old_staged_files_and_keeps_young_ones() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path();
        std::fs::write(tmp.join("old"), b"partial").unwrap();
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        let old = std::fs::File::options()
            .write(true)
            .open(tmp.join("old"))
            .unwrap();
        old.set_modified(an_hour_ago).unwrap();
        std::fs::write(tmp.join("young"), b"being written").unwrap();
        assert_eq!(remove_stale(tmp, Duration::from_secs(60)).unwrap(), 1);
        let left: Vec<String> = std::fs::read_dir(tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec!["young".to_string()], "the probe is gone too");
    }
}
