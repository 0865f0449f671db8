use std::time::Duration;

use anyhow::Result;
use clap::Args;
use engine::format::record::{PruneRecord, RecordKind};
use engine::prune::{PruneOptions, PruneReport, prune};
use engine::repo::Repository;

use crate::args::Global;
use crate::progress::CliProgress;
use crate::{output, record};

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Repack partly used packs until at most this percent of the stored bytes is unused.
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0)]
    max_unused: f64,
    /// Repack at most this many bytes in one run (like 10G or 500M).
    #[arg(long, value_name = "SIZE", value_parser = crate::args::parse_size)]
    max_repack_size: Option<u64>,
    /// Wait for running writers to finish (or expire) and delete in this run, instead of
    /// leaving the deletion to the next prune.
    #[arg(long)]
    wait: bool,
    /// Show what would be done; change nothing.
    #[arg(long = "dry-run-prune", hide = true)]
    dry_run_prune: bool,
}

#[derive(Debug, Args)]
pub struct PruneCommand {
    #[command(flatten)]
    args: PruneArgs,
    /// Show what would be done; change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
}

pub fn run(g: &Global, mut a: PruneCommand) -> Result<()> {
    a.args.dry_run_prune |= a.dry_run;
    let repo = g.open()?;
    let report = prune_with(g, &repo, &a.args)?;
    if g.json {
        return output::json(&report);
    }
    if !g.quiet {
        print_report(&report)?;
    }
    Ok(())
}

/// Runs a prune in a session of its own.
pub fn prune_with(g: &Global, repo: &Repository, a: &PruneArgs) -> Result<PruneReport> {
    repo.refuse_append_only("prune")?;
    let session = repo.begin_session("prune", g.expiry())?;
    let opts = PruneOptions {
        max_unused_percent: a.max_unused,
        max_repack_bytes: a.max_repack_size,
        expiry: g.expiry(),
        wait: a.wait,
        poll: (g.expiry() / 12).clamp(Duration::from_millis(500), Duration::from_secs(30)),
        dry_run: a.dry_run_prune,
    };
    let progress = CliProgress::new(g.quiet || g.json, !g.json);
    let started = chrono::Utc::now();
    let pruned = prune(repo, &session, &opts, &progress);
    if !a.dry_run_prune {
        record_prune(repo, started, &pruned);
    }
    let report = pruned?;
    session.end()?;
    Ok(report)
}

/// Leaves the prune's record for `repo report`: what it freed, or why it failed.
fn record_prune(
    repo: &Repository,
    started: chrono::DateTime<chrono::Utc>,
    pruned: &engine::Result<PruneReport>,
) {
    let outcome = match pruned {
        Ok(r) => record::Outcome::problems_if(
            r.held_back_until.is_some(),
            "deleted nothing: an unreadable session file may be a running writer's",
        ),
        Err(e) => record::Outcome::failed(&anyhow::anyhow!("{e}")),
    };
    let mut rec = record::record(RecordKind::Prune, started, outcome);
    if let Ok(r) = pruned {
        rec.prune = Some(PruneRecord {
            deleted_packs: r.deleted_packs,
            deleted_bytes: r.deleted_bytes,
            pending_packs: r.pending.iter().map(|p| p.packs as u64).sum(),
            snapshots: r.snapshots,
        });
    }
    record::store(repo, &rec);
}

pub fn print_report(r: &PruneReport) -> Result<()> {
    print_unreadable(r)?;
    if r.held_back_until.is_some() {
        return Ok(());
    }
    output::line(format!(
        "{} snapshots use {} blobs; {} blobs unused",
        r.snapshots, r.used_blobs, r.unused_blobs
    ))?;
    output::line(format!(
        "chose {} unused and {} unindexed pack(s) of {}, repacked {} pack(s) ({})",
        r.unused_packs,
        r.unindexed_packs,
        r.packs,
        r.repacked_packs,
        output::bytes(r.repacked_bytes)
    ))?;
    output::line(format!(
        "deleted {} pack(s) ({}); wrote {} and removed {} index file(s)",
        r.deleted_packs,
        output::bytes(r.deleted_bytes),
        r.index_files_written,
        r.index_files_deleted
    ))?;
    if r.stale_staged_files > 0 {
        output::line(format!(
            "removed {} unfinished staged file(s) from tmp/",
            r.stale_staged_files
        ))?;
    }
    if r.young_unindexed_packs > 0 {
        output::line(format!(
            "left {} unindexed pack(s) younger than the session expiry for a later prune",
            r.young_unindexed_packs
        ))?;
    }
    if let Some(until) = r.deferred_until {
        output::line(format!(
            "the store's Object Lock holds {} pack(s) ({}) and {} index file(s) until {} at \
             the latest: they are out of the index, and a prune after that deletes them",
            r.deferred_packs,
            output::bytes(r.deferred_bytes),
            r.deferred_index_files,
            output::storage_time(until)
        ))?;
    }
    for p in &r.pending {
        output::line(format!(
            "{} pack(s) will be deleted by a later prune, once these writers end:",
            p.packs
        ))?;
        for w in &p.waiting_for {
            let state = if w.committing { ", committing" } else { "" };
            output::line(format!(
                "  session {} ({} on {}, pid {}, last heartbeat {} s ago{state})",
                w.session.short(),
                w.kind,
                w.host,
                w.pid,
                w.idle_secs
            ))?;
        }
    }
    Ok(())
}

/// Says which session and garbage files could not be read and what prune did about them.
fn print_unreadable(r: &PruneReport) -> Result<()> {
    let short = |n: &str| n.get(..8).unwrap_or(n).to_string();
    for u in &r.unreadable_sessions {
        output::line(format!(
            "unreadable session file {} (stored {}): {}",
            short(&u.file.name),
            output::storage_time(u.stored_ms),
            u.file.reason
        ))?;
    }
    if let Some(until) = r.held_back_until {
        output::line(format!(
            "deleted nothing: an unreadable session file younger than the session expiry may \
             be a running writer's; a prune after {} goes ahead (or remove it with `repo \
             repair sessions --remove NAME` if no writer runs)",
            output::storage_time(until)
        ))?;
    }
    for u in &r.unreadable_garbage {
        output::line(format!(
            "skipped unreadable garbage list {}: {}; its packs are out of the index, so a \
             later prune collects them; `repo repair sessions --remove {}` removes it",
            short(&u.name),
            u.reason,
            short(&u.name)
        ))?;
    }
    Ok(())
}
