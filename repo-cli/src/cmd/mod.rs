//! One file per subcommand: parse its arguments into engine options, call the engine, print.

pub mod backup;
pub mod cat;
pub mod check;
pub mod copy;
pub mod diff;
pub mod dump;
pub mod find;
pub mod forget;
pub mod generate;
pub mod images;
pub mod init;
pub mod key;
pub mod ls;
pub mod manifests;
pub mod mount;
pub mod prune;
pub mod repair;
pub mod report;
pub mod restore;
pub mod rewrite;
pub mod select;
pub mod snapshots;
pub mod stats;
pub mod tag;
