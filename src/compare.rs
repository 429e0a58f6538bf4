//! Comparing two results documents: per cell and metric, one value per
//! measured round, through `stats::compare_samples`, with Benjamini–Hochberg
//! across everything for the exit code. Reads results (files or git
//! objects); never runs a suite.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::results::{Results, Sample, Status};
use crate::stats::{self, Verdict};
use crate::suite::CompareSettings;

/// A metric compared across runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    TtftMs,
    E2eMs,
    TpotMs,
    DecodeTps,
}

impl Metric {
    pub const ALL: [Metric; 4] = [
        Metric::TtftMs,
        Metric::E2eMs,
        Metric::TpotMs,
        Metric::DecodeTps,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::TtftMs => "ttft_ms",
            Metric::E2eMs => "e2e_ms",
            Metric::TpotMs => "tpot_ms",
            Metric::DecodeTps => "decode_tps",
        }
    }

    fn value(self, s: &Sample) -> Option<f64> {
        match self {
            Metric::TtftMs => s.ttft_ms,
            Metric::E2eMs => s.e2e_ms,
            Metric::TpotMs => s.tpot_ms,
            Metric::DecodeTps => s.decode_tps,
        }
    }

    fn higher_is_better(self) -> bool {
        self == Metric::DecodeTps
    }

    /// This metric's noise threshold in `settings`.
    pub fn noise(self, settings: &CompareSettings) -> f64 {
        match self {
            Metric::TtftMs => settings.noise_ttft,
            Metric::E2eMs => settings.noise_e2e,
            Metric::TpotMs => settings.noise_tpot,
            Metric::DecodeTps => settings.noise_tokens_per_s,
        }
    }
}

/// Significance level for history's change points.
pub const ALPHA: f64 = 0.05;

/// The bootstrap's fixed seed: the same inputs always give the same interval.
const BOOTSTRAP_SEED: u64 = 42;

/// One cell × metric.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub key: String,
    pub metric: Metric,
    pub base_median: Option<f64>,
    pub new_median: Option<f64>,
    pub verdict: Verdict,
    pub confirmed: bool,
    /// Hodges–Lehmann ratio new/base in the metric's own direction.
    pub ratio: Option<f64>,
    pub ci: Option<(f64, f64)>,
    pub p: Option<f64>,
    /// Benjamini–Hochberg adjusted p across every row.
    pub p_adjusted: Option<f64>,
    pub n_base: usize,
    pub n_new: usize,
    /// Regressed and still significant after Benjamini–Hochberg.
    pub gates: bool,
    pub base_p95: Option<f64>,
    pub new_p95: Option<f64>,
    /// Seeded-bootstrap 95% interval of the p95 ratio new/base, only when
    /// both sides have enough samples (59) to bound a p95.
    pub p95_ratio_ci: Option<(f64, f64)>,
}

/// A quality measure compared paired by prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityMeasure {
    /// Pass/fail of each check of each prompt (McNemar's exact test).
    Checks,
    /// Mean judge score per prompt (Wilcoxon signed-rank).
    JudgeScore,
    /// Mean human rating per prompt (Wilcoxon signed-rank).
    HumanScore,
}

/// One model (and variant) × quality measure, paired by prompt.
#[derive(Debug, Clone, Serialize)]
pub struct QualityRow {
    pub model: String,
    pub measure: QualityMeasure,
    /// Pairs compared (prompt × check, or prompts).
    pub pairs: usize,
    /// Checks: pass rate of the pairs; scores: mean per-prompt score.
    pub base: Option<f64>,
    pub new: Option<f64>,
    /// new − base, in pass-rate points (0–1) or score points.
    pub change: Option<f64>,
    pub p: Option<f64>,
    pub verdict: Verdict,
}

