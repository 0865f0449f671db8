//! `repo rewrite`: being written.

use anyhow::{Result, bail};
use clap::Args;

use crate::args::Global;

#[derive(Debug, Args)]
pub struct RewriteArgs {}

pub fn run(_g: &Global, _a: RewriteArgs) -> Result<()> {
    bail!("repo rewrite is not built yet")
}
