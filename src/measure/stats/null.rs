//! Exact null distributions (Mann–Whitney, signed ranks) and the normal
//! approximation with tie and continuity corrections.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// A discrete null distribution on `0..len` stored as exact integer counts.
pub(super) struct NullCounts {
    pub(super) counts: Vec<u128>,
    pub(super) total: u128,
}

impl NullCounts {
    pub(super) fn new(counts: Vec<u128>) -> Self {
        let total = counts.iter().sum();
        Self { counts, total }
    }

    /// Null distribution of U for sample sizes `m`, `n` (no ties), from
    /// `r(m,n,u) = r(m,n−1,u) + r(m−1,n,u−n)`. The distribution is symmetric in
    /// `m` and `n`, so the outer loop runs over the larger size to keep only
    /// two rows of `min(m,n)+1` count vectors alive.
    pub(super) fn mann_whitney(m: usize, n: usize) -> Self {
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
    pub(super) fn sign_flips(doubled_ranks: &[usize]) -> Self {
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

    pub(super) fn ratio(&self, count: u128) -> f64 {
        count as f64 / self.total as f64
    }

    /// `P(S ≤ k)` for `k = 0, 1, …`.
    pub(super) fn cdf_values(&self) -> impl Iterator<Item = f64> + '_ {
        self.counts.iter().scan(0_u128, move |acc, &count| {
            *acc += count;
            Some(self.ratio(*acc))
        })
    }

    /// `min(1, 2·min(P(S≤obs), P(S≥obs)))`.
    pub(super) fn two_sided_p(&self, obs: usize) -> f64 {
        let lower: u128 = self.counts.iter().take(obs + 1).sum();
        let upper: u128 = self.counts.iter().skip(obs).sum();
        (2.0 * self.ratio(lower.min(upper))).min(1.0)
    }
}

/// Two-sided normal p value with continuity correction:
/// `z = (|stat − mean| − 0.5)/σ`, `p = min(1, 2·(1 − Φ(z)))`; 1 when `σ = 0`.
pub(super) fn normal_two_sided_p(stat: f64, mean: f64, var: f64) -> f64 {
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
pub(super) fn erfc(x: f64) -> f64 {
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
