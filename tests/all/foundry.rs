//! The Foundry Local client against the recorded-behaviour fixture, both
//! service generations, through the public API only.

use std::time::Duration;

use dyno::provider::foundry::{
    Device, Discovered, DiscoverySource, Foundry, FoundryError, Generation, SystemCli, discover,
    resolve, same_variant,
};
use serde_json::json;

use dyno::results::TokenSource;

use crate::foundry_fixture::{self as fixture, Fixture};

fn no_env(_: &str) -> Option<String> {
    None
}

/// A `foundry` CLI that is not installed: discovery must not need it.
fn no_cli() -> SystemCli {
    SystemCli {
        program: "/nonexistent/foundry-for-dyno-tests".into(),
        timeout: Duration::from_secs(5),
    }
}

const QWEN_CPU: &str = "qwen2.5-0.5b-instruct-generic-cpu:4";
const PHI_CPU: &str = "Phi-4-mini-instruct-generic-cpu:5";

async fn connected(generation: Generation, cached: &[&str]) -> (Fixture, Foundry) {
    let fx = fixture::start(generation, cached).await;
    let discovered = Discovered {
        base_url: fx.base_url.clone(),
        source: DiscoverySource::Suite,
        pid: None,
    };
    let foundry = Foundry::connect(&discovered).await.unwrap();
    assert_eq!(foundry.generation(), generation);
    (fx, foundry)
}

/// Streams a chat request the way dyno's client does; (status, body).
async fn chat(foundry: &Foundry, model: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", foundry.chat_base_url()))
        .json(&json!({
            "model": model,
            "messages": [{ "role": "user", "content": "hi" }],
            "max_tokens": 8,
            "stream": true,
            "stream_options": { "include_usage": true }
        }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn lifecycle(generation: Generation) {
    let (_fx, foundry) = connected(generation, &[QWEN_CPU]).await;
    let catalog = foundry.catalog().await.unwrap();
    assert_eq!(catalog.len(), 5);
    let entry = resolve(&catalog, "qwen2.5-0.5b", Some(&Device::Cpu)).unwrap();
    assert_eq!(entry.id, QWEN_CPU);
    assert_eq!(entry.execution_provider, "CPUExecutionProvider");

    let (status, body) = chat(&foundry, &entry.id).await;
    assert_eq!(status, 400, "unloaded model must be refused: {body}");
    assert!(body.contains("not loaded"), "{body}");

    assert!(!foundry.is_loaded(&entry.id).await.unwrap());
    let took = foundry.load(&entry.id).await.unwrap();
    assert!(took >= fixture::LOAD_DELAY, "{took:?}");
    assert!(foundry.is_loaded(&entry.id).await.unwrap());

    let (status, body) = chat(&foundry, &entry.id).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("data: {"), "{body}");
    assert!(
        body.contains("Foundry") && body.trim_end().ends_with("data: [DONE]"),
        "{body}"
    );

    let (status, body) = chat(&foundry, "qwen2.5-0.5b").await;
    assert_eq!(
        status, 404,
        "an alias must be refused even when a variant is loaded: {body}"
    );

    foundry.unload(&entry.id).await.unwrap();
    assert!(foundry.loaded().await.unwrap().is_empty());
    let (status, _) = chat(&foundry, &entry.id).await;
    assert_eq!(status, 400);
    // Unloading twice is fine.
    foundry.unload(&entry.id).await.unwrap();
}

#[tokio::test]
async fn service_generation_lifecycle() {
    lifecycle(Generation::Service).await;
}

#[tokio::test]
async fn core_generation_lifecycle() {
    lifecycle(Generation::Core).await;
}

#[tokio::test]
async fn not_cached_error_names_the_download_command() {
    for generation in [Generation::Service, Generation::Core] {
        let (_fx, foundry) = connected(generation, &[]).await;
        let err = foundry.load(PHI_CPU).await.unwrap_err();
        assert!(
            matches!(err, FoundryError::NotCached { .. }),
            "{generation:?}: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "model `{PHI_CPU}` is not cached; run `foundry model download {PHI_CPU}` or set `download: true`"
            )
        );
        let err = foundry
            .load("no-such-model-generic-cpu:1")
            .await
            .unwrap_err();
        assert!(
            matches!(err, FoundryError::UnknownModel { .. }),
            "{generation:?}: {err}"
        );
    }
}

#[tokio::test]
async fn download_reports_increasing_progress_to_100_then_loads() {
    let (_fx, foundry) = connected(Generation::Service, &[]).await;
    assert!(foundry.cached().await.unwrap().is_empty());
    let mut seen = Vec::new();
    foundry
        .download(PHI_CPU, &mut |p| seen.push(p))
        .await
        .unwrap();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "not increasing: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&100.0));
    assert!(
        foundry
            .cached()
            .await
            .unwrap()
            .iter()
            .any(|c| same_variant(c, PHI_CPU))
    );
    foundry.load(PHI_CPU).await.unwrap();

    // Already cached: one 100% report, no download.
    let mut again = Vec::new();
    foundry
        .download(PHI_CPU, &mut |p| again.push(p))
        .await
        .unwrap();
    assert_eq!(again, vec![100.0]);

    let err = foundry
        .download("nope-generic-cpu:1", &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, FoundryError::UnknownModel { .. }), "{err}");
}

