//! Keeping a repository healthy: which snapshots to keep ([`retention`], [`forget`]), freeing
//! what none uses ([`prune`]), verifying ([`check`]) and mending ([`repair`]). [`reachable`] is
//! the walk from snapshots to the blobs and packs they use, shared by check and prune.

pub mod check;
pub mod forget;
pub mod prune;
pub mod reachable;
pub mod repair;
pub mod retention;
pub mod rewrite;
pub mod tag;
