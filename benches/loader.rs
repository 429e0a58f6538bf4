//! Loader benchmark: load, validate and plan a generated suite of 10,000
//! cells (10 models × 100 prompts × (1 warmup + 9 rounds)). Prints the
//! median and minimum of 20 runs. `cargo bench --bench loader`.

use std::fmt::Write as _;
use std::time::Instant;

fn suite_text() -> String {
    let mut text = String::from(
        "name: bench\nendpoints:\n  local: { base_url: http://127.0.0.1:8080/v1 }\nmodels:\n",
    );
    for m in 0..10 {
        let _ = writeln!(
            text,
            "  - {{ id: model-{m}, endpoint: local, license: mit }}"
        );
    }
    text.push_str("prompts:\n");
    for p in 0..100 {
        let _ = writeln!(
            text,
            "  - id: prompt-{p}\n    system: You are terse.\n    text: Summarize item {p} of the meeting notes in two sentences."
        );
    }
    text.push_str("defaults: { rounds: 9, warmup: 1, max_tokens: 64 }\n");
    text
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.yaml");
    std::fs::write(&path, suite_text()).expect("write suite");
    let mut times = Vec::new();
    let mut cells = 0;
    for _ in 0..20 {
        let start = Instant::now();
        let suite = dyno::suite::load(&path, &dyno::suite::process_env).expect("valid suite");
        let plan = dyno::plan::plan(&suite, &dyno::plan::Filter::default()).expect("plan");
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        cells = plan.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "load + validate + plan, {cells} cells: median {:.2} ms, min {:.2} ms (20 runs)",
        times[times.len() / 2],
        times[0]
    );
}
