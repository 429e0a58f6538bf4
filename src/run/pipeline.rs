//! One suite run from file to files: load, plan, execute, aggregate, write
//! `results.json` atomically and render the reports beside it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::BTreeSet;

use super::executor::{self, Executed};
use super::interrupt::Interrupt;
use super::journal::{self, Contents, Header, JOURNAL_FILE, Journal};
use super::judge;
use crate::fsutil::write_atomic;
use crate::measure::noise::Monitor;
use crate::plan::{self, Cell, Filter, PlanError};
use crate::provider::Providers;
use crate::quality::{self, AnnotationError};
use crate::report::{self, ReportError, charts};
use crate::results::{
    self, Environment, ErrorKind, LoadStats, ModelRun, Partial, Results, Sample, Status,
    SuiteRecord, SweepResult,
};
use crate::suite::{self, SuiteError};

/// Why a run, a report or an annotation file could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the suite has errors")]
    Suite(#[from] SuiteError),
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Report(#[from] ReportError),
    #[error("{0}")]
    Chart(#[from] charts::ChartError),
    #[error("{0}")]
    Results(#[from] results::ReadError),
    #[error("{}: {source}", path.display())]
    Annotations {
        path: PathBuf,
        source: AnnotationError,
    },
    #[error("cannot serialize the results: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error(
        "another dyno run is writing to {}; wait for it, or give this one another --out",
        dir.display()
    )]
    Locked { dir: PathBuf },
    #[error("nothing to resume: cannot read {}: {source}", path.display())]
    NothingToResume {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is the journal of another suite, plan or shard; run without --resume to start again",
        path.display()
    )]
    OtherRun { path: PathBuf },
    #[error(
        "{failure}; the run stopped after {sent} of {planned} planned requests. {results} \
         What the journal holds can be resumed: free some space, then `dyno run {} --resume --out {}`",
        file.display(),
        dir.display()
    )]
    Journal {
        failure: String,
        sent: usize,
        planned: usize,
        /// What became of the results file (written, or why not).
        results: String,
        /// The suite file and the output directory, for `--resume`.
        file: PathBuf,
        dir: PathBuf,
    },
}

impl RunError {
    /// Whether this is a failure to write (a full disk, a read-only
    /// directory) rather than a mistake in the suite or the command.
    pub(crate) fn is_write_failure(&self) -> bool {
        matches!(self, RunError::Write { .. } | RunError::Journal { .. })
    }
}

/// Holds an output directory while a run writes to it.
pub(crate) const LOCK_FILE: &str = ".dyno.lock";

/// The results a run replaced.
pub(crate) const PREVIOUS_RESULTS_FILE: &str = "results.previous.json";

fn write(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    write_atomic(path, bytes).map_err(|source| RunError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// What a finished run tells the user.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub suite: String,
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub requests: usize,
    pub failed_requests: usize,
    /// Set when the run was interrupted before its last request.
    pub partial: Option<Partial>,
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} requests, {} failed; results in {}",
            self.suite,
            self.requests,
            self.failed_requests,
            self.dir.display()
        )?;
        if let Some(partial) = &self.partial {
            writeln!(
                f,
                "  partial: {} ({} of {} planned requests, a load point counting as one); `dyno run --resume` goes on from here",
                partial.reason, partial.sent, partial.planned
            )?;
        }
        for file in &self.files {
            writeln!(f, "  {}", file.display())?;
        }
        Ok(())
    }
}

/// How `dyno run` runs a suite.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Results directory instead of the suite's `outputs.dir`.
    pub out: Option<PathBuf>,
    /// No progress bar.
    pub quiet: bool,
    /// Templates that override the built-in ones.
    pub templates: Option<PathBuf>,
    /// Also keep a timestamped copy under `<dir>/archive/<started_at>/`.
    pub archive: bool,
    /// Go on with the interrupted run whose journal is in the output
    /// directory, sending only what it did not measure.
    pub resume: bool,
    /// Stops the run (Ctrl-C, SIGTERM); `Interrupt::never()` for none.
    pub interrupt: Interrupt,
    /// Run only this part of the plan (`--shard I/N`).
    pub shard: Option<plan::ShardSpec>,
    /// The machine's name in a fleet (`--machine NAME`).
    pub machine: Option<String>,
}