/// Absolute thresholds below which a quality change is UNCHANGED.
pub const CHECKS_THRESHOLD: f64 = 0.10;
pub const SCORE_THRESHOLD: f64 = 0.5;

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base: String,
    pub new: String,
    pub rows: Vec<Row>,
    /// Quality, paired by prompt (empty when neither run scored quality).
    pub quality: Vec<QualityRow>,
    pub only_in_base: Vec<String>,
    pub only_in_new: Vec<String>,
    pub warnings: Vec<String>,
}

impl Comparison {
    /// Whether any regression survives Benjamini–Hochberg, or quality
    /// regressed beyond its threshold (exit code 1).
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.gates)
            || self.quality.iter().any(|q| q.verdict == Verdict::Regressed)
    }
}

/// Measured, successful samples of one model (label) by prompt, in prompt order.
fn by_prompt<'a>(
    doc: &'a Results,
    label: &str,
) -> std::collections::BTreeMap<&'a str, Vec<&'a Sample>> {
    let mut out: std::collections::BTreeMap<&str, Vec<&Sample>> = std::collections::BTreeMap::new();
    for s in doc
        .samples
        .iter()
        .filter(|s| !s.warmup && s.status == Status::Ok)
    {
        if crate::exec::label(&s.model, s.variant.as_deref()) == label {
            out.entry(s.prompt.as_str()).or_default().push(s);
        }
    }
    out
}

