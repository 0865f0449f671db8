use anyhow::Result;
use clap::Args;
use engine::check::{CheckOptions, Subset, check};
use engine::format::record::{CheckRecord, RecordKind};

use crate::args::Global;
use crate::exit::Partial;
use crate::progress::CliProgress;
use crate::{exit, output, record};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also read every pack and verify every blob.
    #[arg(long)]
    read_data: bool,
    /// Read and verify only part of the packs: group N/M (M runs cover everything), P% at
    /// random, or a SIZE (like 2G) of random packs.
    #[arg(long, value_name = "N/M|P%|SIZE", conflicts_with = "read_data")]
    read_data_subset: Option<engine::check::Subset>,
}

/// What `--read-data` / `--read-data-subset` asked for, as the record says it.
fn read_data_words(a: &CheckArgs) -> String {
    match (a.read_data, a.read_data_subset) {
        (true, _) => "all".into(),
        (false, None) => "none".into(),
        (false, Some(Subset::Group { n, m })) => format!("{n}/{m}"),
        (false, Some(Subset::Percent(p))) => format!("{p}%"),
        (false, Some(Subset::Bytes(b))) => output::bytes(b),
    }
}

pub fn run(g: &Global, a: CheckArgs) -> Result<()> {
    let repo = g.open()?;
    let progress = CliProgress::new(g.quiet || g.json, false);
    let started = chrono::Utc::now();
    let checked = check(
        &repo,
        &CheckOptions {
            read_data: a.read_data,
            subset: a.read_data_subset,
        },
        &progress,
    );
    let outcome = match &checked {
        Ok(r) => record::Outcome::problems_if(
            !r.problems.is_empty(),
            format!("{} problem(s) found", r.problems.len()),
        ),
        Err(e) => record::Outcome::failed(&anyhow::anyhow!("{e}")),
    };
    let mut rec = record::record(RecordKind::Check, started, outcome);
    rec.check = Some(CheckRecord {
        read_data: read_data_words(&a),
        snapshots: checked.as_ref().map_or(0, |r| r.snapshots),
        packs_read: checked.as_ref().map_or(0, |r| r.packs_read),
        blobs_verified: checked.as_ref().map_or(0, |r| r.blobs_verified),
        problems: checked.as_ref().map_or(0, |r| r.problems.len() as u64),
    });
    record::store(&repo, &rec);
    let report = checked?;
    if g.json {
        output::json(&report)?;
    } else {
        for p in &report.problems {
            let snaps = if p.snapshots.is_empty() {
                String::new()
            } else {
                format!(" (snapshots {})", p.snapshots.join(", "))
            };
            output::line(format!("error: {}{snaps}", p.message))?;
        }
        if !g.quiet {
            output::line(format!(
                "checked {} snapshots, {} trees{}; {} unindexed packs (harmless leftovers)",
                report.snapshots,
                report.trees,
                if a.read_data || a.read_data_subset.is_some() {
                    format!(
                        ", read {} packs and verified {} blobs",
                        report.packs_read, report.blobs_verified
                    )
                } else {
                    String::new()
                },
                report.unindexed_packs
            ))?;
            if report.duplicate_packs > 0 {
                output::line(format!(
                    "{} pack(s) are listed by more than one index file (harmless; prune merges them)",
                    report.duplicate_packs
                ))?;
            }
        }
    }
    if !report.problems.is_empty() {
        if !g.json && !g.quiet {
            output::line(
                "to recover what remains: `repo repair index`, then `repo repair snapshots`",
            )?;
        }
        return Err(Partial {
            code: exit::DAMAGED_DATA,
            message: format!("{} problem(s) found", report.problems.len()),
        }
        .into());
    }
    if !g.quiet && !g.json {
        output::line("no problems found")?;
    }
    Ok(())
}
