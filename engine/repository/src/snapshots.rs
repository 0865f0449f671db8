//! Finding snapshots: by id prefix, `latest`, and filters on host, path, tag and source.

pub use crate::repo::{SnapshotScan, refuse_damaged};
pub use crate::unreadable::UnreadableFile;

use crate::repo::Repository;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::SnapshotId;
use kairn_format::snapshot::{Snapshot, Source, SourceKind};

/// Loads every snapshot, skipping damaged files (see [`Repository::scan_snapshots`]).
pub fn scan(repo: &Repository) -> Result<SnapshotScan> {
    repo.scan_snapshots()
}

/// Which snapshots to consider.
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// Volumes of any of these namespaces (all when empty).
    pub namespaces: Vec<String>,
    /// Volumes of any of these PVCs, each `NAME` or `NAMESPACE/NAME` (all when empty).
    pub pvcs: Vec<String>,
    /// Snapshots of any of these kinds of source (all when empty).
    pub kinds: Vec<SourceKind>,
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
            && self.matches_kubernetes(&snap.source)
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

impl SnapshotFilter {
    /// True when no field narrows the selection.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn matches_kubernetes(&self, source: &Source) -> bool {
        let namespace = source.namespace.as_deref();
        (self.namespaces.is_empty()
            || self
                .namespaces
                .iter()
                .any(|n| Some(n.as_str()) == namespace))
            && (self.pvcs.is_empty() || self.pvcs.iter().any(|want| pvc_matches(want, source)))
            && (self.kinds.is_empty() || self.kinds.contains(&source.kind))
    }
}

/// `NAME` matches a PVC of that name in any namespace; `NAMESPACE/NAME` only that one.
fn pvc_matches(want: &str, source: &Source) -> bool {
    let Some(pvc) = source.pvc.as_deref() else {
        return false;
    };
    match want.split_once('/') {
        Some((ns, name)) => source.namespace.as_deref() == Some(ns) && pvc == name,
        None => pvc == want,
    }
}

/// Every snapshot that passes `filter`, oldest first. Fails on a damaged snapshot file.
pub fn list(repo: &Repository, filter: &SnapshotFilter) -> Result<Vec<(SnapshotId, Snapshot)>> {
    Ok(repo
        .load_snapshots()?
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect())
}

/// Every readable snapshot that passes `filter`, oldest first, and the damaged files skipped.
pub fn list_readable(repo: &Repository, filter: &SnapshotFilter) -> Result<SnapshotScan> {
    let mut found = scan(repo)?;
    found.snapshots.retain(|(_, s)| filter.matches(s));
    Ok(found)
}

/// The newest readable snapshot that passes `filter`, if any, and the damaged files skipped.
pub type Latest = (Option<(SnapshotId, Snapshot)>, Vec<UnreadableFile>);

/// The newest readable snapshot that passes `filter`, and the damaged files skipped.
pub fn latest_matching(repo: &Repository, filter: &SnapshotFilter) -> Result<Latest> {
    let mut found = list_readable(repo, filter)?;
    Ok((found.snapshots.pop(), found.damaged))
}

/// Resolves a unique hex prefix of a stored snapshot's id (or `latest`) without reading the
/// snapshot: forget must reach a snapshot that can no longer be read.
pub fn resolve_id(repo: &Repository, name: &str) -> Result<SnapshotId> {
    if name == "latest" {
        return find(repo, name, &SnapshotFilter::default()).map(|(id, _)| id);
    }
    let ids = ids_with_prefix(repo, name)?;
    one_match(&ids, name).copied()
}

fn checked_prefix(name: &str) -> Result<String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(format!(
            "{name:?} is neither `latest` nor a snapshot id"
        )));
    }
    Ok(name.to_ascii_lowercase())
}

fn one_match<'a>(ids: &'a [SnapshotId], name: &str) -> Result<&'a SnapshotId> {
    match ids {
        [id] => Ok(id),
        [] => Err(Error::new(
            ErrorKind::NotFound,
            format!("no snapshot with id {name}"),
        )),
        _ => Err(Error::invalid(format!(
            "snapshot id prefix {name} is ambiguous: give more digits"
        ))),
    }
}

