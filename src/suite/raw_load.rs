//! The `load:` section exactly as written (suite-wide, or a model's own):
//! load points, a sweep, the SLO and synthetic prompt shapes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::workload::Arrival;

/// Many requests side by side instead of one at a time: every listed
/// concurrency and rate is a load point, part of the cell key like a matrix
/// axis. Each point runs for `duration_s` and/or `requests` after a
/// `warmup_s` (and keeps the load on for `cooldown_s`), both recorded but
/// not counted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoad {
    /// Closed loop: this many streams, each sending its next request when
    /// the last finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Vec<RawStreams>>,
    /// Open loop: requests per second, started on schedule whether or not
    /// earlier ones finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Vec<RawRate>>,
    /// How open-loop requests arrive (default poisson).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<Arrival>,
    /// Seeds arrivals and the choice of prompts (default 42).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Requests in flight at most, a guard for open loops (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub max_in_flight: Option<u32>,
    /// Seconds each point's counted window lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001, max = 86400.0))]
    pub duration_s: Option<f64>,
    /// Counted requests per point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub requests: Option<u64>,
    /// Seconds of load before counting starts (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 86400.0))]
    pub warmup_s: Option<f64>,
    /// Seconds of load kept on after the counted window (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 86400.0))]
    pub cooldown_s: Option<f64>,
    /// From one stream up to saturation, then the highest rate that meets
    /// the SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<RawSweep>,
    /// Latency targets: goodput counts the requests that meet them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<RawSlo>,
    /// Prompts of controlled lengths instead of the suite's prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<RawSynthetic>,
}

/// Streams of a closed loop.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub(crate) struct RawStreams(#[schemars(range(min = 1, max = 4096))] pub u32);

/// Requests per second of an open loop.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub(crate) struct RawRate(#[schemars(range(min = 0.001, max = 1_000_000.0))] pub f64);

/// How far a sweep goes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSweep {
    /// The most streams tried (default 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub max_concurrency: Option<u32>,
    /// A doubling of streams that raises throughput by less than this share
    /// has saturated the server (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub min_gain: Option<f64>,
    /// Bisection steps on the rate between the last point that met the SLO
    /// and the first that did not (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 20))]
    pub refine: Option<u32>,
}

/// Latency targets, each optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlo {
    /// Time to first token, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 86400000.0))]
    pub ttft_ms: Option<f64>,
    /// Time per output token, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 86400000.0))]
    pub tpot_ms: Option<f64>,
    /// End-to-end latency, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 86400000.0))]
    pub e2e_ms: Option<f64>,
    /// The percentile a point must meet the targets at: 50, 90, 95 or 99
    /// (default 95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<RawPercentile>,
}

/// A percentile dyno summarises: 50, 90, 95 or 99.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(extend("enum" = [50, 90, 95, 99]))]
pub(crate) struct RawPercentile(pub u8);

impl RawPercentile {
    pub(crate) fn value(self) -> f64 {
        f64::from(self.0)
    }
}

/// Input and output lengths, in tokens.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSynthetic {
    pub input_tokens: RawLength,
    pub output_tokens: RawLength,
    /// Seeds the lengths (default 42).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A length drawn from a normal distribution.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLength {
    #[schemars(range(min = 1.0, max = 1_000_000.0))]
    pub mean: f64,
    /// Default 0: every request the same length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1_000_000.0))]
    pub stddev: Option<f64>,
}
