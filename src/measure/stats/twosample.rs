//! Two samples: Mann–Whitney U, the Hodges–Lehmann ratio and its
//! distribution-free interval (selected without materialising the m·n
//! differences), and the verdict against a noise band.

use super::{
    EXACT_MWU_MAX_CELLS, MIN_ROUNDS, NullCounts, all_finite, in_open_unit, lerp, midranks,
    normal_cdf, normal_two_sided_p, quantile_position, sorted_copy,
};

/// How a p value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TestMethod {
    /// Exact null distribution.
    Exact,
    /// Normal approximation with tie and continuity correction.
    Normal,
}

/// Result of [`mann_whitney_u`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MannWhitney {
    /// `U = #{y_j > x_i} + ½·#{y_j = x_i}` (x = base, y = new).
    pub u: f64,
    /// Two-sided p value.
    pub p: f64,
    /// Exact or normal approximation.
    pub method: TestMethod,
}

/// Hodges–Lehmann ratio and its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HodgesLehmann {
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
    /// A shift between runs on different machines (CPU model, core count,
    /// or the model's engine build or CPU features): not evidence about
    /// the commit (set by `compare`, never by a test).
    Machine,
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
pub(crate) fn mann_whitney_u(base: &[f64], new: &[f64]) -> Option<MannWhitney> {
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

#[cfg(test)]
/// Hodges–Lehmann ratio of `new` over `base` on log values, with the
/// distribution-free CI `[exp D_(c+1), exp D_(mn−c)]` at level `1 − alpha`,
/// `c = max{u : P(U≤u) ≤ alpha/2}` under the exact Mann–Whitney null
/// distribution (used even when there are ties; for `m·n > 2500` the normal
/// approximation with continuity correction stands in for it).
///
/// Returns `None` when either side is empty or holds a non-positive or
/// non-finite value; `ci` is `None` when no such `c` exists.
pub(crate) fn hodges_lehmann_ratio(base: &[f64], new: &[f64], alpha: f64) -> Option<HodgesLehmann> {
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

pub(super) fn all_positive_finite(values: &[f64]) -> bool {
    values.iter().all(|v| v.is_finite() && *v > 0.0)
}

/// `#{y_j > x_i} + ½·#{y_j = x_i}` for finite values, from sorted copies in
/// O((m+n)·log(m+n)).
pub(super) fn u_statistic(x: &[f64], y: &[f64]) -> f64 {
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
pub(super) fn differences_below(x: &[f64], y: &[f64], t: f64) -> (usize, usize) {
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
pub(super) fn differences_between<'a>(
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
pub(super) const ENUMERATED_PER_VALUE: usize = 4;

/// The `k`-th smallest (0-based) of the `m·n` differences `y_j − x_i` of
/// ascending `x` and `y`, exactly (the same `f64` that sorting all of them
/// would put at index `k`), in O((m+n)·log) time and O(m+n) memory.
///
/// Keeps an open bracket `(lo, hi)` around the answer, with
/// `#{d ≤ lo} ≤ k < #{d < hi}`, and bisects it on the value, counting with
/// [`differences_below`]; a pivot that is itself the answer ends the search.
/// Once the bracket holds at most `4·(m+n)` differences they are enumerated
/// and the answer selected among them. `None` when `k ≥ m·n`.
pub(super) fn kth_difference(x: &[f64], y: &[f64], k: usize) -> Option<f64> {
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
pub(super) fn mwu_normal_p(u: f64, m: usize, n: usize, tie_sum: f64) -> f64 {
    let mn = (m * n) as f64;
    let total = (m + n) as f64;
    let var = mn / 12.0 * ((total + 1.0) - tie_sum / (total * (total - 1.0)));
    normal_two_sided_p(u, mn / 2.0, var)
}

/// Hodges–Lehmann shift and CI on already-logged samples, exponentiated.
/// The median and the CI bounds are order statistics of the `m·n`
/// differences, selected by [`kth_difference`] without materialising them;
/// the median of an even count interpolates like [`percentile_of_sorted`].
pub(super) fn hodges_lehmann_on_logs(x: &[f64], y: &[f64], alpha: f64) -> Option<HodgesLehmann> {
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
pub(super) fn hl_ci_rank(m: usize, n: usize, alpha: f64) -> Option<usize> {
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
