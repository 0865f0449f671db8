//! `repo tag`: being written.

use anyhow::{Result, bail};
use clap::Args;

use crate::args::Global;

#[derive(Debug, Args)]
pub struct TagArgs {}

pub fn run(_g: &Global, _a: TagArgs) -> Result<()> {
    bail!("repo tag is not built yet")
}
