use anyhow::{Result, bail};
use clap::Subcommand;
use engine::session::registry::{list_sessions, remove_session};

use crate::args::Global;
use crate::exit::Partial;
use crate::progress::CliProgress;
use crate::{exit, output};

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the headers of the stored packs.
    Index,
    /// Rewrite snapshots that use lost data: drop files with missing data, empty lost
    /// directories, tag the result `repaired`.
    Snapshots {
        /// Show what would be rewritten; change nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Keep the damaged originals beside the repaired snapshots.
        #[arg(long)]
        keep_original: bool,
    },
    /// List writer sessions, or remove one whose writer is known to be gone.
    Sessions {
        /// Remove this session (id or unique prefix). Only for a writer that is certainly not
        /// running: a prune expires stale sessions by itself, but not one that died committing.
        #[arg(long, value_name = "ID")]
        remove: Option<String>,
    },
    /// Bring back every object deleted without its version from a versioned S3 bucket (one
    /// with Object Lock is): after an attacker's deletes, or a mistaken one. Needs no password.
    /// It also brings back what forget and prune removed; run them again afterwards.
    Undelete,
}

pub fn run(g: &Global, c: RepairCommand) -> Result<()> {
    match c {
        RepairCommand::Sessions { remove } => sessions(g, remove),
        RepairCommand::Index => index(g),
        RepairCommand::Undelete => {
            let restored = g.backend()?.undelete()?;
            if g.json {
                output::json(&serde_json::json!({ "restored": restored }))
            } else {
                Ok(output::line(format!(
                    "removed {restored} delete marker(s)"
                ))?)
            }
        }
        RepairCommand::Snapshots {
            dry_run,
            keep_original,
        } => snapshots(g, dry_run, keep_original),
    }
}

fn index(g: &Global) -> Result<()> {
    let repo = g.open()?;
    repo.refuse_append_only("repair index")?;
    let session = repo.begin_session("repair", g.expiry())?;
    let progress = CliProgress::new(g.quiet || g.json, !g.json);
    let report = engine::repair::repair_index(&repo, &session, &progress)?;
    session.end()?;
    if g.json {
        output::json(&report)?;
    } else if !g.quiet {
        output::line(format!(
            "indexed {} blobs in {} packs; wrote {} index file(s), removed {}",
            report.blobs, report.packs, report.written, report.removed
        ))?;
        for u in &report.unreadable {
            output::line(format!("unreadable: {u}"))?;
        }
    }
    if !report.unreadable.is_empty() {
        return Err(Partial {
            code: exit::DAMAGED_DATA,
            message: format!("{} pack(s) could not be read", report.unreadable.len()),
        }
        .into());
    }
    Ok(())
}

fn snapshots(g: &Global, dry_run: bool, keep_original: bool) -> Result<()> {
    let (repo, session, index) = g.open_for_writing("repair")?;
    if !keep_original && !dry_run {
        repo.refuse_append_only("repair snapshots without --keep-original")?;
    }
    let report = engine::repair::repair_snapshots(&repo, &session, &index, dry_run, keep_original)?;
    session.end()?;
    if g.json {
        return output::json(&report);
    }
    if !g.quiet {
        for r in &report.repaired {
            let verb = if dry_run { "would repair" } else { "repaired" };
            output::line(format!(
                "{verb} snapshot {} -> {}: {} path(s) lost",
                r.original.short(),
                r.repaired.short(),
                r.lost.len()
            ))?;
            for l in r.lost.iter().take(20) {
                output::line(format!("  lost {l}"))?;
            }
        }
        output::line(format!(
            "{} of {} snapshot(s) needed repair",
            report.repaired.len(),
            report.snapshots
        ))?;
    }
    Ok(())
}

fn sessions(g: &Global, remove: Option<String>) -> Result<()> {
    let repo = g.open()?;
    if remove.is_some() {
        repo.refuse_append_only("repair sessions --remove")?;
    }
    let views = list_sessions(repo.files())?;
    if let Some(prefix) = remove {
        let matching: Vec<_> = views
            .iter()
            .filter(|v| v.session.to_hex().starts_with(&prefix))
            .collect();
        let [one] = matching.as_slice() else {
            bail!(crate::exit::UsageError(format!(
                "{} sessions match {prefix:?}; give a longer prefix",
                matching.len()
            )));
        };
        remove_session(repo.files(), one.session)?;
        if !g.quiet {
            output::line(format!("removed session {}", one.session.short()))?;
        }
        return Ok(());
    }
    if g.json {
        return output::json(&views);
    }
    for v in &views {
        output::line(format!(
            "{}  {:<7} {} pid {}  started {}  fence {:?}",
            v.session.short(),
            v.latest.kind,
            v.latest.host,
            v.latest.pid,
            v.latest.started,
            v.fence
        ))?;
    }
    Ok(())
}
