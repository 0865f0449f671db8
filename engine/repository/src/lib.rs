//! The repository layer: an open repository ([`repo`]: keys, config, typed files), the writer
//! [`session`] that fences publishing against a concurrent prune, the in-memory [`index`], the
//! save pipeline ([`save`]: dedup → pack → upload → index) and the verified read path ([`read`]).

pub mod files;
pub mod garbage;
mod guard;
pub mod index;
pub mod locate;
pub mod read;
pub mod records;
pub mod repo;
pub mod save;
pub mod session;
pub mod snapshots;
pub mod sysinfo;
mod unlock;
pub mod unreadable;

pub use kairn_format::{Error, ErrorKind, Result};
