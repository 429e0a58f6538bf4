//! Model-level comparison across prompts: van Elteren's stratified
//! Wilcoxon–Mann–Whitney test, the pooled ratio with its confidence interval
//! from inverting that test, the verdict, and the noise band with an absolute
//! floor. Pure functions on numbers; never does I/O, never seeds from the clock.
//!
//! # Why van Elteren
//!
//! Each prompt is a stratum (a block) with its own base and new rounds.
//! Prompts differ in scale — a 200 ms prompt next to a 1500 ms one — so
//! pooling raw values across prompts would confound prompt with version: the
//! spread between prompts swamps the shift, and a prompt with more rounds on
//! one side moves the pooled distribution by itself. Van Elteren ranks only
//! within each prompt and adds the per-prompt Mann–Whitney statistics with
//! weights `1/(N_i+1)`, the weights that are locally most powerful against a
//! common shift (on logs: a common ratio), so each prompt counts by how much
//! evidence it holds and no prompt's scale leaks into another's.
//!
//! # Method
//!
//! Per stratum `i` with `m_i` base values `x` and `n_i` new values `y`
//! (strata with an empty side are skipped), `N_i = m_i + n_i`:
//!
//! - `U_i = #{y > x} + ½·#{y = x}` (as in [`crate::measure::stats`]), `w_i = 1/(N_i+1)`;
//! - `T = Σ w_i·U_i`, `E[T] = Σ w_i·m_i·n_i/2`,
//!   `Var[T] = Σ w_i²·(m_i·n_i/12)·[(N_i+1) − Σ(t³−t)/(N_i(N_i−1))]`
//!   (ties counted within each stratum);
//! - `z = (T − E[T])/√Var[T]`, two-sided `p = 2·Φ(−|z|)`, with **no**
//!   continuity correction: the weighted statistic does not live on a unit
//!   lattice, so there is no half-step to correct by.
//!
//! The pooled shift inverts the test on logs: `z(Δ)` recomputes every `U_i`
//! on `(x, y − Δ)`, holding `Var[T]` at its observed value so that `z(Δ)` is a
//! non-increasing step function of `Δ`. The estimate is the midpoint of
//! `[sup{Δ : z(Δ) > 0}, inf{Δ : z(Δ) < 0}]` — the stratified Hodges–Lehmann
//! estimate; with one stratum it is the ordinary Hodges–Lehmann median. The
//! confidence interval is `{Δ : |z(Δ)| ≤ z_{1−α/2}}`, i.e. the shifts the
//! test does not reject, so it excludes 0 exactly when `p < α`. Its endpoints
//! are found by bisection; each evaluation of `z(Δ)` is a two-pointer walk per
//! stratum over values sorted once, `O(Σ(m_i+n_i))`. Ratios are `exp` of shifts.
//!
//! `scripts/stats-vectors.py` implements the same method independently
//! (scipy midranks, brute force over every breakpoint) and prints the vectors
//! the tests below assert.

use crate::measure::stats::{self, Comparison, HodgesLehmann};

/// Fewest rounds a side that at least one stratum must hold for a verdict:
/// when every stratum is a single pair, the normal approximation is badly
/// anti-conservative (four one-against-one strata reach `p = 0.046` where
/// the exact sign test gives 0.125).
pub(crate) const MIN_ROUNDS_IN_A_STRATUM: usize = 2;

/// Bisection stops when the bracket is narrower than this, relative to
/// `1 + |Δ|` (shifts are differences of logs).
const SHIFT_TOLERANCE: f64 = 1e-13;

/// Upper bound on bisection steps (the tolerance is normally reached in ~50).
const MAX_BISECTIONS: usize = 200;

/// Largest `L·Σ m_i·n_i` for which weights are scaled to the integers
/// `L/(N_i+1)` (`L` = least common multiple of the `N_i+1`), so that `T` and
/// `E[T]` are exact in `f64` and the sign of `T − E[T]` is never a rounding
/// artefact.
const EXACT_SCALE_LIMIT: u64 = 1 << 50;

