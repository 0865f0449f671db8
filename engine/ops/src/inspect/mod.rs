//! Read-only operations on snapshots: listing, comparing, dumping, statistics, inspection.

pub mod cat;
pub mod diff;
pub mod dump;
pub mod ls;
pub mod stats;
