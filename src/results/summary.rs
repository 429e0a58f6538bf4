//! Aggregates of a run's samples: per-cell distributions, one summary row
//! per model (and variant) pooled over prompts, and the highlights. Pure
//! functions of the samples; never reads or writes files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{EngineBuild, ErrorKind, ModelRun, ReasoningStats, Sample, Status};
use crate::measure::stats;

/// Distribution of one metric over a cell's measured rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Dist {
    #[serde(flatten)]
    pub summary: stats::Summary,
    /// Whether n is large enough for a 95% one-sided bound on p95.
    pub p95_bounded: bool,
}

impl Dist {
    /// The `q`-quantile where the summary holds it (0.5, 0.9, 0.95, 0.99).
    pub fn at(&self, q: f64) -> Option<f64> {
        let s = &self.summary;
        [(0.5, s.p50), (0.9, s.p90), (0.95, s.p95), (0.99, s.p99)]
            .into_iter()
            .find(|(level, _)| (level - q).abs() < 1e-9)
            .map(|(_, v)| v)
    }

    pub fn of(values: &[f64]) -> Option<Dist> {
        let summary = stats::summarize(values)?;
        Some(Dist {
            p95_bounded: stats::percentile_is_bounded(summary.n, 0.95),
            summary,
        })
    }
}

/// Aggregates of one cell (model × prompt × axes) over its measured rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CellStats {
    pub key: String,
    pub model: String,
    pub prompt: String,
    pub requests: usize,
    pub errors: BTreeMap<ErrorKind, usize>,
    pub ttft_ms: Option<Dist>,
    pub e2e_ms: Option<Dist>,
    pub tpot_ms: Option<Dist>,
    pub decode_tps: Option<Dist>,
    pub output_tokens: Option<Dist>,
    /// Server-reported decode speed (llama.cpp `timings.predicted_per_second`).
    pub server_decode_tps: Option<Dist>,
    /// The server variant (`threads=2`), when the server declares variants.
    #[serde(default)]
    pub variant: Option<super::VariantLabel>,
    /// The matrix axis values (`stream=false`), when the suite has axes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axes: Option<String>,
    /// Highest resident memory of the server's process tree during the
    /// cell's requests, in MB.
    #[serde(default)]
    pub rss_peak_mb: Option<f64>,
    /// Median resident memory during the cell's requests (median of the
    /// per-request medians), in MB.
    #[serde(default)]
    pub rss_median_mb: Option<f64>,
    /// Server CPU time per output token, in milliseconds.
    #[serde(default)]
    pub cpu_ms_per_token: Option<f64>,
    /// Most cores other processes kept busy during one of the cell's
    /// requests (`measure::noise`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_busy_cores: Option<f64>,
    /// Why the cell's requests failed: each distinct error (kind and first
    /// line of its message) with how many requests it ended, warmup and
    /// cold requests included; most frequent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// Requests of the cell that the server turned away and dyno sent
    /// again (`retry:`), warmup and cold requests included.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retried: usize,
    /// Σ cached ÷ Σ prompt tokens of the cell's requests, where the server
    /// reported its prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hit_rate: Option<f64>,
    /// The reasoning figures of the cell's requests that reasoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningStats>,
    /// Schema conformance: the share of the cell's successful outputs
    /// that passed their `json_schema` checks, over those that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema_conformance: Option<f64>,
}

/// The share of `samples` whose `json_schema` checks all passed, over
/// those with such a check (answer or reasoning); `None` without any.
fn json_schema_conformance<'a>(samples: impl Iterator<Item = &'a Sample>) -> Option<f64> {
    let verdicts: Vec<bool> = samples
        .filter_map(|s| {
            let mut schema = s
                .checks
                .iter()
                .filter(|c| c.check.ends_with("json_schema"))
                .peekable();
            schema.peek()?;
            Some(schema.all(|c| c.passed))
        })
        .collect();
    (!verdicts.is_empty())
        .then(|| verdicts.iter().filter(|v| **v).count() as f64 / verdicts.len() as f64)
}