/// Runs the suite at `file`; errors are rendered for the terminal.
pub async fn run_suite(
    file: &Path,
    filter: &Filter,
    out: Option<&Path>,
    quiet: bool,
) -> Result<RunSummary, RunError> {
    let options = RunOptions {
        out: out.map(Path::to_path_buf),
        quiet,
        ..RunOptions::default()
    };
    run_suite_with(file, filter, &options).await
}

/// Runs the suite at `file` with `options`: load, plan, execute (or go on
/// with an interrupted run's journal), judge, aggregate and write. An
/// interrupted run still writes everything it measured, marked partial,
/// and keeps its journal for `--resume`.
pub async fn run_suite_with(
    file: &Path,
    filter: &Filter,
    options: &RunOptions,
) -> Result<RunSummary, RunError> {
    let quiet = options.quiet;
    let suite = Arc::new(suite::load(file, &suite::process_env)?);
    let cells = plan::plan(&suite, filter)?;
    let dir = normalize(
        &options
            .out
            .clone()
            .unwrap_or_else(|| suite.outputs.dir.clone()),
    );
    report::preflight(&dir, &suite.outputs.templates, options.templates.as_deref())?;
    let _lock = take_dir(&dir)?;
    let journal_path = dir.join(JOURNAL_FILE);
    let header = Header {
        suite_hash: suite.hash(),
        plan_hash: plan::hash(&cells),
        shard: options
            .shard
            .map(|spec| format!("{}/{}", spec.index, spec.count)),
        started_at: crate::measure::machine::utc_now(),
    };
    let (cells, shard) = shard_of(cells, options.shard);
    let planned = cells.len();
    let (before, header, journal, todo) = start_or_resume(&journal_path, header, cells, options)?;
    let mut providers = Providers::new(Arc::clone(&suite), dir.clone());
    let monitor = Monitor::start(crate::measure::resources::DEFAULT_PERIOD);
    let executed = executor::execute(
        &suite,
        &todo,
        executor::Options {
            quiet,
            journal,
            monitor: monitor.as_ref(),
            interrupt: options.interrupt.clone(),
        },
        &mut providers,
    )
    .await;
    let mut interrupted = executed.interrupted.clone();
    let journal_failure = executed.journal_failure.clone();
    let load: Vec<LoadStats> = before
        .load
        .iter()
        .cloned()
        .chain(executed.load.iter().cloned())
        .collect();
    let sweeps: Vec<SweepResult> = before
        .sweeps
        .iter()
        .cloned()
        .chain(executed.sweeps.iter().cloned())
        .collect();
    let (mut samples, models) = merge(before, executed);
    judge::apply_checks(&suite, &mut samples);
    if interrupted.is_none() && journal_failure.is_none() {
        // Ctrl-C while the judges work stops them; the run is then partial
        // (every request measured), and `--resume` judges it.
        let mut interrupt = options.interrupt.clone();
        tokio::select! {
            () = judge(&suite, &mut samples, &dir, options, &mut providers) => {}
            reason = interrupt.wait() => interrupted = Some(format!("{reason} while judging")),
        }
    }
    let noise = monitor.as_ref().map(|m| {
        let busy: Vec<f64> = samples.iter().filter_map(|s| s.host_busy_cores).collect();
        m.summary(&busy, suite.compare.noisy_cores)
    });
    let summaries = results::summarize_models(&models, &samples, &suite.energy);
    let doc = Results {
        highlights: results::highlights(&summaries, &samples),
        summaries,
        format_version: results::FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: header.started_at.clone(),
        git_revision: crate::git::revision(file.parent().unwrap_or(Path::new("."))),
        suite: SuiteRecord::of(&suite),
        environment: environment(options, noise),
        shard,
        fleet: None,
        plan_hash: Some(header.plan_hash.clone()),
        partial: interrupted.map(|reason| Partial {
            reason,
            sent: samples
                .iter()
                .map(|s| s.index)
                .collect::<BTreeSet<_>>()
                .len(),
            planned,
        }),
        cells: results::aggregate(&samples),
        load,
        sweeps,
        models,
        samples,
    };
    if let Some(failure) = journal_failure {
        return Err(journal_failed(failure, &doc, (file, dir), &suite, options));
    }
    let files = write_run(&doc, &dir, &suite, options)?;
    drop(providers);
    tidy(&dir, doc.partial.is_none());
    Ok(RunSummary {
        suite: suite.name.clone(),
        dir,
        files,
        requests: doc.samples.len(),
        failed_requests: doc
            .samples
            .iter()
            .filter(|s| s.status == Status::Error)
            .count(),
        partial: doc.partial,
    })
}

