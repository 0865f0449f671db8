use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Result, bail};
use clap::Args;
use engine::manifests::order::{Selection, select_and_order};
use engine::manifests::{read_manifests, to_yaml_stream};

use crate::args::Global;

#[derive(Debug, Args)]
pub struct ManifestsArgs {
    /// A snapshot of Kubernetes manifests (`latest` is the newest one).
    snapshot: String,
    /// Only this namespace's objects (repeatable), with the Namespace objects and the
    /// definitions of their custom resources; without it, everything.
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    namespaces: Vec<String>,
    /// Only this kind (repeatable): `Deployment`, or `widget.example.com` for a custom one.
    #[arg(long = "kind", value_name = "KIND")]
    kinds: Vec<String>,
    /// Leave Secrets out.
    #[arg(long)]
    exclude_secrets: bool,
    /// Write namespace OLD as NEW (repeatable): objects, the Namespace, role binding subjects.
    #[arg(long = "map-namespace", value_name = "OLD=NEW")]
    map_namespace: Vec<String>,
}

pub fn run(g: &Global, a: ManifestsArgs) -> Result<()> {
    let mut namespace_map = BTreeMap::new();
    for pair in &a.map_namespace {
        let Some((old, new)) = pair
            .split_once('=')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty())
        else {
            bail!(crate::exit::UsageError(format!(
                "--map-namespace {pair:?}: expected OLD=NEW"
            )));
        };
        namespace_map.insert(old.to_string(), new.to_string());
    }
    let (repo, index) = g.open_indexed()?;
    let (_, snap) = if a.snapshot == "latest" {
        let filter = engine::snapshots::SnapshotFilter::default();
        engine::snapshots::list(&repo, &filter)?
            .into_iter()
            .rev()
            .find(|(_, s)| s.source.kind == engine::format::snapshot::SourceKind::Manifests)
            .ok_or_else(|| {
                engine::Error::new(
                    engine::ErrorKind::NotFound,
                    "there is no manifests snapshot yet",
                )
            })?
    } else {
        let (id, snap) = engine::snapshots::find(&repo, &a.snapshot, &Default::default())?;
        (id, snap)
    };
    let objects = read_manifests(&repo, &index, &snap)?;
    let selection = Selection {
        namespaces: a.namespaces,
        kinds: a.kinds,
        exclude_secrets: a.exclude_secrets,
        namespace_map,
    };
    let chosen = select_and_order(objects, &selection);
    if g.json {
        return crate::output::json(&chosen);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(to_yaml_stream(&chosen)?.as_bytes())?;
    out.flush()?;
    Ok(())
}
