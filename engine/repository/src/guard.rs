//! The append-only rule, kept below every command: a repository opened with an append-only key
//! (or put in append-only mode) hands every layer above it a store that refuses deletes. The
//! commands still refuse early with a message of their own; this is what holds when a caller
//! (the node agent's retention, a new command, a library user) forgets to ask.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kairn_format::FileKind;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_storage::Backend;

/// Wraps a store; deletes are refused while the shared flag is set.
pub(crate) struct DeleteGuard {
    inner: Arc<dyn Backend>,
    append_only: Arc<AtomicBool>,
}

impl DeleteGuard {
    pub(crate) fn new(inner: Arc<dyn Backend>, append_only: Arc<AtomicBool>) -> Self {
        Self { inner, append_only }
    }
}

impl DeleteGuard {
    fn refuse(&self, what: &str) -> Result<()> {
        if self.append_only.load(Ordering::Relaxed) {
            return Err(Error::new(
                ErrorKind::AppendOnly,
                format!(
                    "refusing to delete {what}: the repository is open in append-only mode \
                     (an append-only key or --append-only)"
                ),
            ));
        }
        Ok(())
    }
}

impl Backend for DeleteGuard {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        self.inner.read(kind, name)
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.inner.read_range(kind, name, offset, length)
    }

    fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        self.inner.write(kind, name, data)
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        self.inner.size(kind, name)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        self.inner.list(kind)
    }

    fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        self.refuse(&format!(
            "{} {}",
            kind.name(),
            name.get(..8).unwrap_or(name)
        ))?;
        self.inner.delete(kind, name)
    }

    fn remove_stale_staged(&self, max_age: std::time::Duration) -> Result<u64> {
        self.refuse("stale staged files")?;
        self.inner.remove_stale_staged(max_age)
    }

    fn create_exclusive(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        self.inner.create_exclusive(kind, name, data)
    }

    fn modified(&self, kind: FileKind, name: &str) -> Result<i64> {
        self.inner.modified(kind, name)
    }

    fn undelete(&self) -> Result<u64> {
        // Bringing deleted objects back removes nothing that is stored, so it stays allowed.
        self.inner.undelete()
    }
}
