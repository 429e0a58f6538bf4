//! A comparison as text: the terminal table, the Markdown of
//! `templates/compare.md.j2` and the page of `templates/compare.html.j2`
//! (a forest plot of every model and cell row). Pure: comparison in, text
//! out.

use std::fmt::Write as _;
use std::path::Path;

use super::Comparison;
use super::Row;
use crate::measure::stats::Verdict;
use crate::report::format::{fixed, fixed_or_missing};
use crate::suite::CompareSettings;

fn verdict_text(row: &Row) -> String {
    let name = match row.verdict {
        Verdict::Regressed => "REGRESSED",
        Verdict::Improved => "IMPROVED",
        Verdict::Unchanged => "UNCHANGED",
        Verdict::Inconclusive => "INCONCLUSIVE",
        Verdict::Noisy => "NOISY",
        Verdict::Machine => "MACHINE",
    };
    if row.confirmed {
        format!("{name} (confirmed)")
    } else {
        name.to_string()
    }
}

/// The comparison as Markdown for a pull-request comment
/// (`templates/compare.md.j2`, overridable).
pub fn render_markdown(
    c: &Comparison,
    override_dir: Option<&Path>,
) -> Result<String, crate::report::ReportError> {
    crate::report::render("compare.md", &context(c), override_dir)
}

/// What the comparison templates see: the comparison, each row's verdict
/// as printed, and whether it gates.
fn context(c: &Comparison) -> serde_json::Value {
    let verdicts: Vec<String> = c.rows.iter().map(verdict_text).collect();
    let model_verdicts: Vec<String> = c.models.iter().map(verdict_text).collect();
    serde_json::json!({
        "comparison": c,
        "verdicts": verdicts,
        "model_verdicts": model_verdicts,
        "regressed": c.regressed(),
    })
}

/// One row of the forest plot: the ratio new/base and its 95% interval,
/// the noise band of its metric (a fraction) and its verdict.
#[derive(serde::Serialize)]
struct ForestRow {
    label: String,
    verdict: String,
    ratio: Option<f64>,
    lo: Option<f64>,
    hi: Option<f64>,
    noise: f64,
}

fn forest(rows: &[Row], settings: &CompareSettings) -> Vec<ForestRow> {
    rows.iter()
        .map(|r| ForestRow {
            label: format!("{} · {}", r.key, r.metric.name()),
            verdict: verdict_text(r)
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_string(),
            ratio: r.ratio,
            lo: r.ci.map(|c| c.0),
            hi: r.ci.map(|c| c.1),
            noise: r.metric.noise(settings),
        })
        .collect()
}

/// The comparison as one self-contained HTML page
/// (`templates/compare.html.j2`, overridable): a forest plot of the model
/// rows, the cell rows behind a toggle, the quality rows. `settings` are
/// the ones the comparison used (`settings_of` the new side), for the
/// noise band each row is judged against.
pub fn render_html(
    c: &Comparison,
    settings: &CompareSettings,
    override_dir: Option<&Path>,
) -> Result<String, crate::report::ReportError> {
    let mut ctx = context(c);
    ctx["page"] = serde_json::json!({
        "forest": forest(&c.models, settings),
        "cells": forest(&c.rows, settings),
    });
    crate::report::render("compare.html", &ctx, override_dir)
}

/// Rows as an aligned table whose first column is headed `what`.
fn table(out: &mut String, what: &str, rows: &[Row]) {
    let mut table: Vec<[String; 8]> = vec![[
        what.into(),
        "metric".into(),
        "base p50".into(),
        "new p50".into(),
        "ratio [95% CI]".into(),
        "p (BH)".into(),
        "n".into(),
        "verdict".into(),
    ]];
    for r in rows {
        let ci = r.ci.map_or_else(String::new, |(lo, hi)| {
            format!(" [{}, {}]", fixed(lo, 3), fixed(hi, 3))
        });
        let n = match r.prompts {
            Some(prompts) => format!("{}/{} ({prompts} prompts)", r.n_base, r.n_new),
            None => format!("{}/{}", r.n_base, r.n_new),
        };
        table.push([
            r.key.clone(),
            r.metric.name().to_string(),
            fixed_or_missing(r.base_median, 2),
            fixed_or_missing(r.new_median, 2),
            format!("{}{ci}", fixed_or_missing(r.ratio, 3)),
            format!(
                "{} ({})",
                fixed_or_missing(r.p, 4),
                fixed_or_missing(r.p_adjusted, 4)
            ),
            n,
            verdict_text(r),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
}

/// The comparison as aligned terminal tables: models (pooled over their
/// prompts; they decide the verdict), then cells, regressions first.
pub fn render_text(c: &Comparison) -> String {
    let mut out = format!("base: {}\nnew:  {}\n\n", c.base, c.new);
    table(&mut out, "model", &c.models);
    out.push('\n');
    table(&mut out, "cell", &c.rows);
    if !c.quality.is_empty() {
        let _ = writeln!(out, "\nquality (paired by prompt):");
        for q in &c.quality {
            let _ = writeln!(
                out,
                "  {}  {:?}  {} → {} ({:+.3}), p {}, {} pairs: {:?}",
                q.model,
                q.measure,
                fixed_or_missing(q.base, 3),
                fixed_or_missing(q.new, 3),
                q.change.unwrap_or(0.0),
                fixed_or_missing(q.p, 4),
                q.pairs,
                q.verdict
            );
        }
    }
    for key in &c.only_in_base {
        let _ = writeln!(out, "only in base: {key}");
    }
    for key in &c.only_in_new {
        let _ = writeln!(out, "only in new: {key}");
    }
    for w in &c.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let verdict = if c.regressed() {
        format!(
            "verdict: REGRESSED (a model is slower, significant after Benjamini–Hochberg at q = {}, or its quality regressed)",
            c.alpha
        )
    } else {
        "verdict: no regression".to_string()
    };
    let _ = writeln!(out, "\n{verdict}");
    out
}