/// The error of a run whose journal could not be written, once what it
/// measured has been written as results where that still fits.
fn journal_failed(
    failure: String,
    doc: &Results,
    (file, dir): (&Path, PathBuf),
    suite: &crate::suite::Suite,
    options: &RunOptions,
) -> RunError {
    let results = match write_run(doc, &dir, suite, options) {
        Ok(_) => format!(
            "What it measured is in {}.",
            dir.join(results::RESULTS_FILE).display()
        ),
        Err(err) => format!(
            "The results could not be written either ({err}); the last complete results are kept."
        ),
    };
    let (sent, planned) = doc.partial.as_ref().map_or((0, 0), |p| (p.sent, p.planned));
    RunError::Journal {
        failure,
        sent,
        planned,
        results,
        file: file.to_path_buf(),
        dir,
    }
}

/// A new journal, or with `--resume` the interrupted run's (of this suite,
/// plan and shard): what it recorded, its header, the journal to append
/// to, and the cells still to run (what is left of `cells`).
fn start_or_resume(
    journal_path: &Path,
    header: Header,
    mut cells: Vec<Cell>,
    options: &RunOptions,
) -> Result<(Contents, Header, Journal, Vec<Cell>), RunError> {
    let (before, header, journal) = if options.resume {
        let before = resumable(journal_path, &header)?;
        let header = before.header.clone().unwrap_or(header);
        (before, header, Journal::append_to(journal_path))
    } else {
        let journal = Journal::create(journal_path, &header);
        (Contents::default(), header, journal)
    };
    let before = without_unfinished_points(before, &cells);
    let done: BTreeSet<usize> = before
        .samples
        .iter()
        .filter(|s| s.error_kind != Some(ErrorKind::Skipped))
        .map(|s| s.index)
        .collect();
    let planned = cells.len();
    cells.retain(|c| !done.contains(&c.index));
    if options.resume && !options.quiet {
        eprintln!(
            "resuming: {} of {planned} cells already measured, {} to go",
            done.len(),
            cells.len()
        );
    }
    Ok((before, header, journal, cells))
}

/// The cells this run executes: the whole plan, or one shard of it with
/// the record of every shard's keys.
fn shard_of(
    cells: Vec<Cell>,
    spec: Option<plan::ShardSpec>,
) -> (Vec<Cell>, Option<results::Shard>) {
    match spec {
        Some(spec) => {
            let (part, keys) = plan::shard(cells, spec);
            let shard = results::Shard {
                index: spec.index,
                count: spec.count,
                keys,
            };
            (part, Some(shard))
        }
        None => (cells, None),
    }
}

/// The environment a run records: this machine, its label, and what the
/// rest of the machine did meanwhile.
fn environment(
    options: &RunOptions,
    noise: Option<crate::measure::noise::NoiseSummary>,
) -> Environment {
    Environment {
        noise,
        machine: Some(
            options
                .machine
                .clone()
                .unwrap_or_else(crate::measure::machine::name),
        ),
        ..Environment::detect()
    }
}

/// The journal at `path`, when it is of this suite and plan.
fn resumable(path: &Path, expected: &Header) -> Result<Contents, RunError> {
    let contents = journal::read(path).map_err(|source| RunError::NothingToResume {
        path: path.to_path_buf(),
        source,
    })?;
    match &contents.header {
        Some(h)
            if h.suite_hash == expected.suite_hash
                && h.plan_hash == expected.plan_hash
                && h.shard == expected.shard =>
        {
            Ok(contents)
        }
        _ => Err(RunError::OtherRun {
            path: path.to_path_buf(),
        }),
    }
}

