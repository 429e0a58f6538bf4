//! Model-level verdicts, noise floors and NOISY rows on synthetic results
//! with known numbers.

use super::*;
use crate::measure::machine::Environment;
use crate::plan::Round;
use crate::results::{self, FORMAT_VERSION, SuiteRecord};

/// A warm, measured, successful sample of `model` on `prompt`.
fn sample(model: &str, prompt: &str, round: u32, ttft: f64, busy: Option<f64>) -> Sample {
    let mut s = Sample::new(
        format!("{model}/{prompt}"),
        model,
        prompt,
        Round::Measured(round),
    );
    s.status = Status::Ok;
    s.ttft_ms = Some(ttft);
    s.host_busy_cores = busy;
    s
}

/// Results of `model` with `rounds` values per prompt: prompt `i` at
/// `levels[i]`, each round `scale`d and nudged by a fixed pattern.
fn doc(levels: &[f64], rounds: u32, scale: f64, busy: Option<f64>) -> Results {
    let nudge = [1.0, 1.01, 0.99, 1.02, 0.98, 1.005, 0.995, 1.015];
    let mut samples = Vec::new();
    for (i, level) in levels.iter().enumerate() {
        for r in 0..rounds {
            let v = level * scale * nudge[(r as usize + i) % nudge.len()];
            samples.push(sample("m", &format!("p{i}"), r + 1, v, busy));
        }
    }
    Results {
        format_version: FORMAT_VERSION,
        tool_version: "test".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        git_revision: None,
        suite: SuiteRecord {
            name: "t".into(),
            description: None,
            file: "t.yaml".into(),
            hash: "h".into(),
            resolved: serde_json::json!({}),
        },
        plan_hash: None,
        shard: None,
        fleet: None,
        partial: None,
        environment: Environment {
            cpu: "cpu".into(),
            cores: 2,
            ram_mb: 1,
            os: "os".into(),
            machine: None,
            noise: None,
        },
        models: Vec::new(),
        summaries: Vec::new(),
        highlights: Vec::new(),
        cells: results::aggregate(&samples),
        load: Vec::new(),
        sweeps: Vec::new(),
        samples,
    }
}

fn model_row(c: &Comparison, metric: Metric) -> &Row {
    c.models
        .iter()
        .find(|r| r.metric == metric)
        .unwrap_or_else(|| panic!("no model row: {}", render_text(c)))
}

#[test]
fn three_rounds_per_prompt_pool_into_a_model_verdict() {
    let levels = [200.0, 450.0, 800.0, 1500.0];
    let base = doc(&levels, 3, 1.0, None);
    let new = doc(&levels, 3, 1.5, None);
    let c = compare(&base, &new, "base", "new");
    // Every cell alone is INCONCLUSIVE (3 rounds a side)…
    assert!(
        c.rows.iter().all(|r| r.verdict == Verdict::Inconclusive),
        "{}",
        render_text(&c)
    );
    // …but the model, pooled over its 4 prompts, is REGRESSED and gates.
    let row = model_row(&c, Metric::TtftMs);
    assert_eq!(row.verdict, Verdict::Regressed, "{}", render_text(&c));
    assert_eq!(row.prompts, Some(4));
    assert!(c.regressed());
    let ratio = row.ratio.unwrap();
    assert!((1.4..1.6).contains(&ratio), "{ratio}");

    let same = compare(&base, &doc(&levels, 3, 1.0, None), "base", "again");
    assert_eq!(model_row(&same, Metric::TtftMs).verdict, Verdict::Unchanged);
    assert!(!same.regressed(), "{}", render_text(&same));
}

#[test]
fn a_shift_below_the_floor_is_never_a_regression() {
    // 6 ms → 6.8 ms: 13% (outside a 10% band) but 0.8 ms (inside the 1 ms
    // floor), every round agreeing.
    let base = doc(&[6.0], 8, 1.0, None);
    let new = doc(&[6.0], 8, 6.8 / 6.0, None);
    let c = compare(&base, &new, "base", "new");
    let cell = c.rows.iter().find(|r| r.metric == Metric::TtftMs).unwrap();
    assert_eq!(cell.verdict, Verdict::Unchanged, "{}", render_text(&c));
    assert_eq!(model_row(&c, Metric::TtftMs).verdict, Verdict::Unchanged);
    assert!(!c.regressed());
    // The same 13% on 60 ms is a regression.
    let c = compare(
        &doc(&[60.0], 8, 1.0, None),
        &doc(&[60.0], 8, 6.8 / 6.0, None),
        "b",
        "n",
    );
    assert_eq!(model_row(&c, Metric::TtftMs).verdict, Verdict::Regressed);
}