#[tokio::test]
async fn core_generation_cannot_download_or_list_cache() {
    let (_fx, foundry) = connected(Generation::Core, &[]).await;
    let err = foundry.download(PHI_CPU, &mut |_| {}).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("`foundry model download {PHI_CPU}`")),
        "{err}"
    );
    assert!(matches!(
        foundry.cached().await,
        Err(FoundryError::Unsupported { .. })
    ));
    assert_eq!(foundry.token_count(PHI_CPU, "hello there").await, None);
}

#[tokio::test]
async fn token_count_on_the_service_generation() {
    let (_fx, foundry) = connected(Generation::Service, &[QWEN_CPU]).await;
    assert_eq!(
        foundry.token_count(QWEN_CPU, "hello there world").await,
        Some(7)
    );
}

#[tokio::test]
async fn v1_suffix_is_accepted_everywhere() {
    let fx = fixture::start(Generation::Core, &[QWEN_CPU]).await;
    let suite_url = format!("{}/v1/", fx.base_url);
    let discovered = discover(Some(&suite_url), &no_env, &no_cli())
        .await
        .unwrap();
    assert_eq!(discovered.base_url, fx.base_url);
    // Even a hand-built Discovered with /v1 is normalized by connect.
    let raw = Discovered {
        base_url: suite_url,
        source: DiscoverySource::Env,
        pid: None,
    };
    let foundry = Foundry::connect(&raw).await.unwrap();
    assert_eq!(foundry.base_url(), fx.base_url);
    assert_eq!(foundry.chat_base_url(), format!("{}/v1", fx.base_url));
    foundry.load(QWEN_CPU).await.unwrap();
    let (status, body) = chat(&foundry, QWEN_CPU).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"usage\""),
        "core service sends usage when asked: {body}"
    );
}

