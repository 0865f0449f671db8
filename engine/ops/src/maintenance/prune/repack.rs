//! Repacking: copies the used blobs of partly used packs into new packs, so that the old ones
//! can be deleted.

use rayon::prelude::*;

use crate::progress::Progress;
use kairn_format::error::Result;
use kairn_repository::index::Index;
use kairn_repository::read::pack::PackSpan;
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
        let mut span = PackSpan::read_whole(repo, *id)?;
        for e in &pack.used {
            saver.save(e.kind, &span.open(repo.keys(), e)?)?;
        }
        progress.bytes(pack.size);
        Ok(())
    })?;
    Ok(saver.flush()?.len() as u64)
}
