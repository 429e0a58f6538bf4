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
