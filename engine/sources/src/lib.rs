//! Sources outside a filesystem that feed a backup: an [`etcd`] snapshot stream, verified as it
//! passes, the cluster's resource [`manifests`], normalised and stored as a tree, and container
//! [`images`] fetched from registries as an OCI image layout.

pub mod etcd;
pub mod images;
pub mod manifests;

pub use kairn_format::{Error, ErrorKind, Result};
