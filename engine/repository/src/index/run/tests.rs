//! The run: what it answers, what it keeps, and what it does with damage.

use std::collections::HashSet;

use super::find_cached;
use super::layout::{PAGE, PER_PAGE};
use crate::index::{Index, IndexBuilder, SpillTo};
use kairn_format::crypto::MasterKeys;
use kairn_format::id::{BlobId, BlobKind, Id, IndexId, PackId};
use kairn_format::index::{IndexFile, IndexPack};
use kairn_format::pack::PackEntry;

/// An index file of `packs` packs of 200 blobs each, numbered from `first`.
fn file(keys: &MasterKeys, first: u32, packs: u32) -> IndexFile {
    let packs = (first..first + packs)
        .map(|p| IndexPack {
            id: PackId(Id([p as u8; 32])),
            size: 2000 + u64::from(p),
            blobs: (0..200u32)
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
                .collect(),
        })
        .collect();
    IndexFile {
        supersedes: vec![],
        packs,
    }
}

fn spill_to(dir: &std::path::Path, keys: &MasterKeys, at: usize) -> Option<SpillTo> {
    Some(SpillTo {
        dir: dir.to_path_buf(),
        key: keys.local_cache_key(),
        at,
        keep: true,
    })
}

fn assert_finds_all(index: &Index, files: &[&IndexFile]) {
    for f in files {
        for pack in &f.packs {
            for b in &pack.blobs {
                let loc = index.get(&b.id).expect("every blob is found");
                assert_eq!(index.pack(loc.pack), (pack.id, pack.size));
                assert_eq!(
                    (loc.kind, loc.offset, loc.length, loc.raw_length),
                    (b.kind, b.offset, b.length, b.raw_length)
                );
            }
        }
    }
}

fn build(dir: &std::path::Path, keys: &MasterKeys, files: &[&IndexFile]) -> Index {
    let mut builder = IndexBuilder::spilling(spill_to(dir, keys, 100));
    for (n, f) in files.iter().enumerate() {
        builder.add_file(f);
        builder.add_file_id(IndexId(Id([n as u8 + 1; 32])));
    }
    builder.finish_loaded().unwrap()
}

#[test]
fn a_spilled_index_finds_every_blob_and_nothing_else() {
    let keys = MasterKeys::generate();
    let dir = tempfile::tempdir().unwrap();
    let f = file(&keys, 0, 50);
    let index = build(dir.path(), &keys, &[&f]);
    assert!(index.spilled());
    assert_eq!(index.len(), 10_000);
    assert_finds_all(&index, &[&f]);
    for i in 0..20_000u32 {
        assert!(!index.contains(&keys.data_id(&(i + 1_000_000).to_be_bytes())));
    }
    assert!(!index.contains(&BlobId(Id([0; 32]))));
    assert!(!index.contains(&BlobId(Id([0xff; 32]))));
    let listed: Vec<BlobId> = index.iter().map(|(id, _)| id).collect();
    let mut expected: Vec<BlobId> = f
        .packs
        .iter()
        .flat_map(|p| p.blobs.iter().map(|b| b.id))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    index.intact().unwrap();
    // Memory: filters and fences, a few bytes per blob, not 46.
    assert!(index.entry_bytes() < 10_000 * 4, "{}", index.entry_bytes());
    let scratch: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(scratch.len(), 1, "only the run is left: {scratch:?}");
}

#[test]
fn ids_sharing_a_fence_across_pages_are_all_found() {
    let keys = MasterKeys::generate();
    let dir = tempfile::tempdir().unwrap();
    // Three pages' worth of ids with the same first 8 bytes.
    let blobs: Vec<PackEntry> = (0..3 * PER_PAGE as u32)
        .map(|i| {
            let mut raw = keys.data_id(&i.to_le_bytes()).0.0;
            raw[..8].copy_from_slice(&[9; 8]);
            PackEntry {
                kind: BlobKind::Data,
                id: BlobId(Id(raw)),
                offset: i,
                length: 1,
                raw_length: 1,
            }
        })
        .collect();
    let f = IndexFile {
        supersedes: vec![],
        packs: vec![IndexPack {
            id: PackId(Id([1; 32])),
            size: 1,
            blobs,
        }],
    };
    let index = build(dir.path(), &keys, &[&f]);
    assert!(index.spilled());
    assert_finds_all(&index, &[&f]);
}

