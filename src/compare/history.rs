//! A metric across the git history of a results file, and the commits that
//! brought a step (change points). Owns the data and its text table; the
//! chart is drawn by [`crate::report::charts`].

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::sides::{LoadError, git_location, load_revision};
use super::{ALPHA, Metric, keys, values};
use crate::measure::stats;
use crate::report::charts::{self, ChartError};
use crate::report::format::fixed_or_missing;

/// One commit of a results file's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPoint {
    pub commit: String,
    pub subject: String,
    /// Geometric mean over the cells of each cell's median.
    pub value: Option<f64>,
    pub cells: usize,
}

/// The metric across the git history of `file`, oldest first, and the
/// indices of the commits that introduced a step (change points).
pub fn history(file: &Path, metric: Metric) -> Result<(Vec<HistoryPoint>, Vec<usize>), LoadError> {
    let (file, dir, name) = git_location(file);
    let commits = crate::git::log(&dir, &name).map_err(|reason| LoadError::Git {
        rev: "log".into(),
        path: file.display().to_string(),
        reason,
    })?;
    let mut points = Vec::new();
    for (commit, subject) in commits {
        // A commit that deleted the file, or an older format, is skipped.
        let Ok((doc, _)) = load_revision(&commit, &file) else {
            continue;
        };
        let medians: Vec<f64> = keys(&doc)
            .iter()
            .filter_map(|key| stats::percentile(&values(&doc, key, metric), 0.5))
            .filter(|v| *v > 0.0)
            .collect();
        let value = (!medians.is_empty())
            .then(|| (medians.iter().map(|v| v.ln()).sum::<f64>() / medians.len() as f64).exp());
        points.push(HistoryPoint {
            commit: commit.chars().take(12).collect(),
            subject,
            value,
            cells: medians.len(),
        });
    }
    let series: Vec<f64> = points.iter().filter_map(|p| p.value).collect();
    let valued: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].value.is_some())
        .collect();
    let steps = stats::change_points(&series, ALPHA)
        .into_iter()
        .filter_map(|i| valued.get(i).copied())
        .collect();
    Ok((points, steps))
}

/// The history as a table, with each step marked.
pub fn render_history(metric: Metric, points: &[HistoryPoint], steps: &[usize]) -> String {
    let mut out = format!("commit        {:>12}  cells  subject\n", metric.name());
    for (i, p) in points.iter().enumerate() {
        let mark = if steps.contains(&i) { "  <- step" } else { "" };
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
            let _ = writeln!(
                out,
                "\nthe step came with commit {} ({}): {} → {}",
                at.commit,
                at.subject,
                fixed_or_missing(before.value, 2),
                fixed_or_missing(at.value, 2)
            );
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
