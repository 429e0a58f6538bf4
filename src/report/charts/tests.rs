use super::*;

fn series(label: &str, ttft: &[f64], e2e: &[f64], tps: &[f64]) -> Series {
    Series {
        label: label.to_string(),
        ttft_ms: ttft.to_vec(),
        e2e_ms: e2e.to_vec(),
        decode_tps: tps.to_vec(),
    }
}

fn sample() -> Vec<Series> {
    vec![
        series(
            "smollm2 threads=2",
            &[110.0, 120.0, 135.0, 150.0, 480.0],
            &[900.0, 950.0, 1010.0, 1200.0, 1500.0],
            &[30.5, 31.0, 29.8, 32.2, 28.0],
        ),
        series(
            "qwen3 threads=4",
            &[80.0, 85.0, 90.0],
            &[700.0, 720.0, 760.0],
            &[45.0, 47.5, 46.1],
        ),
    ]
}

/// Trimmed contents of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    let doc = match roxmltree::Document::parse(svg) {
        Ok(doc) => doc,
        Err(err) => panic!("invalid SVG: {err}\n{svg}"),
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

fn assert_labels_once(charts: &[Chart], input: &[Series]) {
    for chart in charts {
        let texts = texts(&chart.svg);
        for s in input {
            let count = texts.iter().filter(|t| **t == s.label).count();
            assert_eq!(count, 1, "{:?} in {}: {texts:?}", s.label, chart.file);
        }
    }
}

#[test]
fn box_percentiles_match_numpy_linear() {
    let s = summarize(&[4.0, 1.0, 3.0, 2.0]).unwrap_or_else(|| panic!("expected a summary"));
    // numpy.percentile([1, 2, 3, 4], [5, 25, 50, 75, 95])
    let expected = [1.15, 1.75, 2.5, 3.25, 3.85];
    for (got, want) in [s.p5, s.p25, s.p50, s.p75, s.p95].into_iter().zip(expected) {
        assert!((got - want).abs() < 1e-12, "{got} != {want}");
    }
    let one = summarize(&[7.0]).unwrap_or_else(|| panic!("expected a summary"));
    assert_eq!((one.p5, one.p50, one.p95), (7.0, 7.0, 7.0));
    assert!(summarize(&[]).is_none());
}

#[test]
fn summarize_ignores_non_finite() {
    let s = summarize(&[f64::NAN, 3.0, f64::INFINITY, 1.0, f64::NEG_INFINITY, 2.0]);
    let s = s.unwrap_or_else(|| panic!("expected a summary"));
    assert_eq!(s.sorted, vec![1.0, 2.0, 3.0]);
    assert_eq!(s.p50, 2.0);
    assert!(summarize(&[f64::NAN]).is_none());
}

#[test]
fn padded_range_is_never_empty() {
    let r = padded_range(5.0, 5.0);
    assert!(r.start < 5.0 && r.end > 5.0);
    let r = padded_range(0.0, 0.0);
    assert!(r.start == 0.0 && r.end > 0.0);
    let r = padded_range(-3.0, -3.0);
    assert!(r.start < -3.0 && r.end > -3.0);
}

#[test]
fn produces_three_valid_charts_with_every_label() {
    let input = sample();
    let charts = render_all(&input).unwrap_or_else(|e| panic!("{e}"));
    let files: Vec<&str> = charts.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(files, ["latency.svg", "decode-tps.svg", "ttft-vs-tps.svg"]);
    for chart in &charts {
        assert!(!chart.title.is_empty());
        let doc = roxmltree::Document::parse(&chart.svg)
            .unwrap_or_else(|e| panic!("{}: {e}", chart.file));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert_eq!(doc.root_element().attribute("width"), Some("800"));
    }
    assert_labels_once(&charts, &input);
    let latency = texts(&charts[0].svg);
    assert!(latency.iter().any(|t| t == "TTFT"));
    assert!(latency.iter().any(|t| t == "E2E"));
}

#[test]
fn rendering_is_deterministic() {
    let input = sample();
    let first = render_all(&input).unwrap_or_else(|e| panic!("{e}"));
    let second = render_all(&input).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first, second);
}

#[test]
fn empty_input_gives_valid_no_data_charts() {
    for input in [vec![], vec![series("empty model", &[], &[], &[])]] {
        let charts = render_all(&input).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(charts.len(), 3);
        for chart in &charts {
            let texts = texts(&chart.svg);
            assert!(texts.iter().any(|t| t == "no data"), "{}", chart.file);
        }
        assert_labels_once(&charts, &input);
    }
}

