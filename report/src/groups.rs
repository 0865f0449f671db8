//! Per cluster backup: its members and whether it is whole. A cluster backup is incomplete when
//! a member is incomplete, or when it lacks a part that the backup before it in its series had
//! (an etcd snapshot, the manifests, a volume).

use std::collections::{BTreeMap, BTreeSet};

use engine::format::snapshot::Snapshot;
use engine::id::SnapshotId;

use crate::model::{ClusterBackupFacts, Member};
use crate::options::ReportOptions;
use crate::sources::{kind_of, label_of, snapshot_facts};

type Entry = (SnapshotId, Snapshot);

/// The cluster backups, oldest first.
pub(crate) fn cluster_backups(snaps: &[Entry], opts: &ReportOptions) -> Vec<ClusterBackupFacts> {
    let mut order: Vec<String> = Vec::new();
    let mut members: BTreeMap<String, Vec<&Entry>> = BTreeMap::new();
    for entry in snaps {
        let Some(group) = &entry.1.group else {
            continue;
        };
        if !members.contains_key(&group.id) {
            order.push(group.id.clone());
        }
        members.entry(group.id.clone()).or_default().push(entry);
    }
    let mut out: Vec<ClusterBackupFacts> = order
        .iter()
        .filter_map(|id| facts(id, members.get(id)?, opts))
        .collect();
    judge(&mut out);
    out
}

fn facts(id: &str, entries: &[&Entry], opts: &ReportOptions) -> Option<ClusterBackupFacts> {
    // A group is its id; should its snapshots name different series, the smallest decides
    // (repo-format.md §13).
    let series = entries
        .iter()
        .filter_map(|(_, s)| s.group.as_ref().map(|g| g.series.clone()))
        .min()?;
    let time = entries.iter().map(|(_, s)| s.time.clone()).min()?;
    let count = |kind: &str| entries.iter().filter(|(_, s)| kind_of(s) == kind).count() as u64;
    let members: Vec<Member> = entries
        .iter()
        .map(|(sid, s)| Member {
            part: kind_of(s).to_string(),
            label: label_of(s),
            snapshot: snapshot_facts(sid, s, opts),
        })
        .collect();
    let etcd = count("etcd");
    let manifests = count("manifests");
    Some(ClusterBackupFacts {
        id: id.to_string(),
        series,
        time,
        volumes: members.len() as u64 - etcd - manifests,
        etcd,
        manifests,
        total_bytes: entries.iter().map(|(_, s)| s.summary.total_bytes).sum(),
        members,
        complete: true,
        problems: Vec::new(),
    })
}

/// Sets `complete` and `problems`: incomplete members; no etcd or manifests snapshot when other
/// backups of the same series have one; a volume the previous backup of the series had.
fn judge(groups: &mut [ClusterBackupFacts]) {
    let mut series_parts: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for g in groups.iter() {
        for part in ["etcd", "manifests"] {
            if g.members.iter().any(|m| m.part == part) {
                series_parts
                    .entry(g.series.clone())
                    .or_default()
                    .insert(part);
            }
        }
    }
    let volumes = |g: &ClusterBackupFacts| -> BTreeSet<(String, String)> {
        g.members
            .iter()
            .filter(|m| m.part != "etcd" && m.part != "manifests")
            .map(|m| (m.part.clone(), m.label.clone()))
            .collect()
    };
    let mut previous: BTreeMap<String, (String, BTreeSet<(String, String)>)> = BTreeMap::new();
    for g in groups.iter_mut() {
        let mut problems: Vec<String> = g
            .members
            .iter()
            .filter(|m| m.snapshot.incomplete)
            .map(|m| {
                format!(
                    "{} {} is incomplete ({} warning(s))",
                    m.part, m.label, m.snapshot.warnings
                )
            })
            .collect();
        let mine = volumes(g);
        if !g.series.is_empty() {
            for part in series_parts.get(&g.series).into_iter().flatten() {
                if !g.members.iter().any(|m| m.part == *part) {
                    problems.push(format!(
                        "no {part} snapshot (other backups of series {} have one)",
                        g.series
                    ));
                }
            }
            if let Some((prev_id, prev)) = previous.get(&g.series) {
                for (part, label) in prev.difference(&mine) {
                    problems.push(format!(
                        "{part} {label} missing (cluster backup {prev_id} had it)"
                    ));
                }
            }
            previous.insert(g.series.clone(), (g.id.clone(), mine));
        }
        g.complete = problems.is_empty();
        g.problems = problems;
    }
}
