//! Comparing two results documents: per cell and metric, one value per
//! measured round, through `stats::compare_samples`, with Benjamini–Hochberg
//! across everything for the exit code. Reads results (files or git
//! objects); never runs a suite.

mod history;
mod quality;
mod render;
mod sides;

use serde::Serialize;

pub use history::{HistoryPoint, history, history_svg, render_history};
pub use quality::{CHECKS_THRESHOLD, QualityMeasure, QualityRow, SCORE_THRESHOLD, compare_quality};
pub use render::{render_markdown, render_text};
pub use sides::{LoadError, load_path, load_revision, load_sides};

use crate::measure::stats::{self, Verdict};
use crate::results::{Results, Sample, Status};
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

fn verdict_rank(v: Verdict) -> u8 {
    match v {
        Verdict::Regressed => 0,
        Verdict::Improved => 1,
        Verdict::Inconclusive => 2,
        Verdict::Unchanged => 3,
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
    if !base.environment.same_machine(&new.environment) {
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
