//! Quality end to end: checks from the suite, a judge model (the fixture's
//! `judge`, which always answers "Score: 4"), its cache, and human ratings
//! through `dyno annotate` → fill in → `dyno report`.

use std::sync::atomic::Ordering;

use dyno::plan::Filter;

use crate::{Tree, fixture};

fn suite(base: &str) -> String {
    format!(
        r#"
name: judged
endpoints:
  fx: {{ base_url: "{base}" }}
models:
  - {{ id: timetable, endpoint: fx, judge: judge }}
  - {{ id: judge, endpoint: fx, params: {{ stream: false }} }}
prompts:
  - id: count
    text: Count.
    rubric: Lists tokens in order.
    checks:
      - contains: tok0
      - {{ regex: "TOK1\\b", case_insensitive: true }}
      - max_words: 5
quality:
  checks: [{{ not_contains: "As an AI" }}]
  judge: {{ model: judge, scale: "1-5" }}
defaults: {{ rounds: 2, warmup: 1 }}
"#
    )
}

/// The tests that ask the fixture's judge take turns: one counts its calls.
static JUDGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_judge_cache_and_human_ratings() {
    let _judge = JUDGE.lock().await;
    let base = fixture::start().await;
    let tree = Tree::new(&[("s.yaml", &suite(&base))]);
    let out = tree.path("out");
    let before = fixture::JUDGE_CALLS.load(Ordering::SeqCst);
    dyno::run::run_suite(&tree.path("s.yaml"), &Filter::default(), Some(&out), true)
        .await
        .unwrap();
    let doc = crate::load_results(&out);
    let measured: Vec<_> = doc
        .samples
        .iter()
        .filter(|s| s.model == "timetable" && !s.warmup)
        .collect();
    assert_eq!(measured.len(), 2);
    for s in &measured {
        let checks: Vec<(&str, bool)> = s
            .checks
            .iter()
            .map(|c| (c.check.as_str(), c.passed))
            .collect();
        assert_eq!(
            checks.len(),
            4,
            "suite check first, then the prompt's: {checks:?}"
        );
        assert!(checks[0].1 && checks[1].1 && checks[2].1, "{checks:?}");
        assert!(!checks[3].1, "20 words > 5");
        assert!(
            s.checks[3].reason.contains("20 words"),
            "{}",
            s.checks[3].reason
        );
        let judge = s.judge.as_ref().unwrap();
        assert_eq!((judge.model.as_str(), judge.score), ("judge", Some(4.0)));
        assert_eq!(judge.reply, "Score: 4");
    }
    // The judge model's own 3 timed requests, then one judgement: both
    // measured outputs are the same text, judged once.
    assert_eq!(fixture::JUDGE_CALLS.load(Ordering::SeqCst) - before, 3 + 1);
    // The judgement (the judge's last request) asked for `{"score": N}`.
    let format = fixture::JUDGE_FORMAT.lock().unwrap().clone();
    assert_eq!(
        format["json_schema"]["schema"]["properties"]["score"]["enum"],
        serde_json::json!([1, 2, 3, 4, 5]),
        "{format}"
    );
    let summary = &doc.summaries[0];
    assert_eq!(summary.quality.check_pass_rate, Some(0.75));
    assert_eq!(summary.quality.judge_score_mean, Some(4.0));
    // The judge's own outputs are not judged (it has no judge).
    assert!(
        doc.samples
            .iter()
            .filter(|s| s.model == "judge")
            .all(|s| s.judge.is_none())
    );
    // Judge requests never enter latency statistics.
    assert_eq!(doc.samples.len(), 2 * 3);

    // A re-run with unchanged outputs asks the judge nothing (only its own
    // 3 timed requests).
    let before = fixture::JUDGE_CALLS.load(Ordering::SeqCst);
    dyno::run::run_suite(&tree.path("s.yaml"), &Filter::default(), Some(&out), true)
        .await
        .unwrap();
    assert_eq!(fixture::JUDGE_CALLS.load(Ordering::SeqCst) - before, 3);
    assert_eq!(
        crate::load_results(&out).samples[1]
            .judge
            .as_ref()
            .unwrap()
            .score,
        Some(4.0)
    );

    // Human ratings: annotate, fill in, re-render.
    let file = dyno::run::annotate(&out).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut rows = dyno::quality::read_annotations_csv(&text).unwrap();
    assert_eq!(
        rows.len(),
        2,
        "one row per model × prompt × distinct output"
    );
    // Each row carries what to rate against.
    let context: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.prompt_text.as_str(), r.rubric.as_str()))
        .collect();
    assert_eq!(context, [("Count.", "Lists tokens in order."); 2], "{text}");
    for row in &mut rows {
        row.score = Some(if row.model == "timetable" { 2.0 } else { 5.0 });
        row.note = "checked by hand, \"ok\"".into();
    }
    std::fs::write(&file, dyno::quality::write_annotations_csv(&rows).unwrap()).unwrap();
    // Annotating again keeps the ratings.
    dyno::run::annotate(&out).unwrap();
    let kept =
        dyno::quality::read_annotations_csv(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(kept, rows);
    dyno::run::rerender(&out, None).unwrap();
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| 2.00 (n=2) |"), "{report}");
    assert!(report.contains("| 5.00 (n=2) |"), "{report}");
    // The selection table's quality row carries the human scores too.
    let quality = report
        .lines()
        .find(|l| l.starts_with("| Quality |"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        quality.starts_with("| Quality | Checks passed / judge score / human score |")
            && quality.contains(" / 2.00 (n=2) |")
            && quality.contains(" / 5.00 (n=2) |"),
        "{quality}"
    );
}

#[test]
fn a_bad_regex_is_a_validation_error_at_its_yaml_location() {
    let text = suite("http://127.0.0.1:9/v1").replace(r#"regex: "TOK1\\b""#, r#"regex: "tok(1""#);
    let tree = Tree::new(&[("s.yaml", &text)]);
    let err = dyno::suite::load(&tree.path("s.yaml"), &|_| None).unwrap_err();
    let rendered = tree.anonymize(&err.render());
    assert!(rendered.contains("check of prompt `count`"), "{rendered}");
    assert!(rendered.contains("--> DIR/s.yaml:14:18"), "{rendered}");
}

#[test]
fn a_judge_that_is_not_a_model_is_a_validation_error() {
    let text =
        suite("http://127.0.0.1:9/v1").replace("judge: { model: judge", "judge: { model: nobody");
    let tree = Tree::new(&[("s.yaml", &text)]);
    let err = dyno::suite::load(&tree.path("s.yaml"), &|_| None).unwrap_err();
    let rendered = tree.anonymize(&err.render());
    assert!(
        rendered.contains("judge `nobody` is not a model of this suite"),
        "{rendered}"
    );
    assert!(
        rendered.contains("defined models: timetable, judge"),
        "{rendered}"
    );
}

#[test]
fn json_schema_checks_read_their_schema_from_a_file() {
    let suite = |file: &str| {
        format!(
            "name: s\nendpoints:\n  fx: {{ base_url: \"http://127.0.0.1:9/v1\" }}\nmodels:\n  - {{ id: m, endpoint: fx }}\nprompts:\n  - id: p\n    text: Reply in JSON.\n    checks:\n      - json_schema: {{ file: {file} }}\n"
        )
    };
    let schema = r#"{"type": "object", "required": ["name"]}"#;
    let tree = Tree::new(&[
        ("s.yaml", &suite("schemas/person.json")),
        ("bad.yaml", &suite("schemas/missing.json")),
        ("schemas/person.json", schema),
    ]);
    let loaded = dyno::suite::load(&tree.path("s.yaml"), &|_| None).unwrap();
    let check = loaded.prompts[0].checks[0].compile().unwrap();
    assert!(check.evaluate(r#"{"name": "dyno"}"#).passed);
    let failed = check.evaluate(r#"{"nom": "dyno"}"#);
    assert!(!failed.passed, "{}", failed.reason);

    let err = dyno::suite::load(&tree.path("bad.yaml"), &|_| None).unwrap_err();
    let rendered = tree.anonymize(&err.render());
    assert!(
        rendered.contains("cannot read DIR/schemas/missing.json"),
        "{rendered}"
    );
    assert!(rendered.contains("--> DIR/bad.yaml:10:"), "{rendered}");
    assert_eq!(err.diagnostics.len(), 1, "{rendered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_level_judge_works_without_a_suite_judge() {
    let _judge = JUDGE.lock().await;
    let base = fixture::start().await;
    let text = suite(&base).replace("  judge: { model: judge, scale: \"1-5\" }\n", "");
    assert!(!text.contains("scale"), "{text}");
    let tree = Tree::new(&[("s.yaml", &text)]);
    let out = tree.path("out");
    dyno::run::run_suite(&tree.path("s.yaml"), &Filter::default(), Some(&out), true)
        .await
        .unwrap();
    let doc = crate::load_results(&out);
    let judged: Vec<_> = doc
        .samples
        .iter()
        .filter_map(|s| s.judge.as_ref())
        .collect();
    assert_eq!(judged.len(), 2, "the two measured timetable outputs");
    assert!(judged.iter().all(|j| j.score == Some(4.0)));
}
