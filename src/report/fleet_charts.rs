//! Charts of a fleet (`dyno merge --fleet`): one metric per chart, a group
//! of bars per model and a bar per machine, so the same model can be read
//! across devices at a glance. Pure: results in, SVG out; byte-stable.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::charts::{
    Chart, ChartError, FONT, PALETTE, category_frame, draw_legend, mid, min_max, no_data_text,
    render_svg, zero_based_range,
};
use super::format;
use crate::results::{Dist, ModelSummary, Results};

/// A metric drawn per machine: file, title, axis and how to read a row.
struct Metric {
    file: &'static str,
    title: &'static str,
    y_desc: &'static str,
    decimals: usize,
    value: fn(&ModelSummary) -> Option<f64>,
}

fn p50(dist: Option<&Dist>) -> Option<f64> {
    dist.map(|d| d.summary.p50).filter(|v| v.is_finite())
}

const METRICS: [Metric; 3] = [
    Metric {
        file: "fleet-ttft.svg",
        title: "TTFT p50 by machine (ms)",
        y_desc: "milliseconds",
        decimals: 0,
        value: |m| p50(m.ttft_ms.as_ref()),
    },
    Metric {
        file: "fleet-e2e.svg",
        title: "E2E p50 by machine (ms)",
        y_desc: "milliseconds",
        decimals: 0,
        value: |m| p50(m.e2e_ms.as_ref()),
    },
    Metric {
        file: "fleet-decode-tps.svg",
        title: "Decode tok/s p50 by machine",
        y_desc: "tokens per second",
        decimals: 1,
        value: |m| p50(m.decode_tps.as_ref()),
    },
];

/// The fleet charts of `doc`; none unless it is a fleet.
pub(crate) fn render_fleet(doc: &Results) -> Result<Vec<Chart>, ChartError> {
    let Some(fleet) = &doc.fleet else {
        return Ok(Vec::new());
    };
    let mut models: Vec<&str> = Vec::new();
    for row in fleet.machines.iter().flat_map(|m| &m.rows) {
        if !models.contains(&row.model.as_str()) {
            models.push(&row.model);
        }
    }
    let summary = |label: &str| doc.summaries.iter().find(|m| m.label == label);
    METRICS
        .iter()
        .map(|metric| {
            // values[machine][model]
            let values: Vec<Vec<Option<f64>>> = fleet
                .machines
                .iter()
                .map(|machine| {
                    models
                        .iter()
                        .map(|model| {
                            let row = machine.rows.iter().find(|r| r.model == *model)?;
                            summary(&row.label).and_then(metric.value)
                        })
                        .collect()
                })
                .collect();
            let names: Vec<&str> = fleet.machines.iter().map(|m| m.name.as_str()).collect();
            grouped_bars(metric, &models, &names, &values)
        })
        .collect()
}

/// Bars of `values[machine][model]`, grouped by model.
fn grouped_bars(
    metric: &Metric,
    models: &[&str],
    machines: &[&str],
    values: &[Vec<Option<f64>>],
) -> Result<Chart, ChartError> {
    let bounds = min_max(values.iter().flatten().flatten().copied());
    let y_range = bounds.map_or(0.0..1.0, |(lo, hi)| zero_based_range(lo, hi));
    let width = 0.8 / machines.len().max(1) as f64;
    let value_style = (FONT, 10)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    render_svg(metric.file, metric.title, |root| {
        let mut chart = category_frame(root, metric.title, models, &y_range, metric.y_desc)?;
        if bounds.is_none() {
            chart
                .plotting_area()
                .draw(&no_data_text(mid(&chart.x_range()), mid(&y_range)))?;
            return Ok(());
        }
        for (m, (name, row)) in machines.iter().zip(values).enumerate() {
            let colour = PALETTE[m % PALETTE.len()];
            let bars = row.iter().enumerate().filter_map(|(i, v)| {
                let left = i as f64 - 0.4 + m as f64 * width;
                v.map(|v| Rectangle::new([(left, 0.0), (left + width * 0.9, v)], colour.filled()))
            });
            chart
                .draw_series(bars)?
                .label(name.to_string())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
            chart.draw_series(row.iter().enumerate().filter_map(|(i, v)| {
                let centre = i as f64 - 0.4 + (m as f64 + 0.45) * width;
                v.map(|v| {
                    EmptyElement::at((centre, v))
                        + Text::new(
                            format::fixed(v, metric.decimals),
                            (0, -3),
                            value_style.clone(),
                        )
                })
            }))?;
        }
        draw_legend(&mut chart)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_name_every_machine_and_model_and_stay_byte_stable() {
        let metric = &METRICS[0];
        let values = vec![vec![Some(10.0), Some(30.0)], vec![Some(20.0), None]];
        let chart = grouped_bars(
            metric,
            &["a", "b [threads=2]"],
            &["laptop", "edge"],
            &values,
        )
        .unwrap();
        let again = grouped_bars(
            metric,
            &["a", "b [threads=2]"],
            &["laptop", "edge"],
            &values,
        )
        .unwrap();
        assert_eq!(chart, again);
        for text in ["laptop", "edge", "a", "b [threads=2]", "30"] {
            assert!(
                chart.svg.contains(&format!(">{text}<")) || chart.svg.contains(text),
                "{text}: {}",
                chart.svg
            );
        }
        let empty = grouped_bars(metric, &["a"], &["laptop"], &[vec![None]]).unwrap();
        assert!(empty.svg.contains("no data"), "{}", empty.svg);
    }
}
