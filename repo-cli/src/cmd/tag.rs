//! `repo tag`: add, remove or set the tags of snapshots. Each changed snapshot is written again
//! under a new id (`original` names the first), then the old file is removed; a snapshot the
//! store's Object Lock holds is left as it is.

use anyhow::{Result, bail};
use clap::Args;
use engine::tag::{TagChange, TagReport, tag};

use crate::args::Global;
use crate::cmd::find::{chosen, usage};
use crate::cmd::select::FilterArgs;
use crate::exit::UsageError;
use crate::output;

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Snapshots to change (ids, prefixes or `latest`); every snapshot passing the filters
    /// when none is given.
    snapshots: Vec<String>,
    /// Add this tag (repeatable).
    #[arg(long = "add", value_name = "TAG")]
    add: Vec<String>,
    /// Remove this tag (repeatable).
    #[arg(long = "remove", value_name = "TAG")]
    remove: Vec<String>,
    /// Replace all tags with these (repeatable); `--set ''` removes every tag.
    #[arg(long = "set", value_name = "TAG", conflicts_with_all = ["add", "remove"])]
    set: Vec<String>,
    /// Show what would change; write nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

fn change(a: &TagArgs) -> Result<TagChange> {
    let change = if !a.set.is_empty() {
        if a.set == [""] {
            TagChange::Set(Vec::new())
        } else {
            TagChange::Set(a.set.clone())
        }
    } else if a.add.is_empty() && a.remove.is_empty() {
        bail!(UsageError(
            "nothing to change: give --add, --remove or --set".into()
        ));
    } else {
        TagChange::Edit {
            add: a.add.clone(),
            remove: a.remove.clone(),
        }
    };
    change.validate().map_err(usage)?;
    Ok(change)
}

pub fn run(g: &Global, a: TagArgs) -> Result<()> {
    let change = change(&a)?;
    let repo = g.open()?;
    if !a.dry_run {
        repo.refuse_append_only("tag (it replaces each snapshot it changes)")?;
    }
    // The session publishes the new snapshots, and its heartbeat gives the storage time that
    // retention locks are judged by. The snapshots are read after it began (repo-format.md
    // §14.1): one a concurrent forget and prune took is then not written again.
    let session = repo.begin_session("tag", g.expiry())?;
    let result = chosen(&repo, &a.snapshots, &a.filter)
        .and_then(|snapshots| Ok(tag(&repo, &session, snapshots, &change, a.dry_run)?));
    let ended = session.end();
    let report = result?;
    ended?;
    if g.json {
        return output::json(&report);
    }
    if !g.quiet {
        print(&report)?;
    }
    Ok(())
}

fn print(r: &TagReport) -> Result<()> {
    for t in &r.tagged {
        let tags = if t.tags.is_empty() {
            "no tags".to_string()
        } else {
            format!("tags {}", t.tags.join(", "))
        };
        match t.new {
            Some(new) => output::line(format!(
                "snapshot {} -> {}: {tags}",
                t.old.short(),
                new.short()
            ))?,
            None => output::line(format!("would tag snapshot {}: {tags}", t.old.short()))?,
        }
        if let Some(until) = t.old_locked_until {
            output::line(format!(
                "  {} stays as well: the store's Object Lock holds it until {}",
                t.old.short(),
                output::storage_time(until)
            ))?;
        }
    }
    for (id, until) in &r.locked {
        output::line(format!(
            "left {} as it is: the store's Object Lock holds it until {}, and its tags cannot \
             change before then",
            id.short(),
            output::storage_time(*until)
        ))?;
    }
    let verb = if r.dry_run { "would tag" } else { "tagged" };
    output::line(format!(
        "{verb} {} snapshot(s), {} already as asked",
        r.tagged.len(),
        r.unchanged.len()
    ))?;
    Ok(())
}
