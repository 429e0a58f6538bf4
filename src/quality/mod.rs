//! Output quality: deterministic checks on a model's reply, parsing of an LLM
//! judge's reply into a score, and the CSV of human annotations.
//!
//! This module owns the suite-side check types exactly as written
//! ([`CheckSpec`]), compiling them ([`Check`]), evaluating them against one
//! output text ([`CheckResult`]), the weighted pass rate, judge-reply parsing
//! ([`parse_judge_reply`], [`JudgeScale`]), output-text hashing
//! ([`text_hash`]) and the annotation CSV format ([`AnnotationRow`]).
//!
//! It must never touch the network, the file system or a model: the judge
//! prompt is sent elsewhere, JSON schemas are inline (no `$ref` is fetched),
//! and the annotation functions turn rows into CSV text and back (`&str` /
//! `String`); the caller reads and writes the files. Nothing here panics on
//! user input.

mod annotations;
mod checks;
mod judge;

pub use annotations::*;
pub use checks::*;
pub use judge::*;
