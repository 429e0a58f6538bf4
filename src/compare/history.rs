//! A metric across the git history of a results file, and the commits that
//! brought a step (change points).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::render::fixed;
use super::sides::{LoadError, git_location, load_revision};
use super::{ALPHA, Metric, keys, values};
use crate::measure::stats;

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
            fixed(p.value, 2),
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
                fixed(before.value, 2),
                fixed(at.value, 2)
            );
        }
    }
    out
}

/// The history as an SVG line chart: one point per commit, steps marked
/// with a dashed line. Byte-stable for the same input.
pub fn history_svg(metric: Metric, points: &[HistoryPoint], steps: &[usize]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 300.0;
    const PAD: f64 = 48.0;
    let values: Vec<(usize, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, p.value?)))
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / (points.len().max(2) - 1) as f64;
    let y = |v: f64| H - PAD - (H - 2.0 * PAD) * (v - lo) / span;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{PAD}\" y=\"24\" font-family=\"sans-serif\" font-size=\"14\">{} per commit</text>\n",
        metric.name()
    );
    if values.is_empty() {
        svg.push_str("</svg>\n");
        return svg;
    }
    for (v, label) in [(lo, lo), (hi, hi)] {
        let _ = writeln!(
            svg,
            "<text x=\"4\" y=\"{:.1}\" font-family=\"sans-serif\" font-size=\"11\">{label:.1}</text>",
            y(v) + 4.0
        );
    }
    for &i in steps {
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{PAD}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#c0392b\" stroke-dasharray=\"4 3\"/>",
            x(i),
            H - PAD
        );
    }
    let line: Vec<String> = values
        .iter()
        .map(|&(i, v)| format!("{:.1},{:.1}", x(i), y(v)))
        .collect();
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"#2c3e50\" stroke-width=\"2\" points=\"{}\"/>",
        line.join(" ")
    );
    for &(i, v) in &values {
        let commit = points.get(i).map_or("", |p| p.commit.as_str());
        let _ = writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#2c3e50\"><title>{commit}: {v:.2}</title></circle>",
            x(i),
            y(v)
        );
    }
    svg.push_str("</svg>\n");
    svg
}
