//! `repo stats`: the repository as a whole, or chosen snapshots in restic's modes.

use anyhow::Result;
use clap::{Args, ValueEnum};
use engine::inspect::stats_modes::{SelectedStats, StatsMode, stats_for};

use crate::args::Global;
use crate::cmd::select::FilterArgs;
use crate::output;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Count only these snapshots (ids, prefixes or `latest`, the newest passing the filters);
    /// with neither snapshots nor filters, the whole repository.
    snapshots: Vec<String>,
    /// restore-size: what a restore of each snapshot writes, added up; files-by-contents: each
    /// distinct file content once; raw-data: the distinct blobs referenced, plaintext and
    /// stored. Default: restore-size when snapshots or filters are given, else the whole
    /// repository's deduplication and compression.
    #[arg(long, value_enum, value_name = "MODE")]
    mode: Option<Mode>,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    RestoreSize,
    FilesByContents,
    RawData,
}

impl From<Mode> for StatsMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::RestoreSize => StatsMode::RestoreSize,
            Mode::FilesByContents => StatsMode::FilesByContents,
            Mode::RawData => StatsMode::RawData,
        }
    }
}

pub fn run(g: &Global, a: StatsArgs) -> Result<()> {
    let (repo, index) = g.open_indexed()?;
    let filter = a.filter.filter();
    if a.snapshots.is_empty() && filter.is_empty() && a.mode.is_none() {
        return repository(g, &repo, &index);
    }
    let chosen = if a.snapshots.is_empty() {
        let found = engine::snapshots::list_readable(&repo, &filter)?;
        output::warn_skipped_snapshots(&found.damaged);
        found.snapshots
    } else {
        let mut chosen = Vec::new();
        for name in &a.snapshots {
            chosen.push(a.filter.find(&repo, name)?);
        }
        chosen
    };
    let mode = a.mode.map_or(StatsMode::RestoreSize, StatsMode::from);
    let s = stats_for(&repo, &index, &chosen, mode)?;
    if g.json {
        let mut v = serde_json::to_value(&s)?;
        v["mode"] = serde_json::to_value(mode)?;
        return output::json(&v);
    }
    print_selected(&s, mode)
}

fn print_selected(s: &SelectedStats, mode: StatsMode) -> Result<()> {
    let mode_name = serde_json::to_value(mode)?;
    output::line(format!(
        "stats in {} mode:",
        mode_name.as_str().unwrap_or_default()
    ))?;
    output::line(format!("  snapshots:        {}", s.snapshots))?;
    if mode == StatsMode::RawData {
        output::line(format!(
            "  blobs:            {}",
            s.total_blob_count.unwrap_or(0)
        ))?;
        output::line(format!(
            "  raw size:         {}",
            output::bytes(s.total_size)
        ))?;
        output::line(format!(
            "  stored size:      {}",
            output::bytes(s.total_stored_size.unwrap_or(0))
        ))?;
        output::line(format!(
            "  compression:      {:.2}x",
            s.compression_ratio.unwrap_or(0.0)
        ))?;
    } else {
        output::line(format!("  files:            {}", s.total_file_count))?;
        output::line(format!(
            "  total size:       {}",
            output::bytes(s.total_size)
        ))?;
    }
    if s.missing_blobs > 0 {
        eprintln!(
            "warning: {} referenced blob(s) are missing from the index: run `repo check`",
            s.missing_blobs
        );
    }
    Ok(())
}

fn repository(
    g: &Global,
    repo: &engine::repo::Repository,
    index: &engine::index::Index,
) -> Result<()> {
    let s = engine::inspect::stats::stats(repo, index)?;
    if g.json {
        return output::json(&s);
    }
    output::line(format!("snapshots:          {}", s.snapshots))?;
    output::line(format!("files (all snaps):  {}", s.total_files))?;
    output::line(format!(
        "logical size:       {}",
        output::bytes(s.logical_bytes)
    ))?;
    output::line(format!(
        "unique data:        {} in {} blobs",
        output::bytes(s.raw_bytes),
        s.unique_blobs
    ))?;
    output::line(format!(
        "stored size:        {} in {} packs",
        output::bytes(s.pack_bytes),
        s.packs
    ))?;
    output::line(format!("deduplication:      {:.2}x", s.dedup_ratio))?;
    output::line(format!("compression:        {:.2}x", s.compression_ratio))?;
    output::line(format!("overall:            {:.2}x", s.total_ratio))?;
    Ok(())
}
