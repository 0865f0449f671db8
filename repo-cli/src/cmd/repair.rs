use anyhow::{Result, bail};
use clap::Subcommand;
use engine::format::FileKind;
use engine::id::SessionId;
use engine::session::registry::{SessionScan, remove_session, scan_sessions};

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
    /// List writer sessions and unreadable session and garbage files, or remove one.
    Sessions {
        /// Remove this session (id or unique prefix), or this unreadable session file or
        /// garbage list (name or unique prefix). A session only for a writer that is certainly
        /// not running: a prune expires stale sessions by itself, but not one that died
        /// committing.
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
        for f in &report.damaged {
            let verb = if dry_run || keep_original {
                "would remove"
            } else {
                "removed"
            };
            output::line(format!(
                "{verb} damaged snapshot file {}: {}",
                short(&f.name),
                f.reason
            ))?;
        }
        for (name, until) in &report.damaged_locked {
            output::line(format!(
                "kept damaged snapshot file {}: the store's Object Lock holds it until {}; a \
                 repair after that removes it",
                short(name),
                output::storage_time(*until)
            ))?;
        }
        if keep_original && !report.damaged.is_empty() {
            output::line("run it without --keep-original to remove the damaged files")?;
        }
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
    let scan = scan_sessions(repo.files())?;
    let garbage = engine::garbage::scan(&repo)?.unreadable;
    if let Some(prefix) = remove {
        return remove_one(g, &repo, &scan, &garbage, &prefix);
    }
    if g.json {
        // The JSON stays the list of sessions scripts read; unreadable files go to stderr.
        for u in &scan.unreadable {
            eprintln!(
                "warning: unreadable session file {}: {}",
                u.file.name, u.file.reason
            );
        }
        for u in &garbage {
            eprintln!("warning: unreadable garbage list {}: {}", u.name, u.reason);
        }
        return output::json(&scan.sessions);
    }
    for v in &scan.sessions {
        output::line(format!(
            "{}  {:<7} {} pid {}  started {}  fence {:?}",
            v.session.short(),
            v.latest.kind,
            v.latest.host,
            v.latest.pid,
            output::local_time_of(&v.latest.started),
            v.fence
        ))?;
    }
    for u in &scan.unreadable {
        output::line(format!(
            "{}  unreadable session file, stored {}: {}",
            short(&u.file.name),
            output::storage_time(u.stored_ms),
            u.file.reason
        ))?;
    }
    for u in &garbage {
        output::line(format!(
            "{}  unreadable garbage list: {}",
            short(&u.name),
            u.reason
        ))?;
    }
    Ok(())
}

/// Removes the one session, unreadable session file or unreadable garbage list whose id or
/// name starts with `prefix`.
fn remove_one(
    g: &Global,
    repo: &engine::repo::Repository,
    scan: &SessionScan,
    garbage: &[engine::snapshots::UnreadableFile],
    prefix: &str,
) -> Result<()> {
    let sessions = scan
        .sessions
        .iter()
        .filter(|v| v.session.to_hex().starts_with(prefix))
        .map(|v| Target::Session(v.session));
    let files = scan
        .unreadable
        .iter()
        .filter(|u| u.file.name.starts_with(prefix))
        .map(|u| Target::File(FileKind::Session, u.file.name.clone()));
    let lists = garbage
        .iter()
        .filter(|u| u.name.starts_with(prefix))
        .map(|u| Target::File(FileKind::Garbage, u.name.clone()));
    let matching: Vec<Target> = sessions.chain(files).chain(lists).collect();
    let [one] = matching.as_slice() else {
        bail!(crate::exit::UsageError(format!(
            "{} sessions or unreadable files match {prefix:?}; give a longer prefix",
            matching.len()
        )));
    };
    let said = match one {
        Target::Session(id) => {
            remove_session(repo.files(), *id)?;
            format!("removed session {}", id.short())
        }
        Target::File(kind, name) => {
            if !engine::garbage::remove_unreadable(repo, *kind, name)? {
                bail!(
                    "{} became readable or was removed meanwhile; left alone",
                    short(name)
                );
            }
            let what = if *kind == FileKind::Garbage {
                "garbage list"
            } else {
                "session file"
            };
            format!("removed unreadable {what} {}", short(name))
        }
    };
    if !g.quiet {
        output::line(said)?;
    }
    Ok(())
}

/// What `repair sessions --remove` removes.
enum Target {
    Session(SessionId),
    File(FileKind, String),
}

/// A stored name shortened for messages, as ids are.
fn short(name: &str) -> &str {
    name.get(..8).unwrap_or(name)
}
