//! What a load point measured, as plain data: throughput (requests, output
//! and total tokens per second), goodput against the SLO, errors, the
//! latency distributions over its counted requests, and how well the
//! client kept up (schedule lag, its own CPU, event-loop lag). Field names
//! follow the ones other tools use (`concurrency`, `rate`,
//! `request_throughput`, `output_tps`, `goodput`, `schedule_lag_ms`).

use serde::{Deserialize, Serialize};

use super::{Dist, Sample, Status};

/// A point is client-bound when its schedule lag p99 exceeds this…
pub const CLIENT_BOUND_LAG_MS: f64 = 1.0;
/// …or the client used more than this many cores.
pub const CLIENT_BOUND_CORES: f64 = 0.5;

/// A sweep from one stream to saturation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SweepResult {
    /// The sweep's cell key: `model/*[sweep]`.
    pub key: String,
    pub model: String,
    /// The keys of the points it drove, in order.
    pub points: Vec<String>,
    /// The most requests per second any of its points completed.
    pub saturation_throughput: Option<f64>,
    /// The highest rate whose point met the SLO; `None` without an SLO.
    pub max_rate_meeting_slo: Option<f64>,
}

/// How the client fared while driving a point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClientCost {
    /// From the first counted request's send to the last counted
    /// request's end.
    pub window_s: f64,
    /// The whole point, warm-up and cool-down included.
    pub wall_s: f64,
    /// dyno's own CPU over the whole point, all threads.
    pub cpu_s: Option<f64>,
    /// How late the event loop woke for a 5 ms tick, p99.
    pub loop_lag_p99_ms: Option<f64>,
}

/// One load point of one model (and variant, and axis values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LoadStats {
    /// The cell key: `model/*[threads=2,concurrency=4]`.
    pub key: String,
    pub model: String,
    /// `concurrency=4` or `rate=8`.
    pub point: super::PointLabel,
    /// Closed loop: streams. Open loop: requests per second.
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
    /// Requests recorded, and those in the counted window.
    pub sent: usize,
    pub counted: usize,
    pub errors: usize,
    /// Counted requests that failed, as a share.
    pub error_rate: f64,
    pub window_s: f64,
    /// Counted successful requests per second.
    pub request_throughput: f64,
    /// Output tokens (and prompt + output tokens) of counted successful
    /// requests per second.
    pub output_tps: f64,
    pub total_tps: f64,
    /// Counted requests meeting every SLO target, per second; `None`
    /// without an SLO.
    pub goodput: Option<f64>,
    /// The point's distributions meet the SLO at its percentile.
    pub slo_met: Option<bool>,
    pub ttft_ms: Option<Dist>,
    pub tpot_ms: Option<Dist>,
    pub e2e_ms: Option<Dist>,
    /// Gaps between streamed tokens, over every counted request.
    pub itl_ms: Option<Dist>,
    pub schedule_lag_ms: Option<Dist>,
    /// The server's own prefill and decode speeds (llama.cpp `timings`).
    pub server_prompt_tps_p50: Option<f64>,
    pub server_decode_tps_p50: Option<f64>,
    pub client: ClientCost,
    /// Cores dyno used while driving the point.
    pub client_cores: Option<f64>,
    /// dyno's CPU per streamed chunk, in microseconds.
    pub client_us_per_chunk: Option<f64>,
    /// The client could not keep up: schedule lag p99 above 1 ms, or more
    /// than half a core used. Its figures measure dyno as much as the model.
    pub client_bound: bool,
    /// Why the point stopped before its end, when it was interrupted: its
    /// figures cover the requests done by then (`--resume` drives it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    /// Σ cached ÷ Σ prompt tokens of the counted requests, where the server
    /// reported its prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hit_rate: Option<f64>,
}

/// Latency targets a request must meet to count towards goodput.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Slo {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
    /// The percentile a point's requests must meet the targets at (one of
    /// 50, 90, 95, 99).
    pub percentile: f64,
}

impl Slo {
    /// Whether TTFT, TPOT and E2E (of one request, or a point's values at
    /// the percentile) meet every target; a missing value meets none.
    pub fn met(&self, ttft: Option<f64>, tpot: Option<f64>, e2e: Option<f64>) -> bool {
        within(self.ttft_ms, ttft) && within(self.tpot_ms, tpot) && within(self.e2e_ms, e2e)
    }
}