/// Result of [`van_elteren`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct VanElteren {
    /// `T = Σ U_i/(N_i+1)`.
    pub statistic: f64,
    /// `E[T]` under the null.
    pub expected: f64,
    /// `Var[T]` under the null, tie-corrected per stratum.
    pub variance: f64,
    /// `(T − E[T])/√Var[T]`; positive when the new values are larger.
    pub z: f64,
    /// Two-sided p value from the normal approximation (no continuity correction).
    pub p: f64,
    /// Strata that entered the test (both sides non-empty).
    pub strata: usize,
}

/// A model-level comparison across strata (prompts); see [`compare_strata`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StratifiedComparison {
    /// Verdict, ratio (above 1 means worse), CI, p and the rounds summed over
    /// all strata, read exactly like a [`stats::compare_samples`] result.
    pub comparison: Comparison,
    /// Strata that entered the test (both sides non-empty).
    pub strata: usize,
}

#[cfg(test)]
/// Van Elteren's stratified Wilcoxon–Mann–Whitney test of new against base,
/// each element of `strata` being one stratum's `(base, new)` values. Rank
/// based, so any monotone transform of all values (such as `ln`) leaves it
/// unchanged.
///
/// Returns `None` when a value is non-finite, when no stratum has both sides
/// non-empty, or when `Var[T] = 0` (every stratum constant).
pub(crate) fn van_elteren(strata: &[(Vec<f64>, Vec<f64>)]) -> Option<VanElteren> {
    Blocks::new(strata.to_vec())?.test()
}

#[cfg(test)]
/// Pooled ratio of new over base across strata with its CI at level
/// `1 − alpha`: `exp` of the shift that inverts [`van_elteren`] on logs (see
/// the module documentation). With one stratum the ratio is, to bisection
/// precision, the Hodges–Lehmann ratio of [`stats::hodges_lehmann_ratio`].
///
/// Returns `None` when a value is non-positive or non-finite or no stratum
/// has both sides non-empty. When every stratum is constant the ratio is 1
/// with CI `[1, 1]`. `ci` is `None` for `alpha ∉ (0, 1)` or when even complete
/// separation in every stratum would not be significant at `alpha`.
pub(crate) fn stratified_hodges_lehmann_ratio(
    strata: &[(Vec<f64>, Vec<f64>)],
    alpha: f64,
) -> Option<HodgesLehmann> {
    Blocks::new(log_strata(strata, false)?)?.hodges_lehmann(alpha)
}

/// Compares new against base for one model and metric across its prompts
/// (the strata), mirroring [`stats::compare_samples`]: works on logs, negated
/// when `higher_is_better` so `ratio > 1` always means worse; the ratio and CI
/// come from [`stratified_hodges_lehmann_ratio`], `p` from [`van_elteren`], and
/// the verdict from the same decision rule (noise threshold `τ = noise`).
///
/// Minimum data: at least [`stats::MIN_ROUNDS`] values a side summed over the
/// strata that enter the test, and at least one stratum with
/// [`MIN_ROUNDS_IN_A_STRATUM`] values a side; otherwise `Inconclusive`.
/// When every stratum is constant nothing moved: ratio 1, CI `[1, 1]`, `p = 1`
/// (as `compare_samples` reports for constant samples). Invalid values, noise
/// or alpha yield `Inconclusive` as in `compare_samples`; `n_base`/`n_new` count
/// every value given.
pub fn compare_strata(
    strata: &[(Vec<f64>, Vec<f64>)],
    higher_is_better: bool,
    noise: f64,
    alpha: f64,
) -> StratifiedComparison {
    let blocks = log_strata(strata, higher_is_better).and_then(Blocks::new);
    let hl = blocks.as_ref().and_then(|b| b.hodges_lehmann(alpha));
    let p = blocks.as_ref().map(|b| b.test().map_or(1.0, |t| t.p));
    let ratio = hl.map(|h| h.ratio);
    let ci = hl.and_then(|h| h.ci);
    let rounds = blocks.as_ref().map_or(0, Blocks::rounds_for_verdict);
    let (verdict, confirmed) = stats::decide(rounds, ratio, ci, p, noise, alpha);
    StratifiedComparison {
        comparison: Comparison {
            verdict,
            confirmed,
            ratio,
            ci,
            p,
            n_base: strata.iter().map(|(base, _)| base.len()).sum(),
            n_new: strata.iter().map(|(_, new)| new.len()).sum(),
        },
        strata: blocks.map_or(0, |b| b.blocks.len()),
    }
}

