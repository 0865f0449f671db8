//! `tag`: changes the tags of snapshots. A snapshot is immutable and named by the hash of its
//! bytes (repo-format.md §14), so a changed snapshot is written again under a new id, with
//! `original` naming the snapshot first written, and only then is the old file removed: a
//! crash in between leaves both, never neither.
//!
//! **Retention locks.** A snapshot the store's Object Lock still holds cannot be removed, and
//! two snapshots of one backup differing only in tags would each be kept or forgotten on their
//! own. So a locked snapshot is left as it is, untagged, and reported with when its lock ends;
//! nothing is written for it. (Tags are what retention policies read, and a lock that holds a
//! snapshot is meant to hold it as it is.)

use serde::Serialize;

use kairn_format::FileKind;
use kairn_format::error::{Error, Result};
use kairn_format::id::SnapshotId;
use kairn_format::snapshot::Snapshot;
use kairn_repository::repo::Repository;
use kairn_repository::session::Session;

/// How to change the tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagChange {
    /// Add these, and remove those (either may be empty).
    Edit {
        /// Tags to add.
        add: Vec<String>,
        /// Tags to remove.
        remove: Vec<String>,
    },
    /// Replace all tags with these (none: remove every tag).
    Set(Vec<String>),
}

impl TagChange {
    /// The tags `old` becomes: its order kept, added tags after it, each tag once.
    pub fn apply(&self, old: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |t: &String| {
            if !out.contains(t) {
                out.push(t.clone());
            }
        };
        match self {
            Self::Set(tags) => tags.iter().for_each(&mut push),
            Self::Edit { add, remove } => {
                old.iter()
                    .filter(|t| !remove.contains(t))
                    .for_each(&mut push);
                add.iter().for_each(&mut push);
            }
        }
        out
    }

    /// Refuses a tag that cannot be stored or filtered by: empty, or with a comma (which
    /// restic-style tag lists use as a separator) or a control character.
    pub fn validate(&self) -> Result<()> {
        let tags: Vec<&String> = match self {
            Self::Set(t) => t.iter().collect(),
            Self::Edit { add, remove } => add.iter().chain(remove).collect(),
        };
        for t in tags {
            if t.is_empty() {
                return Err(Error::invalid("a tag cannot be empty"));
            }
            if t.contains(',') {
                return Err(Error::invalid(format!(
                    "tag {t:?} contains a comma: give each tag on its own (--add a --add b)"
                )));
            }
            if t.chars().any(char::is_control) {
                return Err(Error::invalid(format!(
                    "tag {t:?} contains a control character"
                )));
            }
        }
        Ok(())
    }
}

/// True when two tag lists hold the same tags, in any order.
fn same_tags(a: &[String], b: &[String]) -> bool {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    };
    sorted(a) == sorted(b)
}

/// A snapshot rewritten under a new id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replaced {
    /// The snapshot before.
    pub old: SnapshotId,
    /// Its replacement; `None` in a dry run.
    pub new: Option<SnapshotId>,
    /// The replacement's tags.
    pub tags: Vec<String>,
    /// When the store's retention lock holds the old file (ms since the epoch, storage time):
    /// it stays until then. Set only when it was to be removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_locked_until: Option<i64>,
}

/// What `tag` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TagReport {
    /// Snapshots whose tags changed.
    pub tagged: Vec<Replaced>,
    /// Snapshots whose tags were already as asked.
    pub unchanged: Vec<SnapshotId>,
    /// Snapshots left as they are because the store's retention lock holds them, with when it
    /// ends (ms since the epoch, storage time).
    pub locked: Vec<(SnapshotId, i64)>,
    /// True when nothing was written.
    pub dry_run: bool,
}

/// The `original` of a snapshot written to replace snapshot `id`: the first snapshot of the
/// chain, so tags changed twice, or a copy tagged, still name where it began.
pub fn origin(id: SnapshotId, snap: &Snapshot) -> SnapshotId {
    snap.original.unwrap_or(id)
}

/// Writes `new` (whose blobs are all indexed already), then removes `old` unless `keep_old`.
/// Returns the new id and, when the store's retention lock holds the old file, when it ends.
pub fn replace(
    repo: &Repository,
    session: &Session,
    old: SnapshotId,
    new: &Snapshot,
    keep_old: bool,
) -> Result<(SnapshotId, Option<i64>)> {
    let id = session.save_snapshot(new)?;
    if keep_old || id == old {
        return Ok((id, None));
    }
    Ok((id, remove_old(repo, session, old)?))
}

/// Removes a replaced snapshot unless the store's retention lock holds it; then returns when
/// the lock ends.
pub fn remove_old(repo: &Repository, session: &Session, old: SnapshotId) -> Result<Option<i64>> {
    let now = repo.lock_clock(session)?;
    repo.delete_content(FileKind::Snapshot, &old.to_hex(), now)
}

/// Changes the tags of `snapshots` (chosen by the caller) under `session`.
pub fn tag(
    repo: &Repository,
    session: &Session,
    snapshots: Vec<(SnapshotId, Snapshot)>,
    change: &TagChange,
    dry_run: bool,
) -> Result<TagReport> {
    change.validate()?;
    if !dry_run {
        repo.refuse_append_only("tag (it replaces each snapshot it changes)")?;
    }
    let mut report = TagReport {
        dry_run,
        ..Default::default()
    };
    let now = repo.lock_clock(session)?;
    for (id, snap) in snapshots {
        let tags = change.apply(&snap.tags);
        if same_tags(&tags, &snap.tags) {
            report.unchanged.push(id);
            continue;
        }
        if let Some(now) = now
            && let Some(until) = repo.locked_until(FileKind::Snapshot, &id.to_hex(), now)?
        {
            report.locked.push((id, until));
            continue;
        }
        if dry_run {
            report.tagged.push(Replaced {
                old: id,
                new: None,
                tags,
                old_locked_until: None,
            });
            continue;
        }
        let new = Snapshot {
            tags: tags.clone(),
            original: Some(origin(id, &snap)),
            ..snap
        };
        let (new_id, old_locked_until) = replace(repo, session, id, &new, false)?;
        report.tagged.push(Replaced {
            old: id,
            new: Some(new_id),
            tags,
            old_locked_until,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn changes_apply_in_order_and_once() {
        let old = v(&["a", "b", "c"]);
        let edit = TagChange::Edit {
            add: v(&["d", "a", "d"]),
            remove: v(&["b"]),
        };
        assert_eq!(edit.apply(&old), v(&["a", "c", "d"]));
        assert_eq!(TagChange::Set(v(&["x", "x"])).apply(&old), v(&["x"]));
        assert!(TagChange::Set(vec![]).apply(&old).is_empty());
        assert!(same_tags(&v(&["b", "a"]), &v(&["a", "b", "a"])));
        assert!(!same_tags(&v(&["a"]), &v(&["a", "b"])));
    }

    #[test]
    fn bad_tags_are_refused() {
        let add = |t: &str| TagChange::Edit {
            add: v(&[t]),
            remove: vec![],
        };
        assert!(add("ok-tag").validate().is_ok());
        assert!(add("").validate().is_err());
        assert!(add("a,b").validate().is_err());
        assert!(add("a\nb").validate().is_err());
        assert!(TagChange::Set(vec![]).validate().is_ok());
    }
}
