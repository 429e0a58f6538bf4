//! Change points in a series (binary segmentation with Mann–Whitney).

use super::{MIN_ROUNDS, mann_whitney_u};

/// Change points of a per-commit series by binary segmentation: in each
/// segment, every split leaving at least [`MIN_ROUNDS`] values a side is
/// tested with [`mann_whitney_u`]; the split with the smallest p (the earliest
/// on ties) is accepted when that p, Bonferroni-corrected for the number of
/// candidate splits in the segment, is below `alpha`, and both halves are
/// searched again. Returns sorted indices of the first value after each step.
pub(crate) fn change_points(series: &[f64], alpha: f64) -> Vec<usize> {
    let mut found = Vec::new();
    split_segment(series, 0, alpha, &mut found);
    found.sort_unstable();
    found
}

pub(super) fn split_segment(segment: &[f64], offset: usize, alpha: f64, found: &mut Vec<usize>) {
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
