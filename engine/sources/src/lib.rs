//! Sources outside a filesystem that feed a backup: an [`etcd`] snapshot stream, verified as it
//! passes, and the cluster's resource [`manifests`], normalised and stored as a tree.

pub mod etcd;
pub mod manifests;

pub use kairn_format::{Error, ErrorKind, Result};
