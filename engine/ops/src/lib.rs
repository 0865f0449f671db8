//! The operations layer: what a command does, over an open repository. [`backup`] walks a tree
//! and feeds the save pipeline; [`restore`] plans, then creates and fills; [`copy`] moves
//! snapshots between repositories; [`inspect`] reads (cat, diff, dump, ls, stats); and
//! [`maintenance`] keeps a repository healthy (forget, retention, prune, check, repair).
//! Operations never print: they report through [`progress::Progress`].

pub mod backup;
pub mod copy;
pub mod inspect;
pub mod maintenance;
pub mod progress;
pub mod restore;

pub use kairn_format::{Error, ErrorKind, Result};
