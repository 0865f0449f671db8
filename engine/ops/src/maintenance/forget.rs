//! `forget`: removes snapshot files, chosen by a retention policy or by id. The data they
//! referenced stays until a prune.

use serde::Serialize;

use std::collections::HashSet;

use crate::maintenance::retention::{GroupPlan, RetentionPolicy, plan};
use kairn_format::FileKind;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::SnapshotId;
use kairn_format::snapshot::Snapshot;
use kairn_repository::repo::Repository;
use kairn_repository::session::Session;
use kairn_repository::snapshots::{
    GroupMatch, SnapshotFilter, UnreadableFile, list_readable, scan,
};

/// What to forget.
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    /// Applied to the snapshots that pass `filter`, group by group. Ignored when `ids` is set.
    pub policy: RetentionPolicy,
    /// Which snapshots the policy considers.
    pub filter: SnapshotFilter,
    /// Forget exactly these snapshots instead of applying a policy.
    pub ids: Vec<SnapshotId>,
    /// Forget every snapshot of these cluster backups (by group id) instead of applying a
    /// policy; with `ids`, both.
    pub groups: Vec<String>,
    /// Decide, but delete nothing.
    pub dry_run: bool,
}

/// What `forget` decided and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetReport {
    /// Per group, every snapshot with its fate and reasons (empty when forgetting by id).
    pub groups: Vec<GroupPlan>,
    /// Snapshots removed (or that would be, in a dry run).
    pub removed: Vec<SnapshotId>,
    /// Snapshots the policy removes that the store's retention lock still holds, with when
    /// the lock ends (ms since the epoch, storage time): they stay, and a forget after that
    /// removes them.
    pub locked: Vec<(SnapshotId, i64)>,
    /// True when nothing was deleted because of `dry_run`.
    pub dry_run: bool,
    /// Snapshot files that cannot be read, left out of the policy: what they hold is unknown,
    /// so the policy neither keeps nor removes them. Forget them by id, or `repair snapshots`.
    pub skipped: Vec<UnreadableFile>,
}

/// The snapshots that pass `filter`, plus every other snapshot of a cluster backup one of
/// them belongs to: a filter on hosts or tags must not split a group that retention decides
/// whole.
fn whole_groups(
    all: Vec<(SnapshotId, Snapshot)>,
    filter: &SnapshotFilter,
) -> Vec<(SnapshotId, Snapshot)> {
    let chosen: HashSet<String> = all
        .iter()
        .filter(|(_, s)| filter.matches(s))
        .filter_map(|(_, s)| s.group.as_ref().map(|g| g.id.clone()))
        .collect();
    all.into_iter()
        .filter(|(_, s)| {
            filter.matches(s) || s.group.as_ref().is_some_and(|g| chosen.contains(&g.id))
        })
        .collect()
}

/// Applies the options.
pub fn forget(repo: &Repository, session: &Session, opts: &ForgetOptions) -> Result<ForgetReport> {
    if !opts.dry_run {
        repo.refuse_append_only("forget")?;
    }
    let mut skipped = Vec::new();
    let (groups, removed) = if opts.ids.is_empty() && opts.groups.is_empty() {
        let found = scan(repo)?;
        skipped = found.damaged;
        let groups = plan(&opts.policy, &whole_groups(found.snapshots, &opts.filter))?;
        let removed = groups
            .iter()
            .flat_map(|g| g.snapshots.iter().filter(|d| !d.keep).map(|d| d.id))
            .collect();
        (groups, removed)
    } else {
        // By id, not by content: a snapshot that can no longer be read can still be forgotten.
        let stored = repo.list_ids_lenient::<kairn_format::snapshot::Snapshot>()?;
        for id in &opts.ids {
            if !stored.contains(id) {
                return Err(kairn_storage::not_found(FileKind::Snapshot, &id.to_hex()));
            }
        }
        let mut removed = opts.ids.clone();
        for group in &opts.groups {
            let filter = SnapshotFilter {
                group: Some(GroupMatch::Id(group.clone())),
                ..Default::default()
            };
            let found = list_readable(repo, &filter)?;
            skipped = found.damaged;
            let members = found.snapshots;
            if members.is_empty() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("no snapshot belongs to cluster backup {group:?}"),
                ));
            }
            removed.extend(members.into_iter().map(|(id, _)| id));
        }
        removed.sort();
        removed.dedup();
        (Vec::new(), removed)
    };
    let mut locked = Vec::new();
    let mut gone = Vec::with_capacity(removed.len());
    if opts.dry_run {
        gone = removed;
    } else {
        let now = repo.lock_clock(session)?;
        for id in removed {
            match repo.delete_content(FileKind::Snapshot, &id.to_hex(), now)? {
                None => gone.push(id),
                Some(until) => locked.push((id, until)),
            }
        }
    }
    Ok(ForgetReport {
        groups,
        removed: gone,
        locked,
        dry_run: opts.dry_run,
        skipped,
    })
}