/// Quality of every model present in both runs, paired by prompt: McNemar
/// on check outcomes (a check passes for a prompt when it passed in at least
/// half the rounds), Wilcoxon signed-rank on per-prompt mean scores.
pub fn compare_quality(base: &Results, new: &Results, alpha: f64) -> Vec<QualityRow> {
    let labels: Vec<String> = new
        .summaries
        .iter()
        .map(|m| m.label.clone())
        .filter(|l| base.summaries.iter().any(|b| &b.label == l))
        .collect();
    let mut rows = Vec::new();
    for label in labels {
        let (b, n) = (by_prompt(base, &label), by_prompt(new, &label));
        let prompts: Vec<&str> = b.keys().filter(|p| n.contains_key(*p)).copied().collect();
        // Checks: one pair per prompt × check label.
        let outcome = |samples: &[&Sample]| {
            let mut passes: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
            for s in samples {
                for c in &s.checks {
                    let e = passes.entry(c.check.clone()).or_default();
                    e.0 += usize::from(c.passed);
                    e.1 += 1;
                }
            }
            passes
                .into_iter()
                .map(|(k, (pass, all))| (k, 2 * pass >= all))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let mut pairs: Vec<(bool, bool)> = Vec::new();
        for p in &prompts {
            let (ob, on) = (outcome(&b[p]), outcome(&n[p]));
            pairs.extend(ob.iter().filter_map(|(k, vb)| Some((*vb, *on.get(k)?))));
        }
        if !pairs.is_empty() {
            let lost = pairs.iter().filter(|(vb, vn)| *vb && !*vn).count();
            let gained = pairs.iter().filter(|(vb, vn)| !*vb && *vn).count();
            let rate = |f: fn(&(bool, bool)) -> bool| {
                pairs.iter().filter(|p| f(p)).count() as f64 / pairs.len() as f64
            };
            let (rb, rn) = (rate(|p| p.0), rate(|p| p.1));
            let p = stats::mcnemar_exact(lost, gained);
            rows.push(QualityRow {
                model: label.clone(),
                measure: QualityMeasure::Checks,
                pairs: pairs.len(),
                base: Some(rb),
                new: Some(rn),
                change: Some(rn - rb),
                p: Some(p),
                verdict: quality_verdict(rn - rb, p, alpha, CHECKS_THRESHOLD),
            });
        }
        type Score = fn(&Sample) -> Option<f64>;
        let measures: [(QualityMeasure, Score); 2] = [
            (QualityMeasure::JudgeScore, |s| s.judge.as_ref()?.score),
            (QualityMeasure::HumanScore, |s| s.human_score),
        ];
        for (measure, score) in measures {
            let mean = |samples: &[&Sample]| {
                let v: Vec<f64> = samples.iter().filter_map(|s| score(s)).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let paired: Vec<(f64, f64)> = prompts
                .iter()
                .filter_map(|p| Some((mean(&b[p])?, mean(&n[p])?)))
                .collect();
            if paired.is_empty() {
                continue;
            }
            let (xb, xn): (Vec<f64>, Vec<f64>) = paired.iter().copied().unzip();
            let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let change = avg(&xn) - avg(&xb);
            let p = stats::wilcoxon_signed_rank(&xb, &xn).map(|w| w.p);
            rows.push(QualityRow {
                model: label.clone(),
                measure,
                pairs: paired.len(),
                base: Some(avg(&xb)),
                new: Some(avg(&xn)),
                change: Some(change),
                p,
                verdict: p.map_or(Verdict::Inconclusive, |p| {
                    quality_verdict(change, p, alpha, SCORE_THRESHOLD)
                }),
            });
        }
    }
    rows
}

/// Higher is better: a significant drop beyond `threshold` is REGRESSED.
fn quality_verdict(change: f64, p: f64, alpha: f64, threshold: f64) -> Verdict {
    if p >= alpha || change.abs() < threshold {
        Verdict::Unchanged
    } else if change < 0.0 {
        Verdict::Regressed
    } else {
        Verdict::Improved
    }
}

fn values(doc: &Results, key: &str, metric: Metric) -> Vec<f64> {
    doc.samples
        .iter()
        .filter(|s| crate::results::is_warm_measured(s) && s.status == Status::Ok && s.key == key)
        .filter_map(|s| metric.value(s))
        .collect()
}

fn keys(doc: &Results) -> Vec<String> {
    doc.cells.iter().map(|c| c.key.clone()).collect()
}

/// The compare settings recorded with a run's suite (defaults when absent).
pub fn settings_of(doc: &Results) -> CompareSettings {
    doc.suite
        .resolved
        .get("compare")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Compares `new` against `base`, with the new run's suite settings.
pub fn compare(base: &Results, new: &Results, base_label: &str, new_label: &str) -> Comparison {
    let settings = settings_of(new);
    let alpha = settings.alpha;
    let base_keys = keys(base);
    let new_keys = keys(new);
    let mut rows = Vec::new();
    for key in base_keys.iter().filter(|k| new_keys.contains(k)) {
        for metric in Metric::ALL {
            let (b, n) = (values(base, key, metric), values(new, key, metric));
            if b.is_empty() && n.is_empty() {
                continue;
            }
            let c = stats::compare_samples(
                &b,
                &n,
                metric.higher_is_better(),
                metric.noise(&settings),
                alpha,
            );
            // stats orients the ratio so that > 1 is worse; report it in the
            // metric's own direction (new / base).
            let flip = |r: f64| {
                if metric.higher_is_better() {
                    1.0 / r
                } else {
                    r
                }
            };
            rows.push(Row {
                key: key.clone(),
                metric,
                base_median: stats::percentile(&b, 0.5),
                new_median: stats::percentile(&n, 0.5),
                verdict: c.verdict,
                confirmed: c.confirmed,
                ratio: c.ratio.map(flip),
                ci: c.ci.map(|(lo, hi)| {
                    let (a, b) = (flip(lo), flip(hi));
                    (a.min(b), a.max(b))
                }),
                p: c.p,
                p_adjusted: None,
                n_base: c.n_base,
                n_new: c.n_new,
                gates: false,
                base_p95: stats::percentile(&b, 0.95),
                new_p95: stats::percentile(&n, 0.95),
                p95_ratio_ci: (stats::percentile_is_bounded(b.len(), 0.95)
                    && stats::percentile_is_bounded(n.len(), 0.95))
                .then(|| {
                    stats::bootstrap_quantile_ratio_ci(&b, &n, 0.95, 10_000, BOOTSTRAP_SEED, alpha)
                })
                .flatten(),
            });
        }
    }
    let tested: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].p.is_some()).collect();
    let p_values: Vec<f64> = tested.iter().filter_map(|&i| rows[i].p).collect();
    let bh = stats::benjamini_hochberg(&p_values, alpha);
    for (j, &i) in tested.iter().enumerate() {
        rows[i].p_adjusted = bh.adjusted.get(j).copied();
        rows[i].gates =
            rows[i].verdict == Verdict::Regressed && bh.rejected.get(j).copied().unwrap_or(false);
    }
    rows.sort_by_key(|r| verdict_rank(r.verdict));
    let mut warnings = Vec::new();
    if base.environment != new.environment {
        warnings.push(format!(
            "the runs come from different machines: base {} ({} cores), new {} ({} cores)",
            base.environment.cpu,
            base.environment.cores,
            new.environment.cpu,
            new.environment.cores
        ));
    }
    if rows
        .iter()
        .any(|r| r.n_base < stats::MIN_ROUNDS || r.n_new < stats::MIN_ROUNDS)
    {
        warnings.push(format!(
            "cells with fewer than {} rounds a side are INCONCLUSIVE: raise `rounds` in the suite",
            stats::MIN_ROUNDS
        ));
    }
    Comparison {
        base: base_label.to_string(),
        new: new_label.to_string(),
        rows,
        quality: compare_quality(base, new, alpha),
        only_in_base: base_keys
            .iter()
            .filter(|k| !new_keys.contains(k))
            .cloned()
            .collect(),
        only_in_new: new_keys
            .iter()
            .filter(|k| !base_keys.contains(k))
            .cloned()
            .collect(),
        warnings,
    }
}

fn verdict_rank(v: Verdict) -> u8 {
    match v {
        Verdict::Regressed => 0,
        Verdict::Improved => 1,
        Verdict::Inconclusive => 2,
        Verdict::Unchanged => 3,
    }
}

fn verdict_text(row: &Row) -> String {
    let name = match row.verdict {
        Verdict::Regressed => "REGRESSED",
        Verdict::Improved => "IMPROVED",
        Verdict::Unchanged => "UNCHANGED",
        Verdict::Inconclusive => "INCONCLUSIVE",
    };
    if row.confirmed {
        format!("{name} (confirmed)")
    } else {
        name.to_string()
    }
}

fn fixed(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.decimals$}"))
}

