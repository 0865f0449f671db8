//! Repository storage: a dumb store of immutable named objects. It knows [`FileKind`]s and names,
//! never encodings or keys.
//!
//! # The contract every implementation keeps
//!
//! - **Atomic create.** [`Backend::write`] makes the whole object visible at once or not at all;
//!   a reader never sees a prefix. It never replaces an object: writing a name that exists fails
//!   with [`ErrorKind::AlreadyExists`] and leaves the stored object as it was. (All names but
//!   `config` are content hashes, so "exists" means "already stored".)
//! - **Durable on return.** When `write` returns `Ok`, the object survives a crash of this process.
//! - **Read-after-write.** Once `write` returned `Ok`, `read`, `read_range`, `size` and `list`
//!   in the same process see the object.
//! - **Not-found is its own error.** A missing object yields [`ErrorKind::NotFound`], never a
//!   generic failure, so callers can tell "missing" from "unreachable".
//! - **Exact reads.** `read_range` returns exactly the bytes asked for, or an error; never a
//!   short read.
//! - **Retries are safe.** Every method is idempotent; an error with
//!   [`Error::is_retryable`] true may succeed when called again, any other will not.
//! - **Listing** returns every object of a kind that was written before the call began, with its
//!   size. Objects being written concurrently may or may not appear.
//! - **Exclusive create.** [`Backend::create_exclusive`] is a true compare-and-set on absence:
//!   of any number of concurrent callers for one name, exactly one succeeds. It is what fences a
//!   writer against a prune (repo-format.md §14.1). A concurrent reader may see the object
//!   before its content is complete, so callers decide on existence, not on content.
//! - **Storage time.** [`Backend::modified`] is the store's own last-modified time of an
//!   object. Times of one store are compared only with each other, never with a local clock.

pub mod cache;
pub mod faults;
pub mod local;
pub mod location;
mod opendal;
pub mod throttle;

pub use self::local::LocalBackend;
pub use self::location::{Location, StorageOptions};
pub use self::opendal::OpendalBackend;

use kairn_format::FileKind;
pub use kairn_format::{Error, ErrorKind, Result};

/// A store of immutable, named objects; see the module docs for the contract.
pub trait Backend: Send + Sync {
    /// A human-readable location, such as a path.
    fn location(&self) -> String;

    /// Prepares an empty store for a new repository (directories on a filesystem). Idempotent.
    fn create(&self) -> Result<()>;

    /// Reads a whole object.
    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>>;

    /// Reads `length` bytes at `offset` of an object.
    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>>;

    /// Creates an object; fails with `AlreadyExists` if it exists.
    fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()>;

    /// The size of an object.
    fn size(&self, kind: FileKind, name: &str) -> Result<u64>;

    /// Every object of a kind: name and size.
    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>>;

    /// Removes an object. Removing a missing object is `Ok` (so that a retry is harmless).
    fn delete(&self, kind: FileKind, name: &str) -> Result<()>;

    /// Creates an object only if no object of that name exists, atomically with respect to
    /// every other caller; fails with `AlreadyExists` otherwise.
    fn create_exclusive(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()>;

    /// The store's last-modified time of an object, in milliseconds since the Unix epoch.
    fn modified(&self, kind: FileKind, name: &str) -> Result<i64>;

    /// Removes the files that writes staged and never finished (a store that stages writes
    /// in `tmp/`, repo-format.md §2) once their storage time is older than `max_age`; returns
    /// how many went. Stores that stage nothing have none.
    fn remove_stale_staged(&self, max_age: std::time::Duration) -> Result<u64> {
        let _ = max_age;
        Ok(0)
    }

    /// On a store that keeps object versions (an S3 bucket with versioning or Object Lock):
    /// removes the delete markers below the repository, so that every object deleted without
    /// its version (by anyone) is back. Returns how many came back. Other stores refuse.
    fn undelete(&self) -> Result<u64> {
        Err(Error::invalid(format!(
            "{} keeps no object versions, so nothing deleted can be brought back",
            self.location()
        )))
    }
}

/// Builds a `NotFound` error for an object.
pub fn not_found(kind: FileKind, name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!(
            "{} {} is missing from the repository",
            kind.name(),
            short(name)
        ),
    )
}

pub(crate) fn short(name: &str) -> &str {
    name.get(..8).unwrap_or(name)
}

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
