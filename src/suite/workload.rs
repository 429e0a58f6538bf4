//! The `load:` section, resolved: the load points a model is driven at
//! (closed-loop concurrency, open-loop rates), a sweep to saturation, the
//! SLO that goodput counts against, and synthetic prompt shapes. Plain
//! data; `run::load` drives it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::results::Slo;

/// How requests arrive in an open loop.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Exponential gaps (a Poisson process), the arrivals of many users.
    #[default]
    Poisson,
    /// Equal gaps.
    Constant,
}

/// How a point drives requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Drive {
    /// Closed loop: this many streams.
    Concurrency(u32),
    /// Open loop: this many requests per second on average.
    Rate { per_s: f64, arrival: Arrival },
}

impl Drive {
    /// `concurrency=4`, `rate=2.5`.
    pub fn label(&self) -> String {
        match self {
            Drive::Concurrency(n) => format!("concurrency={n}"),
            Drive::Rate { per_s, .. } => format!("rate={per_s}"),
        }
    }

    /// Streams, for a closed loop.
    pub fn concurrency(&self) -> Option<u32> {
        match self {
            Drive::Concurrency(n) => Some(*n),
            Drive::Rate { .. } => None,
        }
    }

    /// Requests per second, for an open loop.
    pub fn rate(&self) -> Option<f64> {
        match self {
            Drive::Rate { per_s, .. } => Some(*per_s),
            Drive::Concurrency(_) => None,
        }
    }
}

/// One load point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub drive: Drive,
    /// Seeds the arrival schedule and the choice of prompts.
    pub seed: u64,
    /// Requests in flight at most; later ones wait (and their lag shows it).
    pub max_in_flight: u32,
    /// Requests started before this are warm-up, recorded but not counted.
    pub warmup: Duration,
    /// The counted window's length, when bounded by time.
    pub duration: Option<Duration>,
    /// Counted requests, when bounded by number.
    pub requests: Option<u64>,
    /// Load kept on after the counted window, recorded but not counted, so
    /// the window's last requests meet the same load as its first.
    pub cooldown: Duration,
}

/// From one stream up to saturation: concurrency doubling until throughput
/// stops rising (or the SLO breaks), then rates bisected between the last
/// point that met the SLO and the first that did not.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sweep {
    /// The most streams tried.
    pub max_concurrency: u32,
    /// A doubling that raises throughput by less than this share has saturated.
    pub min_gain: f64,
    /// Bisection steps on the rate.
    pub refine: u32,
}

/// A length drawn from a normal distribution (rounded, at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Length {
    pub mean: f64,
    pub stddev: f64,
}

/// Prompts of controlled lengths instead of the suite's prompts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Synthetic {
    pub input_tokens: Length,
    pub output_tokens: Length,
    pub seed: u64,
}

/// A model's `load:` section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// Fixed points, in order: every concurrency, then every rate.
    pub points: Vec<Point>,
    /// A sweep after the fixed points, when asked for.
    pub sweep: Option<Sweep>,
    pub slo: Option<Slo>,
    pub synthetic: Option<Synthetic>,
    /// Every point's settings but its drive (the sweep's points use them).
    pub template: Point,
}
