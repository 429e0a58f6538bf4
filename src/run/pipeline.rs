//! One suite run from file to files: load, plan, execute, aggregate, write
//! `results.json` atomically and render the reports beside it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::executor;
use super::journal::{JOURNAL_FILE, Journal};
use super::judge;
use crate::fsutil::write_atomic;
use crate::measure::noise::Monitor;
use crate::plan::{self, Filter, PlanError};
use crate::provider::Providers;
use crate::quality::{self, AnnotationError};
use crate::report::{self, ReportError, charts};
use crate::results::{self, Environment, Results, Status, SuiteRecord};
use crate::suite::{self, LoadError};

/// Why a run, a report or an annotation file could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the suite has errors")]
    Suite(#[from] LoadError),
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
    Results(#[from] results::LoadError),
    #[error("{}: {source}", path.display())]
    Annotations {
        path: PathBuf,
        source: AnnotationError,
    },
    #[error("cannot serialize the results: {0}")]
    Serialize(#[from] serde_json::Error),
}

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

/// Runs the suite at `file` with `options`; errors are rendered for the terminal.
pub async fn run_suite_with(
    file: &Path,
    filter: &Filter,
    options: &RunOptions,
) -> Result<RunSummary, RunError> {
    let (out, quiet) = (options.out.as_deref(), options.quiet);
    let suite = Arc::new(suite::load(file, &suite::process_env)?);
    let cells = plan::plan(&suite, filter)?;
    let dir = out.map_or_else(|| suite.outputs.dir.clone(), Path::to_path_buf);
    let dir = normalize(&dir);
    let started_at = crate::measure::machine::utc_now();
    let mut providers = Providers::new(Arc::clone(&suite), dir.clone());
    let monitor = Monitor::start(crate::measure::resources::DEFAULT_PERIOD);
    let exec_options = executor::Options {
        quiet,
        journal: Journal::create(&dir.join(JOURNAL_FILE)),
        monitor: monitor.as_ref(),
    };
    let (mut samples, models) =
        executor::execute(&suite, &cells, exec_options, &mut providers).await;
    judge::apply_checks(&suite, &mut samples);
    if suite.models.iter().any(|m| m.judge.is_some()) {
        if !quiet {
            eprintln!("judging outputs (after the timed runs)…");
        }
        let judged = judge::judge_samples(
            &suite,
            &mut samples,
            &dir,
            options.templates.as_deref(),
            &mut providers,
        )
        .await;
        for failure in &judged.failures {
            eprintln!("warning: {failure}");
        }
        if !quiet {
            eprintln!(
                "judge: {} outputs asked, {} from cache, {} without a score",
                judged.asked, judged.cached, judged.unparseable
            );
        }
    }
    let summaries = results::summarize_models(&models, &samples, &suite.energy);
    let highlights = results::highlights(&summaries, &samples);
    let doc = Results {
        summaries,
        highlights,
        format_version: results::FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        git_revision: crate::git::revision(file.parent().unwrap_or(Path::new("."))),
        suite: SuiteRecord::of(&suite),
        environment: Environment {
            noise: monitor.as_ref().map(|m| {
                let busy: Vec<f64> = samples.iter().filter_map(|s| s.host_busy_cores).collect();
                m.summary(&busy, suite.compare.noisy_cores)
            }),
            ..Environment::detect()
        },
        cells: results::aggregate(&samples),
        models,
        samples,
    };
    let failed_requests = doc
        .samples
        .iter()
        .filter(|s| s.status == Status::Error)
        .count();
    let mut files = write_outputs(
        &doc,
        &dir,
        &suite.outputs.templates,
        options.templates.as_deref(),
    )?;
    if options.archive {
        let stamp = doc.started_at.replace(':', "-");
        let archive = dir.join("archive").join(&stamp);
        files.extend(write_outputs(
            &doc,
            &archive,
            &suite.outputs.templates,
            options.templates.as_deref(),
        )?);
    }
    let _ = std::fs::remove_file(dir.join(JOURNAL_FILE));
    Ok(RunSummary {
        suite: suite.name.clone(),
        dir,
        files,
        requests: doc.samples.len(),
        failed_requests,
    })
}

/// The human ratings file beside `results.json`.
pub const ANNOTATIONS_FILE: &str = "annotations.csv";

/// Writes (or extends) `annotations.csv` beside a results file: one row per
/// model × prompt × distinct output with empty `score` and `note` columns.
/// Rows already there keep their ratings; outputs no longer produced stay.
pub fn annotate(results: &Path) -> Result<PathBuf, RunError> {
    let (doc, file) = results::load(results)?;
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
    files.extend(write_reports(doc, dir, templates, override_dir)?);
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
    doc: &Results,
    dir: &Path,
    templates: &[String],
    override_dir: Option<&Path>,
) -> Result<Vec<PathBuf>, RunError> {
    let merged = with_annotations(doc, dir)?;
    let doc = merged.as_ref().unwrap_or(doc);
    let mut rendered = templates
        .iter()
        .map(|name| report::render(name, doc, override_dir).map(|text| (dir.join(name), text)))
        .collect::<Result<Vec<_>, _>>()?;
    let charts = charts::render_all(&chart_series(doc))?;
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
    let (doc, file) = results::load(results)?;
    let templates: Vec<String> = doc
        .suite
        .resolved
        .pointer("/outputs/templates")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_else(|| vec!["report.md".into(), "results.csv".into()]);
    let dir = file.parent().unwrap_or(Path::new("."));
    write_reports(&doc, dir, &templates, override_dir)
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
