//! Known-value tests (`shared/reference/stats-vectors.md`, computed with scipy).
use super::null::erfc;
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
                .map(move |xi| usize::from(yj > xi) * 2 + usize::from(yj == xi))
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
fn exact_bootstrap_matches_e3_and_a_long_resampling() {
    let ci = exact_quantile_ratio_ci(&E3_BASE, &E3_NEW, 0.95, 0.05).unwrap();
    close_pair(ci, (0.771, 1.572), 0.01);
    // Against 200,000 resamples, on the reference data and on random data
    // with ties, for tail, middle and extreme quantiles.
    let mut rng = Xoshiro256StarStar::new(7);
    let (b, n) = (
        random_values(&mut rng, 100, 40),
        random_values(&mut rng, 120, 0),
    );
    for (base, new) in [(&E3_BASE[..], &E3_NEW[..]), (&b[..], &n[..])] {
        for q in [0.95, 0.5, 0.99, 0.25] {
            let exact = exact_quantile_ratio_ci(base, new, q, 0.05).unwrap();
            let resampled = bootstrap_quantile_ratio_ci(base, new, q, 200_000, 42, 0.05).unwrap();
            let scale = resampled.1 - resampled.0;
            assert!(
                (exact.0 - resampled.0).abs() <= 0.02 * scale.max(1e-9) + 1e-9
                    && (exact.1 - resampled.1).abs() <= 0.02 * scale.max(1e-9) + 1e-9,
                "q = {q}: exact {exact:?}, resampled {resampled:?}"
            );
        }
    }
    // The maximum, by hand: P(max new = 1620) = 1 − 0.95^20 = 0.6415 and
    // P(max base ≤ 1030) = 0.85^20 = 0.0388, so P(R ≥ 1620/1030) = 0.0249 <
    // 0.025 while P(R ≥ 1620/1043) = 0.6415 · 0.9^20 = 0.078: the 97.5%
    // point is 1620/1043 (resampling lands on either side of this edge).
    let max = exact_quantile_ratio_ci(&E3_BASE, &E3_NEW, 1.0, 0.05).unwrap();
    close(max.1, 1620.0 / 1043.0, 1e-9);
    assert_eq!(exact_quantile_ratio_ci(&E3_BASE, &[], 0.95, 0.05), None);
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
