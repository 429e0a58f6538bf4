//! Workloads on the real engine: llama-server with SmolLM2, as the
//! quickstart runs it. Context depth slows the first token, a shared
//! prefix is served from the prompt cache (`timings.cache_n`), and
//! `cache: false` measures the same work cold. Every relation is a ratio
//! of two figures measured side by side, so it holds on a machine twice
//! as slow.

use dyno::plan::Filter;
use dyno::results::{Sample, Status};

use crate::engine::{ENGINE, engine_cache};
use crate::{Tree, run_and_load};

/// A suite of SmolLM2 on one llama-server slot with a 4,096-token window,
/// then `rest` (its prompts, defaults and matrix).
fn smollm2_suite(rest: &str) -> String {
    let cache = engine_cache();
    let engine = cache.join("engine/bin/llama-server");
    let model = cache.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    format!(
        "\
name: workloads
servers:
  smollm2:
    command: [\"{}\", -m, \"{}\", --port, \"{{port}}\", --threads, \"2\", --ctx-size, \"4096\", --parallel, \"1\"]
    ready: /health
models:
  - id: smollm2-135m
    server: smollm2
    context_window: 4096
{rest}",
        engine.display(),
        model.display()
    )
}

/// What the assertions print of a sample: prompt, TTFT, prompt tokens
/// and cached tokens.
type Seen = (String, Option<f64>, Option<u64>, Option<u64>);

/// The median of `values` (NaN when empty).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    f64::midpoint(values[(n - 1) / 2], values[n / 2])
}

/// The measured TTFTs of the samples whose key contains `part`.
fn ttfts(samples: &[Sample], part: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| !s.warmup && s.key.contains(part))
        .filter_map(|s| s.ttft_ms)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_at_a_depth_of_2048_tokens_is_several_times_ttft_at_none() {
    let _engine = ENGINE.lock().await;
    let suite = smollm2_suite(
        "\
prompts:
  - { id: rag, text: Explain retrieval augmented generation in one sentence. }
defaults: { rounds: 3, warmup: 1, max_tokens: 16, temperature: 0, timeout_s: 900 }
matrix: { context_tokens: [0, 2048] }
",
    );
    let tree = Tree::new(&[("workloads.yaml", &suite)]);
    let out = tree.path("out");
    let (summary, doc) = run_and_load(&tree.path("workloads.yaml"), &Filter::default(), &out).await;
    assert_eq!(summary.failed_requests, 0, "{:#?}", doc.samples);
    let shallow = median(ttfts(&doc.samples, "context_tokens=0]"));
    let deep = median(ttfts(&doc.samples, "context_tokens=2048]"));
    let prompt_tokens: Vec<(String, Option<u64>, Option<u64>)> = doc
        .samples
        .iter()
        .map(|s| (s.key.clone(), s.prompt_tokens, s.cached_tokens))
        .collect();
    let ratio = deep / shallow;
    println!(
        "TTFT p50 at depth 0: {shallow:.1} ms, at depth 2048: {deep:.1} ms, ratio {ratio:.1}; {prompt_tokens:?}"
    );
    // The filler is sized with the server's tokenizer: 2,048 tokens within
    // 5%, besides the prompt's own.
    for s in doc.samples.iter().filter(|s| s.key.contains("2048")) {
        let n = s.prompt_tokens.unwrap_or(0);
        assert!(
            (2048..2048 + 2048 / 20 + 64).contains(&n),
            "{prompt_tokens:?}"
        );
        // Every request's filler is its own: no prompt cache holds it.
        assert!(s.cached_tokens.unwrap_or(0) < 64, "{prompt_tokens:?}");
    }
    assert!(
        ratio > 3.0,
        "TTFT ratio {ratio:.2} ({deep:.1} / {shallow:.1} ms)"
    );
}

