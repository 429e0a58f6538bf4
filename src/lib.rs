//! dyno: a dynamometer for language models. The library does the work; the
//! binary only parses arguments and maps results to exit codes.

pub mod adapter;
pub mod charts;
pub mod cli;
pub mod foundry;
pub mod fsutil;
pub mod judge;
pub mod plan;
pub mod probe;
pub mod quality;
pub mod sse;
pub mod suite;

pub use cli::{Cli, run};
pub mod client;
pub mod compare;
pub mod exec;
pub mod record;
pub mod report;
pub mod resources;
pub mod results;
pub mod server;
pub mod stats;
pub mod stratified;
