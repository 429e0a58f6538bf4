//! The binary: exit codes and what reaches stdout and stderr.

use std::process::{Command, Output};

use crate::{Tree, repo_root};

fn dyno(args: &[&str]) -> Output {
    dyno_with_env(args, &[])
}

/// The binary run with `vars` set and the selection variables of the
/// caller's environment removed.
fn dyno_with_env(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dyno"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("DYNO_MODELS")
        .env_remove("DYNO_PROMPTS")
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn shipped_suites_validate_with_exit_0() {
    let out = dyno(&["validate", "suites/*.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("ok: suites/quickstart.yaml"), "{stdout}");
}

#[test]
fn mutated_quickstart_reports_both_errors_at_their_lines_with_exit_2() {
    let text = std::fs::read_to_string(repo_root().join("suites/quickstart.yaml")).unwrap();
    let mutated = text
        .replace("  rounds: 5\n", "  rounds: \"5\"\n")
        .replace("prompts:\n", "promts: []\nprompts:\n");
    let rounds_line = mutated
        .lines()
        .position(|l| l == "  rounds: \"5\"")
        .unwrap()
        + 1;
    let unknown_line = mutated.lines().position(|l| l == "promts: []").unwrap() + 1;
    let tree = Tree::new(&[("quickstart.yaml", &mutated)]);
    let file = tree.path("quickstart.yaml");
    let out = dyno(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = tree.anonymize(&String::from_utf8(out.stderr).unwrap());
    assert!(
        stderr.contains(&format!("--> DIR/quickstart.yaml:{rounds_line}:11\n")),
        "{stderr}"
    );
    assert!(stderr.contains("error: \"5\" is not of type \"integer\" at `defaults.rounds`"));
    assert!(
        stderr.contains(&format!("--> DIR/quickstart.yaml:{unknown_line}:1\n")),
        "{stderr}"
    );
    assert!(stderr.contains("error: unknown key `promts` in the top level"));
}

#[test]
fn plan_is_byte_identical_across_calls() {
    let one = dyno(&["plan", "suites/quickstart.yaml"]);
    let two = dyno(&["plan", "suites/quickstart.yaml"]);
    assert_eq!(one.status.code(), Some(0));
    assert_eq!(one.stdout, two.stdout);
    let json_one = dyno(&["plan", "suites/quickstart.yaml", "--json"]);
    let json_two = dyno(&["plan", "suites/quickstart.yaml", "--json"]);
    assert_eq!(json_one.stdout, json_two.stdout);
    let cells: serde_json::Value = serde_json::from_slice(&json_one.stdout).unwrap();
    // 2 models × 2 thread variants × 4 prompts × (1 warmup + 5 rounds).
    assert_eq!(cells.as_array().unwrap().len(), 96);
}

/// The distinct (model, prompt) pairs `dyno plan --json` prints.
fn planned(out: &Output) -> Vec<(String, String)> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cells: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut pairs: Vec<(String, String)> = cells
        .iter()
        .map(|c| (c["model"].to_string(), c["prompt"].to_string()))
        .collect();
    pairs.dedup();
    pairs.sort();
    pairs.dedup();
    pairs
}

#[test]
fn comma_lists_and_dyno_models_select_like_the_workshops_bench_models() {
    let plan = ["plan", "suites/quickstart.yaml", "--json"];
    let by_flags = dyno(
        &[
            &plan[..],
            &["--models", "gemma3-270m", "--prompts", "rag,privacy"],
        ]
        .concat(),
    );
    let by_env = dyno_with_env(
        &plan,
        &[
            ("DYNO_MODELS", "gemma3-270m"),
            ("DYNO_PROMPTS", "rag,privacy"),
        ],
    );
    let expected: Vec<(String, String)> = [("gemma3-270m", "privacy"), ("gemma3-270m", "rag")]
        .iter()
        .map(|(m, p)| (format!("\"{m}\""), format!("\"{p}\"")))
        .collect();
    assert_eq!(planned(&by_flags), expected);
    assert_eq!(planned(&by_env), expected);
    // The flag wins over the variable.
    let both = dyno_with_env(
        &[&plan[..], &["--models", "smollm2-135m"]].concat(),
        &[("DYNO_MODELS", "gemma3-270m")],
    );
    let models: Vec<String> = planned(&both).into_iter().map(|(m, _)| m).collect();
    assert!(models.iter().all(|m| m == "\"smollm2-135m\""), "{models:?}");
}

#[test]
fn missing_file_is_exit_2() {
    let out = dyno(&["validate", "suites/nope.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read suites/nope.yaml"));
}

#[test]
fn a_missing_results_file_is_named_once_with_its_cause_once() {
    let tree = Tree::new(&[]);
    let missing = tree.path("nothing-here");
    let out = dyno(&["compare", "results/quickstart", &missing.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("cannot read").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

#[test]
fn usage_error_is_exit_2() {
    assert_eq!(dyno(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn report_reproduces_the_committed_quickstart_report_byte_for_byte() {
    let committed = repo_root().join("results/quickstart");
    let json = std::fs::read_to_string(committed.join("results.json")).unwrap();
    let tree = Tree::new(&[("q/results.json", &json)]);
    let dir = tree.path("q");
    for _ in 0..2 {
        let out = dyno(&["report", dir.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in [
            "report.md",
            "results.csv",
            "report.html",
            "charts/latency.svg",
            "charts/decode-tps.svg",
            "charts/ttft-vs-tps.svg",
        ] {
            assert_eq!(
                std::fs::read(dir.join(name)).unwrap(),
                std::fs::read(committed.join(name)).unwrap(),
                "{name} differs: re-render with `dyno report results/quickstart`"
            );
        }
    }
}

#[test]
fn report_on_a_non_results_file_is_exit_2() {
    let tree = Tree::new(&[("results.json", "{\"hello\": 1}")]);
    let out = dyno(&["report", tree.path("results.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a dyno results file"));
}
