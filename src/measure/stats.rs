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

use std::f64::consts::{FRAC_1_SQRT_2, LN_2, PI};

/// Fewest rounds per side for a verdict (and per segment for a change point):
/// with 3 a side the smallest exact two-sided p is 0.1, so no test can fire.
pub const MIN_ROUNDS: usize = 4;

/// Largest `m·n` for which the exact Mann–Whitney null distribution is used.
pub const EXACT_MWU_MAX_CELLS: usize = 2500;

/// Largest number of non-zero differences for the exact Wilcoxon distribution.
pub const EXACT_WILCOXON_MAX_N: usize = 20;

/// Confidence used by [`percentile_is_bounded`].
pub const BOUND_CONFIDENCE: f64 = 0.95;

// ---------------------------------------------------------------------------
// Percentiles and summaries
// ---------------------------------------------------------------------------

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
pub fn min_samples_for_upper_bound(q: f64, confidence: f64) -> Option<usize> {
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
pub fn percentile_is_bounded(n: usize, q: f64) -> bool {
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
pub fn percentile_of_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let (lo, t) = quantile_position(sorted.len(), q)?;
    let a = *sorted.get(lo)?;
    Some(sorted.get(lo + 1).map_or(a, |&b| lerp(a, b, t)))
}

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
fn lerp(a: f64, b: f64, t: f64) -> f64 {
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

// ---------------------------------------------------------------------------
// Two-sample comparison: Mann–Whitney U, Hodges–Lehmann, verdict
// ---------------------------------------------------------------------------

/// How a p value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestMethod {
    /// Exact null distribution.
    Exact,
    /// Normal approximation with tie and continuity correction.
    Normal,
}

/// Result of [`mann_whitney_u`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// `U = #{y_j > x_i} + ½·#{y_j = x_i}` (x = base, y = new).
    pub u: f64,
    /// Two-sided p value.
    pub p: f64,
    /// Exact or normal approximation.
    pub method: TestMethod,
}

/// Hodges–Lehmann ratio and its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HodgesLehmann {
    /// `exp(median of all m·n differences ln y_j − ln x_i)`.
    pub ratio: f64,
    /// `[exp D_(c+1), exp D_(mn−c)]`; `None` when no `c` exists at this alpha.
    pub ci: Option<(f64, f64)>,
}

/// Outcome of [`compare_samples`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Significantly worse by more than the noise threshold.
    Regressed,
    /// Significantly better by more than the noise threshold.
    Improved,
    /// Ratio within the noise band.
    Unchanged,
    /// Too few rounds, no confidence interval, invalid input, or a ratio
    /// outside the noise band without significance.
    Inconclusive,
    /// A shift measured while other processes kept the machine busy: not
    /// evidence about the model (set by `compare`, never by a test).
    Noisy,
}

/// A base-vs-new comparison of one cell × metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The verdict (step 4 of the method).
    pub verdict: Verdict,
    /// Regressed with the CI's lower bound above `1+τ`, or improved with the
    /// CI's upper bound below `1/(1+τ)`.
    pub confirmed: bool,
    /// Hodges–Lehmann ratio oriented so that above 1 means worse.
    pub ratio: Option<f64>,
    /// Confidence interval of `ratio` at level `1 − alpha`.
    pub ci: Option<(f64, f64)>,
    /// Two-sided Mann–Whitney p value.
    pub p: Option<f64>,
    /// Rounds on the base side.
    pub n_base: usize,
    /// Rounds on the new side.
    pub n_new: usize,
}

/// Two-sided Mann–Whitney U test of `new` (y) against `base` (x).
///
/// Exact null distribution when the pooled sample has no ties and
/// `m·n ≤ 2500` ([`EXACT_MWU_MAX_CELLS`]), with
/// `p = min(1, 2·min(P(U≤U_obs), P(U≥U_obs)))`; otherwise the normal
/// approximation with tie and continuity correction.
///
/// Returns `None` when either side is empty or holds a non-finite value.
pub fn mann_whitney_u(base: &[f64], new: &[f64]) -> Option<MannWhitney> {
    if base.is_empty() || new.is_empty() || !all_finite(base) || !all_finite(new) {
        return None;
    }
    let (m, n) = (base.len(), new.len());
    let u = u_statistic(base, new);
    let pooled: Vec<f64> = base.iter().chain(new).copied().collect();
    let tie_sum = midranks(&pooled).1;
    Some(if tie_sum == 0.0 && m * n <= EXACT_MWU_MAX_CELLS {
        MannWhitney {
            u,
            p: NullCounts::mann_whitney(m, n).two_sided_p(u.round() as usize),
            method: TestMethod::Exact,
        }
    } else {
        MannWhitney {
            u,
            p: mwu_normal_p(u, m, n, tie_sum),
            method: TestMethod::Normal,
        }
    })
}

/// Hodges–Lehmann ratio of `new` over `base` on log values, with the
/// distribution-free CI `[exp D_(c+1), exp D_(mn−c)]` at level `1 − alpha`,
/// `c = max{u : P(U≤u) ≤ alpha/2}` under the exact Mann–Whitney null
/// distribution (used even when there are ties; for `m·n > 2500` the normal
/// approximation with continuity correction stands in for it).
///
/// Returns `None` when either side is empty or holds a non-positive or
/// non-finite value; `ci` is `None` when no such `c` exists.
pub fn hodges_lehmann_ratio(base: &[f64], new: &[f64], alpha: f64) -> Option<HodgesLehmann> {
    hodges_lehmann_on_logs(&log_values(base, false)?, &log_values(new, false)?, alpha)
}

/// Compares `new` against `base` for one metric (steps 1–4 of the method).
///
/// Works on logs, negated when `higher_is_better`, so `ratio > 1` always means
/// worse. With noise threshold `τ = noise`, in order: fewer than
/// [`MIN_ROUNDS`] a side, or no CI → `Inconclusive`; significant (`p < alpha`)
/// and `ratio > 1+τ` → `Regressed`; significant and `ratio < 1/(1+τ)` →
/// `Improved`; ratio inside `[1/(1+τ), 1+τ]` → `Unchanged`; else `Inconclusive`.
///
/// Any non-positive or non-finite value, a negative or non-finite `noise`, or
/// `alpha` outside `(0, 1)` also yields `Inconclusive` (statistics `None` where
/// they cannot be computed).
pub fn compare_samples(
    base: &[f64],
    new: &[f64],
    higher_is_better: bool,
    noise: f64,
    alpha: f64,
) -> Comparison {
    let logs = log_values(base, higher_is_better).zip(log_values(new, higher_is_better));
    let (hl, mw) = match &logs {
        Some((x, y)) => (hodges_lehmann_on_logs(x, y, alpha), mann_whitney_u(x, y)),
        None => (None, None),
    };
    let ratio = hl.map(|h| h.ratio);
    let ci = hl.and_then(|h| h.ci);
    let p = mw.map(|t| t.p);
    let (verdict, confirmed) = decide(base.len().min(new.len()), ratio, ci, p, noise, alpha);
    Comparison {
        verdict,
        confirmed,
        ratio,
        ci,
        p,
        n_base: base.len(),
        n_new: new.len(),
    }
}

