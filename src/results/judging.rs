//! Whether a judge model's scores say anything: a judge that gives every
//! output the same score, or whose scores do not follow the deterministic
//! checks at all, cannot name a best model. Computed from the samples at
//! render time (so stored results are judged the same way), and read by
//! the highlights, which then name no "best quality (judge)", and by the
//! reports, which say why. Pure: samples in, a verdict out.

use serde::Serialize;

use super::{Sample, Status};

/// Below this absolute rank correlation with the checks' pass rates, a
/// judge's agreement with the checks counts as nil.
pub const NIL_AGREEMENT: f64 = 0.1;

/// What a judge's scores over one run show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeSignal {
    /// Measured, successful outputs the judge gave a score.
    pub scored: usize,
    /// The lowest and highest score it gave.
    pub min: f64,
    pub max: f64,
    /// Spearman's rank correlation between an output's judge score and the
    /// share of its checks it passed, over outputs with both; `None` when
    /// either side is the same for every output.
    pub agreement: Option<f64>,
    /// Outputs the correlation is over.
    pub agreement_n: usize,
    /// `same_score`: every output got one score; `nil_agreement`: the
    /// scores do not follow the checks (|ρ| below [`NIL_AGREEMENT`]).
    /// `None` when the scores can rank models.
    pub uninformative: Option<&'static str>,
}

/// The signal of the judge scores among `samples` (measured, successful
/// outputs), or `None` when no output has a score.
pub fn judge_signal(samples: &[Sample]) -> Option<JudgeSignal> {
    let rated: Vec<(f64, Option<f64>)> = samples
        .iter()
        .filter(|s| !s.warmup && s.status == Status::Ok)
        .filter_map(|s| {
            let score = s.judge.as_ref()?.score?;
            Some((score, crate::quality::pass_rate(&s.checks)))
        })
        .collect();
    let (min, max) = rated
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (s, _)| {
            (lo.min(*s), hi.max(*s))
        });
    if rated.is_empty() {
        return None;
    }
    let (scores, passes): (Vec<f64>, Vec<f64>) =
        rated.iter().filter_map(|(s, p)| Some((*s, (*p)?))).unzip();
    let agreement = spearman(&scores, &passes);
    let uninformative = if min == max {
        Some("same_score")
    } else if agreement.is_some_and(|rho| rho.abs() < NIL_AGREEMENT) {
        Some("nil_agreement")
    } else {
        None
    };
    Some(JudgeSignal {
        scored: rated.len(),
        min,
        max,
        agreement,
        agreement_n: scores.len(),
        uninformative,
    })
}

/// Spearman's ρ: Pearson's correlation of the mid-ranks. `None` with fewer
/// than 3 pairs or when either side has one value only.
fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 {
        return None;
    }
    let (rx, ry) = (mid_ranks(x), mid_ranks(y));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mx, my) = (mean(&rx), mean(&ry));
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    (vx > 0.0 && vy > 0.0).then(|| cov / (vx * vy).sqrt())
}

/// 1-based ranks, ties sharing the mean of their ranks.
fn mid_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end) as f64 / 2.0 + 1.0;
        for &i in &order[start..=end] {
            ranks[i] = rank;
        }
        start = end + 1;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_known_values() {
        // Perfectly monotone, reversed, and with ties (mid-ranks).
        assert_eq!(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]),
            Some(1.0)
        );
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(mid_ranks(&[5.0, 1.0, 5.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        // scipy.stats.spearmanr([1,2,3,4,5],[2,1,4,3,5]) = 0.8
        let rho = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 1.0, 4.0, 3.0, 5.0]).unwrap();
        assert!((rho - 0.8).abs() < 1e-12, "{rho}");
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0]), None);
    }
}
