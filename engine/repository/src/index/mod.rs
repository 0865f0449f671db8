//! The index: where every blob lives. Loaded from all index files at the start of an
//! operation; a blob is only ever looked up here after its pack was written.
//!
//! Memory is bounded (repo-format.md §11.1). Up to [`DEFAULT_BLOBS_IN_MEMORY`] blobs (a
//! repository setting), entries are held in memory: 46 bytes per blob ([`memory`]). Beyond,
//! the loader spills them to a sorted *run* in the local cache ([`run`]) and keeps about 1.2
//! bytes per blob in memory: filters and page fences. The run is reused while the
//! repository's index files are the same; index files written since are held in memory on top
//! of it, until they too pass the bound and the run is built again.

mod load;
mod location;
mod memory;
pub mod run;
mod table;

pub use crate::repo::DEFAULT_INDEX_BLOBS_IN_MEMORY as DEFAULT_BLOBS_IN_MEMORY;
pub use load::{IndexFiles, load_live_files};
pub use location::{BlobLocation, SpillTo};
pub use table::{Index, IndexBuilder};

#[cfg(test)]
mod tests {
    use super::*;
    use kairn_format::id::{BlobId, BlobKind, Id, PackId};
    use kairn_format::index::IndexFile;
    use kairn_format::index::IndexPack;
    use kairn_format::pack::PackEntry;

    #[test]
    fn finds_every_blob_and_nothing_else() {
        let keys = kairn_format::crypto::MasterKeys::generate();
        let mut packs = Vec::new();
        for p in 0..50u32 {
            let blobs = (0..200u32)
                .map(|i| PackEntry {
                    kind: if i % 7 == 0 {
                        BlobKind::Tree
                    } else {
                        BlobKind::Data
                    },
                    id: keys.data_id(&(p * 1000 + i).to_le_bytes()),
                    offset: i * 10,
                    length: 10,
                    raw_length: i,
                })
                .collect();
            packs.push(IndexPack {
                id: PackId(Id([p as u8; 32])),
                size: 2000,
                blobs,
            });
        }
        let file = IndexFile {
            supersedes: vec![],
            packs,
        };
        let index = Index::from_files([&file]);
        assert_eq!(index.len(), 10_000);
        for pack in &file.packs {
            for b in &pack.blobs {
                let loc = index.get(&b.id).unwrap();
                assert_eq!(index.pack(loc.pack).0, pack.id);
                assert_eq!(
                    (loc.kind, loc.offset, loc.raw_length),
                    (b.kind, b.offset, b.raw_length)
                );
            }
        }
        for i in 0..10_000u32 {
            assert!(!index.contains(&keys.data_id(&(i + 1_000_000).to_be_bytes())));
        }
        assert!(!index.contains(&BlobId(Id([0; 32]))));
        assert!(!index.contains(&BlobId(Id([0xff; 32]))));
        assert!(Index::default().get(&BlobId(Id([1; 32]))).is_none());
        let mut listed: Vec<BlobId> = index.iter().map(|(id, _)| id).collect();
        let mut expected: Vec<BlobId> = file
            .packs
            .iter()
            .flat_map(|p| p.blobs.iter().map(|b| b.id))
            .collect();
        expected.sort();
        assert_eq!(listed.len(), expected.len());
        listed.sort();
        assert_eq!(listed, expected);
    }
}
