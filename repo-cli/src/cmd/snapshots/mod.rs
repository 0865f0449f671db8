//! `repo snapshots`: the snapshots as a table, grouped, the newest per group, or compact; with
//! `--group`, each cluster backup as one entry.

mod cluster;
mod grouping;

use anyhow::Result;
use clap::Args;
use engine::format::snapshot::{Snapshot, SourceKind};
use engine::id::SnapshotId;
use engine::snapshots::list_readable;

use cluster::snapshot_json;
use grouping::{GroupBy, GroupField, describe_key, group, kind_name, parse_group_by, source_label};

use crate::args::Global;
use crate::cmd::select::FilterArgs;
use crate::output;

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Only the newest N snapshots of each group (by host, paths and volume unless --group-by
    /// says otherwise).
    #[arg(long, value_name = "N")]
    latest: Option<usize>,
    /// Group snapshots by any of host, paths, tags, volume (comma-separated), each group under
    /// its own heading (JSON: `[{group_key, snapshots}]`, as restic).
    #[arg(long, value_name = "FIELDS", value_parser = parse_group_by)]
    group_by: Option<GroupBy>,
    /// One short line per snapshot: id, time, host, source, tags.
    #[arg(short, long)]
    compact: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

type Entry = (SnapshotId, Snapshot);

pub fn run(g: &Global, a: SnapshotsArgs) -> Result<()> {
    let repo = g.open()?;
    let filter = a.filter.filter();
    let found = list_readable(&repo, &filter)?;
    output::warn_skipped_snapshots(&found.damaged);
    let snaps = found.snapshots;
    if filter.group.is_some() {
        return cluster::print_groups(g, &snaps);
    }
    let grouped_output = a.group_by.is_some();
    let by = a.group_by.map(|g| g.0).unwrap_or_else(|| match a.latest {
        Some(_) => vec![GroupField::Host, GroupField::Paths, GroupField::Volume],
        None => Vec::new(),
    });
    let groups = group(&snaps, |(_, s)| s, &by, a.latest);
    if g.json {
        return print_json(&groups, grouped_output);
    }
    let mut shown = 0;
    if grouped_output {
        for (key, members) in &groups {
            output::line(format!("snapshots for {}:", describe_key(key)))?;
            print_table(members, a.compact)?;
            output::line("")?;
            shown += members.len();
        }
    } else {
        // --latest without --group-by: one table, still in time order.
        let mut members: Vec<&Entry> = groups.into_iter().flat_map(|(_, m)| m).collect();
        members.sort_by(|x, y| (x.1.time.as_str(), x.0).cmp(&(y.1.time.as_str(), y.0)));
        print_table(&members, a.compact)?;
        shown = members.len();
    }
    output::line(format!("{shown} snapshot(s)"))?;
    Ok(())
}

fn print_json(groups: &grouping::Grouped<'_, Entry>, grouped: bool) -> Result<()> {
    if grouped {
        let items: Vec<_> = groups
            .iter()
            .map(|(key, members)| {
                serde_json::json!({
                    "group_key": key,
                    "snapshots": members.iter().map(|(id, s)| snapshot_json(id, s)).collect::<Vec<_>>(),
                })
            })
            .collect();
        return output::json(&items);
    }
    let mut items: Vec<&Entry> = groups.iter().flat_map(|(_, m)| m.iter().copied()).collect();
    items.sort_by(|x, y| (x.1.time.as_str(), x.0).cmp(&(y.1.time.as_str(), y.0)));
    let items: Vec<_> = items.iter().map(|(id, s)| snapshot_json(id, s)).collect();
    output::json(&items)
}

fn time_of(s: &Snapshot) -> String {
    s.datetime()
        .map_or_else(|_| s.time.clone(), |t| output::local_time(&t))
}

/// The table: the Kubernetes volume and kind get columns of their own, so two PVCs named `db`
/// in two namespaces read apart, and a manifests snapshot does not pass for a backup of `/`.
fn print_table(members: &[&Entry], compact: bool) -> Result<()> {
    if compact {
        output::line(format!(
            "{:<8}  {:<19}  {:<16}  {:<24}  {}",
            "ID", "Time", "Host", "Source", "Tags"
        ))?;
        for (id, s) in members {
            output::line(format!(
                "{:<8}  {:<19}  {:<16}  {:<24}  {}",
                id.short(),
                time_of(s),
                s.host,
                source_label(s),
                s.tags.join(",")
            ))?;
        }
        return Ok(());
    }
    output::line(format!(
        "{:<8}  {:<19}  {:<16}  {:<10}  {:<24}  {:<12}  {:>10}  {}",
        "ID", "Time", "Host", "Kind", "Volume", "Tags", "Size", "Paths"
    ))?;
    output::line("-".repeat(120))?;
    for (id, s) in members {
        let flag = if s.incomplete { " (incomplete)" } else { "" };
        let volume = match (&s.source.namespace, &s.source.pvc) {
            (Some(ns), Some(pvc)) => format!("{ns}/{pvc}"),
            (None, Some(pvc)) => pvc.clone(),
            _ => "-".into(),
        };
        // Paths mean nothing for a cluster's documents or images.
        let paths = match s.source.kind {
            SourceKind::Filesystem | SourceKind::BlockDevice | SourceKind::Stdin => {
                s.paths.join(", ")
            }
            _ => "-".into(),
        };
        output::line(format!(
            "{:<8}  {:<19}  {:<16}  {:<10}  {:<24}  {:<12}  {:>10}  {paths}{flag}",
            id.short(),
            time_of(s),
            s.host,
            kind_name(s.source.kind),
            volume,
            s.tags.join(","),
            output::bytes(s.summary.total_bytes),
        ))?;
    }
    Ok(())
}
