//! The restore-readiness report: a person's view of a repository, for its operators and their
//! auditors. Per volume, the newest snapshot and its age against the expected interval, its
//! size and new bytes per backup, and the newest verified restore; per cluster backup, whether
//! it is whole; for the repository, its growth, deduplication and compression, and the newest
//! check and prune.
//!
//! [`collect::collect`] reads a repository into a [`model::Report`] (plain data, serialised
//! as `repo report --json`); [`html::render`] turns it into one self-contained page (inline
//! CSS and SVG, no script, nothing fetched). Both the `repo` command and the kubectl plugin
//! call these, so they produce the same page. The library reads only; it never prints.

pub mod collect;
mod groups;
pub mod html;
pub mod model;
pub mod options;
mod sources;
pub mod svg;
mod table;
pub mod text;

pub use collect::{Inputs, build, collect};
pub use html::render;
pub use model::{Report, SCHEMA_VERSION};
pub use options::{ExpectedVolume, ReportOptions, parse_interval};

#[cfg(test)]
mod tests;