/// `before` without the samples of load cells that did not finish (no
/// stats for the point, or for the sweep): `--resume` drives them again.
fn without_unfinished_points(mut before: Contents, cells: &[Cell]) -> Contents {
    let finished: BTreeSet<&str> = before
        .load
        .iter()
        .map(|l| l.key.as_str())
        .chain(before.sweeps.iter().map(|s| s.key.as_str()))
        .collect();
    let unfinished: BTreeSet<usize> = cells
        .iter()
        .filter(|c| c.load().is_some() && !finished.contains(&*c.key))
        .map(|c| c.index)
        .collect();
    before.samples.retain(|s| !unfinished.contains(&s.index));
    // The points of an unfinished sweep are driven again with it.
    let swept: BTreeSet<String> = before
        .sweeps
        .iter()
        .flat_map(|s| s.points.clone())
        .collect();
    before.load.retain(|l| {
        !l.key.contains("[sweep-") && !l.key.contains(",sweep-") || swept.contains(&l.key)
    });
    before
}

/// The samples of an earlier part of the run (`before`) and of this one,
/// in plan order, and each model's record over both: launches of both
/// parts, the first part's facts where both have them.
fn merge(before: Contents, now: Executed) -> (Vec<Sample>, Vec<ModelRun>) {
    let sent: BTreeSet<usize> = now.samples.iter().map(|s| s.index).collect();
    let mut samples: Vec<Sample> = before
        .samples
        .into_iter()
        .filter(|s| !sent.contains(&s.index))
        .chain(now.samples)
        .collect();
    samples.sort_by_key(|s| s.index);
    let mut runs: Vec<ModelRun> = Vec::new();
    for run in before.runs.into_iter().chain(now.runs) {
        match runs
            .iter_mut()
            .find(|r| r.id == run.id && r.variant == run.variant)
        {
            Some(known) => {
                known.launches.extend(run.launches);
                known.load_ms = known.load_ms.or(run.load_ms);
                known.server_version = known.server_version.take().or(run.server_version);
                known.gpu = known.gpu.take().or(run.gpu);
                known.footprint = known.footprint.take().or(run.footprint);
                known.foundry = known.foundry.take().or(run.foundry);
                if run.status == Status::Error {
                    known.status = Status::Error;
                    known.failure = known.failure.take().or(run.failure);
                }
            }
            None => runs.push(run),
        }
    }
    (samples, runs)
}

/// Scores outputs with their judges (after the timed cells).
async fn judge(
    suite: &crate::suite::Suite,
    samples: &mut [Sample],
    dir: &Path,
    options: &RunOptions,
    providers: &mut Providers,
) {
    if !suite.models.iter().any(|m| m.judge.is_some()) {
        return;
    }
    if !options.quiet {
        eprintln!("judging outputs (after the timed runs)…");
    }
    let judged =
        judge::judge_samples(suite, samples, dir, options.templates.as_deref(), providers).await;
    for failure in &judged.failures {
        eprintln!("warning: {failure}");
    }
    if !options.quiet {
        eprintln!(
            "judge: {} outputs asked, {} from cache, {} without a score",
            judged.asked, judged.cached, judged.unparseable
        );
    }
}

/// Writes the run's results and reports into `dir` (the results there
/// before are kept as `results.previous.json`), and with `--archive` a copy
/// under `archive/<started at>/` (never an existing one).
fn write_run(
    doc: &Results,
    dir: &Path,
    suite: &crate::suite::Suite,
    options: &RunOptions,
) -> Result<Vec<PathBuf>, RunError> {
    let current = dir.join(results::RESULTS_FILE);
    // The previous results are the last complete ones: a partial run's file
    // (which `--resume` has now completed) is replaced, not kept. They stay
    // `results.json` too until the new file is complete (it replaces them
    // by an atomic rename), so a full disk never loses both.
    if current.is_file() && !is_partial(&current) {
        keep_previous(&current, &dir.join(PREVIOUS_RESULTS_FILE))?;
    }
    let templates = &suite.outputs.templates;
    let mut files = write_outputs(doc, dir, templates, options.templates.as_deref())?;
    if options.archive {
        let stamp = doc.started_at.replace(':', "-");
        let mut archive = dir.join("archive").join(&stamp);
        for n in 2.. {
            if !archive.exists() {
                break;
            }
            archive = dir.join("archive").join(format!("{stamp}-{n}"));
        }
        files.extend(write_outputs(
            doc,
            &archive,
            templates,
            options.templates.as_deref(),
        )?);
    }
    Ok(files)
}

