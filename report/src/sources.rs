//! Per source: the newest snapshot, its age against the expected interval, the history of new
//! bytes, and the newest verified restore.

use std::collections::BTreeMap;
use std::time::Duration;

use engine::format::record::{Record, RecordKind};
use engine::format::snapshot::{Snapshot, Source, SourceKind, Summary};
use engine::id::{BlobId, Id, RecordId, SnapshotId};

use crate::model::{HistoryPoint, SnapshotFacts, SourceFacts, Status, VerifiedRestore};
use crate::options::{ExpectedVolume, ReportOptions};
use crate::text::age_secs;

type Entry = (SnapshotId, Snapshot);

/// What a snapshot holds, in a word: `volume`, `files`, `stdin`, `block-device`, `etcd`,
/// `manifests`, `images`.
pub(crate) fn kind_of(s: &Snapshot) -> &'static str {
    let volume = s.source.pvc.is_some();
    match s.source.kind {
        SourceKind::Etcd => "etcd",
        SourceKind::Manifests => "manifests",
        SourceKind::Images => "images",
        _ if volume => "volume",
        SourceKind::Filesystem => "files",
        SourceKind::Stdin => "stdin",
        SourceKind::BlockDevice => "block-device",
    }
}

/// How people name a snapshot's source: `namespace/pvc`, `etcd (cluster)`, `host:/paths`.
pub(crate) fn label_of(s: &Snapshot) -> String {
    let src = &s.source;
    let cluster = src
        .cluster
        .as_ref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    match (s.source.kind, &src.namespace, &src.pvc) {
        (SourceKind::Etcd, _, _) => format!("etcd{cluster}"),
        (SourceKind::Manifests, _, _) => format!("manifests{cluster}"),
        (SourceKind::Images, _, _) => format!("images{cluster}"),
        (_, Some(ns), Some(pvc)) => format!("{ns}/{pvc}"),
        (_, None, Some(pvc)) => pvc.clone(),
        _ => format!("{}:{}", s.host, s.paths.join(",")),
    }
}

/// The report's view of one snapshot.
pub(crate) fn snapshot_facts(id: &SnapshotId, s: &Snapshot, opts: &ReportOptions) -> SnapshotFacts {
    SnapshotFacts {
        id: id.to_hex(),
        short_id: id.short(),
        time: s.time.clone(),
        age_secs: age_secs(&s.time, opts.now),
        total_bytes: s.summary.total_bytes,
        new_bytes_stored: s.summary.new_bytes_stored,
        incomplete: s.incomplete,
        warnings: s.summary.warnings,
        group: s.group.as_ref().map(|g| g.id.clone()),
    }
}

/// A snapshot with only the fields that decide its source, to key records and expected
/// volumes the way retention keys snapshots.
fn stand_in(host: &str, paths: &[String], source: &Source) -> Snapshot {
    Snapshot {
        time: String::new(),
        host: host.to_string(),
        username: String::new(),
        paths: paths.to_vec(),
        tags: Vec::new(),
        tree: BlobId(Id([0; 32])),
        parent: None,
        original: None,
        source: source.clone(),
        group: None,
        incomplete: false,
        summary: Summary::default(),
        program: String::new(),
    }
}

fn schedules_of(s: &Snapshot) -> impl Iterator<Item = &str> {
    s.tags.iter().filter_map(|t| t.strip_prefix("schedule:"))
}

fn matches_volume(s: &Snapshot, v: &ExpectedVolume) -> bool {
    s.source.namespace.as_deref() == Some(v.namespace.as_str())
        && s.source.pvc.as_deref() == Some(v.pvc.as_str())
        && v.cluster
            .as_ref()
            .is_none_or(|c| s.source.cluster.as_ref() == Some(c))
}

/// The expected interval for a source whose newest snapshot is `last`, and where it comes from.
fn interval_for(last: &Snapshot, opts: &ReportOptions) -> Option<(Duration, String)> {
    if let Some(d) = opts
        .expected_volumes
        .iter()
        .find(|v| matches_volume(last, v))
        .and_then(|v| v.interval)
    {
        return Some((d, "volume".into()));
    }
    let series = last.group.as_ref().map(|g| g.series.as_str());
    let named = schedules_of(last).chain(series).find_map(|name| {
        opts.schedule_intervals
            .get(name)
            .map(|d| (*d, format!("schedule {name}")))
    });
    named.or_else(|| opts.default_interval.map(|d| (d, "default".into())))
}

fn status(last: Option<&SnapshotFacts>, interval: Option<Duration>) -> Status {
    let Some(last) = last else {
        return Status::Never;
    };
    match interval {
        Some(d) if last.age_secs > d.as_secs() => Status::Late,
        _ if last.incomplete => Status::Incomplete,
        None => Status::Unknown,
        Some(_) => Status::Ok,
    }
}

