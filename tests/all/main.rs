//! dyno's integration tests: one binary, a module per area.

mod adapter;
mod cli;
mod client;
mod compare;
mod engine;
mod fixture;
mod foundry;
mod foundry_fixture;
mod plan;
mod probe;
mod quality;
mod report;
mod suite;

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

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