/// Makes `previous` the same file as `current` without moving `current`: a
/// hard link (no space needed), else a copy; either is written beside
/// `previous` and renamed over it, so an old `previous` survives a failure.
fn keep_previous(current: &Path, previous: &Path) -> Result<(), RunError> {
    let staged = previous.with_extension("json.tmp");
    let _ = std::fs::remove_file(&staged);
    let write_error = |source| RunError::Write {
        path: previous.to_path_buf(),
        source,
    };
    if std::fs::hard_link(current, &staged).is_err()
        && let Err(err) = std::fs::copy(current, &staged)
    {
        let _ = std::fs::remove_file(&staged);
        return Err(write_error(err));
    }
    std::fs::rename(&staged, previous).map_err(write_error)
}

/// Whether the results file at `path` is marked partial (an interrupted
/// run's); a file that cannot be read is not.
fn is_partial(path: &Path) -> bool {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        partial: Option<serde::de::IgnoredAny>,
    }
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Head>(&bytes).ok())
        .is_some_and(|head| head.partial.is_some())
}

/// After a run's results are written: the record of its servers (every one
/// stopped) has done its work, and so has the journal of a complete run.
fn tidy(dir: &Path, complete: bool) {
    crate::provider::orphans::end_leftovers(&dir.join("logs"));
    if complete {
        let _ = std::fs::remove_file(dir.join(JOURNAL_FILE));
    }
}

