//! The seeded percentile bootstrap of a quantile ratio, and its RNG
//! (xoshiro256**); never seeded from the clock.

use super::{all_positive_finite, in_open_unit};
#[cfg(test)]
use super::{percentile_by_selection, percentile_of_sorted};

#[cfg(test)]
/// Percentile-bootstrap CI (level `1 − alpha`) of the ratio
/// `quantile_q(new) / quantile_q(base)`: each of `resamples` rounds draws
/// `base` then `new` with replacement (xoshiro256** seeded through
/// splitmix64 from `seed`), and the CI is the linear-interpolation
/// `alpha/2` and `1 − alpha/2` quantiles of the resampled ratios.
///
/// Returns `None` when either side is empty or holds a non-positive or
/// non-finite value, `resamples == 0`, `q ∉ [0, 1]` or `alpha ∉ (0, 1)`.
pub(crate) fn bootstrap_quantile_ratio_ci(
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

#[cfg(test)]
/// xoshiro256** (Blackman & Vigna), state filled by splitmix64.
pub(crate) struct Xoshiro256StarStar {
    pub(super) s: [u64; 4],
}

#[cfg(test)]
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
    pub(super) fn below(&mut self, bound: usize) -> usize {
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

#[cfg(test)]
pub(super) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bootstrap CI (level `1 − alpha`) of the ratio
/// `quantile_q(new) / quantile_q(base)` computed from the bootstrap
/// distributions themselves rather than by resampling: the same interval
/// [`bootstrap_quantile_ratio_ci`] approaches as its resamples grow, with
/// no Monte-Carlo error, no seed, and a cost that does not grow with the
/// number of resamples (it is what `dyno compare` uses for every cell).
///
/// A resample's order statistic `X*(k)` has the exact distribution
/// `P(X*(k) ≤ s) = P(Binomial(n, F(s)) ≥ k + 1)`, with `F` the sample's
/// distribution function. The interpolated quantile
/// `(1 − t)·X*(j) + t·X*(j + 1)` takes the two neighbouring order
/// statistics as comonotone (they move together: both are the same
/// resample's values at adjacent ranks). The ratio of the two independent
/// sides has the CDF `Σ_b P(Q*_base = b)·P(Q*_new ≤ r·b)`, and its
/// `alpha/2` and `1 − alpha/2` quantiles are found by bisection.
///
/// Returns `None` on the inputs [`bootstrap_quantile_ratio_ci`] refuses.
pub(crate) fn exact_quantile_ratio_ci(
    base: &[f64],
    new: &[f64],
    q: f64,
    alpha: f64,
) -> Option<(f64, f64)> {
    let valid = |v: &[f64]| !v.is_empty() && all_positive_finite(v);
    if !valid(base) || !valid(new) || !in_open_unit(alpha) || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let base = QuantileLaw::of(base, q);
    let new = QuantileLaw::of(new, q);
    let cdf = |r: f64| -> f64 {
        base.atoms
            .iter()
            .map(|&(b, mass)| mass * new.cdf(r * b))
            .sum()
    };
    // Every ratio lies between these.
    let lo = new.atoms.first()?.0 / base.atoms.last()?.0;
    let hi = new.atoms.last()?.0 / base.atoms.first()?.0;
    let quantile = |p: f64| {
        let (mut a, mut b) = (lo, hi);
        for _ in 0..100 {
            let mid = 0.5 * (a + b);
            if mid <= a || mid >= b {
                break;
            }
            if cdf(mid) >= p { b = mid } else { a = mid }
        }
        b
    };
    Some((quantile(alpha / 2.0), quantile(1.0 - alpha / 2.0)))
}

/// The bootstrap distribution of a sample's interpolated `q`-quantile, as
/// atoms `(value, probability)` in ascending value; atoms below
/// [`NEGLIGIBLE`] are left out.
struct QuantileLaw {
    atoms: Vec<(f64, f64)>,
    /// `P(Q* ≤ atoms[i].0)`.
    cumulative: Vec<f64>,
}

/// Probability mass too small to move a CI endpoint.
const NEGLIGIBLE: f64 = 1e-12;

impl QuantileLaw {
    fn of(values: &[f64], q: f64) -> QuantileLaw {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let position = (n - 1) as f64 * q;
        let j = position.floor() as usize;
        let frac = position - j as f64;
        // Distinct values and the fraction of the sample at or below each.
        let mut support: Vec<(f64, f64)> = Vec::new();
        for (i, &v) in sorted.iter().enumerate() {
            let below = (i + 1) as f64 / n as f64;
            match support.last_mut() {
                Some(last) if last.0 == v => last.1 = below,
                _ => support.push((v, below)),
            }
        }
        // P(X*(k) ≤ s) at every distinct value, for k = j and j + 1.
        let law_of = |k: usize| -> Vec<f64> {
            support
                .iter()
                .map(|&(_, f)| binomial_at_least(n, k + 1, f))
                .collect()
        };
        let lower = law_of(j);
        let upper = if frac > 0.0 && j + 1 < n {
            law_of(j + 1)
        } else {
            lower.clone()
        };
        // The comonotone quantile function: walk both CDFs' steps together.
        let mut atoms: Vec<(f64, f64)> = Vec::new();
        let (mut lo, mut hi, mut done) = (0, 0, 0.0_f64);
        while lo < support.len() && hi < support.len() && done < 1.0 {
            let step = lower[lo].min(upper[hi]);
            let value = super::lerp(support[lo].0, support[hi].0, frac);
            let mass = step - done;
            if mass > NEGLIGIBLE {
                match atoms.last_mut() {
                    Some(last) if last.0 == value => last.1 += mass,
                    _ => atoms.push((value, mass)),
                }
            }
            done = done.max(step);
            if lower[lo] <= step {
                lo += 1;
            }
            if upper[hi] <= step {
                hi += 1;
            }
        }
        let cumulative = atoms
            .iter()
            .scan(0.0, |sum, &(_, mass)| {
                *sum += mass;
                Some(*sum)
            })
            .collect();
        QuantileLaw { atoms, cumulative }
    }

    /// `P(Q* ≤ x)`.
    fn cdf(&self, x: f64) -> f64 {
        match self.atoms.partition_point(|&(v, _)| v <= x) {
            0 => 0.0,
            end => self.cumulative[end - 1],
        }
    }
}

/// `P(Binomial(n, p) ≥ k)`: the regularized incomplete beta `I_p(k, n − k + 1)`.
fn binomial_at_least(n: usize, k: usize, p: f64) -> f64 {
    if k == 0 || p >= 1.0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    incomplete_beta(k as f64, (n - k + 1) as f64, p)
}

/// The regularized incomplete beta function `I_x(a, b)` for `a, b > 0`,
/// `0 < x < 1`, by its continued fraction (modified Lentz), on the side
/// where it converges fast.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (-x).ln_1p();
    if x < (a + 1.0) / (a + b + 2.0) {
        (ln_front.exp() * beta_fraction(a, b, x) / a).clamp(0.0, 1.0)
    } else {
        (1.0 - ln_front.exp() * beta_fraction(b, a, 1.0 - x) / b).clamp(0.0, 1.0)
    }
}

/// The continued fraction of the incomplete beta function.
#[allow(clippy::many_single_char_names)] // the fraction's own notation
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let clamp = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / clamp(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..10_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let even = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / clamp(1.0 + even * d);
        c = clamp(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / clamp(1.0 + odd * d);
        c = clamp(1.0 + odd / c);
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, nine terms; about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let sum = C[1..]
        .iter()
        .enumerate()
        .fold(C[0], |acc, (i, c)| acc + c / (x + (i + 1) as f64));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}
