//! Locking that survives a panicked handler.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// A poisoned lock only means a handler panicked; the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
