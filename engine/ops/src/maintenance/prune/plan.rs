//! The mark's decisions, as data (repo-format.md §14.1, mark steps 2 and 3): which packs to
//! index again, to delete, to repack or to leave for a later prune, and what the new index
//! lists. Computed from the repository's state once it is loaded, without any I/O, so that
//! every rule can be tried on made-up packs; `mark.rs` reads the state and carries the plan out.

use std::collections::{HashMap, HashSet};

use kairn_format::error::{Error, Result};
use kairn_format::id::{BlobId, IndexId, PackId};
use kairn_format::index::{IndexFile, IndexPack};
use kairn_format::pack::PackEntry;
use kairn_repository::index::Index;

use super::options::PruneOptions;

/// What the mark decides from, read from the repository.
#[derive(Debug, Default)]
pub(super) struct MarkInputs {
    /// The index files in use.
    pub files: Vec<(IndexId, IndexFile)>,
    /// Every index file stored, superseded ones too.
    pub index_ids: Vec<IndexId>,
    /// The stored packs no index file in use lists, with their sizes, by id.
    pub unindexed: Vec<(PackId, u64)>,
    /// The headers of those of them that could be read.
    pub unindexed_headers: Vec<IndexPack>,
    /// The blobs the snapshots use.
    pub used: HashSet<BlobId>,
}

/// The first decision, made before the others because the ages of the remaining unindexed
/// packs are read only then: which unindexed packs to index again.
#[derive(Debug, Default)]
pub(super) struct Reindexed {
    /// Unindexed packs holding used blobs that no index lists: indexed again.
    pub packs: Vec<IndexPack>,
    /// The other unindexed packs, by id: their ages decide whether they are deleted.
    pub rest: Vec<(PackId, u64)>,
}

/// What the mark does, decided.
#[derive(Debug, Default)]
pub(super) struct PrunePlan {
    /// Unindexed packs holding used blobs that no index lists: indexed again.
    pub reindex: Vec<IndexPack>,
    /// Indexed packs none of whose blobs is used, by id: deleted.
    pub unused: Vec<PackId>,
    /// Partly used packs, most unused bytes first: their used blobs are copied to new packs,
    /// then they are deleted.
    pub repack: Vec<Repack>,
    /// Unindexed packs stored at least the expiry ago, by id: deleted.
    pub unindexed: Vec<(PackId, u64)>,
    /// Unindexed packs stored less than the expiry ago, by id: left for a later prune.
    pub young: Vec<(PackId, u64)>,
    /// What the new index lists: every indexed pack that is not deleted, by id.
    pub keep: Vec<IndexPack>,
    /// The indexed packs deleted (unused or repacked), by id, with their entries: the garbage
    /// list keeps them, to index them again if a snapshot turns out to use them.
    pub chosen: Vec<IndexPack>,
    /// The index files the new one supersedes: every one stored.
    pub supersede: Vec<IndexId>,
    /// Indexed blobs no snapshot uses, or duplicates.
    pub unused_blobs: u64,
}

/// A partly used pack to repack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Repack {
    /// The pack.
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// The blobs to copy: its used ones, of which it holds the counted copy.
    pub used: Vec<PackEntry>,
}

impl PrunePlan {
    /// Bytes of the packs to repack.
    pub fn repack_bytes(&self) -> u64 {
        self.repack.iter().map(|r| r.size).sum()
    }

    /// True when no pack is to be deleted (some may still be indexed again).
    pub fn deletes_nothing(&self) -> bool {
        self.unused.is_empty() && self.unindexed.is_empty() && self.repack.is_empty()
    }
}

/// The stored packs that no index file in use lists, by id.
pub(super) fn unindexed_packs(
    files: &[(IndexId, IndexFile)],
    stored: &HashMap<PackId, u64>,
) -> Vec<(PackId, u64)> {
    let indexed: HashSet<PackId> = files
        .iter()
        .flat_map(|(_, f)| f.packs.iter().map(|p| p.id))
        .collect();
    let mut unindexed: Vec<(PackId, u64)> = stored
        .iter()
        .filter(|(id, _)| !indexed.contains(id))
        .map(|(id, size)| (*id, *size))
        .collect();
    unindexed.sort();
    unindexed
}

