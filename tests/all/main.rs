//! dyno's integration tests: one binary, a module per area.

mod adapter;
mod bounds;
mod cli;
mod client;
mod compare;
mod engine;
mod engine_workloads;
mod fixture;
mod foundry;
mod foundry_fixture;
// The loader fuzz run limits each child with `ulimit` through `sh`.
#[cfg(unix)]
mod fuzz;
mod house;
mod load;
mod pages;
// SIGINT to a run and its children, found in `/proc`.
#[cfg(target_os = "linux")]
mod interrupt;
mod plan;
mod probe;
mod quality;
mod reasoning;
mod recipes;
mod report;
mod rows;
mod secrets;
// `scripts/setup-engine.sh` and its stand-in engines are shell scripts.
#[cfg(unix)]
mod setup;
mod shard;
mod structured;
mod suite;
// The client speaks rustls there; elsewhere the system's TLS, and the
// fixture's certificate tools would need a C compiler for the target.
#[cfg(not(any(windows, target_vendor = "apple")))]
mod tls;
mod workloads;
// The timetable fixture the client benchmark measures against.
#[path = "../../benches/support/timetable.rs"]
mod timetable;

use std::path::{Path, PathBuf};

/// A temporary directory holding files given as (relative path, text).
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Tree { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Replaces the temporary directory in `text` by `DIR`.
    pub fn anonymize(&self, text: &str) -> String {
        text.replace(&self.dir.path().display().to_string(), "DIR")
    }
}

/// The environment the suite tests see.
pub fn test_env(name: &str) -> Option<String> {
    match name {
        "DYNO_TEST_HOST" => Some("127.0.0.1".into()),
        _ => None,
    }
}

/// Runs the suite at `file` into `out` (quietly); panics with the rendered
/// error if it cannot run. Returns the run summary and the results written.
pub async fn run_and_load(
    file: &Path,
    filter: &dyno::plan::Filter,
    out: &Path,
) -> (dyno::run::RunSummary, dyno::results::Results) {
    let summary = dyno::run::run_suite(file, filter, Some(out), true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (summary, load_results(out))
}

/// The `results.json` in `dir`.
pub fn load_results(dir: &Path) -> dyno::results::Results {
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The trimmed text of every `<text>` element of `svg`; panics unless it
/// parses as an SVG document.
pub fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect()
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
