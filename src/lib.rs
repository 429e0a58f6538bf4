//! dyno: a dynamometer for language models. The library does the work; the
//! binary only parses arguments and maps results to exit codes.
//!
//! The stages, in the order data flows through them (`docs/architecture.md`):
//! `suite` (YAML → a validated [`suite::Suite`]) → `plan` (the ordered
//! cells) → `run` (the executor sends each cell through a `provider`,
//! with `measure` watching) → `results` (plain data) → `report` and
//! `compare`. `probe` answers `dyno models` and `dyno check` on the same
//! providers; `cli` is the edge.

#![warn(unreachable_pub)]

pub mod cli;
pub mod compare;
mod fsutil;
mod git;
pub mod measure;
pub mod plan;
pub mod probe;
pub mod provider;
pub mod quality;
pub mod report;
pub mod results;
pub mod run;
pub mod secrets;
pub mod suite;
mod text;

pub use cli::{Cli, run};