#[test]
fn non_finite_only_counts_as_empty() {
    let input = vec![series(
        "nan model",
        &[f64::NAN],
        &[f64::INFINITY],
        &[f64::NEG_INFINITY],
    )];
    let charts = render_all(&input).unwrap_or_else(|e| panic!("{e}"));
    for chart in &charts {
        assert!(texts(&chart.svg).iter().any(|t| t == "no data"));
    }
    assert_labels_once(&charts, &input);
}

#[test]
fn single_values_and_partial_series_render() {
    let input = vec![
        series("one", &[100.0], &[100.0], &[20.0]),
        series("no tps", &[50.0, 60.0], &[400.0], &[]),
        series("zeros", &[0.0], &[0.0], &[0.0]),
    ];
    let charts = render_all(&input).unwrap_or_else(|e| panic!("{e}"));
    assert_labels_once(&charts, &input);
    let scatter = texts(&charts[2].svg);
    assert!(scatter.iter().any(|t| t == "no data:"));
}

#[test]
fn many_samples_are_thinned() {
    let values: Vec<f64> = (0..5000).map(f64::from).collect();
    let thin = thinned(&values);
    assert_eq!(thin.len(), MAX_POINTS);
    assert_eq!(thin.first(), Some(&0.0));
    assert_eq!(thin.last(), Some(&4999.0));
    let input = vec![series("big", &values, &values, &values)];
    let charts = render_all(&input).unwrap_or_else(|e| panic!("{e}"));
    assert_labels_once(&charts, &input);
}

#[test]
fn special_characters_are_escaped() {
    let input = vec![
        series("a<b & \"c\" 'd'", &[1.0, 2.0], &[3.0, 4.0], &[5.0, 6.0]),
        series("x>y&amp;", &[], &[3.0], &[]),
    ];
    let charts = render_all(&input).unwrap_or_else(|e| panic!("{e}"));
    for chart in &charts {
        assert!(!chart.svg.contains("a<b"), "{}", chart.file);
        assert!(
            chart
                .svg
                .contains("a&lt;b &amp; &quot;c&quot; &apos;d&apos;")
        );
    }
    assert_labels_once(&charts, &input);
}

/// Runs `f` on its own thread and fails instead of hanging when it takes
/// more than a minute.
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_mins(1))
        .unwrap_or_else(|e| panic!("rendering did not finish: {e}"))
}

#[test]
fn axis_ranges_are_finite_for_extreme_values() {
    let huge = 1.7e308;
    for (lo, hi) in [
        (0.0, huge),
        (100.0, huge),
        (-huge, huge),
        (huge, huge),
        (f64::MAX, f64::MAX),
        (-f64::MAX, -f64::MAX),
        (1e17, 1e17 + 16.0),
        (f64::MIN_POSITIVE, f64::MIN_POSITIVE),
    ] {
        for r in [padded_range(lo, hi), zero_based_range(lo, hi)] {
            assert!(
                r.start.is_finite() && r.end.is_finite() && (r.end - r.start).is_finite(),
                "{lo}..{hi} -> {r:?}"
            );
            assert!(r.end > r.start, "{lo}..{hi} -> {r:?}");
        }
    }
    assert_eq!(zero_based_range(2.0, 10.0), 0.0..11.0);
    assert_eq!(zero_based_range(0.0, 0.0), 0.0..1.1);
}

#[test]
fn run_charts_with_extreme_values_render_in_bounded_time() {
    let huge = 1.7e308;
    let inputs = vec![
        vec![series("huge ttft", &[huge], &[900.0], &[30.0])],
        vec![
            series(
                "huge",
                &[huge, 100.0, f64::INFINITY],
                &[huge, 1.0],
                &[huge, 1.0],
            ),
            series(
                "other",
                &[120.0, f64::NAN],
                &[f64::NEG_INFINITY, 950.0],
                &[31.0],
            ),
        ],
        vec![
            series(
                "both signs",
                &[-huge, huge],
                &[-f64::MAX, f64::MAX],
                &[-huge, huge],
            ),
            series("negative", &[-huge], &[-huge], &[-huge]),
        ],
        vec![series(
            "one ulp apart",
            &[1e17, 1e17 + 16.0],
            &[1e17, 1e17 + 16.0],
            &[1e17, 1e17 + 16.0],
        )],
    ];
    let rendered = within_a_minute(move || {
        inputs
            .into_iter()
            .map(|input| (render_all(&input), input))
            .collect::<Vec<_>>()
    });
    for (charts, input) in rendered {
        let charts = charts.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(charts.len(), 3);
        assert_labels_once(&charts, &input);
    }
}

/// Twelve-character commit labels, as `dyno history` passes them.
fn commits(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{i:04}abcdef01")).collect()
}

