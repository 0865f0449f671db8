use anyhow::Result;
use clap::Args;

use crate::args::Global;
use crate::output;

#[derive(Debug, Args)]
pub struct StatsArgs {}

pub fn run(g: &Global, _a: StatsArgs) -> Result<()> {
    let (repo, index) = g.open_indexed()?;
    let s = engine::inspect::stats::stats(&repo, &index)?;
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