/// The noise threshold `τ` for a comparison: the relative band widened so it
/// never falls below an absolute `floor`, `max(relative, floor/base_level)`.
///
/// For lower-is-better times, `floor` is in the metric's unit and
/// `base_level` is the base median: `effective_noise(0.10, 1.0, 6.0)` is
/// `1/6`, so a 0.8 ms drift on a 6 ms TTFT is noise, not a regression, while
/// on a 200 ms TTFT the 10% band stands. For higher-is-better rates the same
/// formula applies with `floor` in the rate's unit (e.g. 0.5 tokens/s) and
/// `base_level` the base median rate; the band is then about `±floor` around
/// the base (a drop of exactly `floor` reads as a ratio of
/// `1/(1 − floor/base)`, slightly above `1 + floor/base`). Pass `floor = 0`
/// for no floor.
///
/// Returns `relative` unchanged when `floor` is not positive or `base_level`
/// is not a positive finite number (no level to scale the floor by), or when
/// `relative` is NaN (so an invalid threshold still reaches the decision).
pub(crate) fn effective_noise(relative: f64, floor: f64, base_level: f64) -> f64 {
    let scalable = floor > 0.0 && base_level.is_finite() && base_level > 0.0;
    if scalable && !relative.is_nan() {
        relative.max(floor / base_level)
    } else {
        relative
    }
}

/// Logs of every stratum's values (negated when `negate`); an empty side stays
/// empty. `None` when any value is non-positive or non-finite.
fn log_strata(strata: &[(Vec<f64>, Vec<f64>)], negate: bool) -> Option<Vec<(Vec<f64>, Vec<f64>)>> {
    let logs = |side: &[f64]| match side {
        [] => Some(Vec::new()),
        values => stats::log_values(values, negate),
    };
    strata
        .iter()
        .map(|(base, new)| Some((logs(base)?, logs(new)?)))
        .collect()
}

/// One stratum, sorted once, with its (possibly scaled) weight.
struct Block {
    x: Vec<f64>,
    y: Vec<f64>,
    weight: f64,
}

/// The strata that enter the test, with the null moments of the scaled
/// statistic `Σ weight_i·U_i = scale·T`.
struct Blocks {
    blocks: Vec<Block>,
    /// `L` when the weights are the integers `L/(N_i+1)`, else 1.
    scale: f64,
    /// `scale·E[T]`.
    expected: f64,
    /// `scale²·Var[T]`.
    variance: f64,
    /// `scale·√Var[T]`.
    sd: f64,
    /// Smallest and largest difference `y − x` over all strata.
    smallest: f64,
    largest: f64,
}

impl Blocks {
    /// Sorts each stratum with both sides non-empty and computes the null
    /// moments. `None` when a value is non-finite or no stratum remains.
    fn new(strata: Vec<(Vec<f64>, Vec<f64>)>) -> Option<Self> {
        let all_finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !strata.iter().all(|(x, y)| all_finite(x) && all_finite(y)) {
            return None;
        }
        let used: Vec<(Vec<f64>, Vec<f64>)> = strata
            .into_iter()
            .filter(|(x, y)| !x.is_empty() && !y.is_empty())
            .collect();
        let scale = exact_scale(&used);
        let (mut expected, mut variance) = (0.0, 0.0);
        let (mut smallest, mut largest) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut blocks = Vec::with_capacity(used.len());
        for (x, y) in used {
            let (m, n) = (x.len() as f64, y.len() as f64);
            let total = m + n;
            let weight = scale.map_or(1.0 / (total + 1.0), |l| {
                (l / (x.len() + y.len() + 1) as u64) as f64
            });
            let pooled: Vec<f64> = x.iter().chain(&y).copied().collect();
            let tie_sum = stats::midranks(&pooled).1;
            expected += weight * m * n / 2.0;
            variance += weight
                * weight
                * (m * n / 12.0)
                * ((total + 1.0) - tie_sum / (total * (total - 1.0)));
            let block = Block {
                x: sorted(x),
                y: sorted(y),
                weight,
            };
            smallest = smallest.min(block.y.first()? - block.x.last()?);
            largest = largest.max(block.y.last()? - block.x.first()?);
            blocks.push(block);
        }
        if blocks.is_empty() {
            return None;
        }
        Some(Self {
            blocks,
            scale: scale.map_or(1.0, |l| l as f64),
            expected,
            variance,
            sd: variance.max(0.0).sqrt(),
            smallest,
            largest,
        })
    }