/// Which unindexed packs to index again. Fails, deleting nothing, when the snapshots use a
/// blob that is in no pack at all.
pub(super) fn find_reindexed(inputs: &MarkInputs) -> Result<Reindexed> {
    let index = Index::from_files(inputs.files.iter().map(|(_, f)| f));
    // Used blobs that no index lists are looked for in unindexed packs (left by an interrupted
    // prune), which are then indexed again.
    let missing: HashSet<BlobId> = inputs
        .used
        .iter()
        .filter(|b| !index.contains(b))
        .copied()
        .collect();
    let mut packs = Vec::new();
    if !missing.is_empty() {
        let mut found = HashSet::new();
        for p in &inputs.unindexed_headers {
            if p.blobs.iter().any(|e| missing.contains(&e.id)) {
                found.extend(p.blobs.iter().map(|e| e.id));
                packs.push(p.clone());
            }
        }
        let lost = missing.iter().filter(|b| !found.contains(b)).count();
        if lost > 0 {
            return Err(Error::corrupt(format!(
                "snapshots use {lost} blob(s) that are in no pack; nothing was deleted: run \
                 `repo check`, then `repo repair snapshots`"
            )));
        }
    }
    let again: HashSet<PackId> = packs.iter().map(|p| p.id).collect();
    let rest = inputs
        .unindexed
        .iter()
        .filter(|(id, _)| !again.contains(id))
        .copied()
        .collect();
    Ok(Reindexed { packs, rest })
}

impl PrunePlan {
    /// Decides the rest, given the ages (ms, by the storage's clock) of the unindexed packs in
    /// `reindexed.rest` that are still stored.
    pub fn compute(
        inputs: MarkInputs,
        reindexed: Reindexed,
        ages: &HashMap<PackId, i64>,
        opts: &PruneOptions,
    ) -> PrunePlan {
        let MarkInputs {
            files,
            index_ids,
            used,
            ..
        } = inputs;
        let mut packs = indexed_packs(&files);
        for p in &reindexed.packs {
            packs.insert(p.id, p.clone());
        }
        let (young, unindexed): (Vec<_>, Vec<_>) = reindexed
            .rest
            .into_iter()
            .partition(|(id, _)| is_young(ages.get(id), opts));
        let canonical = with_packs(&files, &reindexed.packs);
        let usage = usage(&packs, &used, &canonical);
        let repack = choose_repack(&usage, opts)
            .into_iter()
            .map(|id| Repack {
                id,
                size: packs[&id].size,
                used: packs[&id]
                    .blobs
                    .iter()
                    .filter(|e| kept_here(&used, &canonical, id, e))
                    .copied()
                    .collect(),
            })
            .collect::<Vec<_>>();
        let deleted: HashSet<PackId> = usage
            .unused
            .iter()
            .copied()
            .chain(repack.iter().map(|r| r.id))
            .collect();
        let (mut chosen, mut keep): (Vec<IndexPack>, Vec<IndexPack>) =
            packs.into_values().partition(|p| deleted.contains(&p.id));
        keep.sort_by_key(|a| a.id);
        chosen.sort_by_key(|a| a.id);
        PrunePlan {
            reindex: reindexed.packs,
            unused: usage.unused,
            repack,
            unindexed,
            young,
            keep,
            chosen,
            supersede: index_ids,
            unused_blobs: usage.unused_blobs,
        }
    }
}

/// Every indexed pack once (an interrupted prune can leave a pack in two index files).
fn indexed_packs(files: &[(IndexId, IndexFile)]) -> HashMap<PackId, IndexPack> {
    let mut packs: HashMap<PackId, IndexPack> = HashMap::new();
    for (_, f) in files {
        for p in &f.packs {
            packs.entry(p.id).or_insert_with(|| p.clone());
        }
    }
    packs
}

