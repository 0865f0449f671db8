use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use engine::copy::{CopyOptions, CopyReport, copy};
use engine::index::Index;
use engine::snapshots::find;

use crate::args::{Global, parse_storage_option};
use crate::cmd::select::FilterArgs;
use crate::output;
use crate::progress::CliProgress;

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Snapshots to copy: ids, id prefixes or `latest`; every snapshot passing the filters
    /// when none is given.
    snapshots: Vec<String>,
    /// The repository to copy from; -r/--repo is the one copied into.
    #[arg(long, env = "KAIRN_FROM_REPOSITORY", value_name = "LOCATION")]
    from_repo: String,
    /// Read the source repository's password from the first line of this file (else
    /// KAIRN_FROM_PASSWORD, else a prompt).
    #[arg(long, env = "KAIRN_FROM_PASSWORD_FILE", value_name = "FILE")]
    from_password_file: Option<PathBuf>,
    /// A storage option of the source repository, key=value; repeatable (as -o/--option).
    #[arg(long = "from-option", value_name = "KEY=VALUE", value_parser = parse_storage_option)]
    from_options: Vec<(String, String)>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Show which snapshots would be copied; read no data and write nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
}

pub fn run(g: &Global, a: CopyArgs) -> Result<()> {
    // The source first: a wrong source password fails before the destination has a session.
    let src = g.open_source(
        &a.from_repo,
        &a.from_options,
        a.from_password_file.as_deref(),
    )?;
    let src_index = Index::load(&src)?;
    let filter = a.filter.filter();
    let mut ids = Vec::new();
    for name in &a.snapshots {
        ids.push(find(&src, name, &filter)?.0);
    }
    let opts = CopyOptions {
        filter,
        ids,
        dry_run: a.dry_run,
    };
    let (dst, session, dst_index) = g.open_for_writing("copy")?;
    let progress = CliProgress::new(g.quiet || g.json, !g.json);
    let result = copy(
        &src, &src_index, &dst, &session, &dst_index, &opts, &progress,
    );
    // Ended on failure too: what was written and not published is left for a prune.
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

fn print(r: &CopyReport) -> Result<()> {
    for s in &r.skipped {
        output::line(format!(
            "snapshot {} is already in the destination as {}",
            s.source.short(),
            s.existing.short()
        ))?;
    }
    for c in &r.copied {
        match c.copy {
            Some(copy) => output::line(format!(
                "copied snapshot {} to {}",
                c.source.short(),
                copy.short()
            ))?,
            None => output::line(format!("would copy snapshot {}", c.source.short()))?,
        }
    }
    let verb = if r.dry_run { "would copy" } else { "copied" };
    output::line(format!(
        "{verb} {} snapshot(s), {} already present",
        r.copied.len(),
        r.skipped.len()
    ))?;
    if !r.dry_run && !r.copied.is_empty() {
        output::line(format!(
            "read {} in {} file(s); {} new in {} chunk(s), {} already stored; added {} to \
             the repository",
            output::bytes(r.bytes_read),
            r.files_read,
            output::bytes(r.data_bytes_new),
            r.data_blobs_new,
            output::bytes(r.data_bytes_deduplicated),
            output::bytes(r.bytes_stored)
        ))?;
    }
    Ok(())
}
