//! End to end against the real engine: llama-server with real GGUF models,
//! installed by `scripts/setup-engine.sh` (which `make test` and `.ci/run`
//! call first). These tests fail, never skip, when the engine is missing.

use dyno::plan::Filter;
use dyno::results::{Status, TokenSource};

use crate::{repo_root, run_and_load};

/// One real-engine test at a time: each starts llama-servers that use both
/// cores, and running them side by side (or beside another test that keeps
/// both cores busy, such as the loader fuzz run) would measure contention
/// and push requests past their timeouts.
pub(crate) static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `suites/quickstart.yaml` with each `(from, to)` replacement applied,
/// written into `dir` as `name`.
pub(crate) fn quickstart_variant(
    dir: &std::path::Path,
    name: &str,
    edits: &[(&str, &str)],
) -> std::path::PathBuf {
    suite_variant("quickstart.yaml", dir, name, edits)
}

/// `suites/{suite}` with each `(from, to)` replacement applied, written
/// into `dir` as `name`.
pub(crate) fn suite_variant(
    suite: &str,
    dir: &std::path::Path,
    name: &str,
    edits: &[(&str, &str)],
) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_root().join("suites").join(suite)).unwrap();
    let text = edits.iter().fold(text, |t, (from, to)| {
        assert!(t.contains(from), "{suite} has no `{from}`");
        t.replacen(from, to, usize::MAX)
    });
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Where `scripts/setup-engine.sh` installed the engine.
pub(crate) fn engine_cache() -> std::path::PathBuf {
    std::env::var_os("DYNO_CACHE").map_or_else(
        || std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/dyno"),
        std::path::PathBuf::from,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_measures_both_real_models() {
    let _engine = ENGINE.lock().await;
    let out = tempfile::tempdir().unwrap();
    let suite = repo_root().join("suites/quickstart.yaml");
    let (summary, doc) = run_and_load(&suite, &Filter::default(), out.path()).await;
    // The file as written, not a re-serialization, meets the schema.
    let text = std::fs::read_to_string(out.path().join("results.json")).unwrap();
    crate::report::assert_matches_results_schema(&serde_json::from_str(&text).unwrap());
    assert_eq!(summary.failed_requests, 0, "{:#?}", doc.models);
    // 2 models × 2 thread variants × 4 prompts × (1 warmup + 5 rounds).
    assert_eq!(doc.samples.len(), 2 * 2 * 4 * 6);
    assert_eq!(doc.models.len(), 4, "one run per model and variant");
    for model in &doc.models {
        assert_eq!(model.status, Status::Ok, "{model:?}");
        assert!(model.load_ms.unwrap() > 0.0);
        // `b11434-…`: the engine was built with its real build number.
        let version = model.server_version.as_deref().unwrap_or("");
        let build: u32 = version
            .strip_prefix('b')
            .and_then(|v| v.split('-').next()?.parse().ok())
            .unwrap_or(0);
        assert!(build > 0, "llama-server reports a build number: {model:?}");
        // Every launch records the engine it ran: its build, the CPU
        // features its build uses, and how dyno's setup built it.
        assert!(!model.launches.is_empty(), "{model:?}");
        for launch in &model.launches {
            let engine = launch
                .engine
                .as_ref()
                .unwrap_or_else(|| panic!("{launch:?}"));
            assert_eq!(
                engine.build.as_deref(),
                version.split('-').next(),
                "{engine:?}"
            );
            assert!(
                engine
                    .features
                    .iter()
                    .any(|f| f.starts_with("SSE") || f == "NEON"),
                "{engine:?}"
            );
            let setup = engine
                .setup
                .as_ref()
                .unwrap_or_else(|| panic!("{engine:?}"));
            assert!(
                ["native", "no-amx", "portable"].contains(&setup.kind.as_str()),
                "{setup:?}"
            );
            assert_eq!(setup.smoke_test, "passed", "{setup:?}");
        }
    }
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        report.contains("| Model | Engine build | Commit | Built by dyno's setup | CPU features |"),
        "{report}"
    );
    // Each model speaks in its own chat template: no template token in
    // any output (the suite-wide `not_contains_any` check passes) ...
    for s in doc.samples.iter().filter(|s| s.status == Status::Ok) {
        let leaks: Vec<_> = s
            .checks
            .iter()
            .filter(|c| c.check.starts_with("not_contains_any") && !c.passed)
            .collect();
        assert!(leaks.is_empty(), "{}: {leaks:?}\n{}", s.key, s.text);
    }
    // ... and the judge, asked for `{"score": N}`, always gives one.
    for s in doc.samples.iter().filter(|s| !s.warmup) {
        let judge = s.judge.as_ref();
        assert!(
            judge.is_some_and(|j| j.score.is_some()),
            "{}: judgement {judge:?}",
            s.key
        );
    }
    let cache = engine_cache();
    for (model, file) in [
        ("smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        ("gemma3-270m", "gemma-3-270m-Q4_K_M.gguf"),
    ] {
        let bytes = std::fs::metadata(cache.join("models").join(file))
            .unwrap()
            .len();
        for variant in ["threads=1", "threads=2"] {
            let s = doc
                .summaries
                .iter()
                .find(|s| s.model == model && s.variant.as_deref() == Some(variant))
                .unwrap_or_else(|| panic!("no summary for {model} {variant}"));
            assert_eq!(
                s.model_file_bytes,
                Some(bytes),
                "{model}: footprint is the file size"
            );
            assert_eq!(s.model_file_mb, Some(bytes as f64 / 1e6));
            let rss_peak = s.rss_peak_mb.unwrap();
            let idle = s.rss_idle_mb.unwrap();
            eprintln!(
                "{model} [{variant}]: load {:.0} ms, rss idle {idle:.1} MB, peak {rss_peak:.1} MB, \
                 file {:.1} MB, cold TTFT {:.1} ms, warm TTFT p50 {:.1} ms, decode p50 {:.1} tok/s, \
                 cpu {:.2} ms/token",
                s.load_ms.unwrap(),
                bytes as f64 / 1e6,
                s.cold_ttft_ms.as_ref().unwrap().summary.p50,
                s.ttft_ms.as_ref().unwrap().summary.p50,
                s.decode_tps.as_ref().unwrap().summary.p50,
                s.cpu_ms_per_token.unwrap(),
            );
            assert!(
                rss_peak > bytes as f64 / 1e6,
                "{model}: the server holds the model in memory"
            );
            assert!(rss_peak >= idle);
            assert!(s.cpu_ms_per_token.unwrap() > 0.0);
            assert_eq!(s.launches, 1);
            assert!(s.gpu_memory_mb.is_none() || std::path::Path::new("/dev/nvidia0").exists());
        }
        // Two threads decode faster than one: two launches, measured apart.
        let tps = |variant: &str| {
            doc.summaries
                .iter()
                .find(|s| s.model == model && s.variant.as_deref() == Some(variant))
                .and_then(|s| s.decode_tps.as_ref())
                .map(|d| d.summary.p50)
                .unwrap()
        };
        assert_ne!(tps("threads=1"), tps("threads=2"), "{model}");
    }
    for s in doc.samples.iter().filter(|s| s.cold) {
        assert_eq!(
            s.round,
            dyno::plan::Round::Warmup(1),
            "the cold request is the first one"
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
    assert_eq!(doc.cells.len(), 16);
    assert_eq!(doc.summaries.len(), 4, "one row per model and variant");
    for chart in ["latency.svg", "decode-tps.svg", "ttft-vs-tps.svg"] {
        assert!(out.path().join("charts").join(chart).is_file());
    }
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
    let _engine = ENGINE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // The first server points at a model file that does not exist.
    let suite = quickstart_variant(
        dir.path(),
        "broken.yaml",
        &[
            ("SmolLM2-135M-Instruct.Q4_1.gguf", "missing.gguf"),
            ("rounds: 5", "rounds: 3"),
        ],
    );
    let filter = Filter {
        models: vec![],
        prompts: vec!["rag".into()],
        ..Filter::default()
    };
    let (summary, doc) = run_and_load(&suite, &filter, &dir.path().join("out")).await;
    // Two thread variants of the broken server, one prompt, 1 warmup + 3 rounds.
    assert_eq!(summary.failed_requests, 8);
    let smollm = &doc.models[0];
    assert_eq!(smollm.status, Status::Error);
    let failure = smollm.failure.as_deref().unwrap();
    assert!(failure.contains("smollm2"), "{failure}");
    assert!(
        failure.contains("missing.gguf"),
        "the log tail explains why: {failure}"
    );
    assert!(
        doc.models
            .iter()
            .filter(|m| m.id == "gemma3-270m")
            .all(|m| m.status == Status::Ok)
    );
    assert!(
        doc.samples
            .iter()
            .filter(|s| s.model == "gemma3-270m")
            .all(|s| s.status == Status::Ok)
    );
}

// The test finds the server in `/proc` and kills it with kill(2).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_is_server_exited_and_the_next_model_runs() {
    let _engine = ENGINE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // One variant each, long answers so a request is in flight when the kill lands.
    let suite = quickstart_variant(
        dir.path(),
        "crash.yaml",
        &[
            (
                "variants: { threads: [1, 2] }",
                "variants: { threads: [2] }",
            ),
            ("max_tokens: 96", "max_tokens: 200"),
            ("rounds: 5", "rounds: 3"),
            // One model after the other, so SmolLM2's request is the one in
            // flight when the kill lands.
            ("order: interleaved", "order: model_major"),
        ],
    );
    let out = dir.path().join("out");
    let journal = out.join("journal.jsonl");
    let killer = tokio::spawn(async move {
        // After the first sample is recorded, kill SmolLM2's server.
        loop {
            let samples = dyno::run::journal::read(&journal).map_or(0, |c| c.samples.len());
            if samples >= 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let victim = dyno::measure::resources::tree::tree_pids(std::process::id())
            .into_iter()
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("SmolLM2-135M"))
            })
            .expect("SmolLM2's server runs");
        // SAFETY: plain kill(2) on a pid this test's process started.
        unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
    });
    let filter = Filter {
        models: vec![],
        prompts: vec!["size-latency".into()],
        ..Filter::default()
    };
    let (summary, doc) = run_and_load(&suite, &filter, &out).await;
    killer.await.unwrap();
    assert_eq!(summary.requests, 8, "every planned request is recorded");
    let smollm: Vec<_> = doc
        .samples
        .iter()
        .filter(|s| s.model == "smollm2-135m")
        .collect();
    let exited = smollm
        .iter()
        .find(|s| s.error_kind == Some(dyno::results::ErrorKind::ServerExited))
        .expect("the request the kill interrupted");
    let message = exited.error.as_deref().unwrap();
    assert!(message.contains("killed by signal 9"), "{message}");
    assert!(message.contains("last log lines"), "{message}");
    let after: Vec<_> = smollm.iter().filter(|s| s.index > exited.index).collect();
    assert!(
        after
            .iter()
            .all(|s| s.error_kind == Some(dyno::results::ErrorKind::Skipped)),
        "{after:?}"
    );
    assert_eq!(doc.models[0].status, Status::Error);
    assert_eq!(doc.models[1].status, Status::Ok, "the next model runs");
    let gemma_failed: Vec<_> = doc
        .samples
        .iter()
        .filter(|s| s.model == "gemma3-270m" && s.status != Status::Ok)
        .map(|s| (&s.key, s.round, &s.error))
        .collect();
    assert!(gemma_failed.is_empty(), "{gemma_failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_restarts_the_server_before_every_round() {
    let _engine = ENGINE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let suite = quickstart_variant(
        dir.path(),
        "cold.yaml",
        &[
            (
                "variants: { threads: [1, 2] }",
                "variants: { threads: [2] }\n    cold_start: true",
            ),
            ("rounds: 5", "rounds: 2"),
        ],
    );
    let filter = Filter {
        models: vec!["smollm2-135m".into()],
        prompts: vec!["rag".into(), "privacy".into()],
        ..Filter::default()
    };
    let out = dir.path().join("out");
    let (summary, doc) = run_and_load(&suite, &filter, &out).await;
    assert_eq!(summary.failed_requests, 0);
    // 1 warmup + 2 measured rounds: three launches, each first request cold.
    let run = &doc.models[0];
    assert_eq!(run.launches.len(), 3);
    assert!(
        run.launches
            .iter()
            .all(|l| l.load_ms > 0.0 && l.rss_peak_mb.unwrap() > 0.0)
    );
    let cold: Vec<_> = doc.samples.iter().filter(|s| s.cold).collect();
    assert_eq!(cold.len(), 3);
    assert!(
        cold.iter().all(|s| s.prompt == "rag"),
        "the first prompt of each round"
    );
    let summary = &doc.summaries[0];
    assert_eq!(summary.launches, 3);
    assert_eq!(summary.cold_ttft_ms.as_ref().unwrap().summary.n, 3);
    // Warm statistics leave the cold requests out: only `privacy` remains.
    assert_eq!(summary.ttft_ms.as_ref().unwrap().summary.n, 2);
}

/// `suites/load.yaml`: SmolLM2 on llama-server with four slots (continuous
/// batching) at 1, 2, 4 and 8 streams, 16 requests per point. Four streams
/// share each decoding step and overlap one another's prompt processing,
/// so together they produce more tokens per second than one stream alone
/// however fast the machine is (on two CPU cores, where decoding is
/// compute-bound, about 1.2–1.4 times as many).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_suite_four_streams_on_four_slots_outrun_one() {
    let _engine = ENGINE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_variant(
        "load.yaml",
        dir.path(),
        "load.yaml",
        &[("requests: 24", "requests: 16")],
    );
    let (summary, doc) = run_and_load(&suite, &Filter::default(), &dir.path().join("out")).await;
    let failed: Vec<_> = doc
        .samples
        .iter()
        .filter(|s| s.status != Status::Ok)
        .map(|s| (&s.key, &s.error))
        .collect();
    assert_eq!(summary.failed_requests, 0, "{failed:?}");
    let points: Vec<_> = doc
        .load
        .iter()
        .map(|p| (p.concurrency, p.counted, p.output_tps, p.request_throughput))
        .collect();
    let output_tps = |streams: u32| {
        doc.load
            .iter()
            .find(|p| p.concurrency == Some(streams))
            .map_or_else(
                || panic!("no point at {streams} streams: {points:?}"),
                |p| p.output_tps,
            )
    };
    let (one, four) = (output_tps(1), output_tps(4));
    eprintln!(
        "load.yaml: output tokens/s at 1 stream {one:.1}, at 4 streams {four:.1}; points {points:?}"
    );
    assert_eq!(doc.load.len(), 4, "{points:?}");
    assert!(
        four > one,
        "4 streams on 4 slots: {four:.1} output tokens/s, not more than 1 stream's {one:.1}; points (streams, counted, output tok/s, req/s): {points:?}"
    );
}
