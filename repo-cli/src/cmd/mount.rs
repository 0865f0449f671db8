//! `repo mount`: being written.

use anyhow::{Result, bail};
use clap::Args;

use crate::args::Global;

#[derive(Debug, Args)]
pub struct MountArgs {}

pub fn run(_g: &Global, _a: MountArgs) -> Result<()> {
    bail!("repo mount is not built yet")
}
