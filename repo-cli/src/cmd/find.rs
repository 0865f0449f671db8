//! `repo find`: being written.

use anyhow::{Result, bail};
use clap::Args;

use crate::args::Global;

#[derive(Debug, Args)]
pub struct FindArgs {}

pub fn run(_g: &Global, _a: FindArgs) -> Result<()> {
    bail!("repo find is not built yet")
}
