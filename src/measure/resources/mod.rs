//! Resource measurement of a server process tree: memory and CPU (from
//! `/proc` on Linux, through the `sysinfo` crate on macOS and Windows),
//! package energy from RAPL (powercap sysfs, Linux), GPU memory and
//! utilisation from `nvidia-smi`, and the on-disk size of model files.
//!
//! This module only observes. It never signals, kills or otherwise touches
//! the processes it measures, never writes to `/proc` or `/sys`, and never
//! fails a run: anything that cannot be read (a vanished process, a
//! permission-denied RAPL counter, a missing `nvidia-smi`) becomes `None` or
//! an empty result. The pure parsers and arithmetic work everywhere.
//!
//! Units: memory in bytes (except GPU memory, in MiB as `nvidia-smi`
//! reports it), CPU time in seconds summed over all cores (so 2.0 CPU-seconds
//! per wall second means two busy cores), energy in microjoules.
//!
//! One file per source: `tree` (a process tree, whatever the OS, summing
//! the `usage` each platform reader gives of a process), `proc` (Linux
//! `/proc`), `sampler` (the 20 Hz background reader and its
//! windows), `rapl`, `gpu` and `files`.

pub(crate) mod files;
pub(crate) mod gpu;
pub(crate) mod own;
pub(crate) mod proc;
pub(crate) mod rapl;
pub(crate) mod sampler;
pub mod tree;
pub(crate) mod usage;

pub use gpu::{GpuSnapshot, gpu_snapshot};
pub use rapl::Rapl;
pub use sampler::{DEFAULT_PERIOD, Mark, Sampler, Window};