/// Eight questions on one document, as a prompt file.
const QUESTIONS: &str = "\
- Who is the document about?
- What does the device store?
- Which section mentions the battery?
- Summarize the document in one sentence.
- What is said about privacy?
- How many sections are there?
- What happens when the device is offline?
- Name one feature the document describes.
";

/// A document of about 1,000 tokens (SmolLM2's tokenizer), the same in
/// every run.
fn document() -> String {
    let features = [
        "notes",
        "battery",
        "privacy",
        "sync",
        "search",
        "offline mode",
    ];
    (1..=30)
        .map(|i| {
            let feature = features[i % features.len()];
            format!(
                "Section {i}. The meeting assistant keeps its {feature} on the device, and the team reviewed how section {i} of the plan handles it during week {}.\n",
                i % 7 + 1
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_prefix_is_served_from_the_cache_and_cold_without_it() {
    let _engine = ENGINE.lock().await;
    let suite = smollm2_suite(
        "\
prompts:
  - { id: hello, text: Say hello. }
  - include: questions.yaml
    prefix: { file: document.txt }
defaults: { rounds: 1, warmup: 0, max_tokens: 8, temperature: 0, timeout_s: 900 }
matrix: { cache: [true, false] }
",
    );
    let document = document();
    let tree = Tree::new(&[
        ("workloads.yaml", &suite),
        ("questions.yaml", QUESTIONS),
        ("document.txt", &document),
    ]);
    let out = tree.path("out");
    let (summary, doc) = run_and_load(&tree.path("workloads.yaml"), &Filter::default(), &out).await;
    assert_eq!(summary.failed_requests, 0, "{:#?}", doc.samples);
    // The group's eight requests, in the order sent, per cache setting.
    let group = |cache: bool| -> Vec<&Sample> {
        doc.samples
            .iter()
            .filter(|s| s.status == Status::Ok && s.prompt.starts_with("questions-"))
            .filter(|s| s.key.ends_with(&format!("cache={cache}]")))
            .collect()
    };
    let seen = |samples: &[&Sample]| -> Vec<Seen> {
        samples
            .iter()
            .map(|s| {
                (
                    s.prompt.clone(),
                    s.ttft_ms,
                    s.prompt_tokens,
                    s.cached_tokens,
                )
            })
            .collect()
    };
    let (warm, cold) = (group(true), group(false));
    println!("cache on: {:?}\ncache off: {:?}", seen(&warm), seen(&cold));
    assert_eq!((warm.len(), cold.len()), (8, 8), "{:?}", seen(&warm));
    // The document is about 1,000 tokens.
    let first = warm[0];
    assert!(first.prompt_tokens.unwrap_or(0) > 900, "{:?}", seen(&warm));
    // Prompts 2–8 find the document in the cache and start faster than
    // the first, which processed it.
    let first_ttft = first.ttft_ms.unwrap_or(0.0);
    for s in &warm[1..] {
        assert!(s.cached_tokens.unwrap_or(0) > 900, "{:?}", seen(&warm));
        assert!(
            s.ttft_ms.unwrap_or(f64::MAX) < first_ttft,
            "{:?}",
            seen(&warm)
        );
    }
    let hit = median(warm[1..].iter().filter_map(|s| s.ttft_ms).collect());
    println!(
        "first {first_ttft:.1} ms, prompts 2-8 p50 {hit:.1} ms: {:.1}x",
        first_ttft / hit
    );
    // Without the cache the same requests process the whole document.
    let miss = median(cold[1..].iter().filter_map(|s| s.ttft_ms).collect());
    println!(
        "prompts 2-8 p50 with the cache {hit:.1} ms, without {miss:.1} ms: {:.1}x",
        miss / hit
    );
    for s in &cold {
        assert!(s.cached_tokens.unwrap_or(0) < 64, "{:?}", seen(&cold));
    }
    assert!(miss > 2.0 * hit, "{:?} / {:?}", seen(&warm), seen(&cold));
}
