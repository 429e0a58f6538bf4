//! The example adapter (`examples/adapter/`) benchmarked end to end through
//! a suite: a real child process speaking the JSON-lines protocol.

use dyno::plan::Filter;
use dyno::results::{Status, TokenSource};

use crate::repo_root;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_adapter_is_measured_like_any_model() {
    let out = tempfile::tempdir().unwrap();
    let suite = repo_root().join("examples/adapter/suite.yaml");
    let (summary, doc) = crate::run_and_load(&suite, &Filter::default(), out.path()).await;
    assert_eq!(summary.failed_requests, 0, "{:#?}", doc.models);
    assert_eq!(doc.samples.len(), 2 * 5);
    let run = &doc.models[0];
    assert_eq!(run.status, Status::Ok);
    assert!(run.load_ms.unwrap() > 0.0);
    assert!(
        run.launches[0].rss_peak_mb.unwrap() > 1.0,
        "python's memory is sampled"
    );
    for s in &doc.samples {
        let tokens = s.output_tokens.unwrap();
        assert_eq!(s.token_source, Some(TokenSource::Usage));
        assert_eq!(
            tokens as usize,
            s.text.split_whitespace().count(),
            "{}",
            s.text
        );
        assert_eq!(s.itl_ms.len() as u64, tokens - 1);
        assert!(s.ttft_ms.unwrap() < s.e2e_ms.unwrap());
        // 5 ms before each token: decode cannot beat 200 tok/s.
        assert!(s.decode_tps.unwrap() < 200.0, "{:?}", s.decode_tps);
    }
    assert!(doc.samples[0].cold && !doc.samples[1].cold);
    let summary = &doc.summaries[0];
    assert_eq!(summary.requests, 8);
    assert!(summary.cold_ttft_ms.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_keeps_a_timestamped_copy_beside_the_stable_outputs() {
    let out = tempfile::tempdir().unwrap();
    let options = dyno::run::RunOptions {
        out: Some(out.path().to_path_buf()),
        quiet: true,
        templates: None,
        archive: true,
        ..dyno::run::RunOptions::default()
    };
    let suite = repo_root().join("examples/adapter/suite.yaml");
    let filter = Filter {
        models: vec![],
        prompts: vec!["greet".into()],
        ..Filter::default()
    };
    let summary = dyno::run::run_suite_with(&suite, &filter, &options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let archived: Vec<_> = std::fs::read_dir(out.path().join("archive"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(archived.len(), 1);
    let stamp = archived[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(stamp.ends_with('Z') && !stamp.contains(':'), "{stamp}");
    for name in [
        "results.json",
        "report.md",
        "results.csv",
        "charts/latency.svg",
    ] {
        assert_eq!(
            std::fs::read(out.path().join(name)).unwrap(),
            std::fs::read(archived[0].join(name)).unwrap(),
            "{name}"
        );
    }
    assert!(summary.files.iter().any(|f| f.starts_with(&archived[0])));
}
