//! Which destination snapshots are copies of which source snapshots (see the module
//! documentation): by the `original` a copy records, and for copies made before that field
//! existed, by identity.

use std::collections::{HashMap, HashSet};

use kairn_format::id::SnapshotId;
use kairn_format::snapshot::Snapshot;

/// The `original` a copy of source snapshot `id` records: the first snapshot of its chain of
/// copies.
pub(super) fn origin(id: SnapshotId, snap: &Snapshot) -> SnapshotId {
    snap.original.unwrap_or(id)
}

/// What `repo rewrite` changes and a copy or `repo tag` keeps: the snapshot's counts. A
/// rewrite records the snapshot it rewrote as its `original` too, and removes at least one
/// entry, so its shape tells it apart from that snapshot and from the snapshot's copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Shape {
    total_bytes: u64,
    files: u64,
    dirs: u64,
    others: u64,
}

impl Shape {
    pub(super) fn of(s: &Snapshot) -> Self {
        let m = &s.summary;
        Self {
            total_bytes: m.total_bytes,
            files: m.files_new + m.files_changed + m.files_unmodified,
            dirs: m.dirs,
            others: m.others,
        }
    }
}

/// The destination's snapshots, looked up as copies of source snapshots.
pub(super) struct Copies {
    /// Destination snapshots by their `original` and by their own id, with their shape: a
    /// source snapshot copied back to the repository it came from names the very snapshot.
    by_origin: HashMap<(SnapshotId, Shape), SnapshotId>,
    /// Destination snapshots no source snapshot claims through `by_origin`, by identity.
    by_identity: HashMap<Identity, SnapshotId>,
}

impl Copies {
    /// `dst` holds the destination's snapshots; `src` every source snapshot, chosen or not.
    pub(super) fn new<'a>(
        dst: Vec<(SnapshotId, Snapshot)>,
        src: impl IntoIterator<Item = (&'a SnapshotId, &'a Snapshot)>,
    ) -> Self {
        let claimed: HashSet<SnapshotId> = src
            .into_iter()
            .flat_map(|(id, s)| [Some(*id), s.original])
            .flatten()
            .collect();
        let mut by_origin = HashMap::new();
        let mut by_identity = HashMap::new();
        for (id, snap) in dst {
            let keys = [Some(id), snap.original];
            // A snapshot known to be the copy of one source snapshot is not also taken for a
            // copy of another that merely looks the same.
            if !keys.iter().flatten().any(|k| claimed.contains(k)) {
                by_identity.insert(Identity::of(&snap), id);
            }
            let shape = Shape::of(&snap);
            for key in keys.into_iter().flatten() {
                by_origin.insert((key, shape), id);
            }
        }
        Self {
            by_origin,
            by_identity,
        }
    }

    /// The destination's copy of source snapshot `id`, if it has one.
    pub(super) fn find(&self, id: SnapshotId, snap: &Snapshot) -> Option<SnapshotId> {
        let shape = Shape::of(snap);
        [Some(id), snap.original]
            .into_iter()
            .flatten()
            .find_map(|key| self.by_origin.get(&(key, shape)))
            .or_else(|| self.by_identity.get(&Identity::of(snap)))
            .copied()
    }

    /// Records `copy` as the copy of the source snapshots whose origin is `origin` and whose
    /// shape is `shape`.
    pub(super) fn insert(&mut self, origin: SnapshotId, shape: Shape, copy: SnapshotId) {
        self.by_origin.insert((origin, shape), copy);
    }
}

/// What a copy keeps of a snapshot and no two backups share; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    time: String,
    host: String,
    username: String,
    paths: Vec<String>,
    tags: Vec<String>,
    source: String,
}

