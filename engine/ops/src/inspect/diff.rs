//! Comparing two snapshots, tree by tree; identical subtrees are skipped by id.

use std::cmp::Ordering;

use serde::Serialize;

use kairn_format::error::Result;
use kairn_format::id::BlobId;
use kairn_format::tree::{Node, NodeKind};
use kairn_repository::index::Index;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;

/// How an entry differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Only in the second snapshot.
    Added,
    /// Only in the first.
    Removed,
    /// Content differs.
    Modified,
    /// Only metadata differs (mode, owner, times, xattrs).
    Metadata,
    /// The entry changed type (file to directory and so on).
    TypeChanged,
}

impl ChangeKind {
    /// One character, as `repo diff` prints it.
    pub fn symbol(self) -> char {
        match self {
            Self::Added => '+',
            Self::Removed => '-',
            Self::Modified => 'M',
            Self::Metadata => 'U',
            Self::TypeChanged => 'T',
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Path in the snapshots.
    pub path: String,
    /// What changed.
    pub kind: ChangeKind,
}

/// Differences between two trees, in path order.
pub fn diff(repo: &Repository, index: &Index, a: BlobId, b: BlobId) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_trees(repo, index, "", a, b, &mut out)?;
    Ok(out)
}

fn same_metadata(a: &Node, b: &Node) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && a.xattrs == b.xattrs
}

fn all_below(
    repo: &Repository,
    index: &Index,
    path: &str,
    node: &Node,
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<()> {
    out.push(Change {
        path: path.to_string(),
        kind,
    });
    if let Some(sub) = node.subtree() {
        for child in load_tree(repo, index, &sub)?.nodes {
            all_below(
                repo,
                index,
                &format!("{path}/{}", child.display_name()),
                &child,
                kind,
                out,
            )?;
        }
    }
    Ok(())
}

fn diff_trees(
    repo: &Repository,
    index: &Index,
    prefix: &str,
    a: BlobId,
    b: BlobId,
    out: &mut Vec<Change>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let ta = load_tree(repo, index, &a)?.nodes;
    let tb = load_tree(repo, index, &b)?.nodes;
    let (mut i, mut j) = (0, 0);
    while i < ta.len() || j < tb.len() {
        let order = match (ta.get(i), tb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                let n = &ta[i];
                all_below(
                    repo,
                    index,
                    &format!("{prefix}/{}", n.display_name()),
                    n,
                    ChangeKind::Removed,
                    out,
                )?;
                i += 1;
            }
            Ordering::Greater => {
                let n = &tb[j];
                all_below(
                    repo,
                    index,
                    &format!("{prefix}/{}", n.display_name()),
                    n,
                    ChangeKind::Added,
                    out,
                )?;
                j += 1;
            }
            Ordering::Equal => {
                let (x, y) = (&ta[i], &tb[j]);
                let path = format!("{prefix}/{}", x.display_name());
                match (&x.kind, &y.kind) {
                    (NodeKind::Dir { subtree: sa }, NodeKind::Dir { subtree: sb }) => {
                        if !same_metadata(x, y) {
                            out.push(Change {
                                path: path.clone(),
                                kind: ChangeKind::Metadata,
                            });
                        }
                        diff_trees(repo, index, &path, *sa, *sb, out)?;
                    }
                    (ka, kb) if std::mem::discriminant(ka) != std::mem::discriminant(kb) => {
                        out.push(Change {
                            path,
                            kind: ChangeKind::TypeChanged,
                        });
                    }
                    (ka, kb) if ka != kb => out.push(Change {
                        path,
                        kind: ChangeKind::Modified,
                    }),
                    _ if !same_metadata(x, y) => out.push(Change {
                        path,
                        kind: ChangeKind::Metadata,
                    }),
                    _ => {}
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}
