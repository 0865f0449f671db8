//! Walking a snapshot's trees in path order.

use kairn_format::error::Result;
use kairn_format::tree::Node;
use kairn_repository::index::Index;
use kairn_repository::locate::Located;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;

/// Calls `f(path, node)` for every entry under `start` in sorted path order, depth first.
/// Paths are `/`-joined from `prefix`. With `recursive` false, only direct children are visited.
pub fn walk(
    repo: &Repository,
    index: &Index,
    start: &Located,
    prefix: &str,
    recursive: bool,
    f: &mut dyn FnMut(&str, &Node) -> Result<()>,
) -> Result<()> {
    let prefix = prefix.trim_end_matches('/').to_string();
    let root = match start {
        Located::Node(node) if node.subtree().is_none() => return f(&prefix, node),
        other => other.tree(),
    };
    let Some(root) = root else { return Ok(()) };
    // Stack of pending (directory path, remaining nodes in reverse order).
    let mut stack: Vec<(String, Vec<Node>)> = Vec::new();
    let mut first = load_tree(repo, index, &root)?.nodes;
    first.reverse();
    stack.push((prefix, first));
    while let Some((dir, nodes)) = stack.last_mut() {
        let Some(node) = nodes.pop() else {
            stack.pop();
            continue;
        };
        let path = format!("{}/{}", dir, node.display_name());
        f(&path, &node)?;
        if recursive && let Some(sub) = node.subtree() {
            let mut children = load_tree(repo, index, &sub)?.nodes;
            children.reverse();
            stack.push((path, children));
        }
    }
    Ok(())
}