impl Identity {
    fn of(s: &Snapshot) -> Self {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        };
        Self {
            // Parsed, so that one instant written with another offset or precision still matches.
            time: s.datetime().map_or_else(
                |_| s.time.clone(),
                |t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ),
            host: s.host.clone(),
            username: s.username.clone(),
            paths: sorted(&s.paths),
            tags: sorted(&s.tags),
            source: serde_json::to_string(&s.source).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairn_format::id::{BlobId, Id};

    fn id(n: u8) -> SnapshotId {
        SnapshotId(Id([n; 32]))
    }

    fn snap(tags: &[&str], original: Option<SnapshotId>) -> Snapshot {
        Snapshot {
            time: "2024-01-01T00:00:00.000000001Z".into(),
            host: "h".into(),
            username: "u".into(),
            paths: vec!["/data".into()],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            tree: BlobId(Id([0; 32])),
            parent: None,
            original,
            source: Default::default(),
            group: None,
            incomplete: false,
            summary: Default::default(),
            program: String::new(),
        }
    }

    #[test]
    fn a_copy_is_recognised_by_its_original_whatever_its_tags() {
        let a = snap(&["t"], None);
        let src = HashMap::from([(id(1), a.clone())]);
        let dst = Copies::new(
            vec![(id(2), snap(&["t", "added-later"], Some(id(1))))],
            &src,
        );
        assert_eq!(dst.find(id(1), &a), Some(id(2)));
        assert_eq!(origin(id(1), &a), id(1));
    }

    #[test]
    fn chains_of_copies_are_recognised_by_their_first_id() {
        // b in repository B is a copy of a in A; C already has a copy of a made from A.
        let b = snap(&[], Some(id(1)));
        assert_eq!(origin(id(2), &b), id(1));
        let src = HashMap::from([(id(2), b.clone())]);
        let c = Copies::new(vec![(id(3), snap(&["x"], Some(id(1))))], &src);
        assert_eq!(c.find(id(2), &b), Some(id(3)));
        // Copied back into A, b is a itself.
        let a = Copies::new(vec![(id(1), snap(&["y"], None))], &src);
        assert_eq!(a.find(id(2), &b), Some(id(1)));
    }

    #[test]
    fn identity_recognises_copies_without_original_unless_another_source_claims_them() {
        let s1 = snap(&["t"], None);
        let s2 = s1.clone();
        let src = HashMap::from([(id(1), s1.clone()), (id(2), s2.clone())]);
        let old = Copies::new(vec![(id(9), snap(&["t"], None))], &src);
        assert_eq!(old.find(id(1), &s1), Some(id(9)));
        assert_eq!(old.find(id(3), &snap(&["other"], None)), None);
        // Two source snapshots of equal identity: the copy of one is not the copy of the other.
        let new = Copies::new(vec![(id(9), snap(&["t"], Some(id(1))))], &src);
        assert_eq!(new.find(id(1), &s1), Some(id(9)));
        assert_eq!(new.find(id(2), &s2), None);
    }

    #[test]
    fn a_rewrite_of_a_snapshot_is_not_taken_for_its_copy() {
        let mut a = snap(&[], None);
        a.summary.files_new = 3;
        a.summary.total_bytes = 300;
        let mut rewritten = snap(&[], Some(id(1)));
        rewritten.summary.files_new = 2;
        rewritten.summary.total_bytes = 200;
        let src = HashMap::from([(id(1), a.clone()), (id(2), rewritten.clone())]);
        let mut dst = Copies::new(Vec::new(), &src);
        dst.insert(origin(id(1), &a), Shape::of(&a), id(9));
        assert_eq!(dst.find(id(2), &rewritten), None);
        // A retagged snapshot keeps its shape, so it still is the same snapshot's copy.
        let retagged = snap(&["new-tag"], Some(id(1)));
        let mut plain = snap(&[], None);
        plain.summary = retagged.summary.clone();
        let mut dst = Copies::new(Vec::new(), &src);
        dst.insert(id(1), Shape::of(&plain), id(9));
        assert_eq!(dst.find(id(3), &retagged), Some(id(9)));
    }
}
