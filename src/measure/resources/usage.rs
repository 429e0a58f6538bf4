//! One process as a platform reader sees it (Linux `/proc` in `proc`, the
//! `sysinfo` crate in `measure::portable`), the plain figures `tree` sums.
//! Imports nothing, so the readers and the tree they serve share it
//! without importing each other.

/// One process as a platform reader sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PidUsage {
    /// The parent's pid (0 when it has none).
    pub(crate) ppid: u32,
    /// Resident memory in bytes (RSS; the working set on Windows).
    pub(crate) rss_bytes: u64,
    /// User + system CPU time of the live process, in seconds.
    pub(crate) cpu_s: f64,
}
