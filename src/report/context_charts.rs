//! Charts of context depth: TTFT, prompt processing and decode speed
//! against the filler context before each prompt (`context_tokens`), one
//! line per model (and variant and other axes). Pure: model summaries in,
//! SVG out; byte-stable.

use super::charts::{Chart, ChartError, PALETTE};
use super::load_charts::{Line, lines_chart};
use crate::results::ModelSummary;

/// The context charts of a run (none without a `context_tokens` axis).
pub(crate) fn render_context(summaries: &[ModelSummary]) -> Result<Vec<Chart>, ChartError> {
    let groups = groups(summaries);
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let chart = |file: &str, title: &str, what: &str, pick: fn(&ModelSummary) -> Option<f64>| {
        let lines: Vec<Line> = groups
            .iter()
            .enumerate()
            .map(|(i, (label, rows))| {
                let mut points: Vec<(f64, f64)> = rows
                    .iter()
                    .filter_map(|m| Some((f64::from(m.prompts.context_tokens?), pick(m)?)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Line {
                    label: label.clone(),
                    points,
                    colour: PALETTE[i % PALETTE.len()],
                    dashed: false,
                }
            })
            .collect();
        lines_chart(file, title, "context tokens", what, &lines)
    };
    Ok(vec![
        chart(
            "context-ttft.svg",
            "Time to first token against context depth",
            "TTFT p50 (ms)",
            |m| Some(m.ttft_ms.as_ref()?.summary.p50),
        )?,
        chart(
            "context-prompt-tps.svg",
            "Prompt processing against context depth",
            "prompt tok/s p50",
            |m| Some(m.prompts.prompt_tps.as_ref()?.summary.p50),
        )?,
        chart(
            "context-decode-tps.svg",
            "Decode speed against context depth",
            "decode tok/s p50",
            |m| Some(m.decode_tps.as_ref()?.summary.p50),
        )?,
    ])
}

/// Summaries with a depth, by model, variant and their other axes.
fn groups(summaries: &[ModelSummary]) -> Vec<(String, Vec<&ModelSummary>)> {
    let mut groups: Vec<(String, Vec<&ModelSummary>)> = Vec::new();
    for m in summaries
        .iter()
        .filter(|m| m.prompts.context_tokens.is_some())
    {
        let others: Vec<&str> = m
            .variant
            .iter()
            .map(crate::results::VariantLabel::as_str)
            .chain(
                m.axes
                    .iter()
                    .flat_map(|a| a.split(','))
                    .filter(|a| !a.starts_with("context_tokens=")),
            )
            .collect();
        let label = if others.is_empty() {
            m.model.clone()
        } else {
            format!("{} [{}]", m.model, others.join(","))
        };
        match groups.iter_mut().find(|(g, _)| *g == label) {
            Some((_, rows)) => rows.push(m),
            None => groups.push((label, vec![m])),
        }
    }
    groups
}