/// One distinct error of a cell's requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Failure {
    pub kind: ErrorKind,
    /// The first line of the error message.
    pub message: String,
    /// Requests that ended with it.
    pub count: usize,
}

/// The distinct errors of `samples` (kind and message first line), most
/// frequent first, then in order of first appearance.
fn failures<'a>(samples: impl Iterator<Item = &'a Sample>) -> Vec<Failure> {
    let mut found: Vec<Failure> = Vec::new();
    for s in samples.filter(|s| s.status == Status::Error) {
        let kind = s.error_kind.unwrap_or(ErrorKind::ServerError);
        let message = crate::text::first_line(s.error.as_deref().unwrap_or("")).to_string();
        match found
            .iter_mut()
            .find(|f| f.kind == kind && f.message == message)
        {
            Some(f) => f.count += 1,
            None => found.push(Failure {
                kind,
                message,
                count: 1,
            }),
        }
    }
    // A stable sort keeps first appearance among equal counts.
    found.sort_by_key(|f| std::cmp::Reverse(f.count));
    found
}

/// Whether a sample counts in warm statistics: measured (not warmup) and
/// not the cold first request of a server launch.
pub fn is_warm_measured(s: &Sample) -> bool {
    !s.warmup && !s.cold
}

/// Aggregates every cell of `samples` (warmup and cold requests excluded),
/// in first-seen order.
pub fn aggregate(samples: &[Sample]) -> Vec<CellStats> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_key: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for s in samples.iter().filter(|s| is_warm_measured(s)) {
        by_key
            .entry(&s.key)
            .or_insert_with(|| {
                order.push(&s.key);
                Vec::new()
            })
            .push(s);
    }
    // Failed requests by cell, warmup and cold ones included.
    let mut failed: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.status == Status::Error) {
        failed.entry(&s.key).or_default().push(s);
    }
    let mut retried: BTreeMap<&str, usize> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.attempts > 1) {
        *retried.entry(&s.key).or_default() += 1;
    }
    order
        .into_iter()
        .filter_map(|key| {
            let cell = by_key.get(key)?;
            let first = cell.first()?;
            let ok: Vec<&&Sample> = cell.iter().filter(|s| s.status == Status::Ok).collect();
            let dist = |f: &dyn Fn(&Sample) -> Option<f64>| {
                Dist::of(&ok.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
            };
            let mut errors = BTreeMap::new();
            for s in cell {
                if let Some(kind) = s.error_kind {
                    *errors.entry(kind).or_insert(0) += 1;
                }
            }
            Some(CellStats {
                key: key.to_string(),
                model: first.model.clone(),
                prompt: first.prompt.clone(),
                requests: cell.len(),
                errors,
                ttft_ms: dist(&|s| s.ttft_ms),
                e2e_ms: dist(&|s| s.e2e_ms),
                tpot_ms: dist(&|s| s.tpot_ms),
                decode_tps: dist(&|s| s.decode_tps),
                output_tokens: dist(&|s| s.output_tokens.map(|t| t as f64)),
                server_decode_tps: dist(&|s| server_decode_tps(s)),
                variant: first.variant.clone(),
                axes: first.axes.clone(),
                rss_peak_mb: ok.iter().filter_map(|s| s.rss_peak_mb).reduce(f64::max),
                rss_median_mb: stats::percentile(
                    &ok.iter()
                        .filter_map(|s| s.rss_median_mb)
                        .collect::<Vec<_>>(),
                    0.5,
                ),
                cpu_ms_per_token: per_token(ok.iter().map(|s| (s.cpu_ms, s.output_tokens))),
                host_busy_cores: cell
                    .iter()
                    .filter_map(|s| s.host_busy_cores)
                    .reduce(f64::max),
                failures: failures(failed.get(key).into_iter().flatten().copied()),
                retried: retried.get(key).copied().unwrap_or(0),
                reasoning: ReasoningStats::of(ok.iter().map(|s| **s)),
                json_schema_conformance: json_schema_conformance(ok.iter().map(|s| **s)),
                cache_hit_rate: super::cache_hit_rate(ok.iter().map(|s| **s)),
            })
        })
        .collect()
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes fields by reference
fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn server_decode_tps(s: &Sample) -> Option<f64> {
    s.server_timings
        .as_ref()
        .and_then(|t| t.get("predicted_per_second").copied())
}

/// Σ value / Σ tokens over the pairs where both are known; `None` without tokens.
fn per_token(pairs: impl Iterator<Item = (Option<f64>, Option<u64>)>) -> Option<f64> {
    let (total, tokens) = pairs
        .filter_map(|(v, t)| Some((v?, t?)))
        .fold((0.0, 0u64), |(a, n), (v, t)| (a + v, n + t));
    (tokens > 0).then(|| total / tokens as f64)
}

/// Where energy figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnergySource {
    /// Package energy counters read around each request.
    Rapl,
    /// The suite's declared `energy.watts` × each request's wall time.
    Declared,
}

