//! A stored file that cannot be read, as the commands that skip, report and remove one see it.

use serde::Serialize;

/// A stored file that cannot be read (it fails its hash or authentication, does not decode,
/// or is not named by an id): skipped by those who only read, reported by `check`, and
/// removable by the maintenance commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableFile {
    /// Its name in storage.
    pub name: String,
    /// Why it cannot be read.
    pub reason: String,
}

impl UnreadableFile {
    /// The file `name`, unreadable for `reason`.
    pub fn new(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
