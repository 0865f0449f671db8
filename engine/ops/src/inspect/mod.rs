//! Read-only operations on snapshots: listing, comparing, dumping, statistics, inspection.

pub mod cat;
pub mod diff;
pub mod dump;
pub mod find;
pub mod ls;
pub mod read_at;
pub mod stats;
pub mod stats_modes;
