//! Quality compared paired by prompt: McNemar on check outcomes, Wilcoxon
//! signed-rank on per-prompt mean scores (judge and human).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::measure::stats::{self, Verdict};
use crate::results::{Results, Sample, Status};

/// A quality measure compared paired by prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityMeasure {
    /// Pass/fail of each check of each prompt (McNemar's exact test).
    Checks,
    /// Mean judge score per prompt (Wilcoxon signed-rank).
    JudgeScore,
    /// Mean human rating per prompt (Wilcoxon signed-rank).
    HumanScore,
}

/// One summary row (model, variant and axis values) × quality measure,
/// paired by prompt.
#[derive(Debug, Clone, Serialize)]
pub struct QualityRow {
    pub model: String,
    pub measure: QualityMeasure,
    /// Pairs compared (prompt × check, or prompts).
    pub pairs: usize,
    /// Checks: pass rate of the pairs; scores: mean per-prompt score.
    pub base: Option<f64>,
    pub new: Option<f64>,
    /// new − base, in pass-rate points (0–1) or score points.
    pub change: Option<f64>,
    pub p: Option<f64>,
    pub verdict: Verdict,
}

/// Absolute thresholds below which a quality change is UNCHANGED.
pub const CHECKS_THRESHOLD: f64 = 0.10;
pub const SCORE_THRESHOLD: f64 = 0.5;

/// Measured, successful samples by model (summary label), then by prompt
/// in prompt order; one pass over the samples.
type ByPrompt<'a> = std::collections::BTreeMap<&'a str, Vec<&'a Sample>>;

fn by_label_and_prompt(doc: &Results) -> std::collections::HashMap<String, ByPrompt<'_>> {
    let mut out: std::collections::HashMap<String, ByPrompt<'_>> = std::collections::HashMap::new();
    for s in doc
        .samples
        .iter()
        .filter(|s| !s.warmup && s.status == Status::Ok)
    {
        out.entry(s.row_label())
            .or_default()
            .entry(s.prompt.as_str())
            .or_default()
            .push(s);
    }
    out
}

/// How a quality measure reads one sample.
type Score = fn(&Sample) -> Option<f64>;

/// Quality of every model present in both runs, paired by prompt: McNemar
/// on check outcomes (a check passes for a prompt when it passed in at least
/// half the rounds), Wilcoxon signed-rank on per-prompt mean scores.
pub fn compare_quality(base: &Results, new: &Results, alpha: f64) -> Vec<QualityRow> {
    let labels: Vec<String> = new
        .summaries
        .iter()
        .map(|m| m.label.clone())
        .filter(|l| base.summaries.iter().any(|b| &b.label == l))
        .collect();
    let (mut base_groups, mut new_groups) = (by_label_and_prompt(base), by_label_and_prompt(new));
    let mut rows = Vec::new();
    for label in labels {
        let (b, n) = (
            base_groups.remove(&label).unwrap_or_default(),
            new_groups.remove(&label).unwrap_or_default(),
        );
        let prompts: Vec<&str> = b.keys().filter(|p| n.contains_key(*p)).copied().collect();
        // Checks: one pair per prompt × check label.
        let outcome = |samples: &[&Sample]| {
            let mut passes: BTreeMap<String, (usize, usize)> = BTreeMap::default();
            for s in samples {
                for c in &s.checks {
                    let e = passes.entry(c.check.clone()).or_default();
                    e.0 += usize::from(c.passed);
                    e.1 += 1;
                }
            }
            passes
                .into_iter()
                .map(|(k, (pass, all))| (k, 2 * pass >= all))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let mut pairs: Vec<(bool, bool)> = Vec::new();
        for p in &prompts {
            let (ob, on) = (outcome(&b[p]), outcome(&n[p]));
            pairs.extend(ob.iter().filter_map(|(k, vb)| Some((*vb, *on.get(k)?))));
        }
        if !pairs.is_empty() {
            let lost = pairs.iter().filter(|(vb, vn)| *vb && !*vn).count();
            let gained = pairs.iter().filter(|(vb, vn)| !*vb && *vn).count();
            let rate = |f: fn(&(bool, bool)) -> bool| {
                pairs.iter().filter(|p| f(p)).count() as f64 / pairs.len() as f64
            };
            let (rb, rn) = (rate(|p| p.0), rate(|p| p.1));
            let p = stats::mcnemar_exact(lost, gained);
            rows.push(QualityRow {
                model: label.clone(),
                measure: QualityMeasure::Checks,
                pairs: pairs.len(),
                base: Some(rb),
                new: Some(rn),
                change: Some(rn - rb),
                p: Some(p),
                verdict: quality_verdict(rn - rb, p, alpha, CHECKS_THRESHOLD),
            });
        }
        let measures: [(QualityMeasure, Score); 2] = [
            (QualityMeasure::JudgeScore, |s| s.judge.as_ref()?.score),
            (QualityMeasure::HumanScore, |s| s.human_score),
        ];
        for (measure, score) in measures {
            let mean = |samples: &[&Sample]| {
                let v: Vec<f64> = samples.iter().filter_map(|s| score(s)).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let paired: Vec<(f64, f64)> = prompts
                .iter()
                .filter_map(|p| Some((mean(&b[p])?, mean(&n[p])?)))
                .collect();
            if paired.is_empty() {
                continue;
            }
            let (xb, xn): (Vec<f64>, Vec<f64>) = paired.iter().copied().unzip();
            let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let change = avg(&xn) - avg(&xb);
            let p = stats::wilcoxon_signed_rank(&xb, &xn).map(|w| w.p);
            rows.push(QualityRow {
                model: label.clone(),
                measure,
                pairs: paired.len(),
                base: Some(avg(&xb)),
                new: Some(avg(&xn)),
                change: Some(change),
                p,
                verdict: p.map_or(Verdict::Inconclusive, |p| {
                    quality_verdict(change, p, alpha, SCORE_THRESHOLD)
                }),
            });
        }
    }
    rows
}

/// Higher is better: a significant drop beyond `threshold` is REGRESSED.
fn quality_verdict(change: f64, p: f64, alpha: f64, threshold: f64) -> Verdict {
    if p >= alpha || change.abs() < threshold {
        Verdict::Unchanged
    } else if change < 0.0 {
        Verdict::Regressed
    } else {
        Verdict::Improved
    }
}