#[test]
fn a_shift_measured_on_a_busy_machine_is_noisy_and_does_not_fail() {
    let levels = [200.0, 450.0, 800.0, 1500.0];
    let base = doc(&levels, 5, 1.0, Some(0.1));
    let new = doc(&levels, 5, 1.5, Some(1.9));
    let c = compare(&base, &new, "base", "new");
    let row = model_row(&c, Metric::TtftMs);
    assert_eq!(row.verdict, Verdict::Noisy, "{}", render_text(&c));
    assert!(row.noisy && !row.gates);
    assert!(!c.regressed(), "{}", render_text(&c));
    let warnings: Vec<&String> = c.warnings.iter().filter(|w| w.contains("NOISY")).collect();
    assert_eq!(warnings.len(), 1, "{:?}", c.warnings);
    assert!(render_text(&c).contains("NOISY"));
    // Quiet on both sides: the same shift is REGRESSED.
    let quiet = compare(
        &doc(&levels, 5, 1.0, Some(0.1)),
        &doc(&levels, 5, 1.5, Some(0.2)),
        "b",
        "n",
    );
    assert!(quiet.regressed(), "{}", render_text(&quiet));
}

/// Every value of `doc` times a seeded jitter in `[1 − width, 1 + width]`.
fn jittered(mut doc: Results, seed: u64, width: f64) -> Results {
    let mut state = seed;
    for s in &mut doc.samples {
        // A 64-bit LCG (Knuth's MMIX constants); the top bits are uniform.
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let u = (state >> 11) as f64 / (1u64 << 53) as f64;
        s.ttft_ms = s.ttft_ms.map(|v| v * (1.0 - width + 2.0 * width * u));
    }
    doc
}

#[test]
fn many_cells_of_an_unchanged_run_do_not_cry_wolf() {
    // 1,000 prompts × 20 rounds, the same times on both sides up to ±5%
    // jitter drawn independently; small times (5–54 ms) on purpose.
    let levels: Vec<f64> = (0..1000).map(|i| 5.0 + f64::from(i % 50)).collect();
    let base = jittered(doc(&levels, 20, 1.0, None), 1, 0.05);
    let new = jittered(doc(&levels, 20, 1.0, None), 2, 0.05);
    let c = compare(&base, &new, "base", "new");
    assert!(!c.regressed(), "{:?}", c.models);
    assert_eq!(c.rows.len(), 1000);
    let regressed = c
        .rows
        .iter()
        .filter(|r| r.verdict == Verdict::Regressed)
        .count();
    assert_eq!(regressed, 0, "cells REGRESSED in an A/A: {regressed}");
}

/// `doc` whose samples are one load point's requests: key `m/*[concurrency=4]`,
/// each sample carrying the prompt it drew.
fn load_doc(scale: f64) -> Results {
    let mut d = doc(&[300.0, 500.0], 20, scale, None);
    for s in &mut d.samples {
        s.key = "m/*[concurrency=4]".into();
    }
    d.cells = results::aggregate(&d.samples);
    d
}

#[test]
fn a_load_point_has_its_model_row_and_decides_the_exit_code() {
    let c = compare(&load_doc(1.0), &load_doc(1.5), "base", "new");
    let row = model_row(&c, Metric::TtftMs);
    assert_eq!(row.key, "m [concurrency=4]", "{}", render_text(&c));
    assert_eq!(row.verdict, Verdict::Regressed, "{}", render_text(&c));
    assert!(c.regressed(), "{}", render_text(&c));
    let same = compare(&load_doc(1.0), &load_doc(1.0), "base", "again");
    assert!(!same.regressed(), "{}", render_text(&same));
}

/// A run of model `m` whose one launch ran `engine`.
fn with_engine(mut doc: Results, features: &[&str]) -> Results {
    let engine = results::EngineBuild {
        build: Some("b11434".into()),
        features: features.iter().map(ToString::to_string).collect(),
        ..results::EngineBuild::default()
    };
    doc.models = vec![results::ModelRun {
        id: "m".into(),
        variant: None,
        api_model: "m".into(),
        license: None,
        capabilities: Vec::new(),
        load_ms: Some(100.0),
        launches: vec![results::Launch {
            load_ms: 100.0,
            rss_idle_mb: None,
            rss_peak_mb: None,
            rss_median_mb: None,
            rss_samples: 0,
            cpu_s: None,
            exit: None,
            engine: Some(engine),
        }],
        footprint: None,
        gpu: None,
        server_version: None,
        foundry: None,
        status: Status::Ok,
        failure: None,
    }];
    doc
}