    /// `scale·(T(Δ) − E[T])`: every stratum's U of `(x, y − Δ)`, weighted.
    fn excess(&self, shift: f64) -> f64 {
        let weighted: f64 = self
            .blocks
            .iter()
            .map(|b| b.weight * stats::u_at_shift(&b.x, &b.y, shift))
            .sum();
        weighted - self.expected
    }

    /// `z(Δ)`; its sign is exactly the sign of `T(Δ) − E[T]` when the weights
    /// are scaled to integers.
    fn z(&self, shift: f64) -> f64 {
        self.excess(shift) / self.sd
    }

    /// The test at `Δ = 0`; `None` when `Var[T] = 0`.
    fn test(&self) -> Option<VanElteren> {
        if self.sd <= 0.0 {
            return None;
        }
        let z = self.z(0.0);
        Some(VanElteren {
            statistic: (self.excess(0.0) + self.expected) / self.scale,
            expected: self.expected / self.scale,
            variance: self.variance / (self.scale * self.scale),
            z,
            p: (2.0 * stats::normal_cdf(-z.abs())).min(1.0),
            strata: self.blocks.len(),
        })
    }

    /// Ratio and CI by inverting the test (see the module documentation).
    fn hodges_lehmann(&self, alpha: f64) -> Option<HodgesLehmann> {
        if self.sd <= 0.0 {
            // Every stratum constant: only Δ = 0 balances the statistic.
            return Some(HodgesLehmann {
                ratio: 1.0,
                ci: stats::in_open_unit(alpha).then_some((1.0, 1.0)),
            });
        }
        let half = alpha / 2.0;
        // The estimate is bracketed by `z > 0` and `z ≥ 0`; the interval's
        // ends by z > z_{1−α/2} and z ≥ −z_{1−α/2}, through Φ so no quantile
        // is needed.
        let [positive, non_negative, lo, hi] = self.last_shifts_where([
            &|z| z > 0.0,
            &|z| z >= 0.0,
            &|z| stats::normal_cdf(-z) < half,
            &|z| stats::normal_cdf(z) >= half,
        ]);
        let (positive, non_negative) = (positive?, non_negative?);
        let shift = positive + (non_negative - positive) / 2.0;
        let ci = stats::in_open_unit(alpha)
            .then(|| Some((lo?.exp(), hi?.exp())))
            .flatten();
        Some(HodgesLehmann {
            ratio: shift.exp(),
            ci,
        })
    }

    /// `sup{Δ : holds(z(Δ))}` for each of several predicates that hold for
    /// large `z` and fail for small (`z(Δ)` falls as `Δ` grows), by bisection
    /// between a shift below every difference and one above; `None` for a
    /// predicate that holds for no shift or for every shift. The searches
    /// share their evaluations of `z`: every shift tried narrows each bracket
    /// it falls in, so searches that have not yet parted cost one.
    fn last_shifts_where<const K: usize>(
        &self,
        holds: [&dyn Fn(f64) -> bool; K],
    ) -> [Option<f64>; K] {
        let (lo, hi) = (self.smallest - 1.0, self.largest + 1.0);
        let (z_lo, z_hi) = (self.z(lo), self.z(hi));
        let mut brackets = holds.map(|h| (h(z_lo) && !h(z_hi)).then_some((lo, hi)));
        let open = |(lo, hi): (f64, f64)| {
            let mid = lo + (hi - lo) / 2.0;
            lo < mid && mid < hi && hi - lo > SHIFT_TOLERANCE * (1.0 + mid.abs())
        };
        for _ in 0..MAX_BISECTIONS * K {
            let Some((lo, hi)) = brackets.iter().flatten().copied().find(|&b| open(b)) else {
                break;
            };
            let mid = lo + (hi - lo) / 2.0;
            let z = self.z(mid);
            for (bracket, holds) in brackets.iter_mut().zip(&holds) {
                if let Some((lo, hi)) = bracket.as_mut().filter(|(lo, hi)| *lo < mid && mid < *hi) {
                    if holds(z) {
                        *lo = mid;
                    } else {
                        *hi = mid;
                    }
                }
            }
        }
        brackets.map(|b| b.map(|(lo, hi)| lo + (hi - lo) / 2.0))
    }