/// No limit, or a value within it.
fn within(limit: Option<f64>, value: Option<f64>) -> bool {
    limit.is_none_or(|limit| value.is_some_and(|v| v <= limit))
}

/// The stats of one point from its samples (`point_samples`: every request
/// recorded for the point, counted ones with `warmup == false`).
pub fn load_stats(
    key: &str,
    point: &super::PointLabel,
    (concurrency, rate): (Option<u32>, Option<f64>),
    point_samples: &[&Sample],
    client: ClientCost,
    slo: Option<&Slo>,
) -> LoadStats {
    let counted: Vec<&Sample> = point_samples
        .iter()
        .copied()
        .filter(|s| !s.warmup)
        .collect();
    let ok: Vec<&Sample> = counted
        .iter()
        .copied()
        .filter(|s| s.status == Status::Ok)
        .collect();
    let per_s = |n: f64| {
        if client.window_s > 0.0 {
            n / client.window_s
        } else {
            0.0
        }
    };
    let tokens = |f: fn(&Sample) -> Option<u64>| ok.iter().filter_map(|s| f(s)).sum::<u64>() as f64;
    let dist = |f: &dyn Fn(&Sample) -> Option<f64>| {
        Dist::of(&ok.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
    };
    let median = |f: &dyn Fn(&Sample) -> Option<f64>| dist(f).map(|d| d.summary.p50);
    let timing = |s: &Sample, name: &str| s.server_timings.as_ref()?.get(name).copied();
    let chunks: usize = counted.iter().map(|s| s.itl_ms.len() + 1).sum::<usize>()
        + point_samples
            .iter()
            .filter(|s| s.warmup)
            .map(|s| s.itl_ms.len() + 1)
            .sum::<usize>();
    let client_cores = client
        .cpu_s
        .filter(|_| client.wall_s > 0.0)
        .map(|cpu| cpu / client.wall_s);
    let schedule_lag_ms = Dist::of(
        &point_samples
            .iter()
            .filter_map(|s| s.schedule_lag_ms)
            .collect::<Vec<_>>(),
    );
    let errors = counted.len() - ok.len();
    let mut stats = LoadStats {
        key: key.to_string(),
        model: point_samples
            .first()
            .map_or_else(String::new, |s| s.model.clone()),
        point: point.clone(),
        concurrency,
        rate,
        sent: point_samples.len(),
        counted: counted.len(),
        errors,
        error_rate: if counted.is_empty() {
            0.0
        } else {
            errors as f64 / counted.len() as f64
        },
        window_s: client.window_s,
        request_throughput: per_s(ok.len() as f64),
        output_tps: per_s(tokens(|s| s.output_tokens)),
        total_tps: per_s(tokens(|s| s.output_tokens) + tokens(|s| s.prompt_tokens)),
        goodput: slo.map(|slo| {
            per_s(
                ok.iter()
                    .filter(|s| slo.met(s.ttft_ms, s.tpot_ms, s.e2e_ms))
                    .count() as f64,
            )
        }),
        slo_met: None,
        ttft_ms: dist(&|s| s.ttft_ms),
        tpot_ms: dist(&|s| s.tpot_ms),
        e2e_ms: dist(&|s| s.e2e_ms),
        itl_ms: Dist::of(
            &ok.iter()
                .flat_map(|s| s.itl_ms.iter().copied())
                .collect::<Vec<_>>(),
        ),
        server_prompt_tps_p50: median(&|s| timing(s, "prompt_per_second")),
        server_decode_tps_p50: median(&|s| timing(s, "predicted_per_second")),
        client_bound: schedule_lag_ms
            .as_ref()
            .is_some_and(|d| d.summary.p99 > CLIENT_BOUND_LAG_MS)
            || client_cores.is_some_and(|c| c > CLIENT_BOUND_CORES),
        interrupted: None,
        cache_hit_rate: super::cache_hit_rate(ok.iter().map(|s| &**s)),
        schedule_lag_ms,
        client,
        client_cores,
        client_us_per_chunk: client
            .cpu_s
            .filter(|_| chunks > 0)
            .map(|cpu| cpu * 1e6 / chunks as f64),
    };
    stats.slo_met = slo.map(|slo| {
        let q = slo.percentile / 100.0;
        let at = |d: &Option<Dist>| d.as_ref().and_then(|d| d.at(q));
        slo.met(at(&stats.ttft_ms), at(&stats.tpot_ms), at(&stats.e2e_ms))
    });
    stats
}
