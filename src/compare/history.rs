//! A metric across the git history of a results file, and the commits that
//! brought a step (change points). Neighbouring commits are compared over
//! the cells they have in common, so a change of suite (cells added or
//! removed) is never read as a change of speed: each point is the previous
//! one times the geometric mean ratio of the common cells' medians. Owns the
//! data and its text table; the chart is drawn by [`crate::report::charts`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::sides::{SideError, git_location, read_revision};
use super::{ALPHA, Cells, Machines, Metric};
use crate::measure::stats;
use crate::report::charts::{self, ChartError};
use crate::report::format::fixed_or_missing;

/// One commit of a results file's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPoint {
    pub commit: String,
    pub subject: String,
    /// The first commit: the geometric mean of its cells' medians; each
    /// later one: the previous value times the geometric mean of the
    /// median ratios over the cells both commits have.
    pub value: Option<f64>,
    pub cells: usize,
    /// Cells shared with the previous commit that has a value.
    pub common: Option<usize>,
    /// The cell set differs from the previous commit's (cells added or
    /// removed); the value still compares only the common cells.
    pub cell_set_changed: bool,
    /// What differs from the previous commit's machine (CPU model, cores,
    /// a model's engine): a step here is the machine's, not the commit's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_changed: Option<String>,
}

/// The median of `metric` of every cell of `doc` that has a positive one.
fn cell_medians(doc: &crate::results::Results, metric: Metric) -> BTreeMap<String, f64> {
    let cells = Cells::of(doc);
    cells
        .order
        .iter()
        .filter_map(|key| {
            let median = stats::percentile(&cells.values(key, metric), 0.5)?;
            (median > 0.0).then(|| ((*key).to_string(), median))
        })
        .collect()
}

/// Geometric mean of `values`; `None` when empty.
fn geometric_mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v.ln(), n + 1));
    (n > 0).then(|| (sum / n as f64).exp())
}

/// The metric across the git history of `file`, oldest first, and the
/// indices of the commits that introduced a step (change points).
pub fn history(file: &Path, metric: Metric) -> Result<(Vec<HistoryPoint>, Vec<usize>), SideError> {
    history_with_skipped(file, metric).map(|h| (h.points, h.steps))
}

/// A metric across a results file's history.
#[derive(Debug, Clone)]
pub struct History {
    /// One per commit whose results could be read, oldest first.
    pub points: Vec<HistoryPoint>,
    /// Indices of the points that introduced a step.
    pub steps: Vec<usize>,
    /// One line per commit whose results file could not be read (deleted,
    /// cut short, another format), which the series leaves out.
    pub skipped: Vec<String>,
}

/// [`history`], with the commits it had to leave out.
pub fn history_with_skipped(file: &Path, metric: Metric) -> Result<History, SideError> {
    let (file, dir, name) = git_location(file);
    let commits = crate::git::log(&dir, &name).map_err(|reason| SideError::Git {
        rev: "log".into(),
        path: file.display().to_string(),
        reason,
    })?;
    let mut points: Vec<HistoryPoint> = Vec::new();
    let mut previous: Option<(BTreeMap<String, f64>, f64)> = None;
    let mut previous_doc: Option<crate::results::Results> = None;
    let mut skipped = Vec::new();
    for (commit, subject) in commits {
        // A commit that deleted the file, cut it short or wrote another
        // format is left out, and said so.
        let (doc, _) = match read_revision(&commit, &file) {
            Ok(loaded) => loaded,
            Err(err) => {
                let short: String = commit.chars().take(12).collect();
                skipped.push(format!(
                    "commit {short} ({subject}) is left out: {}",
                    crate::text::first_line(&err.to_string())
                ));
                continue;
            }
        };
        let machine_changed = previous_doc
            .as_ref()
            .and_then(|before| Machines::of(before, &doc).describe());
        let medians = cell_medians(&doc, metric);
        let own = geometric_mean(medians.values().copied());
        let (value, common, changed) = match &previous {
            Some((before, value)) => {
                let ratios: Vec<f64> = medians
                    .iter()
                    .filter_map(|(k, m)| Some(m / before.get(k)?))
                    .collect();
                let changed = before.keys().ne(medians.keys());
                match geometric_mean(ratios.iter().copied()) {
                    Some(ratio) => (Some(value * ratio), Some(ratios.len()), changed),
                    // Nothing in common: the series starts again.
                    None => (own, Some(0), changed),
                }
            }
            None => (own, None, false),
        };
        if let Some(value) = value {
            previous = Some((medians.clone(), value));
        }
        points.push(HistoryPoint {
            commit: commit.chars().take(12).collect(),
            subject,
            value,
            cells: medians.len(),
            common,
            cell_set_changed: changed,
            machine_changed,
        });
        previous_doc = Some(doc);
    }
    let series: Vec<f64> = points.iter().filter_map(|p| p.value).collect();
    let valued: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].value.is_some())
        .collect();
    let steps = stats::change_points(&series, ALPHA)
        .into_iter()
        .filter_map(|i| valued.get(i).copied())
        .collect();
    Ok(History {
        points,
        steps,
        skipped,
    })
}

/// The history as a table, with each step marked.
pub fn render_history(metric: Metric, points: &[HistoryPoint], steps: &[usize]) -> String {
    let mut out = format!("commit        {:>12}  cells  subject\n", metric.name());
    for (i, p) in points.iter().enumerate() {
        let mut mark = String::new();
        if p.cell_set_changed {
            let _ = write!(
                mark,
                "  (cells changed; {} in common)",
                p.common.unwrap_or(0)
            );
        }
        if p.machine_changed.is_some() {
            mark.push_str("  (another machine)");
        }
        if steps.contains(&i) {
            mark.push_str("  <- step");
        }
        let _ = writeln!(
            out,
            "{:<12}  {:>12}  {:>5}  {}{mark}",
            p.commit,
            fixed_or_missing(p.value, 2),
            p.cells,
            p.subject
        );
    }
    for &i in steps {
        if let (Some(before), Some(at)) =
            (i.checked_sub(1).and_then(|b| points.get(b)), points.get(i))
        {
            let (from, to) = (
                fixed_or_missing(before.value, 2),
                fixed_or_missing(at.value, 2),
            );
            let _ = match &at.machine_changed {
                Some(what) => writeln!(
                    out,
                    "\nthe step at commit {} ({}): {from} → {to} came with a change of machine ({what}), not necessarily the commit",
                    at.commit, at.subject
                ),
                None => writeln!(
                    out,
                    "\nthe step came with commit {} ({}): {from} → {to}",
                    at.commit, at.subject
                ),
            };
        }
    }
    out
}

/// The history as an SVG line chart ([`charts::history`]): one point per
/// commit, labelled with its short commit, each step marked with a dashed
/// line. Byte-stable for the same input.
pub fn history_svg(
    metric: Metric,
    points: &[HistoryPoint],
    steps: &[usize],
) -> Result<String, ChartError> {
    let values: Vec<(&str, Option<f64>)> = points
        .iter()
        .map(|p| (p.commit.as_str(), p.value))
        .collect();
    Ok(charts::history(metric.name(), &values, steps)?.svg)
}