/// True when an unindexed pack was stored less than the expiry ago, by the storage's clock:
/// too young to choose, as a running backup may still index it, or a re-run of an interrupted
/// one adopt it (backup/resume.rs adopts those younger than half the expiry). A pack with no
/// age was deleted since it was listed, and is not young.
fn is_young(age: Option<&i64>, opts: &PruneOptions) -> bool {
    let expiry_ms = i64::try_from(opts.expiry.as_millis()).unwrap_or(i64::MAX);
    age.is_some_and(|age| *age < expiry_ms)
}

/// How much of the indexed packs the snapshots use.
struct Usage {
    /// Packs none of whose blobs is used, by id.
    unused: Vec<PackId>,
    /// Packs some of whose blobs are unused: (id, size, unused bytes).
    partly: Vec<(PackId, u64, u64)>,
    /// Unused bytes in all the packs that are not wholly unused.
    unused_bytes: u64,
    /// Bytes of all the packs that are not wholly unused.
    kept_bytes: u64,
    /// Indexed blobs no snapshot uses, or duplicates.
    unused_blobs: u64,
}

fn usage(packs: &HashMap<PackId, IndexPack>, used: &HashSet<BlobId>, canonical: &Index) -> Usage {
    let mut u = Usage {
        unused: Vec::new(),
        partly: Vec::new(),
        unused_bytes: 0,
        kept_bytes: 0,
        unused_blobs: 0,
    };
    for p in packs.values() {
        let is_used = |e: &PackEntry| kept_here(used, canonical, p.id, e);
        let used_count = p.blobs.iter().filter(|e| is_used(e)).count();
        u.unused_blobs += (p.blobs.len() - used_count) as u64;
        if used_count == 0 {
            u.unused.push(p.id);
            continue;
        }
        u.kept_bytes += p.size;
        let unused_bytes: u64 = p
            .blobs
            .iter()
            .filter(|e| !is_used(e))
            .map(|e| u64::from(e.length))
            .sum();
        if unused_bytes > 0 {
            u.unused_bytes += unused_bytes;
            u.partly.push((p.id, p.size, unused_bytes));
        }
    }
    u.unused.sort();
    u
}

/// The partly used packs to repack: those with the most unused bytes first, until at most
/// `max_unused_percent` of the kept bytes is unused, skipping any that would take the run over
/// `max_repack_bytes`.
fn choose_repack(usage: &Usage, opts: &PruneOptions) -> Vec<PackId> {
    let allowed = (usage.kept_bytes as f64 * opts.max_unused_percent / 100.0) as u64;
    let mut partly = usage.partly.clone();
    partly.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let mut unused_total = usage.unused_bytes;
    let mut repacked_bytes = 0u64;
    let mut repack = Vec::new();
    for (id, size, unused_bytes) in partly {
        if unused_total <= allowed {
            break;
        }
        if opts
            .max_repack_bytes
            .is_some_and(|max| repacked_bytes + size > max)
        {
            continue;
        }
        repacked_bytes += size;
        unused_total -= unused_bytes;
        repack.push(id);
    }
    repack
}

/// An index of `files` plus `extra` packs, for walking trees that may sit in either.
pub(super) fn with_packs(files: &[(IndexId, IndexFile)], extra: &[IndexPack]) -> Index {
    let extra = IndexFile {
        supersedes: Vec::new(),
        packs: extra.to_vec(),
    };
    Index::from_files(files.iter().map(|(_, f)| f).chain(std::iter::once(&extra)))
}