/// Step 4 of the method; returns the verdict and whether it is confirmed.
pub(crate) fn decide(
    rounds: usize,
    ratio: Option<f64>,
    ci: Option<(f64, f64)>,
    p: Option<f64>,
    noise: f64,
    alpha: f64,
) -> (Verdict, bool) {
    let valid = rounds >= MIN_ROUNDS && noise.is_finite() && noise >= 0.0;
    let (true, Some(ratio), Some((lo, hi)), Some(p)) = (valid, ratio, ci, p) else {
        return (Verdict::Inconclusive, false);
    };
    let upper = 1.0 + noise;
    let lower = 1.0 / upper;
    let significant = p < alpha;
    if significant && ratio > upper {
        (Verdict::Regressed, lo > upper)
    } else if significant && ratio < lower {
        (Verdict::Improved, hi < lower)
    } else if (lower..=upper).contains(&ratio) {
        (Verdict::Unchanged, false)
    } else {
        (Verdict::Inconclusive, false)
    }
}

/// Natural logs of `values` (negated when `negate`), or `None` when empty or
/// any value is non-positive or non-finite.
pub(crate) fn log_values(values: &[f64], negate: bool) -> Option<Vec<f64>> {
    if values.is_empty() || !all_positive_finite(values) {
        return None;
    }
    let sign = if negate { -1.0 } else { 1.0 };
    Some(values.iter().map(|v| sign * v.ln()).collect())
}

fn all_positive_finite(values: &[f64]) -> bool {
    values.iter().all(|v| v.is_finite() && *v > 0.0)
}

/// `#{y_j > x_i} + ½·#{y_j = x_i}` for finite values, from sorted copies in
/// O((m+n)·log(m+n)).
fn u_statistic(x: &[f64], y: &[f64]) -> f64 {
    u_at_shift(&sorted_copy(x), &sorted_copy(y), 0.0)
}

/// `#{y_j − x_i > shift} + ½·#{y_j − x_i = shift}` for ascending `x` and `y`,
/// in O(m+n): the Mann–Whitney U of `x` against `y − shift`. At `shift = 0`
/// it is exactly [`u_statistic`]: for finite values `y − x` is positive
/// exactly when `y > x` and zero exactly when `y = x`.
pub(crate) fn u_at_shift(x: &[f64], y: &[f64], shift: f64) -> f64 {
    let (below, at_most) = differences_below(x, y, shift);
    (2 * x.len() * y.len() - below - at_most) as f64 / 2.0
}

/// For ascending `x` and `y`: how many differences `y_j − x_i` are `< t`, and
/// how many are `≤ t`, by a two-pointer walk in O(m+n). Rounded subtraction
/// is monotone, so the differences `≤ t` in row `j` are those from some `x_i`
/// on, and that first `i` never moves left as `y_j` grows.
fn differences_below(x: &[f64], y: &[f64], t: f64) -> (usize, usize) {
    let m = x.len();
    let (mut first_below, mut first_at_most) = (0, 0);
    let (mut below, mut at_most) = (0, 0);
    for &yj in y {
        while first_below < m && yj - x[first_below] >= t {
            first_below += 1;
        }
        while first_at_most < m && yj - x[first_at_most] > t {
            first_at_most += 1;
        }
        below += m - first_below;
        at_most += m - first_at_most;
    }
    (below, at_most)
}

/// The differences `y_j − x_i` of ascending `x` and `y` strictly between
/// `lo` and `hi`: in each row `j` a contiguous run of `x`, found by the same
/// two-pointer walk as [`differences_below`].
fn differences_between<'a>(
    x: &'a [f64],
    y: &'a [f64],
    lo: f64,
    hi: f64,
) -> impl Iterator<Item = f64> + 'a {
    let m = x.len();
    let (mut first_below_hi, mut first_at_most_lo) = (0, 0);
    y.iter().flat_map(move |&yj| {
        while first_below_hi < m && yj - x[first_below_hi] >= hi {
            first_below_hi += 1;
        }
        while first_at_most_lo < m && yj - x[first_at_most_lo] > lo {
            first_at_most_lo += 1;
        }
        let run = x.get(first_below_hi..first_at_most_lo).unwrap_or(&[]);
        run.iter().map(move |xi| yj - xi)
    })
}

/// Differences a bracket may still hold, per value of `m + n`, when
/// [`kth_difference`] stops bisecting and enumerates them.
const ENUMERATED_PER_VALUE: usize = 4;

/// The `k`-th smallest (0-based) of the `m·n` differences `y_j − x_i` of
/// ascending `x` and `y`, exactly (the same `f64` that sorting all of them
/// would put at index `k`), in O((m+n)·log) time and O(m+n) memory.
///
/// Keeps an open bracket `(lo, hi)` around the answer, with
/// `#{d ≤ lo} ≤ k < #{d < hi}`, and bisects it on the value, counting with
/// [`differences_below`]; a pivot that is itself the answer ends the search.
/// Once the bracket holds at most `4·(m+n)` differences they are enumerated
/// and the answer selected among them. `None` when `k ≥ m·n`.
fn kth_difference(x: &[f64], y: &[f64], k: usize) -> Option<f64> {
    let total = x.len() * y.len();
    if k >= total {
        return None;
    }
    let (smallest, largest) = (y.first()? - x.last()?, y.last()? - x.first()?);
    let limit = ENUMERATED_PER_VALUE * (x.len() + y.len());
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    let (mut at_most_lo, mut below_hi) = (0, total);
    loop {
        if below_hi - at_most_lo <= limit {
            let mut inside: Vec<f64> = differences_between(x, y, lo, hi).collect();
            let rank = k.checked_sub(at_most_lo)?;
            if rank >= inside.len() {
                return None;
            }
            return Some(*inside.select_nth_unstable_by(rank, f64::total_cmp).1);
        }
        let pivot = if hi == f64::INFINITY {
            largest
        } else if lo == f64::NEG_INFINITY {
            smallest
        } else {
            let mid = lo + (hi - lo) / 2.0;
            if lo < mid && mid < hi {
                mid
            } else {
                // No float strictly between by halving: any difference inside will do.
                differences_between(x, y, lo, hi).next()?
            }
        };
        let (below, at_most) = differences_below(x, y, pivot);
        if below <= k && k < at_most {
            return Some(pivot);
        }
        if at_most <= k {
            (lo, at_most_lo) = (pivot, at_most);
        } else {
            (hi, below_hi) = (pivot, below);
        }
    }
}

