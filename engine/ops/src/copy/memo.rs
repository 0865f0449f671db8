//! A bounded memo of what a run already rewrote, shared by the threads that rewrite.

use kairn_format::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;

/// Memo entries (trees) and entries plus extents (files) kept before a memo starts over: about
/// 40 MiB each, whatever the size of the repository.
pub(super) const TREE_MEMO_WEIGHT: usize = 512 << 10;
pub(super) const FILE_MEMO_WEIGHT: usize = 512 << 10;

/// A map that forgets everything once it holds `max` weight, bounding memory over millions of
/// files at the cost of rewriting some twice (which stores nothing twice: the saver dedups).
pub(super) struct Memo<K, V> {
    map: Mutex<(HashMap<K, V>, usize)>,
    max: usize,
}

impl<K: std::hash::Hash + Eq, V: Clone> Memo<K, V> {
    pub(super) fn new(max: usize) -> Self {
        Self {
            map: Mutex::new((HashMap::new(), 0)),
            max,
        }
    }

    pub(super) fn get(&self, key: &K) -> Option<V> {
        lock(&self.map).0.get(key).cloned()
    }

    pub(super) fn insert(&self, key: K, value: V, weight: usize) {
        let mut guard = lock(&self.map);
        let (map, held) = &mut *guard;
        if *held + weight > self.max {
            map.clear();
            *held = 0;
        }
        map.insert(key, value);
        *held += weight;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_memo_starts_over() {
        let memo = Memo::new(3);
        memo.insert(1, 'a', 2);
        memo.insert(2, 'b', 1);
        assert_eq!((memo.get(&1), memo.get(&2)), (Some('a'), Some('b')));
        memo.insert(3, 'c', 1);
        assert_eq!((memo.get(&1), memo.get(&3)), (None, Some('c')));
    }
}