/// True when `entry` of `pack` is a used blob and this pack holds its one counted copy: the
/// location `canonical` resolves it to. Other copies are unused duplicates.
fn kept_here(used: &HashSet<BlobId>, canonical: &Index, pack: PackId, entry: &PackEntry) -> bool {
    used.contains(&entry.id)
        && canonical
            .get(&entry.id)
            .is_some_and(|loc| canonical.pack(loc.pack).0 == pack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairn_format::id::{BlobKind, Id};

    fn blob(n: u8) -> BlobId {
        BlobId(Id([n; 32]))
    }

    fn pack_id(n: u8) -> PackId {
        PackId(Id([n; 32]))
    }

    /// A pack holding these blobs, each `(blob, stored length)`, one after the other.
    fn pack(n: u8, blobs: &[(u8, u32)]) -> IndexPack {
        let mut offset = 0;
        let blobs: Vec<PackEntry> = blobs
            .iter()
            .map(|&(b, length)| {
                let e = PackEntry {
                    kind: BlobKind::Data,
                    id: blob(b),
                    offset,
                    length,
                    raw_length: length,
                };
                offset += length;
                e
            })
            .collect();
        IndexPack {
            id: pack_id(n),
            size: u64::from(offset),
            blobs,
        }
    }

    fn inputs(indexed: Vec<IndexPack>, used: &[u8]) -> MarkInputs {
        MarkInputs {
            files: vec![(
                IndexId(Id([200; 32])),
                IndexFile {
                    supersedes: Vec::new(),
                    packs: indexed,
                },
            )],
            index_ids: vec![IndexId(Id([200; 32])), IndexId(Id([201; 32]))],
            used: used.iter().map(|&b| blob(b)).collect(),
            ..MarkInputs::default()
        }
    }

    fn decide(inputs: MarkInputs, ages: &[(u8, i64)], opts: &PruneOptions) -> Result<PrunePlan> {
        let reindexed = find_reindexed(&inputs)?;
        let ages = ages.iter().map(|&(p, age)| (pack_id(p), age)).collect();
        Ok(PrunePlan::compute(inputs, reindexed, &ages, opts))
    }

    fn ids(packs: &[IndexPack]) -> Vec<PackId> {
        packs.iter().map(|p| p.id).collect()
    }

    #[test]
    fn a_pack_with_no_used_blob_is_deleted_and_the_rest_kept() -> Result<()> {
        let plan = decide(
            inputs(vec![pack(1, &[(10, 100)]), pack(2, &[(20, 100)])], &[20]),
            &[],
            &PruneOptions::default(),
        )?;
        assert_eq!(plan.unused, vec![pack_id(1)]);
        assert_eq!(ids(&plan.chosen), vec![pack_id(1)]);
        assert_eq!(ids(&plan.keep), vec![pack_id(2)]);
        assert!(plan.repack.is_empty());
        assert_eq!(plan.unused_blobs, 1);
        // The new index supersedes every stored index file, superseded ones too.
        assert_eq!(plan.supersede.len(), 2);
        assert!(!plan.deletes_nothing());
        Ok(())
    }

    #[test]
    fn a_partly_used_pack_over_the_unused_share_is_repacked_with_its_used_blobs() -> Result<()> {
        let packs = vec![pack(1, &[(10, 100), (11, 300)]), pack(2, &[(20, 600)])];
        let plan = decide(
            inputs(packs.clone(), &[10, 20]),
            &[],
            &PruneOptions::default(),
        )?;
        // 300 of the 1000 kept bytes are unused: over 5 %.
        assert_eq!(plan.repack.len(), 1);
        assert_eq!(plan.repack[0].id, pack_id(1));
        assert_eq!(plan.repack[0].used, vec![packs[0].blobs[0]]);
        assert_eq!(plan.repack_bytes(), 400);
        assert_eq!(ids(&plan.chosen), vec![pack_id(1)]);
        assert_eq!(ids(&plan.keep), vec![pack_id(2)]);

        // Under the allowed share, it stays.
        let opts = PruneOptions {
            max_unused_percent: 30.0,
            ..PruneOptions::default()
        };
        let plan = decide(inputs(packs, &[10, 20]), &[], &opts)?;
        assert!(plan.repack.is_empty());
        assert!(plan.deletes_nothing());
        Ok(())
    }

    #[test]
    fn repacking_skips_packs_over_max_repack_bytes_and_takes_smaller_ones() -> Result<()> {
        let packs = vec![
            pack(1, &[(10, 100), (11, 500)]), // 500 unused of 600
            pack(2, &[(20, 100), (21, 200)]), // 200 unused of 300
            pack(3, &[(30, 1000)]),
        ];
        let opts = PruneOptions {
            max_repack_bytes: Some(400),
            ..PruneOptions::default()
        };
        let plan = decide(inputs(packs.clone(), &[10, 20, 30]), &[], &opts)?;
        assert_eq!(
            plan.repack.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![pack_id(2)]
        );
        assert_eq!(plan.repack_bytes(), 300);

        // Without the cap, the pack with the most unused bytes goes first, and the next too
        // while over the share.
        let plan = decide(inputs(packs, &[10, 20, 30]), &[], &PruneOptions::default())?;
        assert_eq!(
            plan.repack.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![pack_id(1), pack_id(2)]
        );
        Ok(())
    }

    #[test]
    fn a_young_unindexed_pack_is_left_alone_and_an_old_or_vanished_one_deleted() -> Result<()> {
        let mut inputs = inputs(vec![pack(1, &[(10, 100)])], &[10]);
        inputs.unindexed = vec![(pack_id(5), 50), (pack_id(6), 60), (pack_id(7), 70)];
        let opts = PruneOptions::default();
        let expiry_ms = opts.expiry.as_millis() as i64;
        // 5 is young, 6 is exactly the expiry old, 7 was deleted since it was listed.
        let plan = decide(inputs, &[(5, expiry_ms - 1), (6, expiry_ms)], &opts)?;
        assert_eq!(plan.young, vec![(pack_id(5), 50)]);
        assert_eq!(plan.unindexed, vec![(pack_id(6), 60), (pack_id(7), 70)]);
        assert_eq!(ids(&plan.keep), vec![pack_id(1)]);
        assert!(plan.chosen.is_empty());
        Ok(())
    }

    #[test]
    fn an_unindexed_pack_holding_a_used_blob_is_indexed_again() -> Result<()> {
        let mut inputs = inputs(vec![pack(1, &[(10, 100)])], &[10, 50]);
        let found = pack(5, &[(50, 100), (51, 100)]);
        inputs.unindexed = vec![(pack_id(5), 200), (pack_id(6), 10)];
        inputs.unindexed_headers = vec![found.clone()];
        let reindexed = find_reindexed(&inputs)?;
        assert_eq!(reindexed.packs, vec![found.clone()]);
        assert_eq!(reindexed.rest, vec![(pack_id(6), 10)]);

        let plan = PrunePlan::compute(inputs, reindexed, &HashMap::new(), &PruneOptions::default());
        assert_eq!(plan.reindex, vec![found]);
        // Indexed again, it is judged like the others: half of it is unused, so it is repacked.
        assert_eq!(plan.repack.len(), 1);
        assert_eq!(plan.repack[0].id, pack_id(5));
        assert_eq!(plan.unindexed, vec![(pack_id(6), 10)]);
        Ok(())
    }

    #[test]
    fn a_used_blob_in_no_pack_stops_the_prune() {
        let inputs = inputs(vec![pack(1, &[(10, 100)])], &[10, 99]);
        assert!(find_reindexed(&inputs).is_err());
    }

    #[test]
    fn of_two_copies_of_a_used_blob_only_the_indexed_first_counts() -> Result<()> {
        let plan = decide(
            inputs(vec![pack(1, &[(10, 100)]), pack(2, &[(10, 100)])], &[10]),
            &[],
            &PruneOptions::default(),
        )?;
        assert_eq!(plan.unused, vec![pack_id(2)]);
        assert_eq!(ids(&plan.keep), vec![pack_id(1)]);
        Ok(())
    }
}
