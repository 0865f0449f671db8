//! Locking that outlives a panicked holder. A worker that panics fails its operation anyway;
//! what it guarded is a counter, a queue or a set updated in one step, so later holders can
//! still use it (and report the failure) instead of panicking in turn.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking over the guard of a holder that panicked.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
