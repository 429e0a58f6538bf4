//! Reasoning measured apart, against the scripted fixture (no reasoning
//! model small enough for CI ships as a package, so a fixture streams one):
//! 300 ms of reasoning then 20 answer tokens, in `reasoning_content` and in
//! `<think>` inside `content`. The client's figures are held to the
//! instants the fixture wrote its chunks.

use dyno::results::{ReasoningForm, TokenSource};

use crate::client::ask;
use crate::fixture;

/// The fixture's steps: 0 role-only, 1..=15 reasoning, 16..=35 answer.
const FIRST_REASONING: usize = 1;
const FIRST_ANSWER: usize = 16;

#[tokio::test]
async fn issue_25_300_ms_of_reasoning_then_20_answer_tokens_in_both_forms() {
    let base = fixture::start().await;
    for (model, form, source) in [
        (
            "reasoning-content",
            ReasoningForm::ReasoningContent,
            TokenSource::Usage,
        ),
        (
            "think-tags",
            ReasoningForm::ThinkTags,
            TokenSource::Estimate,
        ),
    ] {
        let m = ask(&base, model, true, 5000).await;
        assert_eq!(m.error, None, "{model}: {m:?}");
        let written = fixture::WRITTEN.lock().unwrap()[model].clone();
        let sent = m.sent_at.expect("sent");
        let at = |step: usize| written[step].duration_since(sent).as_secs_f64() * 1000.0;
        let r = m
            .reasoning
            .finish(
                m.ttft_ms,
                m.ttfo_reasoning_ms,
                m.output_tokens,
                m.token_source,
            )
            .expect("the model reasoned");
        let (ttfr, ttft) = (m.ttfo_reasoning_ms.unwrap(), m.ttft_ms.unwrap());
        let reasoning_ms = r.reasoning_ms.unwrap();
        let truth = at(FIRST_ANSWER) - at(FIRST_REASONING);
        println!(
            "{model}: reasoning {reasoning_ms:.3} ms (written {truth:.3} ms apart, programmed 300), first reasoning {ttfr:.3} ms (written at {:.3}), first answer {ttft:.3} ms (written at {:.3}), reasoning tokens {:?} ({:?}), answer tokens {:?}",
            at(FIRST_REASONING),
            at(FIRST_ANSWER),
            r.tokens,
            r.token_source,
            r.answer_tokens
        );
        assert!(
            (truth - 300.0).abs() < 30.0,
            "the fixture kept its programme: {truth}"
        );
        assert!(
            (reasoning_ms - truth).abs() <= 1.0,
            "{model}: {reasoning_ms} vs {truth}"
        );
        assert!((ttft - at(FIRST_ANSWER)).abs() <= 1.0, "{model}: {ttft}");
        assert!((ttfr - at(FIRST_REASONING)).abs() <= 1.0, "{model}: {ttfr}");
        assert_eq!(r.form, form, "{model}");
        assert_eq!(
            (r.tokens, r.token_source),
            (Some(15), Some(source)),
            "{r:?}"
        );
        assert_eq!(r.answer_tokens, Some(20), "{r:?}");
        assert_eq!(m.output_tokens, Some(35), "{m:?}");
        assert!(
            m.text.starts_with("Answer a1 a2"),
            "the answer alone: {:?}",
            m.text
        );
        assert!(
            !m.text.contains("think") && !m.text.contains(" r1"),
            "{:?}",
            m.text
        );
        assert!(r.text.contains(" r1 r2"), "{:?}", r.text);
        // The answer's decode speed counts its own 20 tokens over TTFT → E2E
        // (19 gaps of 10 ms: 100 tok/s), not the reasoning's 35.
        let (_, tps) =
            dyno::results::rates(m.ttft_ms, m.e2e_ms, r.answer_tokens).expect("a decode time");
        let end = at(written.len() - 1);
        let true_tps = 19.0 / ((end - at(FIRST_ANSWER)) / 1000.0);
        println!("{model}: answer decode {tps:.2} tok/s (written at {true_tps:.2})");
        assert!(
            (tps / true_tps - 1.0).abs() < 0.01,
            "{model}: {tps} vs {true_tps} tok/s"
        );
    }
}