/// Normal approximation: `σ² = (mn/12)·[(N+1) − Σ(t³−t)/(N(N−1))]`,
/// `z = (|U − mn/2| − 0.5)/σ`.
fn mwu_normal_p(u: f64, m: usize, n: usize, tie_sum: f64) -> f64 {
    let mn = (m * n) as f64;
    let total = (m + n) as f64;
    let var = mn / 12.0 * ((total + 1.0) - tie_sum / (total * (total - 1.0)));
    normal_two_sided_p(u, mn / 2.0, var)
}

/// Hodges–Lehmann shift and CI on already-logged samples, exponentiated.
/// The median and the CI bounds are order statistics of the `m·n`
/// differences, selected by [`kth_difference`] without materialising them;
/// the median of an even count interpolates like [`percentile_of_sorted`].
fn hodges_lehmann_on_logs(x: &[f64], y: &[f64], alpha: f64) -> Option<HodgesLehmann> {
    let (x, y) = (sorted_copy(x), sorted_copy(y));
    let total = x.len() * y.len();
    let (middle, t) = quantile_position(total, 0.5)?;
    let below = kth_difference(&x, &y, middle)?;
    let shift = kth_difference(&x, &y, middle + 1).map_or(below, |above| lerp(below, above, t));
    let ci = hl_ci_rank(x.len(), y.len(), alpha).and_then(|c| {
        let lo = kth_difference(&x, &y, c)?;
        let hi = kth_difference(&x, &y, total.checked_sub(c + 1)?)?;
        Some((lo.exp(), hi.exp()))
    });
    Some(HodgesLehmann {
        ratio: shift.exp(),
        ci,
    })
}

/// `c = max{u : P(U≤u) ≤ alpha/2}`, or `None` when no such `u` exists.
fn hl_ci_rank(m: usize, n: usize, alpha: f64) -> Option<usize> {
    if !in_open_unit(alpha) {
        return None;
    }
    let level = alpha / 2.0;
    let mn = m * n;
    let below = if mn <= EXACT_MWU_MAX_CELLS {
        NullCounts::mann_whitney(m, n)
            .cdf_values()
            .take_while(|&p| p <= level)
            .count()
    } else {
        let mean = mn as f64 / 2.0;
        let sd = (mn as f64 * (m + n + 1) as f64 / 12.0).sqrt();
        // The continuity-corrected CDF grows with u, so the u with
        // P(U≤u) ≤ level form a leading run of 0..=mn: bisect for its length.
        let within = |u: usize| normal_cdf((u as f64 + 0.5 - mean) / sd) <= level;
        let (mut lo, mut hi) = (0, mn + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if within(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    below.checked_sub(1)
}

// ---------------------------------------------------------------------------
// Exact null distributions and the normal approximation
// ---------------------------------------------------------------------------

/// A discrete null distribution on `0..len` stored as exact integer counts.
struct NullCounts {
    counts: Vec<u128>,
    total: u128,
}

impl NullCounts {
    fn new(counts: Vec<u128>) -> Self {
        let total = counts.iter().sum();
        Self { counts, total }
    }

    /// Null distribution of U for sample sizes `m`, `n` (no ties), from
    /// `r(m,n,u) = r(m,n−1,u) + r(m−1,n,u−n)`. The distribution is symmetric in
    /// `m` and `n`, so the outer loop runs over the larger size to keep only
    /// two rows of `min(m,n)+1` count vectors alive.
    fn mann_whitney(m: usize, n: usize) -> Self {
        let (outer, inner) = (m.max(n), m.min(n));
        // prev[j] = r(i−1, j, ·); r(0, j, ·) = [1].
        let mut prev: Vec<Vec<u128>> = vec![vec![1]; inner + 1];
        for i in 1..=outer {
            let mut cur: Vec<Vec<u128>> = Vec::with_capacity(inner + 1);
            cur.push(vec![1]);
            for (j, above) in prev.iter().enumerate().skip(1) {
                let mut row = vec![0_u128; i * j + 1];
                if let Some(left) = cur.last() {
                    for (slot, &count) in row.iter_mut().zip(left) {
                        *slot += count;
                    }
                }
                for (slot, &count) in row.iter_mut().skip(j).zip(above) {
                    *slot += count;
                }
                cur.push(row);
            }
            prev = cur;
        }
        Self::new(prev.pop().unwrap_or_else(|| vec![1]))
    }

    /// Null distribution of the (doubled) signed-rank sum: every subset of
    /// `doubled_ranks` is equally likely under random sign flips.
    fn sign_flips(doubled_ranks: &[usize]) -> Self {
        let max: usize = doubled_ranks.iter().sum();
        let mut counts = vec![0_u128; max + 1];
        counts[0] = 1;
        let mut reach = 0;
        for &r in doubled_ranks {
            reach += r;
            for s in (r..=reach).rev() {
                counts[s] += counts[s - r];
            }
        }
        Self::new(counts)
    }

    fn ratio(&self, count: u128) -> f64 {
        count as f64 / self.total as f64
    }

    /// `P(S ≤ k)` for `k = 0, 1, …`.
    fn cdf_values(&self) -> impl Iterator<Item = f64> + '_ {
        self.counts.iter().scan(0_u128, move |acc, &count| {
            *acc += count;
            Some(self.ratio(*acc))
        })
    }

    /// `min(1, 2·min(P(S≤obs), P(S≥obs)))`.
    fn two_sided_p(&self, obs: usize) -> f64 {
        let lower: u128 = self.counts.iter().take(obs + 1).sum();
        let upper: u128 = self.counts.iter().skip(obs).sum();
        (2.0 * self.ratio(lower.min(upper))).min(1.0)
    }
}

/// Two-sided normal p value with continuity correction:
/// `z = (|stat − mean| − 0.5)/σ`, `p = min(1, 2·(1 − Φ(z)))`; 1 when `σ = 0`.
fn normal_two_sided_p(stat: f64, mean: f64, var: f64) -> f64 {
    if var.is_nan() || var <= 0.0 {
        return 1.0;
    }
    let z = ((stat - mean).abs() - 0.5) / var.sqrt();
    (2.0 * normal_cdf(-z)).min(1.0)
}

/// Standard normal CDF.
pub(crate) fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z * FRAC_1_SQRT_2)
}

