//! `forget`: removes snapshot files, chosen by a retention policy or by id. The data they
//! referenced stays until a prune.

use serde::Serialize;

use crate::error::Result;
use crate::format::FileKind;
use crate::id::SnapshotId;
use crate::repo::Repository;
use crate::retention::{GroupPlan, RetentionPolicy, plan};
use crate::snapshots::{SnapshotFilter, list};

/// What to forget.
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    /// Applied to the snapshots that pass `filter`, group by group. Ignored when `ids` is set.
    pub policy: RetentionPolicy,
    /// Which snapshots the policy considers.
    pub filter: SnapshotFilter,
    /// Forget exactly these snapshots instead of applying a policy.
    pub ids: Vec<SnapshotId>,
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
}

/// Applies the options.
pub fn forget(repo: &Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    let (groups, removed) = if opts.ids.is_empty() {
        let groups = plan(&opts.policy, &list(repo, &opts.filter)?)?;
        let removed = groups
            .iter()
            .flat_map(|g| g.snapshots.iter().filter(|d| !d.keep).map(|d| d.id))
            .collect();
        (groups, removed)
    } else {
        let stored = repo.list_ids::<crate::format::snapshot::Snapshot>()?;
        for id in &opts.ids {
            if !stored.contains(id) {
                return Err(crate::backend::not_found(FileKind::Snapshot, &id.to_hex()));
            }
        }
        (Vec::new(), opts.ids.clone())
    };
    let mut locked = Vec::new();
    let mut gone = Vec::with_capacity(removed.len());
    if opts.dry_run {
        gone = removed;
    } else {
        let now = repo.lock_clock()?;
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
    })
}
