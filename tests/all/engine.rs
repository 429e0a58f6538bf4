//! End to end against the real engine: llama-server with real GGUF models,
//! installed by `scripts/setup-engine.sh` (which `make test` and `.ci/run`
//! call first). These tests fail, never skip, when the engine is missing.

use dyno::plan::Filter;
use dyno::record;
use dyno::results::{Results, Status, TokenSource};

use crate::repo_root;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_measures_both_real_models() {
    let out = tempfile::tempdir().unwrap();
    let suite = repo_root().join("suites/quickstart.yaml");
    let summary = record::run_suite(&suite, &Filter::default(), Some(out.path()), true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(out.path().join("results.json")).unwrap();
    let doc: Results = serde_json::from_str(&text).unwrap();
    assert_eq!(summary.failed_requests, 0, "{:#?}", doc.models);
    assert_eq!(doc.samples.len(), 2 * 4 * 4);
    for model in &doc.models {
        assert_eq!(model.status, Status::Ok, "{model:?}");
        assert!(model.load_ms.unwrap() > 0.0);
        let version = model.server_version.as_deref().unwrap_or("");
        assert!(
            !version.is_empty(),
            "llama-server reports its build: {model:?}"
        );
    }
    for s in doc.samples.iter().filter(|s| !s.warmup) {
        assert!(!s.text.trim().is_empty(), "{}: empty output", s.key);
        assert_eq!(s.token_source, Some(TokenSource::Usage), "{}", s.key);
        assert!(s.output_tokens.unwrap() > 1);
        assert!(s.decode_tps.unwrap() > 0.0);
        assert!(s.ttft_ms.unwrap() < s.e2e_ms.unwrap());
        assert!(s.server_timings.is_some(), "llama-server sends timings");
    }
    assert_eq!(doc.cells.len(), 8);
    assert!(out.path().join("report.md").is_file());
    assert!(out.path().join("results.csv").is_file());
    assert!(!out.path().join("journal.jsonl").exists());

    // Client decode speed against the server's own, per model (medians).
    for model in ["smollm2-135m", "gemma3-270m"] {
        let mut ratios: Vec<f64> = doc
            .samples
            .iter()
            .filter(|s| !s.warmup && s.model == model)
            .filter_map(|s| {
                let server = s.server_timings.as_ref()?.get("predicted_per_second")?;
                Some(s.decode_tps? / server)
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        eprintln!("{model}: client/server decode tok/s, median ratio {median:.3}");
        assert!((0.5..1.5).contains(&median), "{model}: ratio {median}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_start_fails_its_model_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = std::fs::read_to_string(repo_root().join("suites/quickstart.yaml")).unwrap();
    // The first server points at a model file that does not exist.
    let broken = quickstart.replacen("SmolLM2-135M-Instruct.Q4_1.gguf", "missing.gguf", 1);
    let suite = dir.path().join("broken.yaml");
    std::fs::write(&suite, broken).unwrap();
    let filter = Filter {
        models: vec![],
        prompts: vec!["rag".into()],
    };
    let summary = record::run_suite(&suite, &filter, Some(&dir.path().join("out")), true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let doc: Results = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/results.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary.failed_requests, 4);
    let smollm = &doc.models[0];
    assert_eq!(smollm.status, Status::Error);
    let failure = smollm.failure.as_deref().unwrap();
    assert!(failure.contains("smollm2"), "{failure}");
    assert!(
        failure.contains("missing.gguf"),
        "the log tail explains why: {failure}"
    );
    assert_eq!(doc.models[1].status, Status::Ok);
    assert!(
        doc.samples
            .iter()
            .filter(|s| s.model == "gemma3-270m")
            .all(|s| s.status == Status::Ok)
    );
}
