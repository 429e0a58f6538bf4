//! Many tests (Benjamini–Hochberg) and paired tests for quality:
//! McNemar on pass/fail, Wilcoxon signed-rank on scores.

use super::{
    EXACT_WILCOXON_MAX_N, NullCounts, TestMethod, all_finite, midranks, normal_two_sided_p,
};
use std::f64::consts::LN_2;

/// Benjamini–Hochberg adjusted p values and rejections, in input order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BenjaminiHochberg {
    /// Adjusted p values (`min over j ≥ i of p_(j)·m/j`, capped at 1).
    pub adjusted: Vec<f64>,
    /// `adjusted ≤ q`.
    pub rejected: Vec<bool>,
}

/// Benjamini–Hochberg step-up procedure at false discovery rate `q`.
/// A NaN p value is adjusted to 1 and never rejected.
pub(crate) fn benjamini_hochberg(p_values: &[f64], q: f64) -> BenjaminiHochberg {
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

/// Exact McNemar test: `b` = base pass / new fail, `c` = base fail / new pass.
/// Two-sided binomial p `min(1, 2·P(X ≤ min(b,c)))` with `X ~ Bin(b+c, ½)`;
/// 1 when there are no discordant pairs.
pub(crate) fn mcnemar_exact(b: usize, c: usize) -> f64 {
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
pub(crate) struct Wilcoxon {
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
pub(crate) fn wilcoxon_signed_rank(base: &[f64], new: &[f64]) -> Option<Wilcoxon> {
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
