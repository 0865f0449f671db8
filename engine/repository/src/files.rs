//! Typed files over storage and keys: seal a [`RepoFile`] and store it under the hash of its
//! bytes, or read one back, checking its name, its authenticity and its encoding. The repository
//! and the writer session both store through this, so there is one sealed-file path.

use std::sync::Arc;

use kairn_format::FileKind;
use kairn_format::crypto::MasterKeys;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::Id;
use kairn_format::repofile::{ContentFile, RepoFile};
use kairn_format::sealed;
use kairn_storage::Backend;

/// Storage, keys and compression level: all that sealing and opening typed files needs.
#[derive(Clone)]
pub struct Files {
    backend: Arc<dyn Backend>,
    keys: MasterKeys,
    level: i32,
}

impl Files {
    /// Typed files in `backend`, sealed with `keys` at zstd `level`.
    pub fn new(backend: Arc<dyn Backend>, keys: MasterKeys, level: i32) -> Self {
        Self {
            backend,
            keys,
            level,
        }
    }

    /// The storage.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The master keys.
    pub fn keys(&self) -> &MasterKeys {
        &self.keys
    }

    /// The sealed bytes of a file.
    pub fn seal<F: RepoFile>(&self, file: &F) -> Result<Vec<u8>> {
        Ok(sealed::seal(
            &self.keys,
            F::SEALED,
            &file.to_payload()?,
            self.level,
        ))
    }

    /// Seals and stores a file under the hash of its bytes; returns its id and stored size.
    /// Storing identical bytes twice is harmless. Only the writer session publishes through
    /// this (see `Session`), so no index, snapshot or garbage list lands outside its fence.
    pub(crate) fn save<F: ContentFile>(&self, file: &F) -> Result<(F::Id, u64)> {
        let bytes = self.seal(file)?;
        let id = Id::hash_of(&bytes);
        let size = bytes.len() as u64;
        match self.backend.write(F::KIND, &id.to_hex(), bytes) {
            Ok(()) => Ok((F::Id::from(id), size)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok((F::Id::from(id), size)),
            Err(e) => Err(e),
        }
    }

    /// Opens a file's sealed bytes (already checked against its name, if it has a hash name).
    pub fn open<F: RepoFile>(&self, name: &str, bytes: &[u8]) -> Result<F> {
        let short = name.get(..8).unwrap_or(name);
        let payload = sealed::open(&self.keys, F::SEALED, bytes)
            .map_err(|e| e.with_context(F::KIND.name(), short))?;
        F::from_payload(&payload).map_err(|e| e.with_context(F::KIND.name(), short))
    }

    /// Reads a hash-named file from storage, verified and opened.
    pub fn load<F: ContentFile>(&self, id: &F::Id) -> Result<F> {
        let name = id.as_ref().to_hex();
        let bytes = self.backend.read(F::KIND, &name)?;
        verify_name(F::KIND, &name, &bytes)?;
        self.open(&name, &bytes)
    }
}

impl Files {
    /// The ids of every stored file of a type. A name that is not an id is an error.
    pub fn list<F: ContentFile>(&self) -> Result<Vec<F::Id>> {
        self.backend
            .list(F::KIND)?
            .into_iter()
            .map(|(name, _)| Id::from_hex(&name).map(F::Id::from))
            .collect()
    }
}

/// Verifies that `bytes` hash to `name`.
pub fn verify_name(kind: FileKind, name: &str, bytes: &[u8]) -> Result<()> {
    let actual = Id::hash_of(bytes).to_hex();
    if actual != name {
        return Err(Error::corrupt(format!(
            "{} {} is damaged: its content hashes to {}",
            kind.name(),
            &name[..name.len().min(8)],
            &actual[..8]
        )));
    }
    Ok(())
}
