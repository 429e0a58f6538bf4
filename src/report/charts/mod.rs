//! SVG charts for benchmark reports.
//!
//! This module owns turning per-series latency and throughput samples into the
//! three report charts (`latency.svg`, `decode-tps.svg`, `ttft-vs-tps.svg`),
//! and a metric's values per commit into the history chart (`history.svg`);
//! the percentiles behind them come from [`crate::measure::stats`] and
//! every label's number from [`super::format`].
//!
//! It must never do file I/O, read the clock, use randomness or iterate a
//! hash map: data goes in, SVG strings come out, and the same input always
//! yields byte-identical output so the charts can be committed to git.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::format;
use crate::measure::stats;

/// Samples for one model (or model/variant) shown as one series in every chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Series {
    /// Human-readable series name, e.g. `"smollm2 threads=2"`.
    pub label: String,
    /// Time to first token per request, in milliseconds.
    pub ttft_ms: Vec<f64>,
    /// End-to-end latency per request, in milliseconds.
    pub e2e_ms: Vec<f64>,
    /// Decode throughput per request, in tokens per second.
    pub decode_tps: Vec<f64>,
}

/// One rendered chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chart {
    /// File name the caller should store the chart under, e.g. `"latency.svg"`.
    pub file: String,
    /// Short title, usable as Markdown alt text.
    pub title: String,
    /// Complete SVG document.
    pub svg: String,
}

/// Errors raised while rendering charts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    /// The drawing library reported a failure while drawing a chart.
    #[error("failed to render chart {file}: {message}")]
    Render {
        /// File name of the chart being drawn.
        file: String,
        /// Description of the underlying drawing error.
        message: String,
    },
}

/// Canvas size in pixels.
const SIZE: (u32, u32) = (800, 480);
/// Font family used for every piece of text.
pub(super) const FONT: &str = "sans-serif";
/// Colour of TTFT marks.
const TTFT_COLOUR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
/// Colour of E2E marks.
const E2E_COLOUR: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
/// Colour of decode-throughput bars.
const TPS_COLOUR: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
/// Colour of the history line and its points.
const HISTORY_COLOUR: RGBColor = RGBColor(0x2c, 0x3e, 0x50);
/// Colour of the dashed lines marking a step in a history.
const STEP_COLOUR: RGBColor = RGBColor(0xc0, 0x39, 0x2b);
/// Colour of secondary text such as "no data" notes.
const MUTED: RGBColor = RGBColor(0x66, 0x66, 0x66);
/// Per-series colours for the scatter chart, cycled in series order.
pub(super) const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];
/// Most individual points drawn per mark in the latency chart; larger sample
/// sets are thinned to evenly spaced ranks so the SVG stays small.
const MAX_POINTS: usize = 200;

/// A chart with [`CategoryAxis`] along x and values up the y axis.
pub(super) type CategoryChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<CategoryAxis, plotters::coord::types::RangedCoordf64>,
>;

/// Result type of the drawing closures.
pub(super) type XyChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

pub(super) type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Renders the three report charts for `series`, in a fixed order:
/// latency distribution, decode throughput, then TTFT versus throughput.
///
/// Every series label appears as the (whitespace-trimmed) text of exactly one
/// `<text>` element in each chart, even when that series has no usable
/// samples, unless it coincides with fixed chart text such as `"TTFT"`.
/// Non-finite samples are ignored; a chart without any data shows "no data".
pub(crate) fn render_all(series: &[Series]) -> Result<Vec<Chart>, ChartError> {
    Ok(vec![
        render_latency(series)?,
        render_decode_tps(series)?,
        render_ttft_vs_tps(series)?,
    ])
}

/// Box-plot summary of one finite, sorted sample set.
#[derive(Debug, Clone, PartialEq)]
struct Summary {
    p5: f64,
    p25: f64,
    p50: f64,
    p75: f64,
    p95: f64,
    sorted: Vec<f64>,
}

/// Summarises `values`, ignoring NaN and infinities and clamping finite
/// extremes to [`PLOT_LIMIT`]; `None` if nothing is left. Percentiles come
/// from [`stats::percentile_of_sorted`].
fn summarize(values: &[f64]) -> Option<Summary> {
    let mut sorted: Vec<f64> = values.iter().copied().filter_map(plottable).collect();
    sorted.sort_by(f64::total_cmp);
    let at = |q| stats::percentile_of_sorted(&sorted, q);
    Some(Summary {
        p5: at(0.05)?,
        p25: at(0.25)?,
        p50: at(0.50)?,
        p75: at(0.75)?,
        p95: at(0.95)?,
        sorted,
    })
}

