use anyhow::Result;
use clap::Args;
use engine::check::{CheckOptions, check};

use crate::args::Global;
use crate::exit::Partial;
use crate::progress::CliProgress;
use crate::{exit, output};

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

pub fn run(g: &Global, a: CheckArgs) -> Result<()> {
    let repo = g.open()?;
    let progress = CliProgress::new(g.quiet || g.json, false);
    let report = check(
        &repo,
        &CheckOptions {
            read_data: a.read_data,
            subset: a.read_data_subset,
        },
        &progress,
    )?;
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