/// The newest verified restore of a snapshot of the source `key` (by snapshot id, or by the
/// source the record names once the snapshot is gone).
fn last_restore(
    key: &str,
    ids: &[SnapshotId],
    records: &[(RecordId, Record)],
    opts: &ReportOptions,
) -> Option<VerifiedRestore> {
    records.iter().rev().find_map(|(rid, r)| {
        let restore = r
            .restore
            .as_ref()
            .filter(|_| r.kind == RecordKind::RestoreVerify)?;
        let ours = ids.contains(&restore.snapshot)
            || engine::retention::group_key(&stand_in(
                &restore.host,
                &restore.paths,
                &restore.source,
            )) == key;
        ours.then(|| VerifiedRestore {
            record: rid.short(),
            snapshot: restore.snapshot.short(),
            finished: r.finished.clone(),
            age_secs: age_secs(&r.finished, opts.now),
            outcome: r.outcome,
            message: r.message.clone(),
            path: restore.path.clone(),
            filtered: restore.filtered,
            files: restore.files,
            bytes: restore.bytes,
            verified: restore.verified,
            errors: restore.errors,
            host: r.host.clone(),
        })
    })
}

fn source_facts(
    key: String,
    entries: &[&Entry],
    records: &[(RecordId, Record)],
    opts: &ReportOptions,
) -> Option<SourceFacts> {
    let (last_id, last) = *entries.last()?;
    let last_facts = snapshot_facts(last_id, last, opts);
    let last_complete = if last.incomplete {
        entries
            .iter()
            .rev()
            .find(|(_, s)| !s.incomplete)
            .map(|(id, s)| snapshot_facts(id, s, opts))
    } else {
        None
    };
    let mut schedules: Vec<String> = entries
        .iter()
        .flat_map(|(_, s)| schedules_of(s))
        .map(String::from)
        .collect();
    schedules.sort();
    schedules.dedup();
    let interval = interval_for(last, opts);
    let skip = entries.len().saturating_sub(opts.history_limit);
    let history = entries[skip..]
        .iter()
        .map(|(id, s)| HistoryPoint {
            time: s.time.clone(),
            snapshot: id.short(),
            new_bytes_stored: s.summary.new_bytes_stored,
            total_bytes: s.summary.total_bytes,
            incomplete: s.incomplete,
        })
        .collect();
    let ids: Vec<SnapshotId> = entries.iter().map(|(id, _)| *id).collect();
    let last_verified_restore = last_restore(&key, &ids, records, opts);
    Some(SourceFacts {
        label: label_of(last),
        kind: kind_of(last).to_string(),
        cluster: last.source.cluster.clone(),
        namespace: last.source.namespace.clone(),
        pvc: last.source.pvc.clone(),
        host: last.host.clone(),
        paths: last.paths.clone(),
        schedules,
        snapshots: entries.len() as u64,
        incomplete_snapshots: entries.iter().filter(|(_, s)| s.incomplete).count() as u64,
        status: status(Some(&last_facts), interval.as_ref().map(|(d, _)| *d)),
        expected_interval_secs: interval.as_ref().map(|(d, _)| d.as_secs()),
        interval_from: interval.map(|(_, from)| from),
        last: Some(last_facts),
        last_complete,
        history,
        last_verified_restore,
        key,
    })
}

/// An expected volume with no snapshot.
fn never(v: &ExpectedVolume, opts: &ReportOptions) -> SourceFacts {
    let source = Source {
        cluster: v.cluster.clone(),
        namespace: Some(v.namespace.clone()),
        pvc: Some(v.pvc.clone()),
        ..Default::default()
    };
    let interval = v.interval.or(opts.default_interval);
    SourceFacts {
        key: engine::retention::group_key(&stand_in("", &[], &source)),
        label: format!("{}/{}", v.namespace, v.pvc),
        kind: "volume".into(),
        cluster: v.cluster.clone(),
        namespace: Some(v.namespace.clone()),
        pvc: Some(v.pvc.clone()),
        host: String::new(),
        paths: Vec::new(),
        schedules: Vec::new(),
        snapshots: 0,
        incomplete_snapshots: 0,
        last: None,
        last_complete: None,
        expected_interval_secs: interval.map(|d| d.as_secs()),
        interval_from: v
            .interval
            .map(|_| "volume".to_string())
            .or(opts.default_interval.map(|_| "default".to_string())),
        status: Status::Never,
        history: Vec::new(),
        last_verified_restore: None,
    }
}

/// One entry per source, volumes first, then by label; expected volumes with no snapshot are
/// added as never backed up.
pub(crate) fn sources(
    snaps: &[Entry],
    records: &[(RecordId, Record)],
    opts: &ReportOptions,
) -> Vec<SourceFacts> {
    let mut by_key: BTreeMap<String, Vec<&Entry>> = BTreeMap::new();
    for entry in snaps {
        by_key
            .entry(engine::retention::group_key(&entry.1))
            .or_default()
            .push(entry);
    }
    let mut out: Vec<SourceFacts> = by_key
        .into_iter()
        .filter_map(|(key, entries)| source_facts(key, &entries, records, opts))
        .collect();
    for v in &opts.expected_volumes {
        if !snaps.iter().any(|(_, s)| matches_volume(s, v)) {
            out.push(never(v, opts));
        }
    }
    out.sort_by(|a, b| {
        (a.kind != "volume", &a.label, &a.key).cmp(&(b.kind != "volume", &b.label, &b.key))
    });
    out
}
