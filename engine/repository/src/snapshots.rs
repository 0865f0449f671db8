//! Finding snapshots: by id prefix, `latest`, and filters on host, path, tag and source.

use crate::repo::Repository;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::SnapshotId;
use kairn_format::snapshot::{Snapshot, Source};

/// Which snapshots to consider.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    /// Any of these hosts (all when empty).
    pub hosts: Vec<String>,
    /// Snapshots that include any of these paths (all when empty).
    pub paths: Vec<String>,
    /// Exactly this set of paths.
    pub exact_paths: Option<Vec<String>>,
    /// Snapshots carrying all of these tags (all when empty).
    pub tags: Vec<String>,
    /// Exactly this source identity.
    pub source: Option<Source>,
    /// Only snapshots that belong to a cluster backup, or to this one.
    pub group: Option<GroupMatch>,
}

/// Which cluster backups a filter lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupMatch {
    /// Any snapshot that is part of a cluster backup.
    Any,
    /// The snapshots of the cluster backup with this id.
    Id(String),
}

impl SnapshotFilter {
    /// True when `snap` passes the filter.
    pub fn matches(&self, snap: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&snap.host))
            && (self.paths.is_empty() || self.paths.iter().any(|p| snap.paths.contains(p)))
            && self.exact_paths.as_ref().is_none_or(|want| {
                let mut have = snap.paths.clone();
                have.sort();
                let mut want = want.clone();
                want.sort();
                have == want
            })
            && self.tags.iter().all(|t| snap.tags.contains(t))
            && self.source.as_ref().is_none_or(|s| *s == snap.source)
            && self
                .group
                .as_ref()
                .is_none_or(|want| match (want, &snap.group) {
                    (_, None) => false,
                    (GroupMatch::Any, Some(_)) => true,
                    (GroupMatch::Id(id), Some(g)) => g.id == *id,
                })
    }
}

/// Every snapshot that passes `filter`, oldest first.
pub fn list(repo: &Repository, filter: &SnapshotFilter) -> Result<Vec<(SnapshotId, Snapshot)>> {
    Ok(repo
        .load_snapshots()?
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect())
}

/// The newest snapshot that passes `filter`.
pub fn latest_matching(
    repo: &Repository,
    filter: &SnapshotFilter,
) -> Result<Option<(SnapshotId, Snapshot)>> {
    Ok(list(repo, filter)?.pop())
}

/// Resolves `latest` or a unique hex prefix of a snapshot id (at least 4 digits... or any
/// length when unique).
pub fn find(
    repo: &Repository,
    name: &str,
    filter: &SnapshotFilter,
) -> Result<(SnapshotId, Snapshot)> {
    if name == "latest" {
        return latest_matching(repo, filter)?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "there is no snapshot (matching the filters) yet",
            )
        });
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(format!(
            "{name:?} is neither `latest` nor a snapshot id"
        )));
    }
    let lower = name.to_ascii_lowercase();
    let ids: Vec<SnapshotId> = repo
        .list_ids::<Snapshot>()?
        .into_iter()
        .filter(|id| id.to_hex().starts_with(&lower))
        .collect();
    match ids.as_slice() {
        [id] => Ok((*id, repo.load_file::<Snapshot>(id)?)),
        [] => Err(Error::new(
            ErrorKind::NotFound,
            format!("no snapshot with id {name}"),
        )),
        _ => Err(Error::invalid(format!(
            "snapshot id prefix {name} is ambiguous: give more digits"
        ))),
    }
}