#[test]
fn a_cached_run_is_reused_with_what_is_new_held_in_memory() {
    let keys = MasterKeys::generate();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (file(&keys, 0, 10), file(&keys, 10, 1));
    drop(build(dir.path(), &keys, &[&old]));
    let stored: HashSet<IndexId> = [IndexId(Id([1; 32])), IndexId(Id([9; 32]))].into();
    let run = find_cached(dir.path(), keys.local_cache_key(), &stored).expect("the run is found");
    let mut builder = IndexBuilder::on_run(run, spill_to(dir.path(), &keys, 500));
    builder.add_file(&new);
    builder.add_file_id(IndexId(Id([9; 32])));
    assert!(!builder.overflowed());
    let index = builder.finish_loaded().unwrap();
    assert_finds_all(&index, &[&old, &new]);
    assert_eq!(index.iter().count(), 2_200);
    assert_eq!(index.files().len(), 2);
    // More new blobs than the bound: the caller must build the run again.
    let run = find_cached(dir.path(), keys.local_cache_key(), &stored).unwrap();
    let mut builder = IndexBuilder::on_run(run, spill_to(dir.path(), &keys, 100));
    builder.add_file(&new);
    assert!(builder.overflowed());
}

#[test]
fn a_run_naming_a_file_no_longer_stored_or_under_another_key_is_deleted() {
    let keys = MasterKeys::generate();
    let dir = tempfile::tempdir().unwrap();
    drop(build(dir.path(), &keys, &[&file(&keys, 0, 5)]));
    let other = MasterKeys::generate();
    let stored: HashSet<IndexId> = [IndexId(Id([1; 32]))].into();
    assert!(find_cached(dir.path(), other.local_cache_key(), &stored).is_none());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    drop(build(dir.path(), &keys, &[&file(&keys, 0, 5)]));
    assert!(find_cached(dir.path(), keys.local_cache_key(), &HashSet::new()).is_none());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn the_run(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
}

#[test]
fn a_damaged_page_answers_not_stored_fails_intact_and_deletes_the_run() {
    let keys = MasterKeys::generate();
    let dir = tempfile::tempdir().unwrap();
    let f = file(&keys, 0, 5);
    drop(build(dir.path(), &keys, &[&f]));
    let path = the_run(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[PAGE + 40] ^= 1; // a record of the second page
    std::fs::write(&path, &bytes).unwrap();
    let stored: HashSet<IndexId> = [IndexId(Id([1; 32]))].into();
    let run =
        find_cached(dir.path(), keys.local_cache_key(), &stored).expect("the header verifies");
    let index = IndexBuilder::on_run(run, None).finish_loaded().unwrap();
    let found = f
        .packs
        .iter()
        .flat_map(|p| &p.blobs)
        .filter(|b| index.contains(&b.id))
        .count();
    assert!((1_000 - PER_PAGE..1_000).contains(&found), "{found}");
    assert!(index.intact().is_err());
    assert!(!path.exists(), "a damaged run is deleted");
}

#[test]
fn a_damaged_or_cut_header_is_refused() {
    let keys = MasterKeys::generate();
    let stored: HashSet<IndexId> = [IndexId(Id([1; 32]))].into();
    for damage in [
        |b: &mut Vec<u8>| b.truncate(b.len() - 1),
        |b: &mut Vec<u8>| {
            let at = b.len() - 100;
            b[at] ^= 0x40;
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        drop(build(dir.path(), &keys, &[&file(&keys, 0, 5)]));
        let path = the_run(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        damage(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        assert!(find_cached(dir.path(), keys.local_cache_key(), &stored).is_none());
        assert!(!path.exists());
    }
}

#[test]
fn an_unkept_run_leaves_nothing_behind() {
    let keys = MasterKeys::generate();
    let dir = tempfile::tempdir().unwrap();
    let spill_dir = dir.path().join("spill");
    let mut builder = IndexBuilder::spilling(Some(SpillTo {
        dir: spill_dir.clone(),
        key: keys.local_cache_key(),
        at: 10,
        keep: false,
    }));
    let f = file(&keys, 0, 3);
    builder.add_file(&f);
    let index = builder.finish_loaded().unwrap();
    assert!(index.spilled());
    assert!(!spill_dir.exists());
    assert_finds_all(&index, &[&f]);
}