/// Largest magnitude a chart plots: a quarter of `f64::MAX`, so that any
/// padded range over plottable values, and its span, stays finite.
const PLOT_LIMIT: f64 = f64::MAX / 4.0;

/// `value` ready to plot: `None` for NaN and infinities, finite extremes
/// clamped to `±`[`PLOT_LIMIT`] (drawn at the edge of the axis).
fn plottable(value: f64) -> Option<f64> {
    value
        .is_finite()
        .then(|| value.clamp(-PLOT_LIMIT, PLOT_LIMIT))
}

/// A value range covering `lo..=hi` with some headroom: finite, with a
/// finite span, and never empty, whatever the inputs.
///
/// When the data are non-negative the range does not dip below zero. Values
/// beyond [`PLOT_LIMIT`] are clamped to it (an infinite axis end would make
/// the axis tick search loop forever); non-finite bounds give `0..1`.
pub(super) fn padded_range(lo: f64, hi: f64) -> Range<f64> {
    let (Some(lo), Some(hi)) = (plottable(lo), plottable(hi)) else {
        return 0.0..1.0;
    };
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = if hi > lo {
        (hi - lo) * 0.08
    } else {
        (lo.abs() * 0.1).max(1.0)
    };
    let start = if lo >= 0.0 {
        (lo - pad).max(0.0)
    } else {
        lo - pad
    };
    start..hi + pad
}

/// A value range for bars rising from zero: covers zero and `lo..=hi`, with
/// 10% headroom above; finite and never empty, like [`padded_range`].
pub(super) fn zero_based_range(lo: f64, hi: f64) -> Range<f64> {
    let (Some(lo), Some(hi)) = (plottable(lo), plottable(hi)) else {
        return 0.0..1.0;
    };
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let hi = if hi > lo { hi } else { lo + 1.0 };
    lo..hi + (hi - lo) * 0.1
}

/// Smallest and largest of `values`, or `None` if empty.
pub(super) fn min_max(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Category axis for `count` series: series `i` sits at `i` and the axis
/// spans `-0.5..count - 0.5`. It yields no key points, because the category
/// labels are laid out by [`draw_category_labels`] rather than by the mesh.
#[derive(Debug, Clone, Copy)]
pub(super) struct CategoryAxis {
    count: usize,
}

impl Ranged for CategoryAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let range = self.range();
        let fraction = (value - range.start) / (range.end - range.start);
        let pixels = f64::from(limit.1) - f64::from(limit.0);
        limit.0 + (fraction * pixels).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        Vec::new()
    }

    fn range(&self) -> Range<f64> {
        -0.5..self.count.max(1) as f64 - 0.5
    }
}

/// How category labels are placed under the x axis.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CategoryLayout {
    /// Plotters font size of the labels.
    font_size: f64,
    /// Number of staggered label rows (1 or 2).
    rows: i32,
}

/// Approximate width of the plotting area of the category charts, in pixels.
const CATEGORY_PLOT_WIDTH: f64 = 700.0;
/// Vertical distance between staggered label rows, in pixels.
const LABEL_ROW_HEIGHT: i32 = 16;

impl CategoryLayout {
    /// Picks a font size and row count so the longest label roughly fits its slot:
    /// first at full size on one row, then staggered over two rows, then smaller.
    fn for_labels(labels: &[&str]) -> Self {
        let longest = labels
            .iter()
            .map(|label| label.chars().count())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let slot = CATEGORY_PLOT_WIDTH / labels.len().max(1) as f64 * 0.95;
        // Rendered glyphs are about 0.45 of the plotters font size wide.
        let width_at = |size: f64| 0.45 * size * longest;
        let full = 12.0;
        if width_at(full) <= slot || labels.len() < 2 {
            let font_size = (slot / (0.45 * longest)).clamp(9.0, full).floor();
            return Self { font_size, rows: 1 };
        }
        let font_size = (2.0 * slot / (0.45 * longest)).clamp(9.0, full).floor();
        Self { font_size, rows: 2 }
    }

    /// Height to reserve under the x axis for the labels.
    fn area_size(self) -> i32 {
        10 + self.rows * LABEL_ROW_HEIGHT
    }
}

