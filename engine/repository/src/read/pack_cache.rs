//! A small in-memory cache of whole tree packs.
//!
//! Walking a snapshot reads thousands of small tree blobs that sit together in a few packs. One
//! backend call per tree cost more than the trees themselves (on the local backend about 20
//! thread hand-offs each; on object storage a round trip each), so a tree pack is fetched whole
//! once and its blobs are sliced out of memory. The cached bytes are not trusted: every blob cut
//! from them is still authenticated when opened.

use std::sync::{Arc, Mutex, PoisonError};

use kairn_format::error::Result;
use kairn_format::id::PackId;

/// Whole packs kept, most recently used last, within a byte budget.
pub struct PackCache {
    budget: usize,
    packs: Mutex<Vec<(PackId, Arc<Vec<u8>>)>>,
}

impl PackCache {
    /// A cache holding at most `budget` bytes of packs.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            packs: Mutex::default(),
        }
    }

    /// True when a pack of `size` bytes is worth fetching whole: at most half the budget, so
    /// the cache always holds at least two packs and one walk cannot thrash on a single one.
    pub fn admits(&self, size: u64) -> bool {
        size <= (self.budget / 2) as u64
    }

    /// The pack's bytes, from the cache or from `load`. Two threads missing the same pack at
    /// once both load it; the later copy is dropped.
    pub fn get_or_load(
        &self,
        id: &PackId,
        load: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Arc<Vec<u8>>> {
        {
            let mut packs = self.packs.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(pos) = packs.iter().position(|(p, _)| p == id) {
                let entry = packs.remove(pos);
                let bytes = entry.1.clone();
                packs.push(entry);
                return Ok(bytes);
            }
        }
        let bytes = Arc::new(load()?);
        let mut packs = self.packs.lock().unwrap_or_else(PoisonError::into_inner);
        if !packs.iter().any(|(p, _)| p == id) {
            packs.push((*id, bytes.clone()));
            let mut total: usize = packs.iter().map(|(_, b)| b.len()).sum();
            while total > self.budget && packs.len() > 1 {
                total -= packs.remove(0).1.len();
            }
        }
        Ok(bytes)
    }

    /// Drops every cached pack.
    pub fn clear(&self) {
        self.packs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn id(n: u8) -> PackId {
        PackId(kairn_format::id::Id([n; 32]))
    }

    #[test]
    fn loads_each_pack_once_and_evicts_the_least_recently_used() {
        let cache = PackCache::new(300);
        let loads = Cell::new(0);
        let get = |n: u8| {
            cache
                .get_or_load(&id(n), || {
                    loads.set(loads.get() + 1);
                    Ok(vec![n; 100])
                })
                .unwrap()
        };
        assert_eq!(get(1)[0], 1);
        get(2);
        get(1);
        get(3);
        assert_eq!(loads.get(), 3);
        get(4); // over budget: 2 was used least recently
        get(1);
        get(3);
        assert_eq!(loads.get(), 4);
        get(2);
        assert_eq!(loads.get(), 5);
    }

    #[test]
    fn a_failed_load_is_not_cached() {
        let cache = PackCache::new(300);
        let err = cache.get_or_load(&id(1), || Err(kairn_format::error::Error::corrupt("no")));
        assert!(err.is_err());
        assert_eq!(cache.get_or_load(&id(1), || Ok(vec![1])).unwrap()[0], 1);
    }

    #[test]
    fn admits_only_packs_up_to_half_the_budget() {
        let cache = PackCache::new(100);
        assert!(cache.admits(50));
        assert!(!cache.admits(51));
    }
}
