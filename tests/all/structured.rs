//! Structured output against the real engine: llama-server turns a
//! `response_format` JSON schema into a grammar (constrained decoding), so
//! SmolLM2 135M, which answers this prompt in prose when free, meets the
//! schema every time once constrained. The `response_format` axis puts
//! both side by side, with what the constraint costs in decode speed.

use dyno::plan::Filter;
use dyno::results::Status;

use crate::engine::{ENGINE, engine_cache};
use crate::run_and_load;

const SCHEMA: &str = "{ type: object, properties: { name: { type: string }, age: { type: integer } }, required: [name, age], additionalProperties: false }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_25_a_json_schema_is_met_every_time_with_response_format_and_less_without() {
    let _engine = ENGINE.lock().await;
    let cache = engine_cache();
    let dir = tempfile::tempdir().unwrap();
    let suite = format!(
        r#"
name: structured
servers:
  smollm2:
    command: ["{engine}", -m, "{model}", --port, "{{port}}", --threads, "2", --ctx-size, "1024"]
    ready: /health
models:
  - {{ id: smollm2-135m, server: smollm2 }}
prompts:
  - id: person
    text: Describe a person as JSON with the fields name (a string) and age (an integer).
    response_format: {{ type: json_schema, schema: {SCHEMA} }}
    checks:
      - json_schema: {SCHEMA}
defaults: {{ rounds: 3, warmup: 1, max_tokens: 48, timeout_s: 600 }}
matrix: {{ response_format: [none, json_schema] }}
"#,
        engine = cache.join("engine/bin/llama-server").display(),
        model = cache
            .join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
            .display(),
    );
    let file = dir.path().join("structured.yaml");
    std::fs::write(&file, suite).unwrap();
    let out = dir.path().join("out");
    let (summary, doc) = run_and_load(&file, &Filter::default(), &out).await;
    assert_eq!(summary.failed_requests, 0, "{:#?}", doc.models);
    let cell = |axis: &str| {
        doc.cells
            .iter()
            .find(|c| c.axes.as_deref() == Some(axis))
            .unwrap_or_else(|| panic!("no {axis} cell: {:?}", doc.cells))
    };
    let (free, constrained) = (
        cell("response_format=none"),
        cell("response_format=json_schema"),
    );
    let rate = |c: &dyno::results::CellStats| c.json_schema_conformance.unwrap_or(f64::NAN);
    let tps = |c: &dyno::results::CellStats| c.decode_tps.as_ref().map(|d| d.summary.p50);
    let outputs: Vec<(&str, &str)> = doc
        .samples
        .iter()
        .filter(|s| s.status == Status::Ok)
        .map(|s| (s.axes.as_deref().unwrap_or(""), s.text.as_str()))
        .collect();
    println!(
        "schema conformance: {:.0}% without response_format, {:.0}% with; decode tok/s p50 {:?} without, {:?} with",
        rate(free) * 100.0,
        rate(constrained) * 100.0,
        tps(free),
        tps(constrained)
    );
    assert!((rate(constrained) - 1.0).abs() < 1e-9, "{outputs:#?}");
    assert!(rate(free) < rate(constrained), "{outputs:#?}");
    assert!(
        tps(free).is_some() && tps(constrained).is_some(),
        "both decode speeds measured: {:?}",
        doc.cells
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("| smollm2-135m [response_format=json_schema] | person | 3 | 100.0% |"),
        "{report}"
    );
}
