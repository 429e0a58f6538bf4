//! One suite run from file to files: load, plan, execute, aggregate, write
//! `results.json` atomically and render the reports beside it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::charts;
use crate::exec::{self, ExecOptions};
use crate::fsutil::write_atomic;
use crate::plan::{self, Filter};
use crate::report;
use crate::results::{self, Environment, Results, Status, SuiteRecord};
use crate::suite;

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

/// Runs the suite at `file`; errors are rendered for the terminal.
pub async fn run_suite(
    file: &Path,
    filter: &Filter,
    out: Option<&Path>,
    quiet: bool,
) -> Result<RunSummary, String> {
    let suite = suite::load(file, &suite::process_env).map_err(|e| e.render())?;
    let cells = plan::plan(&suite, filter).map_err(|e| format!("error: {e}\n"))?;
    let dir = out.map_or_else(|| suite.outputs.dir.clone(), Path::to_path_buf);
    let dir = normalize(&dir);
    let started_at = results::utc_now();
    let options = ExecOptions {
        quiet,
        work_dir: dir.clone(),
    };
    let (samples, models) = exec::execute(&suite, &cells, &options).await;
    let summaries = results::summarize_models(&models, &samples, &suite.energy);
    let highlights = results::highlights(&summaries, &samples);
    let doc = Results {
        summaries,
        highlights,
        format_version: results::FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        git_revision: results::git_revision(file.parent().unwrap_or(Path::new("."))),
        suite: SuiteRecord::of(&suite),
        environment: Environment::detect(),
        cells: results::aggregate(&samples),
        models,
        samples,
    };
    let failed_requests = doc
        .samples
        .iter()
        .filter(|s| s.status == Status::Error)
        .count();
    let files = write_outputs(&doc, &dir, &suite.outputs.templates, None)?;
    let _ = std::fs::remove_file(dir.join("journal.jsonl"));
    Ok(RunSummary {
        suite: suite.name,
        dir,
        files,
        requests: doc.samples.len(),
        failed_requests,
    })
}

/// Writes `results.json` and every rendered template into `dir`.
pub fn write_outputs(
    doc: &Results,
    dir: &Path,
    templates: &[String],
    override_dir: Option<&Path>,
) -> Result<Vec<PathBuf>, String> {
    let json = serde_json::to_string_pretty(doc).map_err(|e| format!("error: {e}\n"))? + "\n";
    let results_path = dir.join("results.json");
    write_atomic(&results_path, json.as_bytes())
        .map_err(|e| format!("error: cannot write {}: {e}\n", results_path.display()))?;
    let mut files = vec![results_path];
    files.extend(write_reports(doc, dir, templates, override_dir)?);
    Ok(files)
}

/// One chart series per model (and variant): its warm, measured, successful requests.
fn chart_series(doc: &Results) -> Vec<charts::Series> {
    doc.summaries
        .iter()
        .map(|m| {
            let warm: Vec<&results::Sample> = doc
                .samples
                .iter()
                .filter(|s| s.model == m.model && s.variant == m.variant)
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
) -> Result<Vec<PathBuf>, String> {
    let mut rendered = templates
        .iter()
        .map(|name| {
            report::render(name, doc, override_dir)
                .map(|text| (dir.join(name), text))
                .map_err(|e| format!("error: {e}\n"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let charts = charts::render_all(&chart_series(doc)).map_err(|e| format!("error: {e}\n"))?;
    rendered.extend(
        charts
            .into_iter()
            .map(|chart| (dir.join("charts").join(chart.file), chart.svg)),
    );
    for (path, text) in &rendered {
        write_atomic(path, text.as_bytes())
            .map_err(|e| format!("error: cannot write {}: {e}\n", path.display()))?;
    }
    Ok(rendered.into_iter().map(|(path, _)| path).collect())
}

/// Re-renders the reports of a stored results file (or a directory holding
/// `results.json`) without contacting any endpoint.
pub fn rerender(results: &Path, override_dir: Option<&Path>) -> Result<Vec<PathBuf>, String> {
    let file = if results.is_dir() {
        results.join("results.json")
    } else {
        results.to_path_buf()
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("error: cannot read {}: {e}\n", file.display()))?;
    let doc: Results = serde_json::from_str(&text).map_err(|e| {
        format!(
            "error: {} is not a dyno results file: {e}\n",
            file.display()
        )
    })?;
    if !results::READABLE_FORMATS.contains(&doc.format_version) {
        return Err(format!(
            "error: {} has results format {}, this dyno reads formats {}–{}\n",
            file.display(),
            doc.format_version,
            results::READABLE_FORMATS.start(),
            results::READABLE_FORMATS.end(),
        ));
    }
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
