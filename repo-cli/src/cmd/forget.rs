use anyhow::Result;
use clap::Args;
use engine::forget::{ForgetOptions, forget};
use engine::retention::{KeepWithin, RetentionPolicy};
use engine::snapshots::SnapshotFilter;

use crate::args::Global;
use crate::cmd::prune::{PruneArgs, print_report};
use crate::output;

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Forget exactly these snapshots (ids or unique prefixes) instead of applying a policy.
    snapshots: Vec<String>,
    /// Forget every snapshot of this cluster backup (repeatable) instead of applying a policy.
    #[arg(long = "group", value_name = "ID")]
    groups: Vec<String>,
    /// Keep the newest N snapshots (snapshots of a cluster backup: the newest N cluster
    /// backups of each series, whole).
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_hourly: u32,
    /// Keep the newest snapshot of each of the last N days that have one (UTC days).
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_daily: u32,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_weekly: u32,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_monthly: u32,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_yearly: u32,
    /// Keep every snapshot this recent, counted back from the group's newest: like 2w3d or 1y6m.
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<KeepWithin>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    keep_tag: Vec<String>,
    /// Only consider snapshots of this host (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Only consider snapshots with this tag (repeatable; all must match).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only consider snapshots that include this path (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
    /// Only consider volume snapshots of this namespace (repeatable).
    #[arg(long = "namespace", value_name = "NS")]
    namespaces: Vec<String>,
    /// Only consider snapshots of this PVC, NAME or NAMESPACE/NAME (repeatable).
    #[arg(long = "pvc", value_name = "PVC")]
    pvcs: Vec<String>,
    /// Only consider snapshots of this kind (repeatable): filesystem, stdin, block-device,
    /// etcd, manifests, images.
    #[arg(long = "kind", value_name = "KIND", value_parser = crate::cmd::select::parse_kind)]
    kinds: Vec<engine::format::snapshot::SourceKind>,
    /// Show what would be forgotten; change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Prune afterwards.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_args: PruneArgs,
}

pub fn run(g: &Global, a: ForgetArgs) -> Result<()> {
    let repo = g.open()?;
    let mut ids = Vec::new();
    for s in &a.snapshots {
        ids.push(engine::snapshots::resolve_id(&repo, s)?);
    }
    let opts = ForgetOptions {
        policy: RetentionPolicy {
            last: a.keep_last,
            hourly: a.keep_hourly,
            daily: a.keep_daily,
            weekly: a.keep_weekly,
            monthly: a.keep_monthly,
            yearly: a.keep_yearly,
            within: a.keep_within,
            tags: a.keep_tag.clone(),
        },
        filter: SnapshotFilter {
            hosts: a.hosts.clone(),
            tags: a.tags.clone(),
            paths: a.paths.clone(),
            namespaces: a.namespaces.clone(),
            pvcs: a.pvcs.clone(),
            kinds: a.kinds.clone(),
            ..Default::default()
        },
        ids,
        groups: a.groups.clone(),
        dry_run: a.dry_run,
    };
    repo.refuse_append_only("forget")?;
    // The session's heartbeats give the storage time that retention locks are judged by.
    let session = repo.begin_session("forget", g.expiry())?;
    let report = forget(&repo, &session, &opts)?;
    session.end()?;
    output::warn_skipped_snapshots(&report.skipped);
    let pruned = if a.prune && !a.dry_run {
        Some(crate::cmd::prune::prune_with(g, &repo, &a.prune_args)?)
    } else {
        None
    };
    if g.json {
        return output::json(&serde_json::json!({ "forget": report, "prune": pruned }));
    }
    if !g.quiet {
        for group in &report.groups {
            output::line(format!("snapshots of {}:", group.group))?;
            for d in &group.snapshots {
                let fate = if d.keep {
                    format!("keep    ({})", d.reasons.join(", "))
                } else {
                    "remove".to_string()
                };
                let group = d
                    .group
                    .as_ref()
                    .map(|g| format!("  [{g}]"))
                    .unwrap_or_default();
                output::line(format!(
                    "  {}  {}{group}  {fate}",
                    d.id.short(),
                    output::local_time_of(&d.time)
                ))?;
            }
        }
        let verb = if a.dry_run { "would remove" } else { "removed" };
        output::line(format!("{verb} {} snapshot(s)", report.removed.len()))?;
        for (id, until) in &report.locked {
            output::line(format!(
                "kept {}: the store's Object Lock holds it until {}; a forget after that \
                 removes it",
                id.short(),
                output::storage_time(*until)
            ))?;
        }
        if let Some(p) = &pruned {
            print_report(p)?;
        }
    }
    Ok(())
}
