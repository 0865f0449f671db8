//! Choosing snapshots: restic's `--host`, `--path`, `--tag`, and Kairn's `--namespace`, `--pvc`,
//! `--kind`, `--group`, shared by every command that takes a snapshot, so that `latest` means
//! the newest snapshot that matches.

use anyhow::Result;
use clap::Args;
use engine::format::snapshot::{Snapshot, SourceKind};
use engine::id::SnapshotId;
use engine::repo::Repository;
use engine::snapshots::{GroupMatch, SnapshotFilter};

/// Which snapshots a command looks at.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Snapshot filters")]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots that include this path (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Only snapshots with this tag (repeatable; all must match).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only volume snapshots of this namespace (repeatable).
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Only snapshots of this PVC, NAME or NAMESPACE/NAME (repeatable).
    #[arg(long = "pvc", value_name = "PVC")]
    pub pvcs: Vec<String>,
    /// Only snapshots of this kind (repeatable): filesystem, stdin, block-device, etcd,
    /// manifests, images.
    #[arg(long = "kind", value_name = "KIND", value_parser = parse_kind)]
    pub kinds: Vec<SourceKind>,
    /// Only snapshots that are part of a cluster backup, or of the one with this id.
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "")]
    pub group: Option<String>,
}

impl FilterArgs {
    /// The engine's filter.
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            paths: self.paths.clone(),
            tags: self.tags.clone(),
            namespaces: self.namespaces.clone(),
            pvcs: self.pvcs.clone(),
            kinds: self.kinds.clone(),
            group: self.group.as_ref().map(|g| {
                if g.is_empty() {
                    GroupMatch::Any
                } else {
                    GroupMatch::Id(g.clone())
                }
            }),
            ..Default::default()
        }
    }

    /// Resolves `SNAPSHOT[:PATH]`: `latest` is the newest snapshot passing the filters, and an
    /// id that does not pass them is refused.
    pub fn resolve(&self, repo: &Repository, spec: &str) -> Result<(SnapshotId, Snapshot, String)> {
        let (name, path) = engine::locate::split_spec(spec);
        let (id, snap) = engine::snapshots::find(repo, name, &self.filter())?;
        Ok((id, snap, path.to_string()))
    }

    /// Resolves a snapshot name without a path.
    pub fn find(&self, repo: &Repository, name: &str) -> Result<(SnapshotId, Snapshot)> {
        Ok(engine::snapshots::find(repo, name, &self.filter())?)
    }
}

/// A source kind by its stored name.
pub fn parse_kind(s: &str) -> std::result::Result<SourceKind, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        format!(
            "unknown kind {s:?}: use filesystem, stdin, block-device, etcd, manifests or images"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_by_their_stored_names() {
        assert_eq!(parse_kind("etcd"), Ok(SourceKind::Etcd));
        assert_eq!(parse_kind("block-device"), Ok(SourceKind::BlockDevice));
        assert!(parse_kind("volume").unwrap_err().contains("filesystem"));
    }
}
