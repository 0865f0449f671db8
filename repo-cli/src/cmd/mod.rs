//! One file per subcommand: parse its arguments into engine options, call the engine, print.

pub mod backup;
pub mod cat;
pub mod check;
pub mod copy;
pub mod diff;
pub mod dump;
pub mod forget;
pub mod images;
pub mod init;
pub mod key;
pub mod ls;
pub mod manifests;
pub mod prune;
pub mod repair;
pub mod report;
pub mod restore;
pub mod snapshots;
pub mod stats;

/// Parses `SNAPSHOT[:PATH]` and loads the snapshot.
pub fn resolve(
    repo: &engine::repo::Repository,
    spec: &str,
) -> anyhow::Result<(
    engine::id::SnapshotId,
    engine::format::snapshot::Snapshot,
    String,
)> {
    let (name, path) = engine::locate::split_spec(spec);
    let (id, snap) = engine::snapshots::find(repo, name, &Default::default())?;
    Ok((id, snap, path.to_string()))
}