/// One model in one server variant and one combination of matrix axis
/// values (streaming and not are never pooled), over all its prompts: the
/// report's summary row. Warm figures pool the measured, non-cold requests of every
/// prompt; cold figures are the first request of each server launch
/// (warmup or not: a warmup round exists to absorb exactly that request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelSummary {
    pub model: String,
    pub variant: Option<super::VariantLabel>,
    /// The matrix axis values (`stream=false`), when the suite has axes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axes: Option<String>,
    /// `model`, `model [variant]` or `model [variant,axes]`.
    pub label: String,
    /// Measured requests and how many failed.
    pub requests: usize,
    pub errors: usize,
    pub ttft_ms: Option<Dist>,
    pub e2e_ms: Option<Dist>,
    pub tpot_ms: Option<Dist>,
    pub decode_tps: Option<Dist>,
    pub output_tokens: Option<Dist>,
    pub server_decode_tps: Option<Dist>,
    /// Client decode tok/s p50 ÷ server decode tok/s p50: near 1 when the
    /// client measures the model, well below 1 when the client is slow.
    pub decode_ratio: Option<f64>,
    pub cold_ttft_ms: Option<Dist>,
    pub cold_e2e_ms: Option<Dist>,
    /// Spawn → ready, median over launches.
    pub load_ms: Option<f64>,
    pub launches: usize,
    /// Resident memory once loaded and idle (median over launches), peak
    /// (highest over launches) and median while serving, in MB.
    pub rss_idle_mb: Option<f64>,
    pub rss_peak_mb: Option<f64>,
    pub rss_median_mb: Option<f64>,
    /// Server CPU time per output token (warm requests), in milliseconds.
    pub cpu_ms_per_token: Option<f64>,
    /// Size of the model's files on disk, in MB and bytes.
    pub model_file_mb: Option<f64>,
    pub model_file_bytes: Option<u64>,
    pub gpu_memory_mb: Option<f64>,
    pub gpu_utilization_pct: Option<f64>,
    pub energy_source: Option<EnergySource>,
    pub joules_per_token: Option<f64>,
    /// Electricity cost per million output tokens, in `currency`.
    pub cost_per_million_tokens: Option<f64>,
    pub currency: Option<String>,
    pub license: Option<String>,
    pub capabilities: Vec<String>,
    /// The engine its launches ran, as the server reported it (the first
    /// launch's; every launch's is in `models[].launches`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineBuild>,
    pub status: Status,
    /// Context depth, prompt processing and the prompt cache.
    #[serde(flatten)]
    pub prompts: super::PromptFigures,
    #[serde(flatten)]
    pub quality: QualitySummary,
    /// The reasoning figures of the warm requests that reasoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningStats>,
}

/// Quality of a model's measured, successful outputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QualitySummary {
    /// Weighted share of passed checks, over every check of every output.
    pub check_pass_rate: Option<f64>,
    /// Outputs the checks ran on.
    pub checked: usize,
    /// Mean judge score over the outputs with a score, and how many had one.
    pub judge_score_mean: Option<f64>,
    pub judge_n: usize,
    /// Judged outputs whose reply held no score inside the scale.
    pub judge_unparseable: usize,
    /// Mean human rating and how many outputs have one.
    pub human_score_mean: Option<f64>,
    pub human_n: usize,
}

