//! The request journal: a header naming the suite and plan, then one JSON
//! line per sample as it is measured and one per model as it finishes, so
//! an interrupted run keeps what it measured and `dyno run --resume` can
//! go on from it. Lines are serialized and written by a thread of their
//! own, off the request path, each handed to the OS as soon as it is
//! written. A journal that cannot be opened only warns; one whose write
//! fails (a full disk) says so through [`Journal::failure`], and the run
//! stops. Reading tolerates a last line cut short by a crash or a full
//! disk, and a resumed journal starts on a line of its own.

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::results::{LoadStats, ModelRun, Sample, SweepResult};

/// The journal's name inside a run's output directory.
pub(crate) const JOURNAL_FILE: &str = "journal.jsonl";

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
pub(crate) struct Journal {
    lines: Option<std::sync::mpsc::Sender<Line>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// The first write that failed, set by the writer thread, which then
    /// writes nothing more.
    failed: std::sync::Arc<std::sync::OnceLock<String>>,
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
    pub(crate) fn create(path: &Path, header: &Header) -> Journal {
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

    /// Goes on writing the journal at `path` (a resumed run), on a line of
    /// its own: a last line cut short is left as it is, and skipped when
    /// read.
    pub(crate) fn append_to(path: &Path) -> Journal {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .and_then(|mut file| {
                if !ends_with_newline(&mut file)? {
                    file.write_all(b"\n")?;
                }
                Ok(file)
            });
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
        let failed = std::sync::Arc::new(std::sync::OnceLock::new());
        let failure = std::sync::Arc::clone(&failed);
        let shown = path.display().to_string();
        let writer = std::thread::Builder::new()
            .name("dyno-journal".into())
            .spawn(move || {
                if let Err(err) = write_lines(file, &rx) {
                    let _ = failure.set(format!("cannot write the journal {shown}: {err}"));
                    // Lines still sent are dropped with the channel.
                }
            });
        match writer {
            Ok(writer) => Journal {
                lines: Some(tx),
                writer: Some(writer),
                failed,
            },
            Err(err) => {
                warn(err);
                Journal::none()
            }
        }
    }

    /// A journal that records nothing (tests, dry runs).
    pub(crate) fn none() -> Journal {
        Journal {
            lines: None,
            writer: None,
            failed: std::sync::Arc::default(),
        }
    }

    /// Why the journal stopped being written, once a write failed.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failed.get().cloned()
    }

    /// Writes every line sent so far and closes the journal; why a write
    /// failed, if one did.
    pub(crate) fn finish(mut self) -> Option<String> {
        self.lines = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        self.failure()
    }

    /// Appends one sample.
    pub(crate) fn sample(&mut self, sample: &Sample) {
        self.line(Line::Sample(Box::new(sample.clone())));
    }

    /// Appends how one model fared.
    pub(crate) fn run(&mut self, run: &ModelRun) {
        self.line(Line::Run {
            model_run: Box::new(run.clone()),
        });
    }

    /// Appends what a load point measured.
    pub(crate) fn load(&mut self, stats: &LoadStats) {
        self.line(Line::Load {
            load_point: Box::new(stats.clone()),
        });
    }

    /// Appends what a sweep found.
    pub(crate) fn sweep(&mut self, sweep: &SweepResult) {
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
/// are waiting, handed to the OS before the thread waits again. Stops at
/// the first write that fails.
fn write_lines(
    file: std::fs::File,
    lines: &std::sync::mpsc::Receiver<Line>,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(file);
    while let Ok(line) = lines.recv() {
        let mut next = Some(line);
        while let Some(line) = next {
            if let Ok(text) = serde_json::to_string(&line) {
                writeln!(out, "{text}")?;
            }
            next = lines.try_recv().ok();
        }
        out.flush()?;
    }
    Ok(())
}

/// Whether `file` is empty or ends with a newline.
fn ends_with_newline(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
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