/// Draws each category label centred under its category; with two rows,
/// odd categories go on the second row so neighbours do not overlap.
fn draw_category_labels(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    anchors: &[(i32, i32)],
    labels: &[&str],
    layout: CategoryLayout,
) -> DrawResult {
    let style = (FONT, layout.font_size)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    let width = i32::try_from(SIZE.0).unwrap_or(i32::MAX);
    for (index, (&(x, y), &label)) in anchors.iter().zip(labels).enumerate() {
        let row = i32::from(layout.rows > 1 && index % 2 == 1);
        root.draw(&PathElement::new(vec![(x, y), (x, y + 4)], BLACK))?;
        // Keep the (estimated) text extent on the canvas.
        let half = (0.45 * layout.font_size * label.chars().count().min(400) as f64 / 2.0).ceil()
            as i32
            + 2;
        let centre = if 2 * half >= width {
            width / 2
        } else {
            x.clamp(half, width - half)
        };
        root.draw(&Text::new(
            label,
            (centre, y + 7 + row * LABEL_ROW_HEIGHT),
            style.clone(),
        ))?;
    }
    Ok(())
}

/// Draws into a fresh SVG canvas and returns the document.
pub(super) fn render_svg(
    file: &str,
    title: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
) -> Result<Chart, ChartError> {
    let fail = |err: DrawingAreaErrorKind<std::io::Error>| ChartError::Render {
        file: file.to_string(),
        message: err.to_string(),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        draw(&root).map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(Chart {
        file: file.to_string(),
        title: title.to_string(),
        svg,
    })
}

/// A chart with one category per label along x, `y_range` up the y axis
/// (described as `y_desc`), its mesh and the category labels drawn.
pub(super) fn category_frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    labels: &[&str],
    y_range: &Range<f64>,
    y_desc: &str,
) -> Result<CategoryChart<'a, 'b>, DrawingAreaErrorKind<std::io::Error>> {
    let span = y_range.end - y_range.start;
    let layout = CategoryLayout::for_labels(labels);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(layout.area_size())
        .y_label_area_size(64)
        .build_cartesian_2d(
            CategoryAxis {
                count: labels.len(),
            },
            y_range.clone(),
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .axis_desc_style((FONT, 14))
        .y_label_formatter(&|v| format::axis_tick(*v, span))
        .y_desc(y_desc)
        .draw()?;
    let anchors: Vec<(i32, i32)> = (0..labels.len())
        .map(|i| chart.backend_coord(&(i as f64, y_range.start)))
        .collect();
    draw_category_labels(root, &anchors, labels, layout)?;
    Ok(chart)
}

/// The label of each series, in order: the categories of the category charts.
fn series_labels(series: &[Series]) -> Vec<&str> {
    series.iter().map(|s| s.label.as_str()).collect()
}

/// A chart with `x_range` along x and `y_range` up y (described as
/// `x_desc` and `y_desc`), its mesh drawn; `extra_bottom` pixels are kept
/// free under it for a note.
pub(super) fn xy_frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    (x_range, y_range): (&Range<f64>, &Range<f64>),
    (x_desc, y_desc): (&str, &str),
    extra_bottom: i32,
) -> Result<XyChart<'a, 'b>, DrawingAreaErrorKind<std::io::Error>> {
    let (x_span, y_span) = (x_range.end - x_range.start, y_range.end - y_range.start);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(12)
        .margin_bottom(12 + extra_bottom)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.clone(), y_range.clone())?;
    chart
        .configure_mesh()
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .x_label_formatter(&|v| format::axis_tick(*v, x_span))
        .y_label_formatter(&|v| format::axis_tick(*v, y_span))
        .axis_desc_style((FONT, 14))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

/// Draws the labelled series' legend in the upper right corner.
pub(super) fn draw_legend<'a, 'b: 'a>(chart: &mut CategoryChart<'a, 'b>) -> DrawResult {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

/// Centred "no data" caption in the middle of a plotting area.
pub(super) fn no_data_text(x: f64, y: f64) -> Text<'static, (f64, f64), &'static str> {
    Text::new(
        "no data",
        (x, y),
        (FONT, 22)
            .into_font()
            .color(&MUTED)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    )
}

/// Style of the small "no data" notes above empty categories.
fn category_note_style() -> TextStyle<'static> {
    (FONT, 12)
        .into_font()
        .color(&MUTED)
        .pos(Pos::new(HPos::Center, VPos::Bottom))
}

