//! Pure statistics: percentiles, Mann–Whitney U, Hodges–Lehmann, Benjamini–Hochberg, McNemar, Wilcoxon; never does I/O, never seeds from the clock.
//!
//! The method follows `shared/reference/stats-vectors.md`: comparisons work on
//! logs (negated for higher-is-better metrics, so a ratio above 1 always means
//! worse), significance comes from Mann–Whitney U, the effect size from the
//! Hodges–Lehmann ratio with its distribution-free confidence interval, and
//! many cells are controlled with Benjamini–Hochberg. Paired quality data uses
//! McNemar (pass/fail) and Wilcoxon signed-rank (scores). Every function is
//! deterministic; the bootstrap takes an explicit seed.
//!
//! Quantile levels (`q`) are fractions in `[0, 1]`: `0.95` means p95.

/// Fewest rounds per side for a verdict (and per segment for a change point):
/// with 3 a side the smallest exact two-sided p is 0.1, so no test can fire.
pub(crate) const MIN_ROUNDS: usize = 4;

/// Largest `m·n` for which the exact Mann–Whitney null distribution is used.
pub(crate) const EXACT_MWU_MAX_CELLS: usize = 2500;

/// Largest number of non-zero differences for the exact Wilcoxon distribution.
pub(crate) const EXACT_WILCOXON_MAX_N: usize = 20;

/// Confidence used by [`percentile_is_bounded`].
pub(crate) const BOUND_CONFIDENCE: f64 = 0.95;

mod bootstrap;
mod changepoint;
mod null;
mod paired;
#[cfg(test)]
mod tests;
mod twosample;

pub(crate) use bootstrap::*;
pub(crate) use changepoint::*;
use null::{NullCounts, normal_two_sided_p};
pub(crate) use null::{midranks, normal_cdf};
pub(crate) use paired::*;
pub use twosample::*;

/// Summary of one sample; percentiles use linear interpolation (numpy's default).
#[derive(
    Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// The `q`-quantile (`q` in `[0, 1]`) by linear interpolation between order
/// statistics, numpy's default: `h = (n−1)·q`, `x[⌊h⌋] + (h−⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])`.
/// The input need not be sorted. Never exceeds the maximum.
///
/// Returns `None` for an empty slice, a non-finite value, or `q` outside `[0, 1]`.
pub fn percentile(sorted_or_unsorted: &[f64], q: f64) -> Option<f64> {
    percentile_of_sorted(&sorted_finite(sorted_or_unsorted)?, q)
}

/// Count, mean, p50/p90/p95/p99, min and max of `values`.
///
/// Returns `None` for an empty slice or when any value is non-finite.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let sorted = sorted_finite(values)?;
    let at = |q| percentile_of_sorted(&sorted, q);
    Some(Summary {
        n: sorted.len(),
        mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        p50: at(0.50)?,
        p90: at(0.90)?,
        p95: at(0.95)?,
        p99: at(0.99)?,
        min: *sorted.first()?,
        max: *sorted.last()?,
    })
}

/// Smallest `n` with `1 − qⁿ ≥ confidence`: the number of samples needed for
/// the sample maximum to be an upper bound of the `q`-quantile with the given
/// confidence (59 for p95 at 95%).
///
/// Returns `None` unless `0 ≤ q < 1` and `0 < confidence < 1`.
pub(crate) fn min_samples_for_upper_bound(q: f64, confidence: f64) -> Option<usize> {
    if !(0.0..1.0).contains(&q) || !in_open_unit(confidence) {
        return None;
    }
    let mut n = 1;
    let mut miss = q; // P(all n samples fall below the q-quantile) = qⁿ
    while 1.0 - miss < confidence {
        miss *= q;
        n += 1;
    }
    Some(n)
}

/// Whether `n` samples suffice for the sample maximum to bound the
/// `q`-quantile from above with [`BOUND_CONFIDENCE`] (95%); e.g. p95 needs 59.
pub(crate) fn percentile_is_bounded(n: usize, q: f64) -> bool {
    min_samples_for_upper_bound(q, BOUND_CONFIDENCE).is_some_and(|needed| n >= needed)
}

/// Sorted copy of `values`, or `None` when empty or any value is non-finite.
fn sorted_finite(values: &[f64]) -> Option<Vec<f64>> {
    if values.is_empty() || !all_finite(values) {
        return None;
    }
    Some(sorted_copy(values))
}

/// Ascending copy of `values` (`f64::total_cmp` order).
fn sorted_copy(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// [`percentile`] of a slice the caller has already sorted ascending and
/// checked for non-finite values (linear interpolation with numpy's `_lerp`,
/// which interpolates from the nearer end so the result never leaves
/// `[a, b]`). Saves the copy and sort when one sample gives many quantiles.
///
/// Returns `None` for an empty slice or `q` outside `[0, 1]`.
pub(crate) fn percentile_of_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let (lo, t) = quantile_position(sorted.len(), q)?;
    let a = *sorted.get(lo)?;
    Some(sorted.get(lo + 1).map_or(a, |&b| lerp(a, b, t)))
}

#[cfg(test)]
/// [`percentile_of_sorted`] without sorting: the two order statistics it
/// interpolates between, by selection in O(n). Reorders `values`.
fn percentile_by_selection(values: &mut [f64], q: f64) -> Option<f64> {
    let (lo, t) = quantile_position(values.len(), q)?;
    if lo >= values.len() {
        return None;
    }
    let (_, &mut a, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let next = above.iter().copied().min_by(f64::total_cmp);
    Some(next.map_or(a, |b| lerp(a, b, t)))
}

/// Where the `q`-quantile of `len` sorted values sits: `h = (len−1)·q` as
/// `(⌊h⌋, h − ⌊h⌋)`. `None` when `len = 0` or `q ∉ [0, 1]`.
fn quantile_position(len: usize, q: f64) -> Option<(usize, f64)> {
    if len == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let h = (len - 1) as f64 * q;
    let lo = h.floor() as usize;
    Some((lo, h - lo as f64))
}

/// numpy's `_lerp` from `a` (at `t = 0`) to `b` (at `t = 1`), interpolating
/// from the nearer end so the result never leaves `[a, b]`.
pub(super) fn lerp(a: f64, b: f64, t: f64) -> f64 {
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

/// `0 < x < 1` (false for NaN).
pub(crate) fn in_open_unit(x: f64) -> bool {
    x > 0.0 && x < 1.0
}

fn all_finite(values: &[f64]) -> bool {
    values.iter().all(|v| v.is_finite())
}
