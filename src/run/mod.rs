//! A run: the pipeline from suite file to files on disk (`pipeline`), the
//! executor that sends the plan's cells through providers (`executor`), and
//! the judge that scores outputs after the timed cells (`judge`).

pub mod driver;
pub(crate) mod executor;
pub(crate) mod filler;
pub mod interrupt;
pub mod journal;
pub(crate) mod judge;
pub(crate) mod pipeline;

pub use pipeline::{
    ANNOTATIONS_FILE, RunError, RunOptions, RunSummary, annotate, rerender, run_suite,
    run_suite_with, write_outputs,
};