/// Horizontal layout of the scatter chart's "no data:" note: the heading, then
/// each label, flowed left to right into rows no wider than `width` pixels.
/// Returns `(x, row, text)` triples.
fn flow_note<'a>(labels: &[&'a str], width: i32) -> Vec<(i32, i32, &'a str)> {
    let mut placed = Vec::new();
    let (mut x, mut row) = (0, 0);
    for text in std::iter::once("no data:").chain(labels.iter().copied()) {
        // Roughly 7 px per character at 12 px, plus a gap.
        let w = 7 * text.chars().count().min(200) as i32 + 14;
        if x > 0 && x + w > width {
            x = 0;
            row += 1;
        }
        placed.push((x, row, text));
        x += w;
    }
    placed
}

/// Midpoint of a range.
pub(super) fn mid(range: &Range<f64>) -> f64 {
    f64::midpoint(range.start, range.end)
}

/// Deterministic horizontal jitter in `[-0.5, 0.5)` for the `index`-th point
/// (golden-ratio low-discrepancy sequence).
fn jitter(index: usize) -> f64 {
    (index as f64 * 0.618_033_988_749_895).fract() - 0.5
}

/// At most [`MAX_POINTS`] values from ascending `sorted`, at evenly spaced ranks.
fn thinned(sorted: &[f64]) -> Vec<f64> {
    if sorted.len() <= MAX_POINTS {
        return sorted.to_vec();
    }
    let step = (sorted.len() - 1) as f64 / (MAX_POINTS - 1) as f64;
    (0..MAX_POINTS)
        .filter_map(|k| sorted.get((k as f64 * step).round() as usize).copied())
        .collect()
}

/// Marks of one box-and-whisker glyph centred at `x`.
struct BoxMarks {
    boxes: Vec<Rectangle<(f64, f64)>>,
    lines: Vec<PathElement<(f64, f64)>>,
    points: Vec<Circle<(f64, f64), i32>>,
}

/// Builds box (p25–p75), median line, p5–p95 whiskers and individual points.
fn box_marks(x: f64, summary: &Summary, colour: RGBColor) -> BoxMarks {
    let half = 0.13;
    let cap = 0.06;
    let line = colour.stroke_width(2);
    let points = thinned(&summary.sorted)
        .into_iter()
        .enumerate()
        .map(|(i, v)| Circle::new((x + jitter(i) * 0.16, v), 2, colour.mix(0.5).filled()))
        .collect();
    BoxMarks {
        boxes: vec![Rectangle::new(
            [(x - half, summary.p75), (x + half, summary.p25)],
            colour.mix(0.2).filled(),
        )],
        lines: vec![
            PathElement::new(
                vec![
                    (x - half, summary.p25),
                    (x + half, summary.p25),
                    (x + half, summary.p75),
                    (x - half, summary.p75),
                    (x - half, summary.p25),
                ],
                colour.stroke_width(1),
            ),
            PathElement::new(vec![(x - half, summary.p50), (x + half, summary.p50)], line),
            PathElement::new(
                vec![(x, summary.p5), (x, summary.p25)],
                colour.stroke_width(1),
            ),
            PathElement::new(
                vec![(x, summary.p75), (x, summary.p95)],
                colour.stroke_width(1),
            ),
            PathElement::new(vec![(x - cap, summary.p5), (x + cap, summary.p5)], line),
            PathElement::new(vec![(x - cap, summary.p95), (x + cap, summary.p95)], line),
        ],
        points,
    }
}