#[test]
fn issue_22_a_shift_on_another_cpu_is_machine_and_does_not_fail() {
    let levels = [200.0, 450.0, 800.0, 1500.0];
    let base = doc(&levels, 5, 1.0, None);
    let mut new = doc(&levels, 5, 1.5, None);
    new.environment.cpu = "Intel Xeon".into();
    let c = compare(&base, &new, "base", "new");
    let row = model_row(&c, Metric::TtftMs);
    assert_eq!(row.verdict, Verdict::Machine, "{}", render_text(&c));
    assert!(!row.gates && !row.confirmed, "{row:?}");
    assert!(
        c.rows.iter().all(|r| r.verdict != Verdict::Regressed),
        "{}",
        render_text(&c)
    );
    assert!(!c.regressed(), "{}", render_text(&c));
    let text = render_text(&c);
    assert!(text.contains("MACHINE"), "{text}");
    let warning = c
        .warnings
        .iter()
        .find(|w| w.contains("different machines"))
        .unwrap_or_else(|| panic!("{:?}", c.warnings));
    assert!(
        warning.contains("CPU cpu (2 cores) → Intel Xeon (2 cores)"),
        "{warning}"
    );
    assert!(warning.contains("dyno merge --fleet"), "{warning}");
    // Asked to compare across machines, the same shift gates.
    let across = compare_across(&base, &new, "base", "new", true);
    assert_eq!(
        model_row(&across, Metric::TtftMs).verdict,
        Verdict::Regressed
    );
    assert!(across.regressed(), "{}", render_text(&across));
    assert!(
        across
            .warnings
            .iter()
            .any(|w| w.contains("--across-machines")),
        "{:?}",
        across.warnings
    );
    // Another core count is another machine too; the same machine is not.
    let mut more_cores = doc(&levels, 5, 1.5, None);
    more_cores.environment.cores = 4;
    let c = compare(&base, &more_cores, "base", "new");
    assert_eq!(model_row(&c, Metric::TtftMs).verdict, Verdict::Machine);
    let same = compare(&base, &doc(&levels, 5, 1.5, None), "base", "new");
    assert_eq!(model_row(&same, Metric::TtftMs).verdict, Verdict::Regressed);
}

#[test]
fn issue_22_another_engine_build_makes_its_model_machine() {
    let levels = [200.0, 450.0, 800.0, 1500.0];
    let base = with_engine(doc(&levels, 5, 1.0, None), &["AVX2", "AVX512", "AMX_INT8"]);
    let new = with_engine(doc(&levels, 5, 1.5, None), &["AVX2", "AVX512"]);
    let c = compare(&base, &new, "base", "new");
    assert_eq!(
        model_row(&c, Metric::TtftMs).verdict,
        Verdict::Machine,
        "{}",
        render_text(&c)
    );
    assert!(!c.regressed());
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("`m`'s engine b11434: AVX2 AVX512 AMX_INT8 → b11434: AVX2 AVX512")),
        "{:?}",
        c.warnings
    );
    // The same engine on both sides: the shift is the commit's.
    let same = with_engine(doc(&levels, 5, 1.5, None), &["AVX2", "AVX512", "AMX_INT8"]);
    let c = compare(&base, &same, "base", "new");
    assert_eq!(model_row(&c, Metric::TtftMs).verdict, Verdict::Regressed);
    // A side that recorded no engine (an older results file) is not
    // another machine by itself.
    let c = compare(&doc(&levels, 5, 1.0, None), &new, "base", "new");
    assert_eq!(model_row(&c, Metric::TtftMs).verdict, Verdict::Regressed);
}

/// `doc`'s results with every request reasoning before it answers: the
/// first reasoning token at 40 ms, `think` ms of reasoning (nudged like
/// the rounds), `tokens` reasoning tokens, the first answer token after it.
fn reasoning_doc(think: f64, tokens: u64) -> Results {
    let mut d = doc(&[200.0, 450.0, 800.0, 1500.0], 3, 1.0, None);
    for s in &mut d.samples {
        let nudge = s.ttft_ms.unwrap_or(0.0) / 1000.0;
        let reasoning_ms = think * (1.0 + nudge / 50.0);
        s.ttfo_reasoning_ms = Some(40.0);
        s.ttft_ms = Some(40.0 + reasoning_ms);
        s.reasoning = Some(results::Reasoning {
            form: results::ReasoningForm::ReasoningContent,
            tokens: Some(tokens),
            token_source: Some(results::TokenSource::Usage),
            reasoning_ms: Some(reasoning_ms),
            answer_tokens: Some(20),
            text: "hmm".into(),
        });
    }
    d
}

#[test]
fn issue_25_a_reasoning_time_regression_is_caught_at_model_level() {
    let base = reasoning_doc(300.0, 60);
    let slower = reasoning_doc(450.0, 90);
    let c = compare(&base, &slower, "base", "new");
    let text = render_text(&c);
    println!("{text}");
    for metric in [Metric::ReasoningMs, Metric::ReasoningTokens, Metric::TtftMs] {
        let row = model_row(&c, metric);
        assert_eq!(row.verdict, Verdict::Regressed, "{metric:?}: {text}");
        assert!(row.gates, "{metric:?}: {text}");
    }
    assert_eq!(
        model_row(&c, Metric::TtfoReasoningMs).verdict,
        Verdict::Unchanged,
        "{text}"
    );
    assert!(c.regressed(), "{text}");
    assert!(
        c.rows.iter().any(|r| r.metric == Metric::ReasoningTokens),
        "cell rows carry reasoning: {text}"
    );
    // Runs that never reasoned have no reasoning rows.
    let plain = doc(&[200.0], 3, 1.0, None);
    let c = compare(&plain, &plain, "a", "b");
    assert!(
        c.models
            .iter()
            .chain(&c.rows)
            .all(|r| !matches!(r.metric, Metric::ReasoningMs | Metric::ReasoningTokens)),
        "{}",
        render_text(&c)
    );
}