/// Resolves `latest` or a unique hex prefix of a snapshot id (at least 4 digits... or any
/// length when unique).
pub fn find(
    repo: &Repository,
    name: &str,
    filter: &SnapshotFilter,
) -> Result<(SnapshotId, Snapshot)> {
    if name == "latest" {
        // "latest" is only known when every snapshot's time is: a damaged one might be newer.
        return list(repo, filter)?.pop().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "there is no snapshot (matching the filters) yet",
            )
        });
    }
    let ids = ids_with_prefix(repo, name)?;
    let id = one_match(&ids, name)?;
    let snap = repo.load_file::<Snapshot>(id)?;
    // Filters given beside an id are a claim about it: a mismatch is a mistake, not a choice.
    if !filter.matches(&snap) {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "snapshot {} does not match the filters given (host, path, tag, namespace, pvc, \
                 kind, group)",
                id.short()
            ),
        ));
    }
    Ok((*id, snap))
}

/// Resolves `latest` or a hex prefix of an id among the snapshots `visible` lets through, for
/// a caller who may see only those (a tenant of one namespace). The others are not there for
/// it: a miss, or an ambiguous prefix, reads the same whether or not they exist, so the answers
/// cannot be used to learn what else the repository holds. Unreadable files are skipped.
pub fn find_visible(
    repo: &Repository,
    name: &str,
    visible: impl Fn(&Snapshot) -> bool,
) -> Result<(SnapshotId, Snapshot)> {
    if name == "latest" {
        return scan(repo)?
            .snapshots
            .into_iter()
            .rfind(|(_, s)| visible(s))
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "there is no snapshot yet"));
    }
    let mut found: Vec<(SnapshotId, Snapshot)> = Vec::new();
    for id in ids_with_prefix(repo, name)? {
        if let Ok(snap) = repo.load_file::<Snapshot>(&id)
            && visible(&snap)
        {
            found.push((id, snap));
        }
    }
    let ids: Vec<SnapshotId> = found.iter().map(|(id, _)| *id).collect();
    one_match(&ids, name)?;
    // one_match succeeds on exactly one.
    Ok(found.swap_remove(0))
}

/// The stored snapshot ids (read or not) that start with the prefix `name`.
fn ids_with_prefix(repo: &Repository, name: &str) -> Result<Vec<SnapshotId>> {
    let lower = checked_prefix(name)?;
    Ok(repo
        .list_ids_lenient::<Snapshot>()?
        .into_iter()
        .filter(|id| id.to_hex().starts_with(&lower))
        .collect())
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    fn volume(ns: &str, pvc: &str, kind: SourceKind) -> Snapshot {
        let mut s: Snapshot = serde_json::from_value(serde_json::json!({
            "time": "2026-01-01T00:00:00Z", "host": "h", "username": "u",
            "paths": ["/data"], "tree": "00".repeat(32),
        }))
        .unwrap();
        s.source.kind = kind;
        s.source.namespace = Some(ns.into());
        s.source.pvc = Some(pvc.into());
        s
    }

    #[test]
    fn a_pvc_matches_by_name_or_by_namespace_and_name() {
        let shop = volume("shop", "db", SourceKind::Filesystem);
        let blog = volume("blog", "db", SourceKind::Filesystem);
        let by_name = SnapshotFilter {
            pvcs: vec!["db".into()],
            ..Default::default()
        };
        assert!(by_name.matches(&shop) && by_name.matches(&blog));
        let qualified = SnapshotFilter {
            pvcs: vec!["shop/db".into()],
            ..Default::default()
        };
        assert!(qualified.matches(&shop) && !qualified.matches(&blog));
        let namespace = SnapshotFilter {
            namespaces: vec!["blog".into()],
            kinds: vec![SourceKind::Filesystem],
            ..Default::default()
        };
        assert!(namespace.matches(&blog) && !namespace.matches(&shop));
        let etcd = SnapshotFilter {
            kinds: vec![SourceKind::Etcd],
            ..Default::default()
        };
        assert!(!etcd.matches(&shop));
        assert!(SnapshotFilter::default().is_empty() && !etcd.is_empty());
    }
}