impl QualitySummary {
    /// Over `samples`: the measured, successful ones count.
    pub fn of<'a>(samples: impl Iterator<Item = &'a Sample>) -> QualitySummary {
        let rated: Vec<&Sample> = samples
            .filter(|s| !s.warmup && s.status == Status::Ok)
            .collect();
        let checks: Vec<crate::quality::CheckResult> = rated
            .iter()
            .flat_map(|s| s.checks.iter().cloned())
            .collect();
        let judged: Vec<f64> = rated
            .iter()
            .filter_map(|s| s.judge.as_ref()?.score)
            .collect();
        let human: Vec<f64> = rated.iter().filter_map(|s| s.human_score).collect();
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        QualitySummary {
            check_pass_rate: crate::quality::pass_rate(&checks),
            checked: rated.iter().filter(|s| !s.checks.is_empty()).count(),
            judge_score_mean: mean(&judged),
            judge_n: judged.len(),
            judge_unparseable: rated
                .iter()
                .filter(|s| s.judge.as_ref().is_some_and(|j| j.score.is_none()))
                .count(),
            human_score_mean: mean(&human),
            human_n: human.len(),
        }
    }
}

impl ModelSummary {
    /// Whether `sample` is one of this row's requests.
    pub fn holds(&self, sample: &Sample) -> bool {
        sample.model == self.model && sample.variant == self.variant && sample.axes == self.axes
    }
}

/// Recomputes the quality part of every summary from the samples (after
/// human ratings were merged).
pub fn refresh_quality(summaries: &mut [ModelSummary], samples: &[Sample]) {
    for m in summaries {
        m.quality = QualitySummary::of(samples.iter().filter(|s| m.holds(s)));
    }
}

/// The axis values among a run's samples, first seen first; one `None`
/// without axes (or without samples).
fn axes_of(samples: &[&Sample]) -> Vec<Option<String>> {
    let mut seen: Vec<Option<String>> = Vec::new();
    for s in samples {
        if !seen.contains(&s.axes) {
            seen.push(s.axes.clone());
        }
    }
    if seen.is_empty() {
        seen.push(None);
    }
    seen
}

/// Declared power and price (the suite's `energy:` section).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergySettings {
    pub watts: Option<f64>,
    pub price_per_kwh: Option<f64>,
    pub currency: Option<String>,
    pub ignore_rapl: bool,
}

