//! The directories above the snapshots, as restic lays them out: `snapshots/<time>`,
//! `ids/<id>`, `hosts/<host>/<time>`, `tags/<tag>/<time>`, and for Kubernetes volumes
//! `volumes/<namespace>/<pvc>/<time>`, each list of times with a `latest` symlink. Built once
//! from the snapshot list, with no I/O, so it is tested here.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use engine::format::snapshot::Snapshot;
use engine::id::SnapshotId;

/// One name in a virtual directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory of more entries.
    Dir(Dir),
    /// A symlink to this target.
    Link(String),
    /// The root tree of the snapshot at this position in the list given to [`build`].
    Snapshot(usize),
}

/// A virtual directory: names in byte order.
pub type Dir = BTreeMap<String, Entry>;

/// The name of the symlink to the newest snapshot in each list of times.
pub const LATEST: &str = "latest";

/// The root directory for `snaps`, with times shown in `tz`.
pub fn build<Tz: TimeZone>(snaps: &[(SnapshotId, Snapshot)], tz: &Tz) -> Dir
where
    Tz::Offset: std::fmt::Display,
{
    let times: Vec<Option<DateTime<Utc>>> = snaps.iter().map(|(_, s)| s.datetime().ok()).collect();
    // Oldest first, so that `latest` is the last one added and `-1` marks the later twin.
    let mut order: Vec<usize> = (0..snaps.len()).collect();
    order.sort_by(|&a, &b| (times[a], snaps[a].0.to_hex()).cmp(&(times[b], snaps[b].0.to_hex())));
    let bases: Vec<String> = order
        .iter()
        .map(|&i| match times[i] {
            Some(t) => time_name(&t, tz),
            None => component(&snaps[i].1.time),
        })
        .collect();
    let names = unique_names(&bases);
    let ids = id_names(snaps);

    let mut all = Dir::new();
    let mut by_id = Dir::new();
    let mut hosts: BTreeMap<String, Dir> = BTreeMap::new();
    let mut tags: BTreeMap<String, Dir> = BTreeMap::new();
    let mut volumes: BTreeMap<String, BTreeMap<String, Dir>> = BTreeMap::new();
    for (&i, name) in order.iter().zip(&names) {
        let snap = &snaps[i].1;
        add(&mut all, name, i);
        by_id.insert(ids[i].clone(), Entry::Snapshot(i));
        add(hosts.entry(component(&snap.host)).or_default(), name, i);
        for tag in &snap.tags {
            add(tags.entry(component(tag)).or_default(), name, i);
        }
        if let (Some(ns), Some(pvc)) = (&snap.source.namespace, &snap.source.pvc) {
            let pvcs = volumes.entry(component(ns)).or_default();
            add(pvcs.entry(component(pvc)).or_default(), name, i);
        }
    }
    let volumes = volumes
        .into_iter()
        .map(|(ns, pvcs)| (ns, Entry::Dir(dirs(pvcs))))
        .collect();
    Dir::from([
        ("snapshots".to_string(), Entry::Dir(all)),
        ("ids".to_string(), Entry::Dir(by_id)),
        ("hosts".to_string(), Entry::Dir(dirs(hosts))),
        ("tags".to_string(), Entry::Dir(dirs(tags))),
        ("volumes".to_string(), Entry::Dir(volumes)),
    ])
}

fn dirs(named: BTreeMap<String, Dir>) -> Dir {
    named
        .into_iter()
        .map(|(name, d)| (name, Entry::Dir(d)))
        .collect()
}

/// Adds a snapshot to a list of times; called oldest first, so `latest` ends on the newest.
fn add(dir: &mut Dir, name: &str, snap: usize) {
    dir.insert(name.to_string(), Entry::Snapshot(snap));
    dir.insert(LATEST.to_string(), Entry::Link(name.to_string()));
}

/// A snapshot time as restic's mount names it: local time to the second with the offset.
pub fn time_name<Tz: TimeZone>(t: &DateTime<Utc>, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.with_timezone(tz)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Makes names unique in order: a repeated name gets `-1`, `-2`, … as restic does. `latest`
/// is taken by the symlink.
pub fn unique_names(bases: &[String]) -> Vec<String> {
    let mut used: HashSet<String> = HashSet::from([LATEST.to_string()]);
    bases
        .iter()
        .map(|base| {
            let mut name = base.clone();
            let mut n = 1;
            while !used.insert(name.clone()) {
                name = format!("{base}-{n}");
                n += 1;
            }
            name
        })
        .collect()
}

/// Each snapshot's short id, or its full id where two share the short one.
fn id_names(snaps: &[(SnapshotId, Snapshot)]) -> Vec<String> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for (id, _) in snaps {
        *count.entry(id.short()).or_default() += 1;
    }
    snaps
        .iter()
        .map(|(id, _)| {
            if count[&id.short()] > 1 {
                id.to_hex()
            } else {
                id.short()
            }
        })
        .collect()
}