/// `latency.svg`: TTFT and E2E distributions per series as box plots with points.
fn render_latency(series: &[Series]) -> Result<Chart, ChartError> {
    let title = "Latency per series: TTFT and E2E (ms)";
    let metrics: [(&str, RGBColor, f64, Vec<Option<Summary>>); 2] = [
        (
            "TTFT",
            TTFT_COLOUR,
            -0.2,
            series.iter().map(|s| summarize(&s.ttft_ms)).collect(),
        ),
        (
            "E2E",
            E2E_COLOUR,
            0.2,
            series.iter().map(|s| summarize(&s.e2e_ms)).collect(),
        ),
    ];
    let bounds = min_max(metrics.iter().flat_map(|(_, _, _, summaries)| {
        summaries
            .iter()
            .flatten()
            .flat_map(|s| s.sorted.first().into_iter().chain(s.sorted.last()))
            .copied()
    }));
    let y_range = bounds.map_or(0.0..1.0, |(lo, hi)| padded_range(lo, hi));
    let labels = series_labels(series);

    render_svg("latency.svg", title, |root| {
        let mut chart = category_frame(root, title, &labels, &y_range, "milliseconds")?;

        if bounds.is_none() {
            chart
                .plotting_area()
                .draw(&no_data_text(mid(&chart.x_range()), mid(&y_range)))?;
            return Ok(());
        }

        for (name, colour, offset, summaries) in &metrics {
            let mut boxes = Vec::new();
            let mut lines = Vec::new();
            let mut points = Vec::new();
            for (index, summary) in summaries.iter().enumerate() {
                if let Some(summary) = summary {
                    let marks = box_marks(index as f64 + offset, summary, *colour);
                    boxes.extend(marks.boxes);
                    lines.extend(marks.lines);
                    points.extend(marks.points);
                }
            }
            let colour = *colour;
            chart
                .draw_series(boxes)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                });
            chart.draw_series(points)?;
            chart.draw_series(lines)?;
        }
        let empty = metrics[0]
            .3
            .iter()
            .zip(&metrics[1].3)
            .enumerate()
            .filter(|(_, (ttft, e2e))| ttft.is_none() && e2e.is_none())
            .map(|(index, _)| index as f64);
        chart.draw_series(empty.map(|x| {
            EmptyElement::at((x, y_range.start))
                + Text::new("no data", (0, -6), category_note_style())
        }))?;
        draw_legend(&mut chart)
    })
}

