//! Comparing runs end to end on the timetable fixture (known truth: the
//! first-token delay is programmed), and reading a base from git history.

use std::path::{Path, PathBuf};
use std::process::Command;

use dyno::compare::{self, Metric};
use dyno::measure::stats::Verdict;
use dyno::plan::Filter;

use crate::{Tree, fixture, svg_texts};

/// Runs an 8-round suite against the fixture, serving `script` as model `m`.
/// The verdicts under test are the statistics', so rows are never NOISY
/// here: other tests' servers share the machine (the noise monitor has its
/// own tests).
async fn run(base_url: &str, script: &str, dir: &Path) -> PathBuf {
    let suite = format!(
        "name: cmp\nendpoints:\n  fx: {{ base_url: \"{base_url}\" }}\nmodels:\n  - {{ id: m, endpoint: fx, model: {script} }}\nprompts:\n  - {{ id: p, text: hi }}\ndefaults: {{ rounds: 8, warmup: 1, max_tokens: 32 }}\ncompare: {{ noisy_cores: 1000 }}\n"
    );
    let file = dir.join(format!("{script}.yaml"));
    std::fs::write(&file, suite).unwrap();
    let out = dir.join(script);
    dyno::run::run_suite(&file, &Filter::default(), Some(&out), true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    out.join("results.json")
}

fn ttft(c: &compare::Comparison) -> &compare::Row {
    c.rows.iter().find(|r| r.metric == Metric::TtftMs).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_configuration_is_no_regression_and_a_slower_first_token_is() {
    let base_url = fixture::start().await;
    let tree = Tree::new(&[]);
    let a = run(&base_url, "timetable", tree.dir.path()).await;
    let a2_dir = tree.path("again");
    std::fs::create_dir_all(&a2_dir).unwrap();
    let a2 = run(&base_url, "timetable", &a2_dir).await;
    let slow = run(&base_url, "slower-first-token", tree.dir.path()).await;
    let load = |p: &Path| compare::read_path(p).unwrap().0;

    let same = compare::compare(&load(&a), &load(&a2), "a", "a2");
    assert!(!same.regressed(), "{}", compare::render_text(&same));
    assert!(same.rows.iter().all(|r| r.verdict != Verdict::Regressed));

    let worse = compare::compare(&load(&a), &load(&slow), "a", "slow");
    let row = ttft(&worse);
    assert_eq!(
        row.verdict,
        Verdict::Regressed,
        "{}",
        compare::render_text(&worse)
    );
    assert!(worse.regressed());
    // 150 ms → 200 ms.
    let ratio = row.ratio.unwrap();
    assert!((1.15..1.45).contains(&ratio), "ratio {ratio}");
    assert_eq!((row.n_base, row.n_new), (8, 8));

    let markdown = compare::render_markdown(&worse, None).unwrap();
    assert!(markdown.contains("**REGRESSED**"), "{markdown}");
    assert!(markdown.contains("| m/p | ttft_ms |"), "{markdown}");
    assert_eq!(markdown, compare::render_markdown(&worse, None).unwrap());

    let better = compare::compare(&load(&slow), &load(&a), "slow", "a");
    assert_eq!(ttft(&better).verdict, Verdict::Improved);
    assert!(!better.regressed());

    // The binary's exit codes, and a base read from git history.
    let bin = env!("CARGO_BIN_EXE_dyno");
    let status = |args: &[&str]| Command::new(bin).args(args).output().unwrap().status.code();
    assert_eq!(
        status(&["compare", a.to_str().unwrap(), a2.to_str().unwrap()]),
        Some(0)
    );
    assert_eq!(
        status(&["compare", a.to_str().unwrap(), slow.to_str().unwrap()]),
        Some(1)
    );

    let repo = tree.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let tracked = repo.join("results.json");
    git(&["init", "-q"]);
    for source in [&a, &a2, &slow] {
        std::fs::copy(source, &tracked).unwrap();
        git(&["add", "results.json"]);
        git(&["commit", "-q", "-m", "run"]);
    }
    let tracked = tracked.to_str().unwrap();
    // HEAD holds the slow run, HEAD~1 the repeat of the fast one.
    assert_eq!(status(&["compare", "HEAD~1", tracked]), Some(1));
    // NEW alone: the base is the committed version, identical here.
    assert_eq!(status(&["compare", tracked]), Some(0));
    assert_eq!(status(&["compare", "no-such-rev", tracked]), Some(2));

    // History in a fresh repository: 16 commits whose E2E follows vector E6
    // (a step at the 9th).
    std::fs::remove_dir_all(repo.join(".git")).unwrap();
    git(&["init", "-q"]);
    let series = [
        410.0, 405.0, 415.0, 408.0, 412.0, 406.0, 411.0, 409.0, 440.0, 436.0, 445.0, 438.0, 442.0,
        439.0, 444.0, 437.0,
    ];
    let template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    for (i, value) in series.iter().enumerate() {
        let mut doc = template.clone();
        for sample in doc["samples"].as_array_mut().unwrap() {
            sample["e2e_ms"] = serde_json::json!(value);
        }
        std::fs::write(tracked, serde_json::to_string(&doc).unwrap()).unwrap();
        git(&["add", "results.json"]);
        git(&["commit", "-q", "-m", &format!("change {}", i + 1)]);
    }
    let (points, steps) = compare::history(Path::new(tracked), Metric::E2eMs).unwrap();
    assert_eq!(points.len(), 16);
    assert_eq!(
        steps,
        vec![8],
        "{}",
        compare::render_history(Metric::E2eMs, &points, &steps)
    );
    assert_eq!(points[8].subject, "change 9");
    let svg = compare::history_svg(Metric::E2eMs, &points, &steps).unwrap();
    assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
    assert_eq!(svg.matches("<circle ").count(), 16);
    let texts = svg_texts(&svg);
    assert!(texts.iter().any(|t| t == "e2e_ms per commit"), "{texts:?}");
    for point in &points {
        assert!(texts.contains(&point.commit), "{texts:?}");
    }
    // The step is drawn, and named once in the legend.
    assert_eq!(texts.iter().filter(|t| **t == "step").count(), 1);
    let svg_path = tree.path("trend.svg");
    let out = Command::new(bin)
        .args([
            "history",
            tracked,
            "--metric",
            "e2e_ms",
            "--svg",
            svg_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(std::fs::read_to_string(&svg_path).unwrap(), svg);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("the step came with commit"), "{text}");
    assert!(text.contains("(change 9): 409.00 → 440.00"), "{text}");

    // A commit whose file is cut short is left out, and said so; one
    // measured on another machine is marked, not blamed.
    let full = std::fs::read_to_string(tracked).unwrap();
    std::fs::write(tracked, &full[..full.len() / 2]).unwrap();
    git(&["commit", "-q", "-am", "cut short"]);
    let mut doc = template.clone();
    doc["environment"]["cpu"] = serde_json::json!("Another CPU");
    for sample in doc["samples"].as_array_mut().unwrap() {
        sample["e2e_ms"] = serde_json::json!(600.0);
    }
    std::fs::write(tracked, serde_json::to_string(&doc).unwrap()).unwrap();
    git(&["commit", "-q", "-am", "new runner"]);
    let compare::History {
        points,
        steps,
        skipped,
    } = compare::history_with_skipped(Path::new(tracked), Metric::E2eMs).unwrap();
    assert_eq!(points.len(), 17, "{skipped:?}");
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0].contains("(cut short) is left out"),
        "{skipped:?}"
    );
    let last = points.last().unwrap();
    let changed = last.machine_changed.as_deref().unwrap_or("");
    assert!(changed.contains("→ Another CPU"), "{last:?}");
    assert!(
        points[..16].iter().all(|p| p.machine_changed.is_none()),
        "{points:?}"
    );
    let text = compare::render_history(Metric::E2eMs, &points, &steps);
    assert!(text.contains("new runner  (another machine)"), "{text}");
    let out = Command::new(bin)
        .args(["history", tracked])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: commit") && stderr.contains("(cut short) is left out"),
        "{stderr}"
    );
}

