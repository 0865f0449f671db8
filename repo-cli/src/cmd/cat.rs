use std::io::Write;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use engine::id::{BlobId, Id, IndexId, PackId};
use engine::inspect::cat;

use crate::args::Global;
use crate::output;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum What {
    Config,
    Snapshot,
    Index,
    Pack,
    Tree,
    Blob,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    /// What to print.
    #[arg(value_enum)]
    what: What,
    /// The object's id (a snapshot may be `latest` or an id prefix).
    id: Option<String>,
    #[command(flatten)]
    filter: crate::cmd::select::FilterArgs,
}

fn full_id(id: Option<&str>) -> Result<Id> {
    let Some(id) = id else {
        bail!(crate::exit::UsageError("this object needs an ID".into()))
    };
    Ok(Id::from_hex(id)?)
}

pub fn run(g: &Global, a: CatArgs) -> Result<()> {
    let repo = g.open()?;
    let value = match a.what {
        What::Config => cat::config(&repo),
        What::Snapshot => {
            let name = a.id.as_deref().unwrap_or("latest");
            let (id, _) = a.filter.find(&repo, name)?;
            cat::snapshot(&repo, &id)?
        }
        What::Index => cat::index_file(&repo, &IndexId(full_id(a.id.as_deref())?))?,
        What::Pack => cat::pack(&repo, &PackId(full_id(a.id.as_deref())?))?,
        What::Tree => {
            let index = engine::index::Index::load(&repo)?;
            cat::tree(&repo, &index, &BlobId(full_id(a.id.as_deref())?))?
        }
        What::Blob => {
            let index = engine::index::Index::load(&repo)?;
            let data = cat::blob(&repo, &index, &BlobId(full_id(a.id.as_deref())?))?;
            std::io::stdout().lock().write_all(&data)?;
            return Ok(());
        }
    };
    output::line(serde_json::to_string_pretty(&value)?)?;
    Ok(())
}
