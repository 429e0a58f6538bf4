//! The data an HTML page draws its charts from, made from a results
//! document: per summary row the empirical CDFs of TTFT and E2E, and per
//! load point its requests on one timeline (sent, first token, end,
//! outcome) and its latency against throughput. Sizes are bounded whatever
//! the run's size: a CDF keeps at most [`CDF_POINTS`] quantiles, a
//! timeline at most [`TIMELINE_BARS`] requests, evenly spaced in send
//! order, and says how many it stands for. Values are rounded to a
//! microsecond so the embedded JSON stays small and byte-stable. Pure:
//! results in, plain data out; templates embed it with the `json` filter.

use serde::Serialize;

use crate::results::{Dist, Results, Sample, Status, is_warm_measured};

/// Points kept per CDF: every request up to this many, else this many
/// evenly spaced quantiles.
pub(crate) const CDF_POINTS: usize = 200;

/// Bars kept per timeline: every request up to this many, else every k-th
/// request in send order.
pub(crate) const TIMELINE_BARS: usize = 2000;

/// Everything a page's charts draw.
#[derive(Debug, Serialize)]
pub(crate) struct PageData {
    pub rows: Vec<Row>,
    pub cdfs: Vec<Cdf>,
    pub timelines: Vec<Timeline>,
    pub points: Vec<Point>,
}

/// One summary row's headline figures.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub label: String,
    pub ttft_p50: Option<f64>,
    pub ttft_p95: Option<f64>,
    pub e2e_p50: Option<f64>,
    pub e2e_p95: Option<f64>,
    pub decode_p50: Option<f64>,
}

/// One load point's throughput and latency.
#[derive(Debug, Serialize)]
pub(crate) struct Point {
    pub key: String,
    pub model: String,
    pub point: String,
    pub output_tps: f64,
    pub request_tps: f64,
    pub ttft_p50: Option<f64>,
    pub e2e_p50: Option<f64>,
    pub e2e_p95: Option<f64>,
    pub client_bound: bool,
}

/// One summary row's empirical distributions: `[value_ms, fraction]` pairs,
/// fractions rising to 1.
#[derive(Debug, Serialize)]
pub(crate) struct Cdf {
    pub label: String,
    pub n: usize,
    pub ttft_ms: Vec<[f64; 2]>,
    pub e2e_ms: Vec<[f64; 2]>,
}

/// One load point's requests: `[sent_ms, first_token_ms, end_ms, outcome]`
/// with times from the point's start, `outcome` 0 counted and ok, 1 ok
/// outside the counted window (warm-up or cool-down), 2 failed.
#[derive(Debug, Serialize)]
pub(crate) struct Timeline {
    pub key: String,
    pub model: String,
    pub point: String,
    /// Requests the point recorded, and bars drawn (fewer when downsampled).
    pub total: usize,
    pub shown: usize,
    pub bars: Vec<[f64; 4]>,
}

/// The page data of `doc`.
pub(crate) fn of_results(doc: &Results) -> PageData {
    let cdfs = doc
        .summaries
        .iter()
        .map(|m| {
            let warm: Vec<&Sample> = doc
                .samples
                .iter()
                .filter(|s| m.holds(s) && is_warm_measured(s) && s.status == Status::Ok)
                .collect();
            Cdf {
                label: m.label.clone(),
                n: warm.len(),
                ttft_ms: cdf(warm.iter().filter_map(|s| s.ttft_ms).collect()),
                e2e_ms: cdf(warm.iter().filter_map(|s| s.e2e_ms).collect()),
            }
        })
        .collect();
    let timelines = doc
        .load
        .iter()
        .map(|point| {
            let mut requests: Vec<&Sample> = doc
                .samples
                .iter()
                .filter(|s| s.key == point.key && s.scheduled_ms.is_some())
                .collect();
            requests.sort_by(|a, b| {
                sent_ms(a)
                    .total_cmp(&sent_ms(b))
                    .then(a.index.cmp(&b.index))
            });
            let total = requests.len();
            let step = total.div_ceil(TIMELINE_BARS).max(1);
            let bars: Vec<[f64; 4]> = requests.iter().step_by(step).map(|s| bar(s)).collect();
            Timeline {
                key: point.key.clone(),
                model: point.model.clone(),
                point: point.point.to_string(),
                total,
                shown: bars.len(),
                bars,
            }
        })
        .collect();
    let p = |d: Option<&Dist>, f: fn(&Dist) -> f64| d.map(|d| round(f(d)));
    let rows = doc
        .summaries
        .iter()
        .map(|m| Row {
            label: m.label.clone(),
            ttft_p50: p(m.ttft_ms.as_ref(), |d| d.summary.p50),
            ttft_p95: p(m.ttft_ms.as_ref(), |d| d.summary.p95),
            e2e_p50: p(m.e2e_ms.as_ref(), |d| d.summary.p50),
            e2e_p95: p(m.e2e_ms.as_ref(), |d| d.summary.p95),
            decode_p50: p(m.decode_tps.as_ref(), |d| d.summary.p50),
        })
        .collect();
    let points = doc
        .load
        .iter()
        .map(|l| Point {
            key: l.key.clone(),
            model: l.model.clone(),
            point: l.point.to_string(),
            output_tps: round(l.output_tps),
            request_tps: round(l.request_throughput),
            ttft_p50: p(l.ttft_ms.as_ref(), |d| d.summary.p50),
            e2e_p50: p(l.e2e_ms.as_ref(), |d| d.summary.p50),
            e2e_p95: p(l.e2e_ms.as_ref(), |d| d.summary.p95),
            client_bound: l.client_bound,
        })
        .collect();
    PageData {
        rows,
        cdfs,
        timelines,
        points,
    }
}

/// When a request was sent, from its point's start.
fn sent_ms(s: &Sample) -> f64 {
    s.scheduled_ms.unwrap_or(0.0) + s.schedule_lag_ms.unwrap_or(0.0)
}

fn bar(s: &Sample) -> [f64; 4] {
    let sent = sent_ms(s);
    let end = s.e2e_ms.map_or(sent, |e| sent + e);
    let first = s.ttft_ms.map_or(end, |t| sent + t);
    let outcome = match (s.status, s.warmup) {
        (Status::Ok, false) => 0.0,
        (Status::Ok, true) => 1.0,
        _ => 2.0,
    };
    [round(sent), round(first), round(end), outcome]
}

/// `[value, fraction]` pairs of the empirical CDF of `values`, at most
/// [`CDF_POINTS`] of them (evenly spaced ranks past that).
fn cdf(mut values: Vec<f64>) -> Vec<[f64; 2]> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    let ranks: Vec<usize> = if n <= CDF_POINTS {
        (0..n).collect()
    } else {
        (0..CDF_POINTS)
            .map(|i| i * (n - 1) / (CDF_POINTS - 1))
            .collect()
    };
    ranks
        .into_iter()
        .map(|i| [round(values[i]), round((i + 1) as f64 / n as f64)])
        .collect()
}

/// To a thousandth (a microsecond for times).
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_keeps_every_point_of_a_small_run_and_bounds_a_large_one() {
        assert_eq!(
            cdf(vec![3.0, 1.0, 2.0, f64::NAN]),
            vec![[1.0, 0.333], [2.0, 0.667], [3.0, 1.0]]
        );
        let large = cdf((0..100_000).map(f64::from).collect());
        assert_eq!(large.len(), CDF_POINTS);
        assert_eq!(large.first(), Some(&[0.0, 0.0]));
        assert_eq!(large.last(), Some(&[99_999.0, 1.0]));
        assert!(cdf(Vec::new()).is_empty());
    }
}