/// `decode-tps.svg`: median decode throughput bars with p5–p95 whiskers.
fn render_decode_tps(series: &[Series]) -> Result<Chart, ChartError> {
    let title = "Decode throughput per series (tok/s, median with p5-p95)";
    let summaries: Vec<Option<Summary>> = series.iter().map(|s| summarize(&s.decode_tps)).collect();
    let bounds = min_max(
        summaries
            .iter()
            .flatten()
            .flat_map(|s| [s.p5, s.p50, s.p95]),
    );
    let y_range = bounds.map_or(0.0..1.0, |(lo, hi)| zero_based_range(lo, hi));
    let labels = series_labels(series);

    render_svg("decode-tps.svg", title, |root| {
        let mut chart = category_frame(root, title, &labels, &y_range, "tokens per second")?;

        if bounds.is_none() {
            chart
                .plotting_area()
                .draw(&no_data_text(mid(&chart.x_range()), mid(&y_range)))?;
            return Ok(());
        }

        let whisker = BLACK.stroke_width(2);
        let value_style = (FONT, 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for (index, summary) in summaries.iter().enumerate() {
            let x = index as f64;
            let Some(summary) = summary else {
                chart.draw_series([EmptyElement::at((x, y_range.start))
                    + Text::new("no data", (0, -6), category_note_style())])?;
                continue;
            };
            chart.draw_series([Rectangle::new(
                [(x - 0.3, summary.p50), (x + 0.3, 0.0)],
                TPS_COLOUR.mix(0.75).filled(),
            )])?;
            chart.draw_series([
                PathElement::new(vec![(x, summary.p5), (x, summary.p95)], whisker),
                PathElement::new(
                    vec![(x - 0.08, summary.p5), (x + 0.08, summary.p5)],
                    whisker,
                ),
                PathElement::new(
                    vec![(x - 0.08, summary.p95), (x + 0.08, summary.p95)],
                    whisker,
                ),
            ])?;
            let top = summary.p95.max(summary.p50).max(0.0);
            chart.draw_series([EmptyElement::at((x, top))
                + Text::new(format::fixed(summary.p50, 1), (0, -4), value_style.clone())])?;
        }
        Ok(())
    })
}

/// `ttft-vs-tps.svg`: one labelled point per series at (median TTFT, median tok/s).
fn render_ttft_vs_tps(series: &[Series]) -> Result<Chart, ChartError> {
    let title = "Median TTFT vs median decode throughput";
    let points: Vec<Option<(f64, f64)>> = series
        .iter()
        .map(|s| {
            let ttft = summarize(&s.ttft_ms)?.p50;
            let tps = summarize(&s.decode_tps)?.p50;
            Some((ttft, tps))
        })
        .collect();
    let x_bounds = min_max(points.iter().flatten().map(|p| p.0));
    let y_bounds = min_max(points.iter().flatten().map(|p| p.1));
    let x_range = x_bounds.map_or(0.0..1.0, |(lo, hi)| padded_range(lo, hi));
    let y_range = y_bounds.map_or(0.0..1.0, |(lo, hi)| padded_range(lo, hi));
    let missing: Vec<&str> = series
        .iter()
        .zip(&points)
        .filter(|(_, point)| point.is_none())
        .map(|(s, _)| s.label.as_str())
        .collect();
    let margin = 12;
    let width = i32::try_from(SIZE.0).unwrap_or(i32::MAX);
    let height = i32::try_from(SIZE.1).unwrap_or(i32::MAX);
    let note = if missing.is_empty() {
        Vec::new()
    } else {
        flow_note(&missing, width - 2 * margin)
    };
    let note_rows = note.last().map_or(0, |(_, row, _)| row + 1);
    let row_height = 16;

    render_svg("ttft-vs-tps.svg", title, |root| {
        let mut chart = xy_frame(
            root,
            title,
            (&x_range, &y_range),
            ("median TTFT (ms)", "median decode (tok/s)"),
            note_rows * row_height,
        )?;

        if x_bounds.is_none() {
            chart
                .plotting_area()
                .draw(&no_data_text(mid(&x_range), mid(&y_range)))?;
        }

        let label_font = (FONT, 13).into_font();
        for (index, (s, point)) in series.iter().zip(&points).enumerate() {
            let Some((x, y)) = *point else { continue };
            let colour = PALETTE[index % PALETTE.len()];
            // Keep labels inside the plot: right-half points get labels on their left.
            let (dx, h_pos) = if x > mid(&x_range) {
                (-9, HPos::Right)
            } else {
                (9, HPos::Left)
            };
            chart.draw_series([EmptyElement::at((x, y))
                + Circle::new((0, 0), 5, colour.filled())
                + Text::new(
                    s.label.clone(),
                    (dx, 0),
                    label_font
                        .clone()
                        .color(&colour)
                        .pos(Pos::new(h_pos, VPos::Center)),
                )])?;
        }

        let note_style = (FONT, 12)
            .into_font()
            .color(&MUTED)
            .pos(Pos::new(HPos::Left, VPos::Top));
        let top = height - margin - note_rows * row_height + 2;
        for (x, row, text) in note {
            root.draw(&Text::new(
                text,
                (margin + x, top + row * row_height),
                note_style.clone(),
            ))?;
        }
        Ok(())
    })
}

/// `history.svg`: `metric` per commit, oldest first. `points` holds one
/// `(commit label, value)` per commit; each commit is a category on the x
/// axis, labelled with its commit, and gets a point when it has a value, with
/// a line through the points. Each index in `steps` (a commit that brought a
/// change point) gets a dashed vertical line.
///
/// Values that are not finite are skipped and extreme ones clamped to the
/// edge of the axis; steps outside `points` are ignored; a history without
/// values shows "no data". The same input always gives the same bytes.
pub(crate) fn history(
    metric: &str,
    points: &[(&str, Option<f64>)],
    steps: &[usize],
) -> Result<Chart, ChartError> {
    let title = format!("{metric} per commit");
    let labels: Vec<&str> = points.iter().map(|&(label, _)| label).collect();
    let values: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(index, &(_, value))| Some((index as f64, plottable(value?)?)))
        .collect();
    let bounds = min_max(values.iter().map(|&(_, value)| value));
    let y_range = bounds.map_or(0.0..1.0, |(lo, hi)| padded_range(lo, hi));
    let steps: Vec<f64> = steps
        .iter()
        .filter(|&&index| index < points.len())
        .map(|&index| index as f64)
        .collect();

    render_svg("history.svg", &title, |root| {
        let mut chart = category_frame(root, &title, &labels, &y_range, metric)?;

        if bounds.is_none() {
            chart
                .plotting_area()
                .draw(&no_data_text(mid(&chart.x_range()), mid(&y_range)))?;
            return Ok(());
        }

        if !steps.is_empty() {
            let dashed = |x: f64| {
                DashedPathElement::new(
                    vec![(x, y_range.start), (x, y_range.end)],
                    5,
                    4,
                    STEP_COLOUR.stroke_width(1),
                )
            };
            chart
                .draw_series(steps.iter().map(|&x| dashed(x)))?
                .label("step")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], STEP_COLOUR));
        }
        chart.draw_series([PathElement::new(
            values.clone(),
            HISTORY_COLOUR.stroke_width(2),
        )])?;
        chart.draw_series(
            values
                .iter()
                .map(|&point| Circle::new(point, 3, HISTORY_COLOUR.filled())),
        )?;
        if steps.is_empty() {
            Ok(())
        } else {
            draw_legend(&mut chart)
        }
    })
}

#[cfg(test)]
mod tests;
