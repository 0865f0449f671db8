//! `repo snapshots --group`: each cluster backup as one entry with the snapshots it groups.

use anyhow::Result;
use engine::format::snapshot::{Snapshot, SourceKind};
use engine::id::SnapshotId;

use crate::args::Global;
use crate::output;

pub fn snapshot_json(id: &SnapshotId, s: &Snapshot) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["id"] = serde_json::Value::String(id.to_hex());
    v["short_id"] = serde_json::Value::String(id.short());
    v
}

/// What a snapshot is, in a few words: `etcd`, `manifests`, or the volume it holds.
pub fn part_name(s: &Snapshot) -> String {
    match (s.source.kind, &s.source.namespace, &s.source.pvc) {
        (SourceKind::Etcd, _, _) => "etcd".into(),
        (SourceKind::Manifests, _, _) => "manifests".into(),
        (_, Some(ns), Some(pvc)) => format!("volume {ns}/{pvc}"),
        _ => s.paths.join(", "),
    }
}

type Members<'a> = Vec<&'a (SnapshotId, Snapshot)>;

/// One entry per cluster backup, oldest first, with the snapshots it groups.
pub fn print_groups(g: &Global, snaps: &[(SnapshotId, Snapshot)]) -> Result<()> {
    let mut groups: Vec<(String, String, Members<'_>)> = Vec::new();
    for entry in snaps {
        let Some(group) = &entry.1.group else {
            continue;
        };
        match groups.iter_mut().find(|(id, _, _)| *id == group.id) {
            Some((_, _, members)) => members.push(entry),
            None => groups.push((group.id.clone(), group.series.clone(), vec![entry])),
        }
    }
    let count = |members: &[&(SnapshotId, Snapshot)], kind: SourceKind| {
        members
            .iter()
            .filter(|(_, s)| s.source.kind == kind)
            .count()
    };
    if g.json {
        let items: Vec<_> = groups
            .iter()
            .map(|(id, series, members)| {
                let volumes = members.len()
                    - count(members, SourceKind::Etcd)
                    - count(members, SourceKind::Manifests);
                serde_json::json!({
                    "id": id,
                    "series": series,
                    "time": members.iter().map(|(_, s)| s.time.as_str()).min(),
                    "etcd": count(members, SourceKind::Etcd),
                    "manifests": count(members, SourceKind::Manifests),
                    "volumes": volumes,
                    "incomplete": members.iter().any(|(_, s)| s.incomplete),
                    "total_bytes": members.iter().map(|(_, s)| s.summary.total_bytes).sum::<u64>(),
                    "snapshots": members.iter().map(|(i, s)| snapshot_json(i, s)).collect::<Vec<_>>(),
                })
            })
            .collect();
        return output::json(&items);
    }
    for (id, series, members) in &groups {
        let total: u64 = members.iter().map(|(_, s)| s.summary.total_bytes).sum();
        let first = members
            .iter()
            .filter_map(|(_, s)| s.datetime().ok())
            .min()
            .map(|t| output::local_time(&t))
            .unwrap_or_default();
        let series = if series.is_empty() {
            String::new()
        } else {
            format!(" ({series})")
        };
        output::line(format!(
            "cluster backup {id}{series}  {first}  {} snapshot(s), {}",
            members.len(),
            output::bytes(total)
        ))?;
        for (sid, s) in members {
            let flag = if s.incomplete { " (incomplete)" } else { "" };
            output::line(format!(
                "  {}  {:<10}  {}{flag}",
                sid.short(),
                output::bytes(s.summary.total_bytes),
                part_name(s)
            ))?;
        }
    }
    output::line(format!("{} cluster backup(s)", groups.len()))?;
    Ok(())
}