/// The synthetic run spread over eight prompts, every output passing its
/// check or not and judged `score`.
fn scored(passed: bool, score: f64) -> dyno::results::Results {
    let mut doc = crate::report::synthetic();
    let template: Vec<_> = doc
        .samples
        .iter()
        .filter(|s| s.prompt == "rag")
        .cloned()
        .collect();
    doc.samples.clear();
    for i in 0..8 {
        for s in &template {
            let mut s = s.clone();
            s.prompt = format!("p{i}");
            s.checks = vec![dyno::quality::CheckResult {
                check: "contains \"answers\"".into(),
                passed,
                reason: String::new(),
                weight: 1.0,
            }];
            s.judge = Some(dyno::results::Judgement {
                model: "judge".into(),
                score: Some(score),
                parse: dyno::quality::JudgeParse::Score(score),
                reply: format!("Score: {score}"),
            });
            doc.samples.push(s);
        }
    }
    doc
}

/// Base passes and scores 4; new (when `worse`) fails every check and scores 2.
fn quality_pair(worse: bool) -> (dyno::results::Results, dyno::results::Results) {
    let new = if worse {
        scored(false, 2.0)
    } else {
        scored(true, 4.0)
    };
    (scored(true, 4.0), new)
}

#[test]
fn quality_is_compared_paired_by_prompt() {
    let (base, new) = quality_pair(true);
    let c = compare::compare(&base, &new, "base", "new");
    let row = |model: &str, measure: compare::QualityMeasure| {
        c.quality
            .iter()
            .find(|q| q.model == model && q.measure == measure)
            .unwrap()
    };
    let checks = row("alpha [threads=1]", compare::QualityMeasure::Checks);
    // 8 discordant pairs, all lost: McNemar exact p = 2 × 0.5^8.
    assert_eq!((checks.pairs, checks.change), (8, Some(-1.0)));
    assert!((checks.p.unwrap() - 2.0 * 0.5f64.powi(8)).abs() < 1e-12);
    assert_eq!(checks.verdict, Verdict::Regressed);
    let judge = row("alpha [threads=1]", compare::QualityMeasure::JudgeScore);
    assert_eq!((judge.pairs, judge.change), (8, Some(-2.0)));
    assert!(
        (judge.p.unwrap() - 2.0 / 256.0).abs() < 1e-12,
        "{:?}",
        judge.p
    );
    assert_eq!(judge.verdict, Verdict::Regressed);
    assert!(c.regressed(), "a quality regression fails the comparison");
    assert!(compare::render_text(&c).contains("quality (paired by prompt):"));

    let (base, same) = quality_pair(false);
    let c = compare::compare(&base, &same, "base", "new");
    assert!(
        c.quality.iter().all(|q| q.verdict != Verdict::Regressed),
        "{:?}",
        c.quality
    );
}