/// The comparison as Markdown for a pull-request comment
/// (`templates/compare.md.j2`, overridable).
pub fn render_markdown(
    c: &Comparison,
    override_dir: Option<&Path>,
) -> Result<String, crate::report::ReportError> {
    let verdicts: Vec<String> = c.rows.iter().map(verdict_text).collect();
    let ctx = serde_json::json!({
        "comparison": c,
        "verdicts": verdicts,
        "regressed": c.regressed(),
    });
    crate::report::render("compare.md", &ctx, override_dir)
}

/// The comparison as an aligned terminal table, regressions first.
pub fn render_text(c: &Comparison) -> String {
    let mut table: Vec<[String; 8]> = vec![[
        "cell".into(),
        "metric".into(),
        "base p50".into(),
        "new p50".into(),
        "ratio [95% CI]".into(),
        "p (BH)".into(),
        "n".into(),
        "verdict".into(),
    ]];
    for r in &c.rows {
        let ci =
            r.ci.map_or_else(String::new, |(lo, hi)| format!(" [{lo:.3}, {hi:.3}]"));
        table.push([
            r.key.clone(),
            r.metric.name().to_string(),
            fixed(r.base_median, 2),
            fixed(r.new_median, 2),
            format!("{}{ci}", fixed(r.ratio, 3)),
            format!("{} ({})", fixed(r.p, 4), fixed(r.p_adjusted, 4)),
            format!("{}/{}", r.n_base, r.n_new),
            verdict_text(r),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = format!("base: {}\nnew:  {}\n\n", c.base, c.new);
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    if !c.quality.is_empty() {
        let _ = writeln!(out, "\nquality (paired by prompt):");
        for q in &c.quality {
            let _ = writeln!(
                out,
                "  {}  {:?}  {} → {} ({:+.3}), p {}, {} pairs: {:?}",
                q.model,
                q.measure,
                fixed(q.base, 3),
                fixed(q.new, 3),
                q.change.unwrap_or(0.0),
                fixed(q.p, 4),
                q.pairs,
                q.verdict
            );
        }
    }
    for key in &c.only_in_base {
        let _ = writeln!(out, "only in base: {key}");
    }
    for key in &c.only_in_new {
        let _ = writeln!(out, "only in new: {key}");
    }
    for w in &c.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(
        out,
        "\n{}",
        if c.regressed() {
            "verdict: REGRESSED (significant after Benjamini–Hochberg at q = 0.05)"
        } else {
            "verdict: no regression"
        }
    );
    out
}

/// A side of a comparison: a results file, a directory holding
/// `results.json`, or `REV` / `REV:path` read from git objects.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is not a dyno results file: {reason}")]
    Parse { what: String, reason: String },
    #[error("`{rev}` is neither a file nor a git revision holding {path}: {reason}")]
    Git {
        rev: String,
        path: String,
        reason: String,
    },
}

fn results_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_path_buf()
    }
}