fn history_chart(labels: &[String], values: &[Option<f64>], steps: &[usize]) -> Chart {
    let points: Vec<(&str, Option<f64>)> = labels
        .iter()
        .map(String::as_str)
        .zip(values.iter().copied())
        .collect();
    history("e2e_ms", &points, steps).unwrap_or_else(|e| panic!("{e}"))
}

/// The x positions of the vertical dashed step lines: every dash is a
/// polyline of [`STEP_COLOUR`] with one x for all its points.
fn step_lines(svg: &str) -> std::collections::BTreeSet<String> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    let colour = format!(
        "#{:02X}{:02X}{:02X}",
        STEP_COLOUR.0, STEP_COLOUR.1, STEP_COLOUR.2
    );
    let mut xs = std::collections::BTreeSet::new();
    for node in doc.descendants().filter(|n| n.has_tag_name("polyline")) {
        if node.attribute("stroke") != Some(colour.as_str()) {
            continue;
        }
        let points: Vec<&str> = node
            .attribute("points")
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|p| p.split(',').next())
            .collect();
        if points.len() > 1 && points.iter().all(|x| *x == points[0]) {
            xs.insert(points[0].to_string());
        }
    }
    xs
}

#[test]
fn history_has_a_point_per_commit_and_a_dashed_line_per_step() {
    let labels = commits(16);
    let values: Vec<Option<f64>> = [
        410.0, 405.0, 415.0, 408.0, 412.0, 406.0, 411.0, 409.0, 440.0, 436.0, 445.0, 438.0, 442.0,
        439.0, 444.0, 437.0,
    ]
    .into_iter()
    .map(Some)
    .collect();
    let chart = history_chart(&labels, &values, &[3, 8]);
    assert_eq!(chart.file, "history.svg");
    assert_eq!(chart.title, "e2e_ms per commit");
    let texts = texts(&chart.svg);
    assert!(texts.iter().any(|t| t == "e2e_ms per commit"), "{texts:?}");
    for label in &labels {
        assert_eq!(texts.iter().filter(|t| *t == label).count(), 1, "{label}");
    }
    assert_eq!(chart.svg.matches("<circle ").count(), 16);
    assert_eq!(step_lines(&chart.svg).len(), 2);
    assert_eq!(chart, history_chart(&labels, &values, &[3, 8]));
}

#[test]
fn history_without_steps_has_no_dashed_lines() {
    let labels = commits(3);
    let chart = history_chart(&labels, &[Some(1.0), None, Some(2.0)], &[]);
    assert!(step_lines(&chart.svg).is_empty());
    assert_eq!(chart.svg.matches("<circle ").count(), 2);
    assert!(!texts(&chart.svg).iter().any(|t| t == "step"));
}

#[test]
fn degenerate_histories_render() {
    let cases: Vec<(usize, Vec<Option<f64>>, Vec<usize>)> = vec![
        (0, vec![], vec![]),
        (1, vec![Some(410.0)], vec![]),
        (2, vec![None, None], vec![1]),
        (4, vec![Some(7.0); 4], vec![2, 99]),
        (3, vec![Some(0.0), Some(0.0), Some(0.0)], vec![]),
    ];
    for (count, values, steps) in cases {
        let labels = commits(count);
        let chart = history_chart(&labels, &values, &steps);
        let texts = texts(&chart.svg);
        for label in &labels {
            assert!(texts.contains(label), "{label} in {texts:?}");
        }
        let valued = values.iter().flatten().count();
        if valued == 0 {
            assert!(texts.iter().any(|t| t == "no data"), "{texts:?}");
        }
        assert_eq!(chart.svg.matches("<circle ").count(), valued);
        let in_range = steps.iter().filter(|&&i| i < count).count();
        assert_eq!(
            step_lines(&chart.svg).len(),
            if valued == 0 { 0 } else { in_range }
        );
        assert_eq!(chart, history_chart(&labels, &values, &steps));
    }
}

#[test]
fn history_with_extreme_values_renders_in_bounded_time() {
    let labels = commits(6);
    let values = vec![
        Some(410.0),
        Some(1.7e308),
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(-f64::MAX),
        Some(412.0),
    ];
    let (chart, labels) = within_a_minute(move || {
        let chart = history_chart(&labels, &values, &[1, 4]);
        (chart, labels)
    });
    let texts = texts(&chart.svg);
    for label in &labels {
        assert!(texts.contains(label), "{label} in {texts:?}");
    }
    // NaN and infinity are skipped; the huge values are clamped.
    assert_eq!(chart.svg.matches("<circle ").count(), 4);
    assert_eq!(step_lines(&chart.svg).len(), 2);
}
