//! Unlocking: trying the key files with a password, within a limit on their KDF cost
//! (repo-format.md §4.3, §4.4).

use kairn_format::FileKind;
use kairn_format::crypto::{KdfLimit, MasterKeys};
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::{Id, KeyId};
use kairn_format::keyfile::KeyFile;
use kairn_storage::Backend;

use crate::files::verify_name;

pub(crate) fn list_ids(backend: &dyn Backend, kind: FileKind) -> Result<Vec<Id>> {
    backend
        .list(kind)?
        .into_iter()
        .map(|(name, _)| Id::from_hex(&name))
        .collect()
}

/// A key file not tried because its KDF cost is above the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key file.
    pub id: KeyId,
    /// What is over the limit, said for people.
    pub excess: String,
}

/// What opened the repository.
pub(crate) struct Unlocked {
    pub(crate) keys: MasterKeys,
    pub(crate) key_id: KeyId,
    pub(crate) append_only: bool,
}

/// Tries every key file whose KDF cost is within `limit`. A damaged key file is skipped if
/// another opens; if none opens, a wrong password is reported unless every key file was
/// damaged, and the keys skipped for their cost are named.
pub(crate) fn unlock(
    backend: &dyn Backend,
    password: &[u8],
    limit: KdfLimit,
) -> Result<(Unlocked, Vec<SkippedKey>)> {
    let ids = list_ids(backend, FileKind::Key)?;
    if ids.is_empty() {
        return Err(Error::corrupt("the repository has no key files"));
    }
    let mut damaged: Option<Error> = None;
    let mut newer: Option<Error> = None;
    let mut wrong = false;
    let mut skipped = Vec::new();
    let mut opened = None;
    for id in ids {
        let name = id.to_hex();
        let decoded = backend
            .read(FileKind::Key, &name)
            .and_then(|bytes| verify_name(FileKind::Key, &name, &bytes).map(|()| bytes))
            .and_then(|bytes| KeyFile::decode(&bytes));
        // Read and decoded before any is tried: every key over the limit is named, whichever
        // key opens, since a planted one is worth a warning each time.
        let attempt = decoded.and_then(|kf| match limit.excess(&kf.kdf_params) {
            Some(excess) => {
                skipped.push(SkippedKey {
                    id: KeyId(id),
                    excess,
                });
                Ok(None)
            }
            None if opened.is_some() => Ok(None),
            None => kf.open(password).map(|k| Some((k, kf.append_only))),
        });
        match attempt {
            Ok(Some((keys, append_only))) => {
                opened = Some(Unlocked {
                    keys,
                    key_id: KeyId(id),
                    append_only,
                })
            }
            Ok(None) => {}
            Err(e) if e.kind() == ErrorKind::WrongPassword => wrong = true,
            Err(e) if e.kind() == ErrorKind::UnsupportedVersion => newer = Some(e),
            Err(e) => damaged = Some(e.with_context("key", &name[..8])),
        }
    }
    if let Some(unlocked) = opened {
        return Ok((unlocked, skipped));
    }
    match (newer, wrong, damaged, skipped.as_slice()) {
        (Some(e), _, _, _) => Err(e),
        (None, false, Some(e), []) => Err(e),
        (_, _, _, []) => Err(Error::new(
            ErrorKind::WrongPassword,
            "wrong password: no key file opens with it",
        )),
        (_, _, _, [first, ..]) => Err(Error::new(
            ErrorKind::WrongPassword,
            format!(
                "no key file opens with this password, and {} key file(s) were not tried \
                 because their KDF cost is above the limit (key {}: {}); if you trust them, \
                 raise the limit with --max-kdf-memory / --max-kdf-passes",
                skipped.len(),
                first.id.short(),
                first.excess
            ),
        )),
    }
}