/// A suite on a Foundry endpoint, run end to end on both generations: the
/// alias resolves to each device's variant, each variant is loaded (timed)
/// before its cells and unloaded after, and results carry the variant.
async fn suite_run(generation: Generation) {
    let gpu = "qwen2.5-0.5b-instruct-cuda-gpu:4";
    let fx = fixture::start(generation, &[QWEN_CPU, gpu]).await;
    let suite = format!(
        "name: fl\nendpoints:\n  foundry: {{ kind: foundry, base_url: \"{}/v1\" }}\nmodels:\n  - {{ id: qwen2.5-0.5b, endpoint: foundry, variants: [cpu, gpu] }}\nprompts:\n  - {{ id: p, text: hi }}\ndefaults: {{ rounds: 2, warmup: 1, max_tokens: 16 }}\n",
        fx.base_url
    );
    let tree = crate::Tree::new(&[("fl.yaml", &suite)]);
    let out = tree.path("out");
    let (summary, doc) =
        crate::run_and_load(&tree.path("fl.yaml"), &dyno::plan::Filter::default(), &out).await;
    assert_eq!(summary.failed_requests, 0, "{:#?}", doc.models);
    assert_eq!(doc.models.len(), 2);
    for (run, (id, device)) in doc.models.iter().zip([(QWEN_CPU, "cpu"), (gpu, "gpu")]) {
        let variant = run.foundry.as_ref().unwrap();
        assert_eq!(
            run.variant.as_deref(),
            Some(format!("device={device}").as_str())
        );
        assert_eq!(
            (variant.variant_id.as_str(), variant.device.as_str()),
            (id, device)
        );
        assert_eq!(run.api_model, id, "the exact variant id is sent as `model`");
        assert!(run.load_ms.unwrap() >= fixture::LOAD_DELAY.as_secs_f64() * 1000.0);
        assert_eq!(
            run.license.as_deref(),
            Some("apache-2.0"),
            "from the catalog"
        );
        assert!(run.footprint.as_ref().unwrap().mb > 0.0);
        // The service's process (here the test's own, which serves the
        // fixture), found by its listening port, is sampled.
        #[cfg(target_os = "linux")]
        assert!(
            run.launches.iter().all(|l| l.rss_peak_mb.is_some()),
            "{:?}",
            run.launches
        );
    }
    assert!(
        doc.samples
            .iter()
            .all(|s| s.status == dyno::results::Status::Ok)
    );
    // The first generation streams no usage: its token-count route answers
    // (the fixture counts words + 4), before any counting of stream events.
    let expected = match generation {
        Generation::Service => (TokenSource::Tokenize, 8),
        Generation::Core => (TokenSource::Usage, 4),
    };
    for s in &doc.samples {
        assert_eq!(
            (s.token_source.unwrap(), s.output_tokens.unwrap()),
            expected
        );
    }
    // The report names the variant each device resolved to.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for (id, device) in [(QWEN_CPU, "cpu"), (gpu, "gpu")] {
        let row = format!("| qwen2.5-0.5b [device={device}] | `{id}` | {device} |");
        assert!(report.contains(&row), "no row {row:?}:\n{report}");
    }
    // Unloaded after its cells: nothing stays loaded.
    let foundry = Foundry::with_generation(&fx.base_url, generation, reqwest::Client::new());
    assert!(foundry.loaded().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_runs_every_device_variant_on_the_service_generation() {
    suite_run(Generation::Service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_runs_every_device_variant_on_the_core_generation() {
    suite_run(Generation::Core).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_is_not_cached_fails_with_the_download_command_and_the_run_goes_on() {
    let fx = fixture::start(Generation::Service, &[]).await;
    let suite = format!(
        "name: fl\nendpoints:\n  foundry: {{ kind: foundry, base_url: \"{}\" }}\nmodels:\n  - {{ id: qwen2.5-0.5b, endpoint: foundry, variants: [cpu] }}\nprompts:\n  - {{ id: p, text: hi }}\ndefaults: {{ rounds: 1, warmup: 0 }}\n",
        fx.base_url
    );
    let tree = crate::Tree::new(&[("fl.yaml", &suite)]);
    let out = tree.path("out");
    let (_, doc) =
        crate::run_and_load(&tree.path("fl.yaml"), &dyno::plan::Filter::default(), &out).await;
    let failure = doc.models[0].failure.as_deref().unwrap();
    assert!(
        failure.contains(&format!("foundry model download {QWEN_CPU}")),
        "{failure}"
    );
    assert_eq!(
        doc.samples[0].error_kind,
        Some(dyno::results::ErrorKind::Skipped)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foundry_reached_as_a_plain_openai_endpoint_hints_kind_foundry() {
    let fx = fixture::start(Generation::Service, &[QWEN_CPU]).await;
    let suite = format!(
        "name: plain\nendpoints:\n  fl: {{ base_url: \"{}/v1\" }}\nmodels:\n  - {{ id: qwen, model: \"{QWEN_CPU}\", endpoint: fl }}\nprompts:\n  - {{ id: p, text: hi }}\ndefaults: {{ rounds: 1, warmup: 0 }}\n",
        fx.base_url
    );
    let tree = crate::Tree::new(&[("plain.yaml", &suite)]);
    let (_, doc) = crate::run_and_load(
        &tree.path("plain.yaml"),
        &dyno::plan::Filter::default(),
        &tree.path("out"),
    )
    .await;
    let message = doc.samples[0].error.as_deref().unwrap_or("");
    assert!(
        message.starts_with("HTTP 400") && message.contains("use `kind: foundry`"),
        "{message}"
    );
}
