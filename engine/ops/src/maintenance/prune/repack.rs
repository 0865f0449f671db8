//! Repacking: copies the used blobs of partly used packs into new packs, so that the old ones
//! can be deleted.

use rayon::prelude::*;

use crate::progress::Progress;
use kairn_format::FileKind;
use kairn_format::blob::open_blob;
use kairn_format::error::{Error, Result};
use kairn_repository::index::Index;
use kairn_repository::repo::Repository;
use kairn_repository::save::BlobSaver;
use kairn_repository::session::Session;

use super::plan::Repack;

/// Copies the used blobs of `repack` into new packs, then writes their index; returns how many
/// index files that wrote.
pub(super) fn copy_used_blobs(
    repo: &Repository,
    session: &Session,
    repack: &[Repack],
    progress: &dyn Progress,
) -> Result<u64> {
    let nothing = Index::from_files(std::iter::empty());
    let saver = BlobSaver::new(repo, session, &nothing)?;
    repack.par_iter().try_for_each(|pack| -> Result<()> {
        let id = &pack.id;
        let bytes = repo.backend().read(FileKind::Pack, &id.to_hex())?;
        kairn_repository::files::verify_name(FileKind::Pack, &id.to_hex(), &bytes)?;
        for e in &pack.used {
            let (start, end) = (e.offset as usize, e.offset as usize + e.length as usize);
            let stored = bytes.get(start..end).ok_or_else(|| {
                Error::corrupt(format!(
                    "pack {} is shorter than its index says",
                    id.short()
                ))
            })?;
            let plain = open_blob(repo.keys(), e.kind, &e.id, stored, e.raw_length as usize)
                .map_err(|err| err.with_context("pack", id.short()))?;
            saver.save(e.kind, &plain)?;
        }
        progress.bytes(pack.size);
        Ok(())
    })?;
    Ok(saver.flush()?.len() as u64)
}