    /// Rounds a side handed to the decision rule: the smaller of the summed
    /// base and new counts, or 0 when no stratum has
    /// [`MIN_ROUNDS_IN_A_STRATUM`] a side.
    fn rounds_for_verdict(&self) -> usize {
        let wide = |b: &Block| b.x.len().min(b.y.len()) >= MIN_ROUNDS_IN_A_STRATUM;
        if !self.blocks.iter().any(wide) {
            return 0;
        }
        let base: usize = self.blocks.iter().map(|b| b.x.len()).sum();
        let new: usize = self.blocks.iter().map(|b| b.y.len()).sum();
        base.min(new)
    }
}

/// `L = lcm(N_i + 1)` when `L·Σ m_i·n_i ≤` [`EXACT_SCALE_LIMIT`], so the
/// weights `L/(N_i+1)` are integers and every weighted sum is exact.
fn exact_scale(strata: &[(Vec<f64>, Vec<f64>)]) -> Option<u64> {
    let mut lcm: u64 = 1;
    let mut pairs: u64 = 0;
    for (x, y) in strata {
        let denominator = u64::try_from(x.len() + y.len() + 1).ok()?;
        lcm = lcm.checked_mul(denominator / gcd(lcm, denominator))?;
        pairs = pairs.checked_add(u64::try_from(x.len() * y.len()).ok()?)?;
    }
    (lcm.checked_mul(pairs)? <= EXACT_SCALE_LIMIT).then_some(lcm)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::stats::{Verdict, Xoshiro256StarStar};

    fn close(actual: f64, expected: f64, tol: f64) {
        assert!(
            (actual - expected).abs() <= tol,
            "expected {expected} ± {tol}, got {actual}"
        );
    }

    fn strata(raw: &[(&[f64], &[f64])]) -> Vec<(Vec<f64>, Vec<f64>)> {
        raw.iter().map(|(b, n)| (b.to_vec(), n.to_vec())).collect()
    }

    // Vectors printed by `python3 scripts/stats-vectors.py` (scipy 1.17).
    fn case_a() -> Vec<(Vec<f64>, Vec<f64>)> {
        strata(&[
            (
                &[201.0, 198.0, 205.0, 199.0, 203.0],
                &[214.0, 219.0, 212.0, 220.0, 216.0],
            ),
            (
                &[452.0, 447.0, 460.0, 455.0, 449.0],
                &[488.0, 479.0, 495.0, 484.0, 490.0],
            ),
            (
                &[805.0, 798.0, 812.0, 790.0, 801.0],
                &[861.0, 870.0, 848.0, 866.0, 858.0],
            ),
            (
                &[1490.0, 1512.0, 1505.0, 1498.0, 1521.0],
                &[1610.0, 1588.0, 1625.0, 1602.0, 1597.0],
            ),
        ])
    }

    fn case_b() -> Vec<(Vec<f64>, Vec<f64>)> {
        strata(&[
            (&[20.0, 21.0, 21.0, 22.0], &[22.0, 23.0, 23.0, 24.0, 22.0]),
            (
                &[100.0, 100.0, 102.0, 101.0, 103.0, 99.0],
                &[101.0, 104.0, 104.0, 103.0],
            ),
            (&[55.0, 57.0, 56.0], &[58.0, 57.0, 59.0, 60.0, 58.0, 61.0]),
        ])
    }

    fn case_c() -> Vec<(Vec<f64>, Vec<f64>)> {
        strata(&[
            (
                &[301.0, 296.0, 310.0, 305.0, 299.0],
                &[303.0, 298.0, 307.0, 300.0, 306.0],
            ),
            (
                &[612.0, 640.0, 625.0, 618.0, 631.0],
                &[628.0, 615.0, 622.0, 636.0, 619.0],
            ),
            (
                &[95.0, 97.0, 93.0, 96.0, 98.0],
                &[96.0, 94.0, 97.0, 95.0, 99.0],
            ),
            (
                &[1200.0, 1185.0, 1230.0, 1210.0, 1195.0],
                &[1190.0, 1220.0, 1205.0, 1215.0, 1188.0],
            ),
        ])
    }

    /// `(T, E[T], Var[T], z, p, ratio, CI)` from the script.
    type Expected = (f64, f64, f64, f64, f64, f64, (f64, f64));

    fn check(strata: &[(Vec<f64>, Vec<f64>)], e: Expected) {
        let t = van_elteren(strata).unwrap();
        close(t.statistic, e.0, 1e-6);
        close(t.expected, e.1, 1e-6);
        close(t.variance, e.2, 1e-6);
        close(t.z, e.3, 1e-6);
        close(t.p, e.4, 1e-6);
        let hl = stratified_hodges_lehmann_ratio(strata, 0.05).unwrap();
        close(hl.ratio, e.5, 1e-6);
        let (lo, hi) = hl.ci.unwrap();
        close(lo, e.6.0, 1e-4);
        close(hi, e.6.1, 1e-4);
    }

    #[test]
    fn vector_a_clear_shift() {
        check(
            &case_a(),
            (
                9.09090909091,
                4.54545454545,
                0.757575757576,
                5.22232967867,
                1.76686044219e-07,
                1.07216971687,
                (1.06481481481, 1.08053691275),
            ),
        );
        let c = compare_strata(&case_a(), false, 0.05, 0.05);
        assert_eq!(
            (c.comparison.verdict, c.comparison.confirmed),
            (Verdict::Regressed, true)
        );
        assert_eq!(
            (c.comparison.n_base, c.comparison.n_new, c.strata),
            (20, 20, 4)
        );
        assert_eq!(
            compare_strata(&case_a(), false, 0.10, 0.05)
                .comparison
                .verdict,
            Verdict::Unchanged
        );
        // The same numbers as a rate that rose.
        let c = compare_strata(&case_a(), true, 0.05, 0.05).comparison;
        assert_eq!((c.verdict, c.confirmed), (Verdict::Improved, true));
        close(c.ratio.unwrap(), 1.0 / 1.07216971687, 1e-6);
    }

    #[test]
    fn vector_b_ties_and_unequal_sizes() {
        check(
            &case_b(),
            (
                5.55909090909,
                2.99090909091,
                0.483243801653,
                3.69438898647,
                0.000220416163621,
                1.0404040404,
                (1.0198019802, 1.07142857143),
            ),
        );
        let c = compare_strata(&case_b(), false, 0.05, 0.05).comparison;
        assert_eq!(c.verdict, Verdict::Unchanged);
        let c = compare_strata(&case_b(), false, 0.02, 0.05).comparison;
        assert_eq!((c.verdict, c.confirmed), (Verdict::Regressed, false));
    }

    #[test]
    fn vector_c_a_over_a() {
        check(
            &case_c(),
            (
                4.77272727273,
                4.54545454545,
                0.754132231405,
                0.261711961295,
                0.793543518092,
                1.00207478017,
                (0.990033222591, 1.01075268817),
            ),
        );
        let c = compare_strata(&case_c(), false, 0.05, 0.05).comparison;
        assert_eq!(c.verdict, Verdict::Unchanged);
    }

    #[test]
    fn one_stratum_is_the_hodges_lehmann_ratio() {
        let e1 = (
            vec![101.0, 98.0, 105.0, 99.0, 103.0],
            vec![108.0, 112.0, 104.0, 110.0, 115.0],
        );
        // Odd m·n (a single middle difference) and even m·n (a midpoint).
        let e1_even = (vec![101.0, 98.0, 105.0, 99.0, 103.0, 100.0], e1.1.clone());
        for (base, new) in [e1, e1_even] {
            let single = stats::hodges_lehmann_ratio(&base, &new, 0.05)
                .unwrap()
                .ratio;
            let pooled = stratified_hodges_lehmann_ratio(&[(base, new)], 0.05).unwrap();
            close(pooled.ratio, single, 1e-9);
        }
    }

    #[test]
    fn a_prompts_scale_does_not_matter() {
        let mut rescaled = case_b();
        let (base, new) = &mut rescaled[1];
        for v in base.iter_mut().chain(new.iter_mut()) {
            *v *= 37.0;
        }
        let (a, b) = (
            van_elteren(&case_b()).unwrap(),
            van_elteren(&rescaled).unwrap(),
        );
        close(a.z, b.z, 1e-12);
        let (a, b) = (
            stratified_hodges_lehmann_ratio(&case_b(), 0.05).unwrap(),
            stratified_hodges_lehmann_ratio(&rescaled, 0.05).unwrap(),
        );
        close(a.ratio, b.ratio, 1e-9);
    }

    #[test]
    fn empty_sides_constant_strata_and_invalid_values() {
        let mut with_empty = case_a();
        with_empty.push((vec![], vec![5.0, 6.0]));
        with_empty.push((vec![7.0], vec![]));
        let (a, b) = (
            van_elteren(&case_a()).unwrap(),
            van_elteren(&with_empty).unwrap(),
        );
        assert_eq!((a, b.strata), (b, 4));
        let c = compare_strata(&with_empty, false, 0.05, 0.05);
        assert_eq!(
            (c.strata, c.comparison.n_base, c.comparison.n_new),
            (4, 21, 22)
        );

        assert_eq!(van_elteren(&[(vec![], vec![1.0])]), None);
        assert_eq!(van_elteren(&[]), None);
        assert_eq!(van_elteren(&[(vec![1.0, f64::NAN], vec![1.0])]), None);

        let constant = vec![(vec![5.0; 4], vec![5.0; 4]), (vec![9.0; 3], vec![9.0; 2])];
        assert_eq!(van_elteren(&constant), None);
        let c = compare_strata(&constant, false, 0.05, 0.05).comparison;
        assert_eq!(
            (c.verdict, c.ratio, c.ci, c.p),
            (Verdict::Unchanged, Some(1.0), Some((1.0, 1.0)), Some(1.0))
        );

        let mut invalid = case_a();
        invalid[2].1[0] = 0.0;
        let c = compare_strata(&invalid, false, 0.05, 0.05).comparison;
        assert_eq!(
            (c.verdict, c.ratio, c.p),
            (Verdict::Inconclusive, None, None)
        );
        let c = compare_strata(&case_a(), false, -1.0, 0.05).comparison;
        assert_eq!(c.verdict, Verdict::Inconclusive);
        let c = compare_strata(&case_a(), false, 0.05, 1.5).comparison;
        assert_eq!((c.verdict, c.ci), (Verdict::Inconclusive, None));
    }

    #[test]
    fn minimum_data() {
        // Four one-against-one strata, all worse: p < 0.05 but too thin to judge.
        let pairs: Vec<(Vec<f64>, Vec<f64>)> = (1..=4)
            .map(|i| (vec![f64::from(i)], vec![f64::from(i) * 2.0]))
            .collect();
        close(van_elteren(&pairs).unwrap().p, 0.045500263896, 1e-9);
        let c = compare_strata(&pairs, false, 0.05, 0.05).comparison;
        assert_eq!(c.verdict, Verdict::Inconclusive);
        // One stratum of 2 a side makes it judgeable ...
        let mut thicker = pairs.clone();
        thicker[0] = (vec![1.0, 1.01], vec![2.0, 2.02]);
        let c = compare_strata(&thicker, false, 0.05, 0.05).comparison;
        assert_eq!(c.verdict, Verdict::Regressed);
        // ... but not with 3 values a side in total.
        let c = compare_strata(&thicker[..2], false, 0.05, 0.05).comparison;
        assert_eq!(c.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn noise_floor() {
        close(effective_noise(0.10, 1.0, 6.0), 1.0 / 6.0, 1e-15);
        close(effective_noise(0.10, 1.0, 200.0), 0.10, 0.0);
        close(effective_noise(0.10, 0.0, 6.0), 0.10, 0.0);
        close(effective_noise(0.10, 1.0, 0.0), 0.10, 0.0);
        assert!(effective_noise(f64::NAN, 1.0, 6.0).is_nan());

        // A 0.8 ms drift on a 6 ms TTFT: past 10%, inside the 1 ms floor.
        let ttft: Vec<(Vec<f64>, Vec<f64>)> = (0..4)
            .map(|p| {
                let base: Vec<f64> = (0..5).map(|r| 6.0 + 0.01 * f64::from(p * 5 + r)).collect();
                let new = base.iter().map(|v| v + 0.8).collect();
                (base, new)
            })
            .collect();
        assert_eq!(
            compare_strata(&ttft, false, 0.10, 0.05).comparison.verdict,
            Verdict::Regressed
        );
        let noise = effective_noise(0.10, 1.0, 6.0);
        assert_eq!(
            compare_strata(&ttft, false, noise, 0.05).comparison.verdict,
            Verdict::Unchanged
        );
    }

    #[test]
    fn many_strata_are_cheap() {
        let mut rng = Xoshiro256StarStar::new(5);
        let strata: Vec<(Vec<f64>, Vec<f64>)> = (0..1000)
            .map(|p| {
                let level = 100.0 + f64::from(p);
                let base = (0..100)
                    .map(|_| level * lognormal(&mut rng, 0.05))
                    .collect();
                let new = (0..100)
                    .map(|_| 1.02 * level * lognormal(&mut rng, 0.05))
                    .collect();
                (base, new)
            })
            .collect();
        let c = compare_strata(&strata, false, 0.01, 0.05).comparison;
        assert_eq!(c.verdict, Verdict::Regressed);
        close(c.ratio.unwrap(), 1.02, 0.002);
    }

    /// `exp(σ·Z)` with `Z` standard normal by Box–Muller from the seeded RNG.
    fn lognormal(rng: &mut Xoshiro256StarStar, sigma: f64) -> f64 {
        let unit =
            |rng: &mut Xoshiro256StarStar| (rng.next_u64() >> 11) as f64 / (1_u64 << 53) as f64;
        let u1 = 1.0 - unit(rng); // (0, 1]
        let u2 = unit(rng);
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (sigma * z).exp()
    }

    /// 4 prompts × 5 rounds a side at their own levels, lognormal noise σ = 0.05.
    fn trial(rng: &mut Xoshiro256StarStar, factor: f64) -> Vec<(Vec<f64>, Vec<f64>)> {
        [200.0, 450.0, 800.0, 1500.0]
            .iter()
            .map(|level| {
                let base = (0..5).map(|_| level * lognormal(rng, 0.05)).collect();
                let new = (0..5)
                    .map(|_| factor * level * lognormal(rng, 0.05))
                    .collect();
                (base, new)
            })
            .collect()
    }

    #[test]
    fn false_alarms_and_power() {
        let mut rng = Xoshiro256StarStar::new(2024);
        let count = |rng: &mut Xoshiro256StarStar, factor: f64| {
            let (mut regressed, mut significant) = (0, 0);
            for _ in 0..200 {
                let c = compare_strata(&trial(rng, factor), false, 0.10, 0.05).comparison;
                regressed += usize::from(c.verdict == Verdict::Regressed);
                significant += usize::from(c.p.is_some_and(|p| p < 0.05));
            }
            (regressed, significant)
        };
        let (false_alarms, aa_significant) = count(&mut rng, 1.0);
        let (detected, _) = count(&mut rng, 1.25);
        println!(
            "A/A: {false_alarms}/200 regressed ({aa_significant}/200 with p < 0.05); \
             ×1.25: {detected}/200 regressed"
        );
        assert!(
            false_alarms <= 10,
            "A/A: {false_alarms}/200 regressed (at most 10 allowed); {aa_significant}/200 had p < 0.05"
        );
        assert!(
            detected >= 190,
            "×1.25: {detected}/200 regressed (at least 190 required)"
        );
    }
}
