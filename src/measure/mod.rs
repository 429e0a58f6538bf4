//! Measurement that is not a request: statistics (the only percentile and
//! median in dyno), the resources of a process tree (memory, CPU, energy,
//! GPU, files on disk) and the machine a run happens on. Observes only; never
//! imports the results document or any stage above it.
//!
//! Linux is read through `/proc`; macOS and Windows through the `sysinfo`
//! crate (`portable`), behind the same functions.

pub(crate) mod machine;
pub mod noise;
#[cfg(any(not(target_os = "linux"), test))]
mod portable;
pub mod resources;
pub mod stats;
pub mod stratified;
