//! Resolving `SNAPSHOT[:PATH]` to what it names inside a snapshot.

use crate::index::Index;
use crate::read::load_tree;
use crate::repo::Repository;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::BlobId;
use kairn_format::tree::Node;

/// What a path in a snapshot names.
#[derive(Debug, Clone)]
pub enum Located {
    /// The snapshot's root tree.
    Root(BlobId),
    /// A node below the root, with its path components.
    Node(Node),
}

impl Located {
    /// The tree to list when this is a directory.
    pub fn tree(&self) -> Option<BlobId> {
        match self {
            Self::Root(id) => Some(*id),
            Self::Node(n) => n.subtree(),
        }
    }
}

/// Splits `"SNAP:/some/path"` into the snapshot name and the path (`""` when absent).
pub fn split_spec(spec: &str) -> (&str, &str) {
    match spec.split_once(':') {
        Some((snap, path)) => (snap, path),
        None => (spec, ""),
    }
}

/// Walks `path` (slash-separated, absolute or relative to the root) from the root tree.
pub fn locate(repo: &Repository, index: &Index, root: BlobId, path: &str) -> Result<Located> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let mut current = Located::Root(root);
    for (i, part) in parts.iter().enumerate() {
        let tree_id = current.tree().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "{} is not a directory in the snapshot",
                    parts[..i].join("/")
                ),
            )
        })?;
        let tree = load_tree(repo, index, &tree_id)?;
        let node = tree.find(part.as_bytes()).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("/{} is not in the snapshot", parts[..=i].join("/")),
            )
        })?;
        current = Located::Node(node.clone());
    }
    Ok(current)
}
