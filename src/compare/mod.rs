//! Comparing two results documents, one value per measured round: per
//! model and metric, pooled over prompts (`stratified::compare_strata`),
//! with Benjamini–Hochberg across the model rows for the exit code; per
//! cell and metric (`stats::compare_samples`) for the detail. Reads
//! results (files or git objects); never runs a suite.

mod history;
mod machines;
mod quality;
mod render;
mod sides;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use history::{
    History, HistoryPoint, history, history_svg, history_with_skipped, render_history,
};
pub use machines::Machines;

pub use quality::{CHECKS_THRESHOLD, QualityMeasure, QualityRow, SCORE_THRESHOLD, compare_quality};
pub use render::{render_html, render_markdown, render_text};
pub use sides::{SideError, read_path, read_revision, read_sides};

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::measure::stats::{self, Verdict};
use crate::measure::stratified;
use crate::results::{Results, Sample, Status};
use crate::suite::CompareSettings;

/// A metric compared across runs. The reasoning metrics have rows only
/// where a side's requests reasoned: the reasoning time and the time to
/// the first reasoning token are judged like TTFT (its noise and floor),
/// reasoning tokens like E2E, whose time they make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    TtftMs,
    E2eMs,
    TpotMs,
    DecodeTps,
    TtfoReasoningMs,
    ReasoningMs,
    ReasoningTokens,
}

impl Metric {
    pub(crate) const ALL: [Metric; 7] = [
        Metric::TtftMs,
        Metric::E2eMs,
        Metric::TpotMs,
        Metric::DecodeTps,
        Metric::TtfoReasoningMs,
        Metric::ReasoningMs,
        Metric::ReasoningTokens,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::TtftMs => "ttft_ms",
            Metric::E2eMs => "e2e_ms",
            Metric::TpotMs => "tpot_ms",
            Metric::DecodeTps => "decode_tps",
            Metric::TtfoReasoningMs => "ttfo_reasoning_ms",
            Metric::ReasoningMs => "reasoning_ms",
            Metric::ReasoningTokens => "reasoning_tokens",
        }
    }

    fn value(self, s: &Sample) -> Option<f64> {
        match self {
            Metric::TtftMs => s.ttft_ms,
            Metric::E2eMs => s.e2e_ms,
            Metric::TpotMs => s.tpot_ms,
            Metric::DecodeTps => s.decode_tps,
            Metric::TtfoReasoningMs => s.ttfo_reasoning_ms,
            Metric::ReasoningMs => s.reasoning.as_ref()?.reasoning_ms,
            Metric::ReasoningTokens => Some(s.reasoning.as_ref()?.tokens? as f64),
        }
    }

    fn higher_is_better(self) -> bool {
        self == Metric::DecodeTps
    }

    /// This metric's absolute noise floor in `settings` (times only).
    pub fn floor_ms(self, settings: &CompareSettings) -> Option<f64> {
        match self {
            Metric::TtftMs | Metric::TtfoReasoningMs | Metric::ReasoningMs => {
                Some(settings.floor_ttft_ms)
            }
            Metric::E2eMs => Some(settings.floor_e2e_ms),
            Metric::TpotMs => Some(settings.floor_tpot_ms),
            Metric::DecodeTps | Metric::ReasoningTokens => None,
        }
    }

    /// This metric's noise threshold in `settings`.
    pub fn noise(self, settings: &CompareSettings) -> f64 {
        match self {
            Metric::TtftMs | Metric::TtfoReasoningMs | Metric::ReasoningMs => settings.noise_ttft,
            Metric::E2eMs | Metric::ReasoningTokens => settings.noise_e2e,
            Metric::TpotMs => settings.noise_tpot,
            Metric::DecodeTps => settings.noise_tokens_per_s,
        }
    }
}

/// Significance level for history's change points.
pub(crate) const ALPHA: f64 = 0.05;

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
    /// Bootstrap 95% interval of the p95 ratio new/base (computed from the
    /// bootstrap distributions, no resampling), only when
    /// both sides have enough samples (59) to bound a p95.
    pub p95_ratio_ci: Option<(f64, f64)>,
    /// Measured (on either side) while other processes kept more than
    /// `noisy_cores` busy.
    pub noisy: bool,
    /// Model rows: the prompts pooled (strata of the test).
    pub prompts: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base: String,
    pub new: String,
    /// The false discovery rate of the Benjamini–Hochberg correction (the
    /// suite's `compare.alpha`).
    pub alpha: f64,
    /// One row per model (and variant and axis values) × metric, pooled
    /// over its prompts; these decide the exit code.
    pub models: Vec<Row>,
    /// One row per cell × metric: the detail.
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
        self.models.iter().any(|r| r.gates)
            || self.quality.iter().any(|q| q.verdict == Verdict::Regressed)
    }
}

