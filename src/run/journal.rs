//! The request journal: one JSON line per sample, appended as the run goes,
//! so an interrupted run keeps what it measured. A journal that cannot be
//! written only warns; it never stops a run.

use std::io::Write as _;
use std::path::Path;

use crate::results::Sample;

/// The journal's name inside a run's output directory.
pub(crate) const JOURNAL_FILE: &str = "journal.jsonl";

/// An open journal.
pub struct Journal {
    file: Option<std::fs::File>,
}

impl Journal {
    /// Creates (or truncates) the journal at `path`.
    pub fn create(path: &Path) -> Journal {
        let file = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(path));
        match file {
            Ok(file) => Journal { file: Some(file) },
            Err(err) => {
                eprintln!(
                    "warning: cannot write the journal {}: {err}",
                    path.display()
                );
                Journal { file: None }
            }
        }
    }

    /// A journal that records nothing (tests, dry runs).
    pub fn none() -> Journal {
        Journal { file: None }
    }

    /// Appends one sample as a line.
    pub fn append(&mut self, sample: &Sample) {
        if let Some(file) = self.file.as_mut()
            && let Ok(line) = serde_json::to_string(sample)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}