/// A run over both fixture reasoners with a `reasoning_effort` axis: the
/// effort goes out in each endpoint's own field, checks read the answer
/// (or, asked, the reasoning), the summary rows and the report carry the
/// reasoning figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_25_a_reasoning_effort_axis_checks_and_the_report() {
    let base = fixture::start().await;
    let suite = format!(
        r#"
name: thinking
endpoints:
  hosted: {{ base_url: "{base}" }}
  local: {{ base_url: "{base}", reasoning_control: enable_thinking }}
models:
  - {{ id: reasoning-content-run, endpoint: hosted }}
  - {{ id: think-tags-run, endpoint: local }}
prompts:
  - id: q
    text: Think, then answer.
    checks:
      - starts_with: Answer
      - not_contains: " r1"
      - {{ contains: " r1 r2", of: reasoning }}
defaults: {{ rounds: 2, warmup: 0 }}
matrix: {{ reasoning_effort: [none, high] }}
"#
    );
    let tree = crate::Tree::new(&[("s.yaml", &suite)]);
    let out = tree.path("out");
    dyno::run::run_suite(
        &tree.path("s.yaml"),
        &dyno::plan::Filter::default(),
        Some(&out),
        true,
    )
    .await
    .unwrap();
    let doc = crate::load_results(&out);
    assert_eq!(doc.samples.len(), 8, "2 models × 2 efforts × 2 rounds");
    for s in &doc.samples {
        let r = s.reasoning.as_ref().unwrap_or_else(|| panic!("{s:?}"));
        assert_eq!((r.tokens, r.answer_tokens), (Some(15), Some(20)), "{s:?}");
        let checks: Vec<(&str, bool)> = s
            .checks
            .iter()
            .map(|c| (c.check.as_str(), c.passed))
            .collect();
        assert_eq!(checks.len(), 3, "{checks:?}");
        assert!(checks.iter().all(|(_, passed)| *passed), "{checks:?}");
        assert!(checks[2].0.starts_with("reasoning "), "{checks:?}");
        // Decode speed counts the 20 answer tokens over 19 gaps of about
        // 10 ms (≈ 100 tok/s; a busy machine bunches a few gaps). Counting
        // all 35 output tokens would give ≈ 180 tok/s, above the bound.
        let tps = s.decode_tps.unwrap();
        assert!((50.0..=140.0).contains(&tps), "{tps}: {s:?}");
    }
    let labels: Vec<&str> = doc.summaries.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(doc.summaries.len(), 4, "{labels:?}");
    for m in &doc.summaries {
        let r = m.reasoning.as_ref().unwrap_or_else(|| panic!("{m:?}"));
        let think = r.reasoning_ms.as_ref().unwrap().summary.p50;
        assert!((250.0..400.0).contains(&think), "{}: {think}", m.label);
        assert_eq!(r.reasoning_tokens.as_ref().unwrap().summary.p50, 15.0);
    }
    assert!(
        doc.cells.iter().all(|c| c.reasoning.is_some()),
        "{:?}",
        doc.cells
    );
    let sent = |model: &str, field: &str| -> Vec<serde_json::Value> {
        fixture::BODIES.lock().unwrap()[model]
            .iter()
            .map(|b| b[field].clone())
            .collect()
    };
    let efforts = sent("reasoning-content-run", "reasoning_effort");
    assert_eq!(efforts, ["none", "none", "high", "high"], "{efforts:?}");
    assert!(
        sent("reasoning-content-run", "chat_template_kwargs")
            .iter()
            .all(serde_json::Value::is_null)
    );
    let kwargs = sent("think-tags-run", "chat_template_kwargs");
    let on: Vec<_> = kwargs
        .iter()
        .map(|k| k["enable_thinking"].clone())
        .collect();
    assert_eq!(on, [false, false, true, true], "{kwargs:?}");
    assert!(
        sent("think-tags-run", "reasoning_effort")
            .iter()
            .all(serde_json::Value::is_null)
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    println!("{report}");
    let section = report
        .split("## Reasoning")
        .nth(1)
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        section.contains("think-tags-run [reasoning_effort=high]"),
        "{section}"
    );
    assert!(
        report.contains("| Reasoning | Reasoning tokens p50"),
        "{report}"
    );
}