/// Complementary error function, accurate to about 1e-15 absolute: the
/// positive-term series for erf below 3, a continued fraction above.
fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 3.0 {
        // erf(x) = 2/√π · e^{−x²} · Σ_k (2x²)^k · x / (1·3·…·(2k+1))
        let mut term = x;
        let mut sum = x;
        let mut k = 0.0;
        while term > sum * 1e-17 {
            k += 1.0;
            term *= 2.0 * x * x / (2.0 * k + 1.0);
            sum += term;
        }
        1.0 - 2.0 / PI.sqrt() * (-x * x).exp() * sum
    } else {
        // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
        let mut fraction = x;
        for k in (1..=60).rev() {
            fraction = x + f64::from(k) * 0.5 / fraction;
        }
        (-x * x).exp() / (PI.sqrt() * fraction)
    }
}

/// Midranks (1-based, ties averaged) in input order, and `Σ(t³−t)` over tie groups.
pub(crate) fn midranks(values: &[f64]) -> (Vec<f64>, f64) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut tie_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let value = values[order[start]];
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&i| values[i] == value)
                .count();
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        let t = (end - start) as f64;
        tie_sum += t * t * t - t;
        start = end;
    }
    (ranks, tie_sum)
}

// ---------------------------------------------------------------------------
// Multiple comparisons
// ---------------------------------------------------------------------------

/// Benjamini–Hochberg adjusted p values and rejections, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct BenjaminiHochberg {
    /// Adjusted p values (`min over j ≥ i of p_(j)·m/j`, capped at 1).
    pub adjusted: Vec<f64>,
    /// `adjusted ≤ q`.
    pub rejected: Vec<bool>,
}

/// Benjamini–Hochberg step-up procedure at false discovery rate `q`.
/// A NaN p value is adjusted to 1 and never rejected.
pub fn benjamini_hochberg(p_values: &[f64], q: f64) -> BenjaminiHochberg {
    let m = p_values.len() as f64;
    let mut order: Vec<usize> = (0..p_values.len()).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![1.0; p_values.len()];
    let mut running = 1.0_f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p_values[i] * m / (rank + 1) as f64);
        adjusted[i] = running;
    }
    let rejected = adjusted.iter().map(|&a| a <= q).collect();
    BenjaminiHochberg { adjusted, rejected }
}

// ---------------------------------------------------------------------------
// Paired tests (quality, paired by prompt)
// ---------------------------------------------------------------------------

/// Exact McNemar test: `b` = base pass / new fail, `c` = base fail / new pass.
/// Two-sided binomial p `min(1, 2·P(X ≤ min(b,c)))` with `X ~ Bin(b+c, ½)`;
/// 1 when there are no discordant pairs.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b as f64 + c as f64;
    let ln_half_n = -n * LN_2;
    let mut ln_choose = 0.0;
    let mut lower = ln_half_n.exp();
    for i in 1..=b.min(c) {
        let i = i as f64;
        ln_choose += ((n - i + 1.0) / i).ln();
        lower += (ln_choose + ln_half_n).exp();
    }
    (2.0 * lower).min(1.0)
}

/// Result of [`wilcoxon_signed_rank`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wilcoxon {
    /// Sum of midranks of |d| over positive differences `d = new − base`.
    pub w_plus: f64,
    /// Sum of midranks of |d| over negative differences.
    pub w_minus: f64,
    /// Number of non-zero differences.
    pub n: usize,
    /// Two-sided p value.
    pub p: f64,
    /// Exact or normal approximation.
    pub method: TestMethod,
}

/// Wilcoxon signed-rank test on paired differences `d = new − base`: zero
/// differences dropped, midranks for ties, exact sign-flip distribution of the
/// midranks for `n ≤ 20` ([`EXACT_WILCOXON_MAX_N`]), otherwise the normal
/// approximation (`σ² = n(n+1)(2n+1)/24 − Σ(t³−t)/48`, continuity correction).
///
/// Returns `None` when the lengths differ or a value is non-finite.
pub fn wilcoxon_signed_rank(base: &[f64], new: &[f64]) -> Option<Wilcoxon> {
    if base.len() != new.len() || !all_finite(base) || !all_finite(new) {
        return None;
    }
    let diffs: Vec<f64> = base
        .iter()
        .zip(new)
        .map(|(b, n)| n - b)
        .filter(|d| *d != 0.0)
        .collect();
    let magnitudes: Vec<f64> = diffs.iter().map(|d| d.abs()).collect();
    let (ranks, tie_sum) = midranks(&magnitudes);
    let signed_sum = |positive: bool| -> f64 {
        diffs
            .iter()
            .zip(&ranks)
            .filter(|(d, _)| (**d > 0.0) == positive)
            .map(|(_, r)| r)
            .sum()
    };
    let (w_plus, w_minus) = (signed_sum(true), signed_sum(false));
    let n = diffs.len();
    let (p, method) = if n <= EXACT_WILCOXON_MAX_N {
        // Midranks are multiples of ½, so doubled ranks are exact integers.
        let doubled: Vec<usize> = ranks.iter().map(|r| (2.0 * r).round() as usize).collect();
        let p = NullCounts::sign_flips(&doubled).two_sided_p((2.0 * w_plus).round() as usize);
        (p, TestMethod::Exact)
    } else {
        let nf = n as f64;
        let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_sum / 48.0;
        let p = normal_two_sided_p(w_plus, nf * (nf + 1.0) / 4.0, var);
        (p, TestMethod::Normal)
    };
    Some(Wilcoxon {
        w_plus,
        w_minus,
        n,
        p,
        method,
    })
}

// ---------------------------------------------------------------------------
// Seeded bootstrap
// ---------------------------------------------------------------------------