fn verdict_rank(v: Verdict) -> u8 {
    match v {
        Verdict::Regressed => 0,
        Verdict::Improved => 1,
        Verdict::Machine => 2,
        Verdict::Noisy => 3,
        Verdict::Inconclusive => 4,
        Verdict::Unchanged => 5,
    }
}

/// The warm, measured, successful samples of a results document, by cell
/// key, in cell order: read once, so a comparison is linear in samples.
struct Cells<'a> {
    order: Vec<&'a str>,
    by_key: BTreeMap<&'a str, Vec<&'a Sample>>,
}

impl<'a> Cells<'a> {
    fn of(doc: &'a Results) -> Cells<'a> {
        let mut by_key: BTreeMap<&str, Vec<&Sample>> = doc
            .cells
            .iter()
            .map(|c| (c.key.as_str(), Vec::new()))
            .collect();
        for s in doc
            .samples
            .iter()
            .filter(|s| crate::results::is_warm_measured(s) && s.status == Status::Ok)
        {
            if let Some(cell) = by_key.get_mut(s.key.as_str()) {
                cell.push(s);
            }
        }
        Cells {
            order: doc.cells.iter().map(|c| c.key.as_str()).collect(),
            by_key,
        }
    }

    fn values(&self, key: &str, metric: Metric) -> Vec<f64> {
        self.by_key
            .get(key)
            .map(|samples| samples.iter().filter_map(|s| metric.value(s)).collect())
            .unwrap_or_default()
    }

    /// Whether any sample of the cell was measured while others kept more
    /// than `cores` busy.
    fn noisy(&self, key: &str, cores: f64) -> bool {
        self.by_key.get(key).is_some_and(|samples| {
            samples
                .iter()
                .any(|s| s.host_busy_cores.is_some_and(|b| b > cores))
        })
    }

    /// The model id of a cell.
    fn model(&self, key: &str) -> Option<&str> {
        Some(self.by_key.get(key)?.first()?.model.as_str())
    }

    /// The model (with its variant and axis values, without the prompt) a
    /// cell belongs to: `smollm2 [threads=2]`; a load point's cell is a
    /// group of its own, `smollm2 [concurrency=4]`, so every load point has
    /// its model row.
    fn group(&self, key: &str) -> Option<String> {
        let s = self.by_key.get(key)?.first()?;
        // `model/prompt[labels]`: ids hold no `[`; a load point's prompt is
        // `*` (its samples carry the prompts they drew).
        let after_model = s.key.strip_prefix(&format!("{}/", s.model))?;
        let rest = &after_model[after_model.find('[').unwrap_or(after_model.len())..];
        Some(
            match rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                Some(labels) => format!("{} [{labels}]", s.model),
                None => s.model.clone(),
            },
        )
    }
}

