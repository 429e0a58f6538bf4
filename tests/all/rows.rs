//! Summary rows never mix: one per model, variant and matrix axis values,
//! in every table, chart and highlight; and the report names why requests
//! failed, per cell.

use dyno::plan::Filter;

use crate::{Tree, fixture, run_and_load, svg_texts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_and_non_streaming_are_two_summary_rows() {
    let base = fixture::start().await;
    let suite = format!(
        "
name: axes
endpoints:
  fx: {{ base_url: \"{base}\" }}
models:
  - {{ id: timetable, endpoint: fx }}
prompts:
  - {{ id: p, text: count }}
defaults: {{ rounds: 3, warmup: 1, max_tokens: 20 }}
matrix: {{ stream: [true, false] }}
"
    );
    let tree = Tree::new(&[("s.yaml", &suite)]);
    let out = tree.path("out");
    let (_, doc) = run_and_load(&tree.path("s.yaml"), &Filter::default(), &out).await;
    let rows: Vec<(&str, Option<&str>, usize)> = doc
        .summaries
        .iter()
        .map(|m| (m.label.as_str(), m.axes.as_deref(), m.requests))
        .collect();
    assert_eq!(
        rows,
        [
            ("timetable [stream=true]", Some("stream=true"), 3),
            ("timetable [stream=false]", Some("stream=false"), 3),
        ]
    );
    let (streamed, whole) = (&doc.summaries[0], &doc.summaries[1]);
    // The fixture streams 20 tokens over about 530 ms and answers a
    // non-streaming request at once: pooled, the two would blur.
    let slowest_whole = whole.e2e_ms.as_ref().map(|d| d.summary.max);
    let fastest_streamed = streamed.e2e_ms.as_ref().map(|d| d.summary.min);
    assert!(
        slowest_whole
            .zip(fastest_streamed)
            .is_some_and(|(w, s)| w * 2.0 < s),
        "non-streaming E2E max {slowest_whole:?} vs streaming min {fastest_streamed:?}"
    );
    assert!(streamed.ttft_ms.is_some(), "{:?}", streamed.ttft_ms);
    assert!(
        whole.ttft_ms.is_none(),
        "no TTFT unstreamed: {:?}",
        whole.ttft_ms
    );
    assert!(
        doc.cells.iter().all(|c| c.axes.is_some()),
        "{:?}",
        doc.cells.iter().map(|c| &c.axes).collect::<Vec<_>>()
    );

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for label in ["timetable [stream=true]", "timetable [stream=false]"] {
        let summary_row = format!("\n| {label} | 3 |");
        assert!(
            report.contains(&summary_row),
            "no summary row {summary_row:?}:\n{report}"
        );
        // (A cell measured while the machine was busy is marked `p ⚠`.)
        let per_prompt = format!("\n| {label} | p");
        assert!(
            report.contains(&per_prompt),
            "no per-prompt row {per_prompt:?}:\n{report}"
        );
        let chart = std::fs::read_to_string(out.join("charts/latency.svg")).unwrap();
        assert!(
            svg_texts(&chart).iter().any(|t| t == label),
            "no series {label}: {:?}",
            svg_texts(&chart)
        );
    }
    assert!(
        report.contains("| timetable [stream=true] | timetable [stream=false] |"),
        "selection table columns:\n{report}"
    );
    let ttft = doc
        .highlights
        .iter()
        .find(|h| h.metric == "ttft_ms")
        .unwrap_or_else(|| panic!("{:?}", doc.highlights));
    assert_eq!(ttft.best, "timetable [stream=true]", "{ttft:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failures_section_names_each_distinct_error_per_cell() {
    let base = fixture::start().await;
    let suite = format!(
        "
name: failing
endpoints:
  fx: {{ base_url: \"{base}\" }}
models:
  - {{ id: timetable, endpoint: fx }}
  - {{ id: http-500, endpoint: fx }}
prompts:
  - {{ id: p, text: count }}
defaults: {{ rounds: 3, warmup: 1 }}
"
    );
    let tree = Tree::new(&[("s.yaml", &suite)]);
    let out = tree.path("out");
    let (_, doc) = run_and_load(&tree.path("s.yaml"), &Filter::default(), &out).await;
    let cell = doc
        .cells
        .iter()
        .find(|c| c.model == "http-500")
        .unwrap_or_else(|| panic!("{:?}", doc.cells));
    let failures: Vec<(String, usize)> = cell
        .failures
        .iter()
        .map(|f| (f.message.clone(), f.count))
        .collect();
    assert_eq!(failures, [("HTTP 500: internal failure".to_string(), 4)]);
    let ok = doc.cells.iter().find(|c| c.model == "timetable").unwrap();
    assert!(ok.failures.is_empty(), "{:?}", ok.failures);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let row = "| `http-500/p` | http_status | 4 | HTTP 500: internal failure |";
    assert!(report.contains(row), "no row {row:?}:\n{report}");
}
