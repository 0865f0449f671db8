//! `repo rewrite`: remove files and directories from existing snapshots (restic's `rewrite
//! --exclude`). Each changed snapshot is written again with `original` naming the first; with
//! --forget the old one is then removed, and a prune frees the data only it used.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use engine::index::Index;
use engine::rewrite::{Matcher, RewriteOptions, RewriteReport, rewrite};

use crate::args::Global;
use crate::cmd::find::{chosen, usage};
use crate::cmd::select::FilterArgs;
use crate::output;

#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// Snapshots to rewrite (ids, prefixes or `latest`); every snapshot passing the filters
    /// when none is given.
    snapshots: Vec<String>,
    /// Remove entries matching this glob, as backup's --exclude: a name pattern, or an
    /// absolute path pattern with `/`; a directory goes with all it holds (repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    excludes: Vec<String>,
    /// Like --exclude, ignoring case.
    #[arg(long = "iexclude", value_name = "PATTERN")]
    iexcludes: Vec<String>,
    /// Read --exclude patterns from a file, one per line (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    exclude_file: Vec<PathBuf>,
    /// Read --iexclude patterns from a file.
    #[arg(long, value_name = "FILE")]
    iexclude_file: Vec<PathBuf>,
    /// Remove each rewritten snapshot once its replacement is stored (without it both stay).
    #[arg(long)]
    forget: bool,
    /// Show what would be removed from each snapshot; write nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

fn patterns(given: &[String], files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = given.to_vec();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read exclude file {}", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(out)
}

pub fn run(g: &Global, a: RewriteArgs) -> Result<()> {
    let opts = RewriteOptions {
        excludes: patterns(&a.excludes, &a.exclude_file)?,
        iexcludes: patterns(&a.iexcludes, &a.iexclude_file)?,
        forget: a.forget,
        dry_run: a.dry_run,
    };
    // Bad or missing patterns are the command line's fault, said before the repository opens.
    Matcher::new(&opts.excludes, &opts.iexcludes).map_err(usage)?;
    let repo = g.open()?;
    if a.forget && !a.dry_run {
        repo.refuse_append_only("rewrite --forget")?;
    }
    // Session first, then the snapshots and the index (repo-format.md §14.1).
    let session = repo.begin_session("rewrite", g.expiry())?;
    let result = chosen(&repo, &a.snapshots, &a.filter).and_then(|snapshots| {
        let index = Index::load(&repo)?;
        Ok(rewrite(&repo, &session, &index, snapshots, &opts)?)
    });
    // Ended on failure too: trees written and not published are left for a prune.
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

fn print(r: &RewriteReport) -> Result<()> {
    for s in &r.rewritten {
        let c = &s.counts;
        let verb = if r.dry_run { "would remove" } else { "removed" };
        output::line(format!(
            "snapshot {}: {verb} {} file(s), {} dir(s), {} other(s), {}",
            s.old.short(),
            c.files,
            c.dirs,
            c.others,
            output::bytes(c.bytes)
        ))?;
        for e in &s.removed {
            let slash = if e.kind == "dir" { "/" } else { "" };
            output::line(format!(
                "  - {}{slash}  ({}, {})",
                e.path,
                e.kind,
                output::bytes(e.size)
            ))?;
        }
        if let Some(new) = s.new {
            let saved = if s.existing {
                "already rewritten as"
            } else {
                "saved as"
            };
            if r.dry_run {
                output::line(format!("  {saved} {}", new.short()))?;
                continue;
            }
            let old = match (r.forget, s.old_locked_until) {
                (false, _) => format!("{} kept (--forget removes it)", s.old.short()),
                (true, None) => format!("{} removed", s.old.short()),
                (true, Some(until)) => format!(
                    "{} kept: the store's Object Lock holds it until {}; `repo forget {}` \
                     after that removes it",
                    s.old.short(),
                    output::storage_time(until),
                    s.old.short()
                ),
            };
            output::line(format!("  {saved} {}; {old}", new.short()))?;
        }
    }
    for id in &r.unchanged {
        output::line(format!("snapshot {}: no changes", id.short()))?;
    }
    let verb = if r.dry_run {
        "would rewrite"
    } else {
        "rewrote"
    };
    output::line(format!(
        "{verb} {} snapshot(s), {} unchanged",
        r.rewritten.len(),
        r.unchanged.len()
    ))?;
    Ok(())
}