/// Creates `dir`, locks it for this run and ends the servers an earlier run
/// into it left running when it was killed outright (SIGKILL).
fn take_dir(dir: &Path) -> Result<std::fs::File, RunError> {
    std::fs::create_dir_all(dir).map_err(|source| RunError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let lock = lock(dir)?;
    for line in crate::provider::orphans::end_leftovers(&dir.join("logs")) {
        eprintln!("warning: {line}");
    }
    Ok(lock)
}

/// An exclusive lock on `dir` while a run writes to it; released when
/// dropped (or when the process ends, however it ends).
fn lock(dir: &Path) -> Result<std::fs::File, RunError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| RunError::Write {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(RunError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(RunError::Write { path, source }),
    }
}

/// The human ratings file beside `results.json`.
pub const ANNOTATIONS_FILE: &str = "annotations.csv";

/// Writes (or extends) `annotations.csv` beside a results file: one row per
/// model × prompt × distinct output with empty `score` and `note` columns.
/// Rows already there keep their ratings; outputs no longer produced stay.
pub fn annotate(results: &Path) -> Result<PathBuf, RunError> {
    let (doc, file) = results::read(results)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let path = dir.join(ANNOTATIONS_FILE);
    let mut rows = read_annotations(&path)?;
    let prompts: std::collections::BTreeMap<String, results::PromptRecord> = doc
        .suite
        .prompts()
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let mut known: std::collections::BTreeSet<(String, String, String)> = rows
        .iter()
        .map(|r| (r.model.clone(), r.prompt.clone(), r.output_hash.clone()))
        .collect();
    for s in doc
        .samples
        .iter()
        .filter(|s| !s.warmup && s.status == Status::Ok)
    {
        let row = quality::AnnotationRow::new(&s.model, &s.prompt, &s.text);
        if known.insert((
            row.model.clone(),
            row.prompt.clone(),
            row.output_hash.clone(),
        )) {
            rows.push(row);
        }
    }
    // The prompt and rubric to rate against, also on rows of older files.
    for row in rows.iter_mut().filter(|r| r.prompt_text.is_empty()) {
        if let Some(p) = prompts.get(&row.prompt) {
            row.prompt_text = p.question();
            row.rubric = p.rubric.clone().unwrap_or_default();
        }
    }
    let text = quality::write_annotations_csv(&rows).map_err(|source| RunError::Annotations {
        path: path.clone(),
        source,
    })?;
    write(&path, text.as_bytes())?;
    Ok(path)
}

fn read_annotations(path: &Path) -> Result<Vec<quality::AnnotationRow>, RunError> {
    match std::fs::read_to_string(path) {
        Ok(text) => quality::read_annotations_csv(&text).map_err(|source| RunError::Annotations {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(RunError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `doc` with the ratings of `dir/annotations.csv` merged into its samples
/// (by model, prompt and output hash) and its summaries refreshed; `None`
/// when there are no ratings, so the caller renders `doc` as it is.
fn with_annotations(doc: &Results, dir: &Path) -> Result<Option<Results>, RunError> {
    let rows = read_annotations(&dir.join(ANNOTATIONS_FILE))?;
    let scores: std::collections::BTreeMap<(&str, &str, &str), f64> = rows
        .iter()
        .filter_map(|r| {
            Some((
                (r.model.as_str(), r.prompt.as_str(), r.output_hash.as_str()),
                r.score?,
            ))
        })
        .collect();
    if scores.is_empty() {
        return Ok(None);
    }
    let mut doc = doc.clone();
    for s in doc
        .samples
        .iter_mut()
        .filter(|s| !s.warmup && s.status == Status::Ok)
    {
        let hash = quality::text_hash(&s.text);
        s.human_score = scores
            .get(&(s.model.as_str(), s.prompt.as_str(), hash.as_str()))
            .copied();
    }
    results::refresh_quality(&mut doc.summaries, &doc.samples);
    doc.highlights = results::highlights(&doc.summaries, &doc.samples);
    Ok(Some(doc))
}

/// Writes `results.json` and every rendered template into `dir`.
pub fn write_outputs(
    doc: &Results,
    dir: &Path,
    templates: &[String],
    override_dir: Option<&Path>,
) -> Result<Vec<PathBuf>, RunError> {
    let json = results::to_json(doc)?;
    let results_path = dir.join(results::RESULTS_FILE);
    write(&results_path, json.as_bytes())?;
    let mut files = vec![results_path];
    files.extend(write_reports(doc.clone(), dir, templates, override_dir)?);
    Ok(files)
}

/// One chart series per summary row (model, variant and axis values): its
/// warm, measured, successful requests.
fn chart_series(doc: &Results) -> Vec<charts::Series> {
    doc.summaries
        .iter()
        .map(|m| {
            let warm: Vec<&results::Sample> = doc
                .samples
                .iter()
                .filter(|s| m.holds(s))
                .filter(|s| results::is_warm_measured(s) && s.status == Status::Ok)
                .collect();
            charts::Series {
                label: m.label.clone(),
                ttft_ms: warm.iter().filter_map(|s| s.ttft_ms).collect(),
                e2e_ms: warm.iter().filter_map(|s| s.e2e_ms).collect(),
                decode_tps: warm.iter().filter_map(|s| s.decode_tps).collect(),
            }
        })
        .collect()
}

/// Renders every template into `dir`; all are rendered before any is
/// written, so a template error leaves the existing reports untouched.
fn write_reports(
    doc: Results,
    dir: &Path,
    templates: &[String],
    override_dir: Option<&Path>,
) -> Result<Vec<PathBuf>, RunError> {
    let doc = with_annotations(&doc, dir)?.unwrap_or(doc);
    let mut charts = charts::render_all(&chart_series(&doc))?;
    charts.extend(crate::report::load_charts::render_load(&doc.load)?);
    charts.extend(crate::report::context_charts::render_context(
        &doc.summaries,
    )?);
    charts.extend(crate::report::fleet_charts::render_fleet(&doc)?);
    let ctx = report::context::of_results(doc);
    let mut rendered = report::with_pages(templates)
        .iter()
        .map(|name| {
            report::render_value(name, ctx.clone(), override_dir).map(|text| (dir.join(name), text))
        })
        .collect::<Result<Vec<_>, _>>()?;
    rendered.extend(
        charts
            .into_iter()
            .map(|chart| (dir.join("charts").join(chart.file), chart.svg)),
    );
    for (path, text) in &rendered {
        write(path, text.as_bytes())?;
    }
    Ok(rendered.into_iter().map(|(path, _)| path).collect())
}

/// Re-renders the reports of a stored results file (or a directory holding
/// `results.json`) without contacting any endpoint.
pub fn rerender(results: &Path, override_dir: Option<&Path>) -> Result<Vec<PathBuf>, RunError> {
    // The built-in templates and charts read no inter-token gaps of single
    // requests; templates of the user's may.
    let (doc, file) = match override_dir {
        None => results::read_per_request(results)?,
        Some(_) => results::read(results)?,
    };
    let templates: Vec<String> = doc
        .suite
        .resolved
        .pointer("/outputs/templates")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_else(|| vec!["report.md".into(), "results.csv".into()]);
    let dir = file.parent().unwrap_or(Path::new("."));
    write_reports(doc, dir, &templates, override_dir)
}

/// `suites/../results/x` → `results/x` (lexically), for readable paths.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir
                if out
                    .components()
                    .next_back()
                    .is_some_and(|c| matches!(c, std::path::Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