/// The summary rows of every model run, in run order: one per combination
/// of axis values its samples have (one without axes).
pub fn summarize_models(
    runs: &[ModelRun],
    samples: &[Sample],
    energy: &EnergySettings,
) -> Vec<ModelSummary> {
    runs.iter()
        .flat_map(|run| {
            let of_run: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.model == run.id && s.variant == run.variant)
                .collect();
            axes_of(&of_run)
                .into_iter()
                .map(move |axes| (run, axes))
                .collect::<Vec<_>>()
        })
        .map(|(run, axes)| {
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.model == run.id && s.variant == run.variant && s.axes == axes)
                .collect();
            let measured: Vec<&Sample> = mine.iter().copied().filter(|s| !s.warmup).collect();
            let warm: Vec<&Sample> = measured
                .iter()
                .copied()
                .filter(|s| !s.cold && s.status == Status::Ok)
                .collect();
            let cold: Vec<&Sample> = mine
                .iter()
                .copied()
                .filter(|s| s.cold && s.status == Status::Ok)
                .collect();
            let dist = |of: &[&Sample], f: &dyn Fn(&Sample) -> Option<f64>| {
                Dist::of(&of.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
            };
            let decode_tps = dist(&warm, &|s| s.decode_tps);
            let server_decode = dist(&warm, &|s| server_decode_tps(s));
            let (energy_source, joules_per_token) = if warm.iter().any(|s| s.energy_j.is_some()) {
                (
                    Some(EnergySource::Rapl),
                    per_token(warm.iter().map(|s| (s.energy_j, s.output_tokens))),
                )
            } else if let Some(watts) = energy.watts {
                (
                    Some(EnergySource::Declared),
                    per_token(
                        warm.iter()
                            .map(|s| (s.e2e_ms.map(|ms| watts * ms / 1000.0), s.output_tokens)),
                    ),
                )
            } else {
                (None, None)
            };
            let launches = &run.launches;
            let prompts = super::PromptFigures::of(axes.as_deref(), &warm);
            let median = |values: Vec<f64>| stats::summarize(&values).map(|s| s.p50);
            ModelSummary {
                model: run.id.clone(),
                variant: run.variant.clone(),
                label: super::row_label(&run.id, run.variant.as_deref(), axes.as_deref()),
                axes,
                requests: measured.len(),
                errors: measured
                    .iter()
                    .filter(|s| s.status == Status::Error)
                    .count(),
                ttft_ms: dist(&warm, &|s| s.ttft_ms),
                e2e_ms: dist(&warm, &|s| s.e2e_ms),
                tpot_ms: dist(&warm, &|s| s.tpot_ms),
                decode_ratio: decode_tps
                    .as_ref()
                    .zip(server_decode.as_ref())
                    .filter(|(_, server)| server.summary.p50 > 0.0)
                    .map(|(client, server)| client.summary.p50 / server.summary.p50),
                decode_tps,
                server_decode_tps: server_decode,
                output_tokens: dist(&warm, &|s| s.output_tokens.map(|t| t as f64)),
                cold_ttft_ms: dist(&cold, &|s| s.ttft_ms),
                cold_e2e_ms: dist(&cold, &|s| s.e2e_ms),
                load_ms: median(launches.iter().map(|l| l.load_ms).collect()),
                launches: launches.len(),
                rss_idle_mb: median(launches.iter().filter_map(|l| l.rss_idle_mb).collect()),
                rss_peak_mb: launches
                    .iter()
                    .filter_map(|l| l.rss_peak_mb)
                    .reduce(f64::max),
                rss_median_mb: median(launches.iter().filter_map(|l| l.rss_median_mb).collect()),
                cpu_ms_per_token: per_token(warm.iter().map(|s| (s.cpu_ms, s.output_tokens))),
                model_file_mb: run.footprint.as_ref().map(|f| f.mb),
                model_file_bytes: run.footprint.as_ref().map(|f| f.bytes),
                gpu_memory_mb: run.gpu.as_ref().and_then(|g| g.memory_used_mb),
                gpu_utilization_pct: run.gpu.as_ref().and_then(|g| g.utilization_pct),
                energy_source,
                joules_per_token,
                cost_per_million_tokens: joules_per_token
                    .zip(energy.price_per_kwh)
                    .map(|(j, price)| j * 1e6 / 3.6e6 * price),
                currency: energy.currency.clone(),
                license: run.license.clone(),
                capabilities: run.capabilities.clone(),
                engine: launches.iter().find_map(|l| l.engine.clone()),
                status: run.status,
                prompts,
                quality: QualitySummary::of(mine.iter().copied()),
                reasoning: ReasoningStats::of(warm.iter().copied()),
            }
        })
        .collect()
}

/// The best model on one metric, against the runner-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Highlight {
    /// What was compared, e.g. `fastest TTFT`.
    pub title: String,
    /// The metric in the summary row (`ttft_ms`, `decode_tps`, ...).
    pub metric: String,
    /// The unit the values are printed in (`ms`, `tok/s`, `MB`, ...).
    pub unit: String,
    pub best: String,
    pub best_value: f64,
    pub runner_up: Option<String>,
    pub runner_up_value: Option<f64>,
    /// How many times better the best is (≥ 1).
    pub margin: Option<f64>,
    /// Two-sided Mann–Whitney U p-value between the two models' requests.
    pub p: Option<f64>,
    /// p < 0.05: the difference is more than request-to-request noise.
    pub distinguishable: Option<bool>,
}

/// A metric a highlight ranks models by.
struct Ranked {
    title: &'static str,
    metric: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    /// Quality counts every measured output; speed only warm requests.
    quality: bool,
    value: fn(&ModelSummary) -> Option<f64>,
    per_request: fn(&Sample) -> Option<f64>,
}

