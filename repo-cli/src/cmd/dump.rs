use std::io::Write;

use anyhow::Result;
use clap::Args;
use engine::locate::{Located, locate};

use crate::args::Global;
use crate::cmd::select::FilterArgs;

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// SNAPSHOT:PATH of a file (written as is) or a directory (written as a tar stream).
    target: String,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(g: &Global, a: DumpArgs) -> Result<()> {
    let (repo, index) = g.open_indexed()?;
    let (_, snap, path) = a.filter.resolve(&repo, &a.target)?;
    let start = locate(&repo, &index, snap.tree, &path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match &start {
        Located::Node(node) if node.subtree().is_none() => {
            engine::inspect::dump::dump_file(&repo, &index, node, &mut out)?;
        }
        _ => engine::inspect::dump::dump_tar(&repo, &index, &start, &mut out)?,
    }
    out.flush()?;
    Ok(())
}