/// Percentile-bootstrap CI (level `1 − alpha`) of the ratio
/// `quantile_q(new) / quantile_q(base)`: each of `resamples` rounds draws
/// `base` then `new` with replacement (xoshiro256** seeded through
/// splitmix64 from `seed`), and the CI is the linear-interpolation
/// `alpha/2` and `1 − alpha/2` quantiles of the resampled ratios.
///
/// Returns `None` when either side is empty or holds a non-positive or
/// non-finite value, `resamples == 0`, `q ∉ [0, 1]` or `alpha ∉ (0, 1)`.
pub fn bootstrap_quantile_ratio_ci(
    base: &[f64],
    new: &[f64],
    q: f64,
    resamples: usize,
    seed: u64,
    alpha: f64,
) -> Option<(f64, f64)> {
    let valid = |v: &[f64]| !v.is_empty() && all_positive_finite(v);
    if !valid(base) || !valid(new) || resamples == 0 || !in_open_unit(alpha) {
        return None;
    }
    let mut rng = Xoshiro256StarStar::new(seed);
    let mut resample = |values: &[f64], out: &mut Vec<f64>| {
        out.clear();
        out.extend((0..values.len()).map(|_| values[rng.below(values.len())]));
    };
    let (mut b, mut n) = (
        Vec::with_capacity(base.len()),
        Vec::with_capacity(new.len()),
    );
    let mut ratios = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        resample(base, &mut b);
        resample(new, &mut n);
        ratios.push(percentile_by_selection(&mut n, q)? / percentile_by_selection(&mut b, q)?);
    }
    ratios.sort_by(f64::total_cmp);
    Some((
        percentile_of_sorted(&ratios, alpha / 2.0)?,
        percentile_of_sorted(&ratios, 1.0 - alpha / 2.0)?,
    ))
}

/// xoshiro256** (Blackman & Vigna), state filled by splitmix64.
pub(crate) struct Xoshiro256StarStar {
    s: [u64; 4],
}

