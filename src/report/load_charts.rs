//! Charts of load points: TTFT and TPOT (p50 solid, p95 dashed) against
//! request throughput, and goodput against the offered rate, one line per
//! model. Pure: load stats in, SVG out; byte-stable.

use plotters::prelude::*;

use super::charts::{
    Chart, ChartError, DrawResult, FONT, PALETTE, min_max, padded_range, render_svg, xy_frame,
};
use crate::results::LoadStats;

/// One line: its label, points (x ascending) and whether it is dashed.
pub(super) struct Line {
    pub(super) label: String,
    pub(super) points: Vec<(f64, f64)>,
    pub(super) colour: RGBColor,
    pub(super) dashed: bool,
}

/// The load charts of a run (none without load points).
pub(crate) fn render_load(load: &[LoadStats]) -> Result<Vec<Chart>, ChartError> {
    if load.is_empty() {
        return Ok(Vec::new());
    }
    let groups = groups(load);
    let latency =
        |file: &str, title: &str, what: &str, pick: fn(&LoadStats) -> Option<(f64, f64)>| {
            let mut lines = Vec::new();
            for (i, (label, points)) in groups.iter().enumerate() {
                let colour = PALETTE[i % PALETTE.len()];
                let at = |p95: bool| {
                    let mut xy: Vec<(f64, f64)> = points
                        .iter()
                        .filter_map(|l| {
                            let (p50, p95v) = pick(l)?;
                            Some((l.request_throughput, if p95 { p95v } else { p50 }))
                        })
                        .collect();
                    xy.sort_by(|a, b| a.0.total_cmp(&b.0));
                    xy
                };
                lines.push(Line {
                    label: format!("{label} p50"),
                    points: at(false),
                    colour,
                    dashed: false,
                });
                lines.push(Line {
                    label: format!("{label} p95"),
                    points: at(true),
                    colour,
                    dashed: true,
                });
            }
            lines_chart(file, title, "requests per second", what, &lines)
        };
    let mut charts = vec![
        latency(
            "load-ttft.svg",
            "Time to first token under load",
            "TTFT (ms)",
            |l| {
                Some((
                    l.ttft_ms.as_ref()?.summary.p50,
                    l.ttft_ms.as_ref()?.summary.p95,
                ))
            },
        )?,
        latency(
            "load-tpot.svg",
            "Time per output token under load",
            "TPOT (ms)",
            |l| {
                Some((
                    l.tpot_ms.as_ref()?.summary.p50,
                    l.tpot_ms.as_ref()?.summary.p95,
                ))
            },
        )?,
    ];
    if load.iter().any(|l| l.goodput.is_some()) {
        let lines: Vec<Line> = groups
            .iter()
            .enumerate()
            .map(|(i, (label, points))| {
                let mut xy: Vec<(f64, f64)> = points
                    .iter()
                    .filter_map(|l| Some((l.rate.unwrap_or(l.request_throughput), l.goodput?)))
                    .collect();
                xy.sort_by(|a, b| a.0.total_cmp(&b.0));
                Line {
                    label: label.clone(),
                    points: xy,
                    colour: PALETTE[i % PALETTE.len()],
                    dashed: false,
                }
            })
            .collect();
        charts.push(lines_chart(
            "load-goodput.svg",
            "Goodput against offered load",
            "offered requests per second",
            "requests per second meeting the SLO",
            &lines,
        )?);
    }
    Ok(charts)
}

/// Load points by model (and variant and axes): the key without its point.
fn groups(load: &[LoadStats]) -> Vec<(String, Vec<&LoadStats>)> {
    let mut groups: Vec<(String, Vec<&LoadStats>)> = Vec::new();
    for l in load {
        let label = match l.key.rsplit_once(',') {
            Some((head, _)) => format!("{}]", head.replace("/*[", " [")),
            None => l.key.split('/').next().unwrap_or(&l.model).to_string(),
        };
        match groups.iter_mut().find(|(g, _)| *g == label) {
            Some((_, points)) => points.push(l),
            None => groups.push((label, vec![l])),
        }
    }
    groups
}

/// A line chart of `lines` with a legend.
pub(super) fn lines_chart(
    file: &str,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
) -> Result<Chart, ChartError> {
    let xs = min_max(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)));
    let ys = min_max(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    let x_range = xs.map_or(0.0..1.0, |(lo, hi)| padded_range(lo, hi));
    let y_range = ys.map_or(0.0..1.0, |(lo, hi)| padded_range(lo, hi));
    render_svg(file, title, |root| -> DrawResult {
        let mut chart = xy_frame(root, title, (&x_range, &y_range), (x_desc, y_desc), 0)?;
        for line in lines {
            let style = line.colour.stroke_width(2);
            let series = if line.dashed {
                chart.draw_series(DashedLineSeries::new(line.points.clone(), 6, 4, style))?
            } else {
                chart.draw_series(LineSeries::new(line.points.clone(), style))?
            };
            let colour = line.colour;
            series
                .label(line.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
            chart.draw_series(
                line.points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, line.colour.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 12))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{ClientCost, Dist};

    fn stats(key: &str, throughput: f64, ttft: f64, goodput: Option<f64>) -> LoadStats {
        let dist = Dist::of(&[ttft, ttft * 1.5]);
        LoadStats {
            key: key.into(),
            model: "m".into(),
            point: crate::results::PointLabel::point("concurrency=1"),
            concurrency: Some(1),
            rate: None,
            sent: 10,
            counted: 10,
            errors: 0,
            error_rate: 0.0,
            window_s: 1.0,
            request_throughput: throughput,
            output_tps: 1.0,
            total_tps: 1.0,
            goodput,
            slo_met: None,
            ttft_ms: dist.clone(),
            tpot_ms: dist.clone(),
            e2e_ms: dist,
            itl_ms: None,
            schedule_lag_ms: None,
            server_prompt_tps_p50: None,
            server_decode_tps_p50: None,
            client: ClientCost::default(),
            client_cores: None,
            client_us_per_chunk: None,
            client_bound: false,
            interrupted: None,
            cache_hit_rate: None,
        }
    }

    #[test]
    fn load_charts_are_byte_stable_and_name_every_model() {
        let load = vec![
            stats("a/*[concurrency=1]", 10.0, 20.0, Some(9.0)),
            stats("a/*[concurrency=4]", 30.0, 60.0, Some(20.0)),
            stats("b/*[threads=2,concurrency=1]", 8.0, 25.0, Some(7.0)),
        ];
        let charts = render_load(&load).unwrap();
        let files: Vec<&str> = charts.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(
            files,
            ["load-ttft.svg", "load-tpot.svg", "load-goodput.svg"]
        );
        assert_eq!(charts, render_load(&load).unwrap());
        let ttft = &charts[0].svg;
        assert!(
            ttft.contains("a p50") && ttft.contains("b [threads=2] p95"),
            "{ttft}"
        );
        assert!(render_load(&[]).unwrap().is_empty());
    }
}