const RANKED: [Ranked; 5] = [
    Ranked {
        title: "fastest time to first token",
        metric: "ttft_ms",
        unit: "ms",
        higher_is_better: false,
        quality: false,
        value: |m| m.ttft_ms.as_ref().map(|d| d.summary.p50),
        per_request: |s| s.ttft_ms,
    },
    Ranked {
        title: "highest decode speed",
        metric: "decode_tps",
        unit: "tok/s",
        higher_is_better: true,
        quality: false,
        value: |m| m.decode_tps.as_ref().map(|d| d.summary.p50),
        per_request: |s| s.decode_tps,
    },
    Ranked {
        title: "smallest memory",
        metric: "rss_peak_mb",
        unit: "MB",
        higher_is_better: false,
        quality: false,
        value: |m| m.rss_peak_mb,
        per_request: |s| s.rss_peak_mb,
    },
    Ranked {
        title: "best quality (judge)",
        metric: "judge_score_mean",
        unit: "points",
        higher_is_better: true,
        quality: true,
        value: |m| m.quality.judge_score_mean,
        per_request: |s| s.judge.as_ref()?.score,
    },
    Ranked {
        title: "best quality (checks)",
        metric: "check_pass_rate",
        unit: "% passed",
        higher_is_better: true,
        quality: true,
        value: |m| m.quality.check_pass_rate.map(|r| r * 100.0),
        per_request: |s| crate::quality::pass_rate(&s.checks).map(|r| r * 100.0),
    },
];

/// Fastest TTFT, highest decode tok/s, smallest memory and best quality
/// among `summaries`, each against the runner-up with a Mann–Whitney U test
/// on their per-request values; no judge highlight when the judge's scores
/// cannot rank models (see [`judge_signal`](super::judge_signal)).
pub fn highlights(summaries: &[ModelSummary], samples: &[Sample]) -> Vec<Highlight> {
    let values = |m: &ModelSummary, r: &Ranked| -> Vec<f64> {
        samples
            .iter()
            .filter(|s| m.holds(s))
            .filter(|s| !s.warmup && (r.quality || !s.cold) && s.status == Status::Ok)
            .filter_map(r.per_request)
            .collect()
    };
    // A judge whose scores cannot rank models names no best model.
    let judge_ranks = super::judge_signal(samples).is_none_or(|j| j.uninformative.is_none());
    RANKED
        .iter()
        .filter(|r| judge_ranks || r.metric != "judge_score_mean")
        .filter_map(|r| {
            let (title, metric, unit, higher_is_better, value) =
                (r.title, r.metric, r.unit, r.higher_is_better, r.value);
            {
                let mut ranked: Vec<(&ModelSummary, f64)> = summaries
                    .iter()
                    .filter_map(|m| Some((m, value(m).filter(|v| v.is_finite())?)))
                    .collect();
                ranked.sort_by(|a, b| {
                    let order = a.1.total_cmp(&b.1);
                    if higher_is_better {
                        order.reverse()
                    } else {
                        order
                    }
                });
                let (best, best_value) = *ranked.first()?;
                // Against the best other model where there is one (the
                // question is which model), else the next variant.
                let runner = ranked
                    .iter()
                    .skip(1)
                    .find(|(m, _)| m.model != best.model)
                    .or_else(|| ranked.get(1))
                    .copied();
                let test = runner.and_then(|(runner_up, _)| {
                    stats::mann_whitney_u(&values(best, r), &values(runner_up, r))
                });
                let margin = runner.and_then(|(_, v)| {
                    let ratio = if higher_is_better {
                        best_value / v
                    } else {
                        v / best_value
                    };
                    ratio.is_finite().then_some(ratio)
                });
                Some(Highlight {
                    title: title.to_string(),
                    metric: metric.to_string(),
                    unit: unit.to_string(),
                    best: best.label.clone(),
                    best_value,
                    runner_up: runner.map(|(r, _)| r.label.clone()),
                    runner_up_value: runner.map(|(_, v)| v),
                    margin,
                    p: test.as_ref().map(|t| t.p),
                    distinguishable: test.map(|t| t.p < 0.05),
                })
            }
        })
        .collect()
}
