//! Comparison benchmark: what `stats::compare_samples` (Mann–Whitney U plus
//! the Hodges–Lehmann ratio and CI) costs for 20,000 rounds a side, the size
//! that used to need 5 GB of pairwise differences, and what
//! `stratified::compare_strata` (van Elteren plus the inverted-test ratio and
//! CI) costs for 1,000 prompts × 100 rounds a side. Prints the median of a few
//! runs. `cargo bench --bench compare_stats`.

use std::time::Instant;

const RUNS: usize = 5;

/// Deterministic values in `[1, 2)` scaled by `scale` (splitmix64).
fn values(seed: u64, len: usize, scale: f64) -> Vec<f64> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            scale * (1.0 + (z >> 11) as f64 / (1_u64 << 53) as f64)
        })
        .collect()
}

/// Median wall time in milliseconds of `RUNS` calls of `f`, and its last result.
fn median_ms<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        last = Some(std::hint::black_box(f()));
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times[RUNS / 2], last.expect("RUNS > 0"))
}

fn main() {
    let n = 20_000;
    let base = values(1, n, 100.0);
    let new = values(2, n, 103.0);
    let (ms, c) =
        median_ms(|| dyno::measure::stats::compare_samples(&base, &new, false, 0.01, 0.05));
    println!(
        "compare_samples, {n} rounds a side: median {ms:.1} ms over {RUNS} runs \
         (verdict {:?}, ratio {:.4})",
        c.verdict,
        c.ratio.unwrap_or(f64::NAN)
    );

    let (prompts, rounds) = (1000, 100);
    let strata: Vec<(Vec<f64>, Vec<f64>)> = (0..prompts)
        .map(|p| {
            let level = 50.0 + f64::from(p);
            let seed = 10 + 2 * p as u64;
            (
                values(seed, rounds, level),
                values(seed + 1, rounds, 1.03 * level),
            )
        })
        .collect();
    let (ms, c) = median_ms(|| {
        dyno::measure::stratified::compare_strata(&strata, false, 0.01, 0.05).comparison
    });
    println!(
        "compare_strata, {prompts} prompts × {rounds} rounds a side: median {ms:.1} ms over \
         {RUNS} runs (verdict {:?}, ratio {:.4})",
        c.verdict,
        c.ratio.unwrap_or(f64::NAN)
    );
}
