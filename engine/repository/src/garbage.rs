//! Reading the garbage lists (repo-format.md §14.1) so that one that cannot be read stops no
//! prune: it is skipped and reported. Skipping deletes nothing on its account, and its packs
//! are out of the index already, so a later mark collects them again as unindexed packs.

use kairn_format::FileKind;
use kairn_format::error::{ErrorKind, Result};
use kairn_format::garbage::GarbageList;
use kairn_format::id::{GarbageId, Id};

use crate::repo::Repository;
use crate::unreadable::UnreadableFile;

/// The garbage lists that could be read, and the files in `garbage/` that could not.
#[derive(Debug, Clone, Default)]
pub struct GarbageScan {
    /// The readable lists.
    pub lists: Vec<(GarbageId, GarbageList)>,
    /// Files that cannot be read.
    pub unreadable: Vec<UnreadableFile>,
}

/// Every garbage list; a list deleted while listing (swept by another prune) is skipped.
pub fn scan(repo: &Repository) -> Result<GarbageScan> {
    let mut found = GarbageScan::default();
    for (name, _) in repo.backend().list(FileKind::Garbage)? {
        let Ok(id) = Id::from_hex(&name).map(GarbageId::from) else {
            found.unreadable.push(UnreadableFile {
                name,
                reason: "its name is not a garbage list id".into(),
            });
            continue;
        };
        match repo.load_file::<GarbageList>(&id) {
            Ok(list) => found.lists.push((id, list)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) if e.kind() == ErrorKind::Corrupt => found.unreadable.push(UnreadableFile {
                name,
                reason: e.to_string(),
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// Deletes a file of `sessions/` or `garbage/` that cannot be read: `repair sessions --remove`.
/// Only a file that still cannot be read is deleted, so a racing writer's readable heartbeat
/// or list never is.
pub fn remove_unreadable(repo: &Repository, kind: FileKind, name: &str) -> Result<bool> {
    let still_unreadable = match kind {
        FileKind::Garbage => scan(repo)?.unreadable.iter().any(|f| f.name == name),
        FileKind::Session => crate::session::registry::scan_sessions(repo.files())?
            .unreadable
            .iter()
            .any(|f| f.file.name == name),
        _ => false,
    };
    if still_unreadable {
        repo.backend().delete(kind, name)?;
    }
    Ok(still_unreadable)
}