impl Xoshiro256StarStar {
    pub(crate) fn new(seed: u64) -> Self {
        let mut state = seed;
        let mut next = || splitmix64(&mut state);
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform integer in `0..bound` (`bound > 0`), Lemire's unbiased
    /// multiply-and-reject method.
    fn below(&mut self, bound: usize) -> usize {
        let bound = bound as u64;
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if product as u64 >= threshold {
                return (product >> 64) as usize;
            }
        }
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------
// Change points
// ---------------------------------------------------------------------------

/// Change points of a per-commit series by binary segmentation: in each
/// segment, every split leaving at least [`MIN_ROUNDS`] values a side is
/// tested with [`mann_whitney_u`]; the split with the smallest p (the earliest
/// on ties) is accepted when that p, Bonferroni-corrected for the number of
/// candidate splits in the segment, is below `alpha`, and both halves are
/// searched again. Returns sorted indices of the first value after each step.
pub fn change_points(series: &[f64], alpha: f64) -> Vec<usize> {
    let mut found = Vec::new();
    split_segment(series, 0, alpha, &mut found);
    found.sort_unstable();
    found
}

fn split_segment(segment: &[f64], offset: usize, alpha: f64, found: &mut Vec<usize>) {
    let Some(last) = segment.len().checked_sub(MIN_ROUNDS) else {
        return;
    };
    if last < MIN_ROUNDS {
        return;
    }
    let candidates = (last - MIN_ROUNDS + 1) as f64;
    let best = (MIN_ROUNDS..=last)
        .filter_map(|k| {
            let (left, right) = segment.split_at(k);
            mann_whitney_u(left, right).map(|t| (k, t.p))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((k, p)) = best
        && p * candidates < alpha
    {
        found.push(offset + k);
        let (left, right) = segment.split_at(k);
        split_segment(left, offset, alpha, found);
        split_segment(right, offset + k, alpha, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E1_BASE: [f64; 5] = [101.0, 98.0, 105.0, 99.0, 103.0];
    const E1_NEW: [f64; 5] = [108.0, 112.0, 104.0, 110.0, 115.0];
    const E2_BASE: [f64; 8] = [20.0, 21.0, 21.0, 22.0, 23.0, 20.0, 21.0, 22.0];
    const E2_NEW: [f64; 8] = [22.0, 23.0, 23.0, 24.0, 22.0, 25.0, 23.0, 24.0];
    const E3_BASE: [f64; 20] = [
        1000.0, 1018.0, 984.0, 1450.0, 973.0, 942.0, 1004.0, 1084.0, 971.0, 963.0, 1030.0, 1022.0,
        1006.0, 946.0, 998.0, 1043.0, 923.0, 973.0, 892.0, 926.0,
    ];
    const E3_NEW: [f64; 20] = [
        949.0, 1045.0, 982.0, 1077.0, 1070.0, 1390.0, 911.0, 1026.0, 1057.0, 1067.0, 967.0, 1620.0,
        1000.0, 1010.0, 1130.0, 1010.0, 1058.0, 1118.0, 1024.0, 1053.0,
    ];
    const E5_BASE: [f64; 12] = [
        0.82, 0.75, 0.91, 0.66, 0.88, 0.79, 0.84, 0.70, 0.93, 0.77, 0.81, 0.86,
    ];
    const E5_NEW: [f64; 12] = [
        0.78, 0.74, 0.85, 0.61, 0.88, 0.72, 0.83, 0.71, 0.86, 0.70, 0.79, 0.80,
    ];
    const E6_SERIES: [f64; 16] = [
        410.0, 405.0, 415.0, 408.0, 412.0, 406.0, 411.0, 409.0, 440.0, 436.0, 445.0, 438.0, 442.0,
        439.0, 444.0, 437.0,
    ];

    fn close(actual: f64, expected: f64, tol: f64) {
        assert!(
            (actual - expected).abs() <= tol,
            "expected {expected} ± {tol}, got {actual}"
        );
    }

    fn close_pair(actual: (f64, f64), expected: (f64, f64), tol: f64) {
        close(actual.0, expected.0, tol);
        close(actual.1, expected.1, tol);
    }

    fn choose(n: u64, k: u64) -> f64 {
        (1..=k).fold(1.0, |acc, i| acc * (n - k + i) as f64 / i as f64)
    }

    #[test]
    fn percentiles_linear_interpolation() {
        close(percentile(&[1.0, 2.0, 3.0], 0.95).unwrap(), 2.9, 1e-12);
        close(
            percentile(&[40.0, 10.0, 30.0, 20.0], 0.5).unwrap(),
            25.0,
            1e-12,
        );
        close(
            percentile(&[10.0, 20.0, 30.0, 40.0], 0.9).unwrap(),
            37.0,
            1e-12,
        );
        close(
            percentile(&[10.0, 20.0, 30.0, 40.0], 1.0).unwrap(),
            40.0,
            0.0,
        );
        close(percentile(&[7.0], 0.99).unwrap(), 7.0, 0.0);
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[1.0], 1.5), None);
        assert_eq!(percentile(&[1.0, f64::NAN], 0.5), None);
    }

    #[test]
    fn percentile_of_sorted_matches_numpy_linear() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_of_sorted(&v, 0.5), Some(2.5));
        assert_eq!(percentile_of_sorted(&v, 0.0), Some(1.0));
        assert_eq!(percentile_of_sorted(&v, 1.0), Some(4.0));
        // numpy.percentile([1, 2, 3, 4], 5) == 1.15
        close(percentile_of_sorted(&v, 0.05).unwrap(), 1.15, 1e-12);
        assert_eq!(percentile_of_sorted(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile_of_sorted(&[], 0.5), None);
        assert_eq!(percentile_of_sorted(&v, -0.1), None);
    }

    #[test]
    fn summary_and_sample_bounds() {
        let s = summarize(&[40.0, 10.0, 30.0, 20.0]).unwrap();
        assert_eq!(s.n, 4);
        close(s.mean, 25.0, 1e-12);
        close(s.p50, 25.0, 1e-12);
        close(s.p90, 37.0, 1e-12);
        close(s.p95, 38.5, 1e-12);
        close(s.p99, 39.7, 1e-12);
        close(s.min, 10.0, 0.0);
        close(s.max, 40.0, 0.0);
        assert_eq!(summarize(&[]), None);

        assert_eq!(min_samples_for_upper_bound(0.95, 0.95), Some(59));
        assert_eq!(min_samples_for_upper_bound(0.5, 0.75), Some(2));
        assert_eq!(min_samples_for_upper_bound(1.0, 0.95), None);
        assert!(percentile_is_bounded(59, 0.95));
        assert!(!percentile_is_bounded(58, 0.95));
        assert!(!percentile_is_bounded(20, 0.99));
    }

    #[test]
    fn e3_p95_ratio() {
        let base = percentile(&E3_BASE, 0.95).unwrap();
        let new = percentile(&E3_NEW, 0.95).unwrap();
        close(base, 1102.3, 1e-6);
        close(new, 1401.5, 1e-6);
        close(new / base, 1.271432, 1e-6);
    }

    #[test]
    fn e1_exact_mann_whitney_and_hodges_lehmann() {
        let t = mann_whitney_u(&E1_BASE, &E1_NEW).unwrap();
        assert_eq!(t.method, TestMethod::Exact);
        close(t.u, 24.0, 0.0);
        close(mann_whitney_u(&E1_NEW, &E1_BASE).unwrap().u, 1.0, 0.0);
        close(t.p, 4.0 / 252.0, 1e-12);
        close(t.p, 0.015873, 1e-6);
        close(mwu_normal_p(t.u, 5, 5, 0.0), 0.021572, 1e-6);

        assert_eq!(hl_ci_rank(5, 5, 0.05), Some(2));
        let cdf: Vec<f64> = NullCounts::mann_whitney(5, 5).cdf_values().collect();
        close(1.0 - 2.0 * cdf[2], 0.968254, 1e-6);
        let hl = hodges_lehmann_ratio(&E1_BASE, &E1_NEW, 0.05).unwrap();
        close(hl.ratio, 1.089109, 1e-6);
        close_pair(hl.ci.unwrap(), (1.028571, 1.142857), 1e-6);
    }

    #[test]
    fn e1_verdicts() {
        let c = compare_samples(&E1_BASE, &E1_NEW, false, 0.05, 0.05);
        assert_eq!(c.verdict, Verdict::Regressed);
        assert!(!c.confirmed);
        close(c.ratio.unwrap(), 1.089109, 1e-6);
        close_pair(c.ci.unwrap(), (1.028571, 1.142857), 1e-6);
        close(c.p.unwrap(), 0.015873, 1e-6);
        assert_eq!((c.n_base, c.n_new), (5, 5));

        let c = compare_samples(&E1_BASE, &E1_NEW, false, 0.10, 0.05);
        assert_eq!(c.verdict, Verdict::Unchanged);
        assert!(!c.confirmed);

        // Higher-is-better: the same numbers read as throughput that dropped.
        let c = compare_samples(&E1_NEW, &E1_BASE, true, 0.05, 0.05);
        assert_eq!(c.verdict, Verdict::Regressed);
        close(c.ratio.unwrap(), 1.089109, 1e-6);
        close_pair(c.ci.unwrap(), (1.028571, 1.142857), 1e-6);
        // ... and as throughput that rose.
        let c = compare_samples(&E1_BASE, &E1_NEW, true, 0.05, 0.05);
        assert_eq!(c.verdict, Verdict::Improved);
        close(c.ratio.unwrap(), 1.0 / 1.089109, 1e-6);
        // Confirmed once the CI clears the band.
        let c = compare_samples(&E1_BASE, &E1_NEW, false, 0.02, 0.05);
        assert_eq!((c.verdict, c.confirmed), (Verdict::Regressed, true));
    }

    #[test]
    fn fewer_than_four_rounds_is_inconclusive() {
        let c = compare_samples(&[1.0, 1.1, 1.2], &[5.0, 5.1, 5.2], false, 0.05, 0.05);
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert!(!c.confirmed);
        close(c.p.unwrap(), 0.1, 1e-12);
        assert_eq!(c.ci, None);
        let c = compare_samples(&[1.0, 0.0, 1.0, 1.0], &[2.0; 4], false, 0.05, 0.05);
        assert_eq!((c.verdict, c.ratio), (Verdict::Inconclusive, None));
    }

    #[test]
    fn smallest_exact_p_per_side() {
        for (n, expected) in [
            (2, 0.333),
            (3, 0.100),
            (4, 0.0286),
            (5, 0.0079),
            (6, 0.0022),
        ] {
            let base: Vec<f64> = (0..n).map(f64::from).collect();
            let new: Vec<f64> = (0..n).map(|i| f64::from(i) + 100.0).collect();
            let p = mann_whitney_u(&base, &new).unwrap().p;
            close(p, 2.0 / choose(2 * n as u64, n as u64), 1e-12);
            close(p, expected, 5e-4);
        }
    }

    #[test]
    fn e2_ties_normal_approximation() {
        let pooled: Vec<f64> = E2_BASE.iter().chain(&E2_NEW).copied().collect();
        let tie_sum = midranks(&pooled).1;
        close(tie_sum / (16.0 * 15.0), 0.65, 1e-12);
        let sigma = (64.0 / 12.0 * (17.0 - 0.65_f64)).sqrt();
        close(sigma, 9.338094, 1e-6);
        close((58.5 - 32.0 - 0.5) / sigma, 2.784294, 1e-6);

        let t = mann_whitney_u(&E2_BASE, &E2_NEW).unwrap();
        assert_eq!(t.method, TestMethod::Normal);
        close(t.u, 58.5, 0.0);
        close(t.p, 0.0053644, 1e-6);
    }

    #[test]
    fn e3_heavy_tail() {
        let t = mann_whitney_u(&E3_BASE, &E3_NEW).unwrap();
        assert_eq!(t.method, TestMethod::Normal);
        close(t.u, 295.5, 0.0);
        close(t.p, 0.010166, 1e-6);

        assert_eq!(hl_ci_rank(20, 20, 0.05), Some(127));
        let hl = hodges_lehmann_ratio(&E3_BASE, &E3_NEW, 0.05).unwrap();
        close(hl.ratio, 1.053800, 1e-6);
        close_pair(hl.ci.unwrap(), (1.014382, 1.097087), 1e-6);

        let c = compare_samples(&E3_BASE, &E3_NEW, false, 0.05, 0.05);
        assert_eq!(c.verdict, Verdict::Regressed);
        assert!(!c.confirmed);
    }

    #[test]
    fn e3_bootstrap_of_p95_ratio() {
        let ci = bootstrap_quantile_ratio_ci(&E3_BASE, &E3_NEW, 0.95, 10_000, 42, 0.05).unwrap();
        close_pair(ci, (0.771, 1.572), 0.01);
        // Deterministic for a fixed seed.
        let again = bootstrap_quantile_ratio_ci(&E3_BASE, &E3_NEW, 0.95, 10_000, 42, 0.05);
        assert_eq!(again, Some(ci));
        assert_eq!(
            bootstrap_quantile_ratio_ci(&E3_BASE, &[], 0.95, 100, 1, 0.05),
            None
        );
    }

    #[test]
    fn e4_mcnemar() {
        close(mcnemar_exact(8, 2), 0.109375, 1e-12);
        close(mcnemar_exact(2, 8), 0.109375, 1e-12);
        close(mcnemar_exact(0, 0), 1.0, 0.0);
        close(mcnemar_exact(5, 5), 1.0, 0.0);
    }

    #[test]
    fn e5_wilcoxon_signed_rank() {
        let w = wilcoxon_signed_rank(&E5_BASE, &E5_NEW).unwrap();
        assert_eq!(w.n, 11);
        assert_eq!(w.method, TestMethod::Exact);
        close(w.w_plus, 2.0, 1e-12);
        close(w.w_minus, 64.0, 1e-12);
        close(w.p, 0.00390625, 1e-12);
        assert_eq!(wilcoxon_signed_rank(&E5_BASE, &E5_NEW[..3]), None);
    }

    #[test]
    fn e6_change_point() {
        let (before, after) = E6_SERIES.split_at(8);
        let t = mann_whitney_u(before, after).unwrap();
        close(t.p, 2.0 / 12870.0, 1e-12);
        close(t.p, 1.554e-4, 1e-6);
        close(
            hodges_lehmann_ratio(before, after, 0.05).unwrap().ratio,
            1.074658,
            1e-6,
        );
        for k in [7, 9] {
            let (l, r) = E6_SERIES.split_at(k);
            close(mann_whitney_u(l, r).unwrap().p, 0.0020979, 1e-6);
        }
        assert_eq!(change_points(&E6_SERIES, 0.05), vec![8]);
        assert_eq!(change_points(before, 0.05), Vec::<usize>::new());
        assert_eq!(change_points(after, 0.05), Vec::<usize>::new());
    }

    #[test]
    fn e7_benjamini_hochberg() {
        let p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205];
        let bh = benjamini_hochberg(&p, 0.05);
        let expected = [0.008, 0.032, 0.0672, 0.0672, 0.0672, 0.08, 0.084571, 0.205];
        for (a, e) in bh.adjusted.iter().zip(expected) {
            close(*a, e, 1e-6);
        }
        let rejected: Vec<bool> = (0..8).map(|i| i < 2).collect();
        assert_eq!(bh.rejected, rejected);

        // Input order is preserved.
        let bh = benjamini_hochberg(&[0.205, 0.001], 0.05);
        close(bh.adjusted[0], 0.205, 1e-12);
        close(bh.adjusted[1], 0.002, 1e-12);
        assert_eq!(bh.rejected, vec![false, true]);
    }

    #[test]
    fn normal_tail_and_rng_reference_values() {
        close(erfc(0.5), 0.479_500_122_186_953_5, 1e-15);
        close(erfc(1.0), 0.157_299_207_050_285_1, 1e-15);
        close(erfc(3.0), 2.209_049_699_858_544e-5, 1e-17);
        close(erfc(-1.0), 1.842_700_792_949_715, 1e-15);
        close(normal_cdf(1.959_963_984_540_054), 0.975, 1e-12);

        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xE220_A839_7B1D_CDAF);
        let mut rng = Xoshiro256StarStar { s: [1, 2, 3, 4] };
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(first, vec![11520, 0, 1_509_978_240]);
    }

    /// Uniform in `[0, 1)` from the top 53 bits.
    fn uniform(rng: &mut Xoshiro256StarStar) -> f64 {
        (rng.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// `len` positive values: integers in `1..=levels` (many ties) when
    /// `levels > 0`, else continuous in `[1, 2)`.
    fn random_values(rng: &mut Xoshiro256StarStar, len: usize, levels: usize) -> Vec<f64> {
        (0..len)
            .map(|_| match levels {
                0 => 1.0 + uniform(rng),
                _ => (1 + rng.below(levels)) as f64,
            })
            .collect()
    }

    /// The quadratic definitions the fast paths replace.
    fn brute_u(x: &[f64], y: &[f64]) -> f64 {
        let twice: usize = y
            .iter()
            .flat_map(|yj| {
                x.iter()
                    .map(move |xi| (yj > xi) as usize * 2 + (yj == xi) as usize)
            })
            .sum();
        twice as f64 / 2.0
    }

    fn brute_differences(x: &[f64], y: &[f64]) -> Vec<f64> {
        let mut diffs: Vec<f64> = y
            .iter()
            .flat_map(|yj| x.iter().map(move |xi| yj - xi))
            .collect();
        diffs.sort_by(f64::total_cmp);
        diffs
    }

    fn brute_hodges_lehmann(x: &[f64], y: &[f64], alpha: f64) -> HodgesLehmann {
        let diffs = brute_differences(x, y);
        let ci = hl_ci_rank(x.len(), y.len(), alpha).and_then(|c| {
            let lo = diffs.get(c)?;
            let hi = diffs.get(diffs.len().checked_sub(c + 1)?)?;
            Some((lo.exp(), hi.exp()))
        });
        HodgesLehmann {
            ratio: percentile_of_sorted(&diffs, 0.5).unwrap().exp(),
            ci,
        }
    }

    fn brute_hl_ci_rank(m: usize, n: usize, alpha: f64) -> Option<usize> {
        let mn = m * n;
        let mean = mn as f64 / 2.0;
        let sd = (mn as f64 * (m + n + 1) as f64 / 12.0).sqrt();
        (0..=mn)
            .map(|u| normal_cdf((u as f64 + 0.5 - mean) / sd))
            .take_while(|&p| p <= alpha / 2.0)
            .count()
            .checked_sub(1)
    }

    #[test]
    fn u_and_hodges_lehmann_equal_brute_force() {
        let mut rng = Xoshiro256StarStar::new(7);
        // (m, n, levels): ties from few levels, continuous values, lopsided sizes.
        for (m, n, levels) in [
            (300, 200, 40),
            (300, 200, 0),
            (200, 300, 3),
            (250, 1, 5),
            (1, 250, 0),
            (60, 60, 2),
            (5, 5, 0),
        ] {
            let x = random_values(&mut rng, m, levels);
            let y = random_values(&mut rng, n, levels);
            assert_eq!(u_statistic(&x, &y), brute_u(&x, &y), "U for {m}×{n}");
            let (lx, ly) = (
                log_values(&x, false).unwrap(),
                log_values(&y, false).unwrap(),
            );
            for alpha in [0.05, 0.01, 0.3] {
                let fast = hodges_lehmann_on_logs(&lx, &ly, alpha).unwrap();
                let brute = brute_hodges_lehmann(&lx, &ly, alpha);
                assert_eq!(
                    fast, brute,
                    "HL for {m}×{n}, {levels} levels, alpha {alpha}"
                );
            }
        }
    }

    #[test]
    fn every_order_statistic_of_the_differences_is_exact() {
        let mut rng = Xoshiro256StarStar::new(11);
        for (m, n, levels) in [(40, 30, 4), (40, 30, 0), (1, 90, 0), (90, 1, 3)] {
            let x = sorted_copy(&log_values(&random_values(&mut rng, m, levels), false).unwrap());
            let y = sorted_copy(&log_values(&random_values(&mut rng, n, levels), false).unwrap());
            let diffs = brute_differences(&x, &y);
            for (k, d) in diffs.iter().enumerate() {
                assert_eq!(kth_difference(&x, &y, k), Some(*d), "{m}×{n}, k = {k}");
            }
            assert_eq!(kth_difference(&x, &y, diffs.len()), None);
        }
    }

    #[test]
    fn normal_ci_rank_equals_a_linear_scan() {
        for (m, n) in [(51, 50), (60, 70), (200, 13), (400, 400)] {
            for alpha in [0.05, 0.01, 0.2, 1e-6, 0.999] {
                assert_eq!(
                    hl_ci_rank(m, n, alpha),
                    brute_hl_ci_rank(m, n, alpha),
                    "{m}×{n} at alpha {alpha}"
                );
            }
        }
        assert_eq!(hl_ci_rank(100, 100, 1e-300), None);
    }

    #[test]
    fn bootstrap_by_selection_equals_sorting() {
        // The sort-based resampling this replaced, drawing in the same order.
        fn by_sorting(base: &[f64], new: &[f64], q: f64, resamples: usize, seed: u64) -> Vec<f64> {
            let mut rng = Xoshiro256StarStar::new(seed);
            let mut draw = |values: &[f64]| {
                let mut out: Vec<f64> = (0..values.len())
                    .map(|_| values[rng.below(values.len())])
                    .collect();
                out.sort_by(f64::total_cmp);
                out
            };
            let mut ratios: Vec<f64> = (0..resamples)
                .map(|_| {
                    let b = draw(base);
                    let n = draw(new);
                    percentile_of_sorted(&n, q).unwrap() / percentile_of_sorted(&b, q).unwrap()
                })
                .collect();
            ratios.sort_by(f64::total_cmp);
            ratios
        }
        for q in [0.95, 0.5, 0.0, 1.0, 0.37] {
            let ratios = by_sorting(&E3_BASE, &E3_NEW, q, 2000, 42);
            let expected = (
                percentile_of_sorted(&ratios, 0.025).unwrap(),
                percentile_of_sorted(&ratios, 0.975).unwrap(),
            );
            let ci = bootstrap_quantile_ratio_ci(&E3_BASE, &E3_NEW, q, 2000, 42, 0.05);
            assert_eq!(ci, Some(expected), "q = {q}");
        }
    }

    #[test]
    fn twenty_thousand_rounds_a_side() {
        let mut rng = Xoshiro256StarStar::new(3);
        let base = random_values(&mut rng, 20_000, 0);
        let new: Vec<f64> = random_values(&mut rng, 20_000, 0)
            .iter()
            .map(|v| v * 1.05)
            .collect();
        let t = mann_whitney_u(&base, &new).unwrap();
        // U from the rank sum of the new side, an independent O(N log N) route.
        let pooled: Vec<f64> = base.iter().chain(&new).copied().collect();
        let rank_sum: f64 = midranks(&pooled).0[20_000..].iter().sum();
        close(t.u, rank_sum - 20_000.0 * 20_001.0 / 2.0, 0.0);
        assert_eq!(t.method, TestMethod::Normal);

        let c = compare_samples(&base, &new, false, 0.01, 0.05);
        assert_eq!(c.verdict, Verdict::Regressed);
        let (lo, hi) = c.ci.unwrap();
        let ratio = c.ratio.unwrap();
        assert!(
            lo < ratio && ratio < hi && hi - lo < 0.02,
            "{lo} {ratio} {hi}"
        );
        close(ratio, 1.05, 0.01);
    }

    #[test]
    fn exact_null_distributions_are_consistent() {
        for (m, n) in [(1, 7), (3, 4), (4, 3), (6, 6)] {
            let d = NullCounts::mann_whitney(m, n);
            assert_eq!(d.counts.len(), m * n + 1);
            close(d.total as f64, choose((m + n) as u64, m as u64), 0.0);
            for u in 0..=m * n {
                assert_eq!(d.counts[u], d.counts[m * n - u]);
            }
        }
        // No-tie signed ranks 1..=4 (doubled): 16 sign patterns.
        let d = NullCounts::sign_flips(&[2, 4, 6, 8]);
        assert_eq!(d.total, 16);
        close(d.two_sided_p(0), 0.125, 1e-12);
    }
}