/// The compare settings recorded with a run's suite (defaults when absent).
pub(crate) fn settings_of(doc: &Results) -> CompareSettings {
    doc.suite
        .resolved
        .get("compare")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// The noise band of `metric` around `base` values: the relative band, or
/// the absolute floor where that is wider (times only).
fn band(metric: Metric, settings: &CompareSettings, base: &[f64]) -> f64 {
    let relative = metric.noise(settings);
    match (metric.floor_ms(settings), stats::percentile(base, 0.5)) {
        (Some(floor), Some(level)) => stratified::effective_noise(relative, floor, level),
        _ => relative,
    }
}

/// `stats` orients ratios so that above 1 is worse; rows give them in the
/// metric's own direction (new / base).
fn oriented(c: &stats::Comparison, metric: Metric) -> (Option<f64>, Option<(f64, f64)>) {
    let flip = |r: f64| {
        if metric.higher_is_better() {
            1.0 / r
        } else {
            r
        }
    };
    let ci = c.ci.map(|(lo, hi)| {
        let (a, b) = (flip(lo), flip(hi));
        (a.min(b), a.max(b))
    });
    (c.ratio.map(flip), ci)
}

/// Where a row's values were measured: on a busy machine (either side),
/// on two different machines (without `--across-machines`).
#[derive(Debug, Clone, Copy)]
struct Conditions {
    noisy: bool,
    machine: bool,
}

/// A row from a test's outcome; MACHINE replaces a shift between two
/// machines, NOISY one measured on a busy machine.
fn row(
    key: String,
    metric: Metric,
    c: &stats::Comparison,
    b: &[f64],
    n: &[f64],
    conditions: Conditions,
) -> Row {
    let (ratio, ci) = oriented(c, metric);
    let Conditions { noisy, machine } = conditions;
    let verdict = match c.verdict {
        Verdict::Regressed | Verdict::Improved if machine => Verdict::Machine,
        Verdict::Regressed | Verdict::Improved if noisy => Verdict::Noisy,
        other => other,
    };
    let set_aside = matches!(verdict, Verdict::Noisy | Verdict::Machine);
    Row {
        key,
        metric,
        base_median: stats::percentile(b, 0.5),
        new_median: stats::percentile(n, 0.5),
        verdict,
        confirmed: c.confirmed && !set_aside,
        ratio,
        ci,
        p: c.p,
        p_adjusted: None,
        n_base: c.n_base,
        n_new: c.n_new,
        gates: false,
        base_p95: stats::percentile(b, 0.95),
        new_p95: stats::percentile(n, 0.95),
        p95_ratio_ci: None,
        noisy,
        prompts: None,
    }
}

/// Compares `new` against `base`, with the new run's suite settings: every
/// common cell (detail), and every model (and variant, and axis values)
/// pooled over its prompts with van Elteren's stratified test, whose
/// verdicts (after Benjamini–Hochberg across models × metrics) decide the
/// exit code. Cells, models and quality are computed on every core; the
/// rows come out in the same order whatever the number of cores. Shifts of
/// a model whose machine differs between the runs are MACHINE
/// ([`compare_across`] gates them anyway).
pub fn compare(base: &Results, new: &Results, base_label: &str, new_label: &str) -> Comparison {
    compare_across(base, new, base_label, new_label, false)
}

/// [`compare`]; with `across_machines`, runs on different machines are
/// compared like any others (their shifts are verdicts and gate).
pub(crate) fn compare_across(
    base: &Results,
    new: &Results,
    base_label: &str,
    new_label: &str,
    across_machines: bool,
) -> Comparison {
    let settings = settings_of(new);
    let alpha = settings.alpha;
    let (bc, nc) = rayon::join(|| Cells::of(base), || Cells::of(new));
    let machines = Machines::of(base, new);
    let sides = Sides {
        base: &bc,
        new: &nc,
        settings: &settings,
        machines: (!across_machines).then_some(&machines),
    };
    let common: Vec<&str> = bc
        .order
        .iter()
        .copied()
        .filter(|k| nc.by_key.contains_key(*k))
        .collect();
    // group → its common cells, in order.
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for &key in &common {
        if let Some(group) = bc.group(key).or_else(|| nc.group(key)) {
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, keys)) => keys.push(key),
                None => groups.push((group, vec![key])),
            }
        }
    }
    let ((mut rows, mut models), quality) = rayon::join(
        || {
            rayon::join(
                || {
                    common
                        .par_iter()
                        .flat_map_iter(|key| sides.cell_rows(key))
                        .collect::<Vec<Row>>()
                },
                || {
                    groups
                        .par_iter()
                        .flat_map_iter(|(group, keys)| sides.model_rows(group, keys))
                        .collect::<Vec<Row>>()
                },
            )
        },
        || compare_quality(base, new, alpha),
    );
    adjust(&mut rows, alpha, false);
    adjust(&mut models, alpha, true);
    rows.sort_by_key(|r| verdict_rank(r.verdict));
    let missing = |from: &Cells<'_>, other: &Cells<'_>| -> Vec<String> {
        from.order
            .iter()
            .filter(|k| !other.by_key.contains_key(*k))
            .map(|k| (*k).to_string())
            .collect()
    };
    Comparison {
        base: base_label.to_string(),
        new: new_label.to_string(),
        alpha,
        warnings: warnings(
            base,
            new,
            &models,
            &rows,
            &settings,
            &machines,
            across_machines,
        ),
        models,
        rows,
        quality,
        only_in_base: missing(&bc, &nc),
        only_in_new: missing(&nc, &bc),
    }
}

/// Both runs' cells with the settings they are compared under.
struct Sides<'a> {
    base: &'a Cells<'a>,
    new: &'a Cells<'a>,
    settings: &'a CompareSettings,
    /// What differs between the runs' machines; `None` when they are
    /// compared across machines as asked.
    machines: Option<&'a Machines>,
}

