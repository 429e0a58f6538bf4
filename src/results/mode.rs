//! How this thread reads a results document: every sample's inter-token
//! gaps or none (for readers of per-request figures), and on every core or
//! on this thread alone. A sample's derived deserializer can learn the
//! first only from its thread, so the parsers set it around each parse
//! from the mode they are given, on whichever thread does the parse.
//! Imports nothing from the rest of `results`, so the loader (`io`) and
//! the parallel reader (`parts`) both use it without importing each other.

use std::cell::Cell;
use std::thread::LocalKey;

use serde::Deserialize;

thread_local! {
    /// Set while [`with_per_request`] runs on this thread.
    static PER_REQUEST_ONLY: Cell<bool> = const { Cell::new(false) };
    /// Set while [`on_one_thread`] runs on this thread.
    static ON_ONE_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// A sample's `itl_ms` as read: every gap, or none inside
/// [`with_per_request`] (the numbers are skipped, not converted).
pub(super) fn per_token<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    if PER_REQUEST_ONLY.get() {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Vec::new())
    } else {
        Vec::deserialize(d)
    }
}

/// Runs `f`, which parses on this thread, reading every sample's
/// inter-token gaps or (`per_request`) none; then restores the mode however
/// `f` ends.
pub(super) fn with_per_request<T>(per_request: bool, f: impl FnOnce() -> T) -> T {
    with_flag(&PER_REQUEST_ONLY, per_request, f)
}

/// Runs `f` with every document it parses read on the calling thread alone,
/// for callers that already read several documents side by side (a large
/// document is otherwise read on every core).
pub fn on_one_thread<T>(f: impl FnOnce() -> T) -> T {
    with_flag(&ON_ONE_THREAD, true, f)
}

/// Whether this thread is inside [`on_one_thread`].
pub(super) fn one_thread_only() -> bool {
    ON_ONE_THREAD.get()
}

fn with_flag<T>(flag: &'static LocalKey<Cell<bool>>, value: bool, f: impl FnOnce() -> T) -> T {
    /// Puts the flag back however `f` ends.
    struct Restore(&'static LocalKey<Cell<bool>>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.set(self.1);
        }
    }
    let _restore = Restore(flag, flag.replace(value));
    f()
}
