//! An index run: the index as a sorted file in the local cache, for repositories whose index
//! would not fit the memory budget (repo-format.md §11.1). In memory it keeps about 1.2 bytes
//! per blob: one binary fuse filter per partition (about 9 bits per blob) and one 8-byte fence
//! per 84-blob page. A lookup the filter rejects (most lookups of new blobs during a backup)
//! touches no disk; one it admits reads one 4 KiB page and verifies one 1 KiB block of it.
//!
//! A run is never trusted: its header and each 1 KiB block of a page carry a keyed MAC, so a damaged or
//! planted file is noticed, deleted and built again. It is also disposable: deleting it loses
//! nothing, the next operation builds it again from the index files.

pub mod build;
pub mod header;
pub mod layout;
mod open;

pub use open::{Run, find_cached};

#[cfg(test)]
mod tests;