impl Sides<'_> {
    fn noisy(&self, key: &str) -> bool {
        let cores = self.settings.noisy_cores;
        self.base.noisy(key, cores) || self.new.noisy(key, cores)
    }

    /// Whether the cell's model ran on different machines (or engines).
    fn machine(&self, key: &str) -> bool {
        self.machines.is_some_and(|m| {
            self.base
                .model(key)
                .or_else(|| self.new.model(key))
                .is_some_and(|model| m.differ_for(model))
        })
    }

    fn conditions(&self, keys: &[&str]) -> Conditions {
        Conditions {
            noisy: keys.iter().any(|k| self.noisy(k)),
            machine: keys.iter().any(|k| self.machine(k)),
        }
    }

    /// The detail rows of one common cell, one per metric it holds.
    fn cell_rows(&self, key: &str) -> Vec<Row> {
        let alpha = self.settings.alpha;
        let conditions = self.conditions(&[key]);
        let mut rows = Vec::new();
        for metric in Metric::ALL {
            let (b, n) = (self.base.values(key, metric), self.new.values(key, metric));
            if b.is_empty() && n.is_empty() {
                continue;
            }
            let tau = band(metric, self.settings, &b);
            let c = stats::compare_samples(&b, &n, metric.higher_is_better(), tau, alpha);
            let mut r = row(key.to_string(), metric, &c, &b, &n, conditions);
            r.p95_ratio_ci = (stats::percentile_is_bounded(b.len(), 0.95)
                && stats::percentile_is_bounded(n.len(), 0.95))
            .then(|| stats::exact_quantile_ratio_ci(&b, &n, 0.95, alpha))
            .flatten();
            rows.push(r);
        }
        rows
    }

    /// The rows of one model (with its variant and axis values), pooled over
    /// the prompts of its common cells `keys`, one per metric.
    fn model_rows(&self, group: &str, keys: &[&str]) -> Vec<Row> {
        let alpha = self.settings.alpha;
        let conditions = self.conditions(keys);
        let mut rows = Vec::new();
        for metric in Metric::ALL {
            let strata: Vec<(Vec<f64>, Vec<f64>)> = keys
                .iter()
                .map(|k| (self.base.values(k, metric), self.new.values(k, metric)))
                .filter(|(b, n)| !b.is_empty() || !n.is_empty())
                .collect();
            if strata.is_empty() {
                continue;
            }
            let pooled_base: Vec<f64> = strata.iter().flat_map(|(b, _)| b.clone()).collect();
            let pooled_new: Vec<f64> = strata.iter().flat_map(|(_, n)| n.clone()).collect();
            let tau = band(metric, self.settings, &pooled_base);
            let c = stratified::compare_strata(&strata, metric.higher_is_better(), tau, alpha);
            let mut r = row(
                group.to_string(),
                metric,
                &c.comparison,
                &pooled_base,
                &pooled_new,
                conditions,
            );
            r.prompts = Some(c.strata);
            rows.push(r);
        }
        rows
    }
}

/// Benjamini–Hochberg across `rows`; with `gating`, a REGRESSED row that
/// stays significant decides the exit code.
fn adjust(rows: &mut [Row], alpha: f64, gating: bool) {
    let tested: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].p.is_some()).collect();
    let p_values: Vec<f64> = tested.iter().filter_map(|&i| rows[i].p).collect();
    let bh = stats::benjamini_hochberg(&p_values, alpha);
    for (j, &i) in tested.iter().enumerate() {
        rows[i].p_adjusted = bh.adjusted.get(j).copied();
        rows[i].gates = gating
            && rows[i].verdict == Verdict::Regressed
            && bh.rejected.get(j).copied().unwrap_or(false);
    }
}

fn warnings(
    base: &Results,
    new: &Results,
    models: &[Row],
    rows: &[Row],
    settings: &CompareSettings,
    machines: &Machines,
    across_machines: bool,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let set_aside = models
        .iter()
        .chain(rows)
        .filter(|r| r.verdict == Verdict::Machine)
        .count();
    if let Some(line) = machines.warning(across_machines, set_aside) {
        warnings.push(line);
    } else if !base.environment.same_machine(&new.environment) {
        warnings.push(format!(
            "the runs come from machines with the same CPU and cores but not the same memory or OS: base {} MB, {}; new {} MB, {}",
            base.environment.ram_mb,
            base.environment.os,
            new.environment.ram_mb,
            new.environment.os
        ));
    }
    let noisy = models
        .iter()
        .chain(rows)
        .filter(|r| r.verdict == Verdict::Noisy)
        .count();
    if noisy > 0 {
        warnings.push(format!(
            "{noisy} rows were measured while other processes kept more than {} cores busy: they are NOISY, not REGRESSED or IMPROVED, and do not fail the comparison; run again on a quiet machine",
            settings.noisy_cores
        ));
    }
    if rows
        .iter()
        .any(|r| r.n_base < stats::MIN_ROUNDS || r.n_new < stats::MIN_ROUNDS)
    {
        warnings.push(format!(
            "cells with fewer than {} rounds a side are INCONCLUSIVE on their own; the model rows pool every prompt",
            stats::MIN_ROUNDS
        ));
    }
    warnings
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
