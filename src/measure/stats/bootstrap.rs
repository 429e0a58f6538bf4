//! The seeded percentile bootstrap of a quantile ratio, and its RNG
//! (xoshiro256**); never seeded from the clock.

use super::{all_positive_finite, in_open_unit, percentile_by_selection, percentile_of_sorted};

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
    pub(super) s: [u64; 4],
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

pub(super) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
