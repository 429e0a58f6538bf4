//! The request journal: a header naming the suite and plan, then one JSON
//! line per sample as it is measured and one per model as it finishes, so
//! an interrupted run keeps what it measured and `dyno run --resume` can
//! go on from it. Lines are serialized and written by a thread of their
//! own, off the request path, each handed to the OS as soon as it is
//! written. A journal that cannot be written only warns; it never stops a
//! run. Reading tolerates a last line cut short by a crash.

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::results::{LoadStats, ModelRun, Sample, SweepResult};

/// The journal's name inside a run's output directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// What a journal belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub suite_hash: String,
    pub plan_hash: String,
    /// The part of the plan this run executes (`2/3`), when sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// When the run began (UTC); a resumed run keeps it.
    pub started_at: String,
}

/// One line of the journal.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Header { journal: Header },
    Run { model_run: Box<ModelRun> },
    Load { load_point: Box<LoadStats> },
    Sweep { sweep: Box<SweepResult> },
    Sample(Box<Sample>),
}

/// What a journal holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contents {
    pub header: Option<Header>,
    pub samples: Vec<Sample>,
    pub runs: Vec<ModelRun>,
    pub load: Vec<LoadStats>,
    pub sweeps: Vec<SweepResult>,
}

/// An open journal: lines go to its writer thread.
pub struct Journal {
    lines: Option<std::sync::mpsc::Sender<Line>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has written every line.
        self.lines = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Journal {
    /// Starts the journal at `path` (replacing one there) with `header`.
    pub fn create(path: &Path, header: &Header) -> Journal {
        let file = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(path));
        let mut journal = Journal::warn_unless(path, file);
        journal.line(Line::Header {
            journal: header.clone(),
        });
        journal
    }

    /// Goes on writing the journal at `path` (a resumed run).
    pub fn append_to(path: &Path) -> Journal {
        let file = std::fs::OpenOptions::new().append(true).open(path);
        Journal::warn_unless(path, file)
    }

    fn warn_unless(path: &Path, file: std::io::Result<std::fs::File>) -> Journal {
        let warn = |err: std::io::Error| {
            eprintln!(
                "warning: cannot write the journal {}: {err}",
                path.display()
            );
        };
        let file = match file {
            Ok(file) => file,
            Err(err) => {
                warn(err);
                return Journal::none();
            }
        };
        let (tx, rx) = std::sync::mpsc::channel::<Line>();
        let writer = std::thread::Builder::new()
            .name("dyno-journal".into())
            .spawn(move || write_lines(file, &rx));
        match writer {
            Ok(writer) => Journal {
                lines: Some(tx),
                writer: Some(writer),
            },
            Err(err) => {
                warn(err);
                Journal::none()
            }
        }
    }

    /// A journal that records nothing (tests, dry runs).
    pub fn none() -> Journal {
        Journal {
            lines: None,
            writer: None,
        }
    }

    /// Appends one sample.
    pub fn sample(&mut self, sample: &Sample) {
        self.line(Line::Sample(Box::new(sample.clone())));
    }

    /// Appends how one model fared.
    pub fn run(&mut self, run: &ModelRun) {
        self.line(Line::Run {
            model_run: Box::new(run.clone()),
        });
    }

    /// Appends what a load point measured.
    pub fn load(&mut self, stats: &LoadStats) {
        self.line(Line::Load {
            load_point: Box::new(stats.clone()),
        });
    }

    /// Appends what a sweep found.
    pub fn sweep(&mut self, sweep: &SweepResult) {
        self.line(Line::Sweep {
            sweep: Box::new(sweep.clone()),
        });
    }

    fn line(&mut self, line: Line) {
        if let Some(lines) = &self.lines {
            // A writer that has gone (it could not write) loses the line.
            let _ = lines.send(line);
        }
    }
}

/// The writer thread: every line as JSON, written together while more
/// are waiting, handed to the OS before the thread waits again.
fn write_lines(file: std::fs::File, lines: &std::sync::mpsc::Receiver<Line>) {
    let mut out = std::io::BufWriter::new(file);
    while let Ok(line) = lines.recv() {
        let mut next = Some(line);
        while let Some(line) = next {
            if let Ok(text) = serde_json::to_string(&line) {
                let _ = writeln!(out, "{text}");
            }
            next = lines.try_recv().ok();
        }
        let _ = out.flush();
    }
}

/// Reads the journal at `path`; a line that does not parse (the last one,
/// cut short by a crash) is left out.
pub fn read(path: &Path) -> std::io::Result<Contents> {
    let text = std::fs::read_to_string(path)?;
    let mut contents = Contents::default();
    for line in text.lines() {
        match serde_json::from_str::<Line>(line) {
            Ok(Line::Header { journal }) => contents.header = Some(journal),
            Ok(Line::Run { model_run }) => contents.runs.push(*model_run),
            Ok(Line::Load { load_point }) => contents.load.push(*load_point),
            Ok(Line::Sweep { sweep }) => contents.sweeps.push(*sweep),
            Ok(Line::Sample(sample)) => contents.samples.push(*sample),
            Err(_) => {}
        }
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Round;

    #[test]
    fn a_journal_reads_back_what_was_written_and_survives_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let header = Header {
            suite_hash: "s".into(),
            plan_hash: "p".into(),
            shard: None,
            started_at: "2026-01-01T00:00:00Z".into(),
        };
        let mut journal = Journal::create(&path, &header);
        let sample = Sample::new("m/p".into(), "m", "p", Round::Measured(1));
        journal.sample(&sample);
        drop(journal);
        let mut journal = Journal::append_to(&path);
        journal.sample(&sample);
        drop(journal);
        // A crash in the middle of a line.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        write!(file, "{{\"index\": 3, \"ke").unwrap();
        let contents = read(&path).unwrap();
        assert_eq!(contents.header, Some(header));
        assert_eq!(contents.samples, vec![sample.clone(), sample]);
        assert!(contents.runs.is_empty());
    }
}