fn parse(text: &str, what: &str) -> Result<Results, LoadError> {
    serde_json::from_str(text).map_err(|e| LoadError::Parse {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Reads a side given as a path.
pub fn load_path(path: &Path) -> Result<(Results, String), LoadError> {
    let file = results_file(path);
    let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Io {
        path: file.clone(),
        source,
    })?;
    let label = file.display().to_string();
    Ok((parse(&text, &label)?, label))
}

/// The results file named by `path`, the directory to run git in, and the
/// file's name there.
fn git_location(path: &Path) -> (PathBuf, PathBuf, String) {
    let file = results_file(path);
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    (file, dir, name)
}

/// Reads `file` as it was at git revision `rev` (no checkout).
pub fn load_revision(rev: &str, file: &Path) -> Result<(Results, String), LoadError> {
    let (file, dir, name) = git_location(file);
    let git_err = |reason: String| LoadError::Git {
        rev: rev.to_string(),
        path: file.display().to_string(),
        reason,
    };
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .arg("show")
        .arg(format!("{rev}:./{name}"))
        .output()
        .map_err(|e| git_err(e.to_string()))?;
    if !out.status.success() {
        return Err(git_err(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let label = format!("{}@{rev}", file.display());
    let text = String::from_utf8_lossy(&out.stdout);
    Ok((parse(&text, &label)?, label))
}

/// Resolves the command's arguments: `compare NEW` (base = `HEAD` version of
/// NEW), `compare BASE NEW` with paths, or a revision for BASE.
pub fn load_sides(first: &str, second: Option<&str>) -> Result<[(Results, String); 2], LoadError> {
    match second {
        None => {
            let new = load_path(Path::new(first))?;
            let base = load_revision("HEAD", Path::new(first))?;
            Ok([base, new])
        }
        Some(second) => {
            let new = load_path(Path::new(second))?;
            let base = if Path::new(first).exists() {
                load_path(Path::new(first))?
            } else {
                load_revision(first, Path::new(second))?
            };
            Ok([base, new])
        }
    }
}

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
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["log", "--reverse", "--format=%H%x09%s", "--", &name])
        .output()
        .map_err(|source| LoadError::Io {
            path: file.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LoadError::Git {
            rev: "log".into(),
            path: file.display().to_string(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let mut points = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (commit, subject) = line.split_once('\t').unwrap_or((line, ""));
        // A commit that deleted the file, or an older format, is skipped.
        let Ok((doc, _)) = load_revision(commit, &file) else {
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
            subject: subject.to_string(),
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

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Metric, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                format!("unknown metric `{s}`; one of: {}", names.join(", "))
            })
    }
}