/// A host, tag, namespace or PVC as one file name: `/` and NUL become `_` (as restic does for
/// tags), and the names a directory cannot hold are spelled out.
pub fn component(s: &str) -> String {
    match s {
        "" => "_".to_string(),
        "." => "_.".to_string(),
        ".." => "_..".to_string(),
        _ => s.replace(['/', '\0'], "_"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;
    use engine::format::snapshot::Source;
    use engine::id::Id;

    fn snap(
        n: u8,
        time: &str,
        host: &str,
        tags: &[&str],
        volume: Option<(&str, &str)>,
    ) -> (SnapshotId, Snapshot) {
        let json = serde_json::json!({
            "time": time, "host": host, "username": "u", "paths": ["/data"],
            "tags": tags, "tree": "00".repeat(32),
        });
        let mut s: Snapshot = serde_json::from_value(json).unwrap();
        if let Some((ns, pvc)) = volume {
            s.source = Source {
                namespace: Some(ns.into()),
                pvc: Some(pvc.into()),
                ..Default::default()
            };
        }
        (SnapshotId::from(Id([n; 32])), s)
    }

    fn dir<'a>(d: &'a Dir, path: &[&str]) -> &'a Dir {
        path.iter().fold(d, |d, name| match &d[*name] {
            Entry::Dir(sub) => sub,
            other => panic!("{name} is {other:?}"),
        })
    }

    #[test]
    fn times_are_local_with_their_offset_and_twins_are_told_apart() {
        let plus_one = FixedOffset::east_opt(3600).unwrap();
        let t = DateTime::parse_from_rfc3339("2026-11-30T13:03:05.25Z")
            .unwrap()
            .to_utc();
        assert_eq!(time_name(&t, &plus_one), "2026-11-30T14:03:05+01:00");
        assert_eq!(time_name(&t, &Utc), "2026-11-30T13:03:05+00:00");
        let names = unique_names(&[
            "a".into(),
            "b".into(),
            "a".into(),
            "a".into(),
            "latest".into(),
        ]);
        assert_eq!(names, ["a", "b", "a-1", "a-2", "latest-1"]);
    }

    #[test]
    fn every_snapshot_is_reachable_by_time_id_host_tag_and_volume() {
        let snaps = vec![
            // Listed out of order, and two in the same second.
            snap(
                3,
                "2026-11-30T10:00:00.9Z",
                "web",
                &["db"],
                Some(("shop", "data")),
            ),
            snap(
                1,
                "2026-11-30T09:00:00Z",
                "node/1",
                &["db", "nightly"],
                None,
            ),
            snap(
                2,
                "2026-11-30T10:00:00.1Z",
                "web",
                &[],
                Some(("shop", "data")),
            ),
        ];
        let root = build(&snaps, &Utc);
        let names: Vec<&String> = root.keys().collect();
        assert_eq!(names, ["hosts", "ids", "snapshots", "tags", "volumes"]);
        let all = dir(&root, &["snapshots"]);
        assert_eq!(all["2026-11-30T09:00:00+00:00"], Entry::Snapshot(1));
        assert_eq!(all["2026-11-30T10:00:00+00:00"], Entry::Snapshot(2));
        assert_eq!(all["2026-11-30T10:00:00+00:00-1"], Entry::Snapshot(0));
        assert_eq!(
            all[LATEST],
            Entry::Link("2026-11-30T10:00:00+00:00-1".into())
        );
        assert_eq!(all.len(), 4);
        let ids = dir(&root, &["ids"]);
        assert_eq!(ids["03030303"], Entry::Snapshot(0));
        assert_eq!(ids.len(), 3);
        let host = dir(&root, &["hosts", "node_1"]);
        assert_eq!(
            host[LATEST],
            Entry::Link("2026-11-30T09:00:00+00:00".into())
        );
        assert_eq!(dir(&root, &["hosts", "web"]).len(), 3);
        let db = dir(&root, &["tags", "db"]);
        assert_eq!(db["2026-11-30T09:00:00+00:00"], Entry::Snapshot(1));
        assert_eq!(db["2026-11-30T10:00:00+00:00-1"], Entry::Snapshot(0));
        assert_eq!(
            db[LATEST],
            Entry::Link("2026-11-30T10:00:00+00:00-1".into())
        );
        assert_eq!(dir(&root, &["tags", "nightly"]).len(), 2);
        let volume = dir(&root, &["volumes", "shop", "data"]);
        assert_eq!(volume.len(), 3);
        assert_eq!(volume["2026-11-30T10:00:00+00:00"], Entry::Snapshot(2));
        assert!(
            build(&[], &Utc)
                .values()
                .all(|e| *e == Entry::Dir(Dir::new()))
        );
    }

    #[test]
    fn names_that_cannot_be_file_names_are_replaced() {
        assert_eq!(component("a/b\0c"), "a_b_c");
        assert_eq!(component(""), "_");
        assert_eq!(component(".."), "_..");
        assert_eq!(component("schedule:nightly"), "schedule:nightly");
    }
}
