//! Bounded inputs: numbers, interpolation, special files, plan sizes and
//! outputs, each refused at load or validate time with the place it was
//! written, never found after the first request (issue 15).

use std::path::Path;
use std::process::Command;

use dyno::plan::{self, Filter, PlanError};
use dyno::{report, suite};

use crate::suite::{GOOD, errors_with};
use crate::{Tree, test_env};

/// Loads `yaml` as `s.yaml` (with `extra` files beside it), checking its
/// outputs as `dyno validate` does, and returns the rendered diagnostics
/// with the temp dir shown as `DIR`.
fn errors(yaml: &str, extra: &[(&str, &str)]) -> String {
    errors_with(yaml, extra, &|file| {
        suite::load_checked(file, &test_env, &|name| Ok(report::check(name, None)?))
    })
}

/// `yaml` with the test host written out, for runs that read the process
/// environment.
fn without_env(yaml: &str) -> String {
    yaml.replace("${DYNO_TEST_HOST}", "127.0.0.1")
}

fn checked(tree: &Tree, templates: Option<&Path>) -> String {
    let check = |name: &str| Ok(report::check(name, templates)?);
    match suite::load_checked(&tree.path("s.yaml"), &test_env, &check) {
        Ok(_) => String::from("(valid)"),
        Err(err) => tree.anonymize(&err.render()),
    }
}

#[test]
fn timeout_1e20_is_refused_at_its_line() {
    let yaml = GOOD.replace("rounds: 2", "rounds: 2\n  timeout_s: 1e20");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: 1e+20 is greater than the maximum of 86400.0 at `defaults.timeout_s`
  --> DIR/s.yaml:13:14
   |
13 |   timeout_s: 1e20
   |              ^^^^
"
    );
}

#[test]
fn timeout_1e19_and_other_huge_numbers_are_refused_at_their_lines() {
    let cases = [
        ("defaults", "timeout_s: 1e19", "defaults.timeout_s"),
        ("rounds", "rounds: 100001", "defaults.rounds"),
        ("defaults", "warmup: 1001", "defaults.warmup"),
        ("defaults", "max_tokens: 1000001", "defaults.max_tokens"),
        ("defaults", "seed: 4294967296", "defaults.seed"),
        (
            "endpoint",
            "load_timeout_s: 18446744073709551615",
            "endpoints.local.load_timeout_s",
        ),
        ("energy", "watts: 1e308", "energy.watts"),
        ("energy", "price_per_kwh: 1e12", "energy.price_per_kwh"),
        ("model", "size_mb: 1e300", "models[0].size_mb"),
        ("matrix", "max_tokens: [8, 2000000]", "matrix.max_tokens[1]"),
    ];
    for (place, line, at) in cases {
        let yaml = match place {
            "defaults" => GOOD.replace("rounds: 2", &format!("rounds: 2\n  {line}")),
            "rounds" => GOOD.replace("rounds: 2", line),
            "endpoint" => GOOD.replace(
                "    base_url: http://${DYNO_TEST_HOST}:8080/v1",
                &format!("    base_url: http://${{DYNO_TEST_HOST}}:8080/v1\n    {line}"),
            ),
            "model" => GOOD.replace(
                "    endpoint: local",
                &format!("    endpoint: local\n    {line}"),
            ),
            _ => format!("{GOOD}{place}:\n  {line}\n"),
        };
        let out = errors(&yaml, &[]);
        let line_no = yaml.lines().position(|l| l.trim() == line).unwrap() + 1;
        assert!(
            out.contains(&format!(" at `{at}`\n")) && out.contains(&format!("/s.yaml:{line_no}:")),
            "{line}: {out}"
        );
        assert_eq!(out.matches("error: ").count(), 1, "{line}: {out}");
    }
}

#[test]
fn startup_timeout_over_a_day_is_refused() {
    let yaml = GOOD.replace(
        "models:",
        "servers:\n  s:\n    command: [x, \"{port}\"]\n    startup_timeout_s: 86401\nmodels:",
    );
    let out = errors(&yaml, &[]);
    assert!(
        out.starts_with(
            "error: 86401 is greater than the maximum of 86400 at `servers.s.startup_timeout_s`"
        ),
        "{out}"
    );
}

#[test]
fn deep_interpolation_is_an_error_not_an_abort() {
    let depth = 50_000;
    let value = format!("{}x{}", "${U:-".repeat(depth), "}".repeat(depth));
    let yaml = GOOD.replace("name: t", &format!("name: t\ndescription: \"{value}\""));
    let out = errors(&yaml, &[]);
    assert!(
        out.starts_with(
            "error: `${VAR:-default}` defaults nest more than 16 deep\n --> DIR/s.yaml:2:14\n"
        ),
        "{}",
        &out[..out.len().min(600)]
    );
    // The source line is shown as a window, not 300 kB.
    assert!(out.len() < 2_000, "{} bytes", out.len());
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}: {status}", path.display());
}

#[cfg(unix)]
#[test]
fn fifo_include_does_not_hang() {
    let yaml = GOOD.replace("defaults:", "  - include: prompts/*.yaml\ndefaults:");
    let tree = Tree::new(&[
        ("s.yaml", &yaml),
        ("prompts/a.yaml", "- id: p2\n  text: two\n"),
    ]);
    mkfifo(&tree.path("prompts/fifo.yaml"));
    std::os::unix::fs::symlink(".", tree.path("prompts/loop")).unwrap();
    std::os::unix::fs::symlink("fifo.yaml", tree.path("prompts/link.yaml")).unwrap();
    let s = suite::load(&tree.path("s.yaml"), &test_env).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = s.prompts.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["p1", "p2"]);
}

#[cfg(unix)]
#[test]
fn fifo_suite_and_fifo_schema_file_do_not_hang() {
    let yaml = GOOD.replace(
        "    text: hello",
        "    text: hello\n    checks: [{ json_schema: { file: schema.json } }]",
    );
    let tree = Tree::new(&[("s.yaml", &yaml)]);
    mkfifo(&tree.path("schema.json"));
    mkfifo(&tree.path("fifo.yaml"));
    let out = checked(&tree, None);
    assert!(
        out.starts_with(
            "error: check of prompt `p1`: cannot read DIR/schema.json: not a regular file (a FIFO, socket or device)\n"
        ),
        "{out}"
    );
    let err = suite::load(&tree.path("fifo.yaml"), &test_env).unwrap_err();
    assert_eq!(
        tree.anonymize(&err.render()),
        "error: cannot read DIR/fifo.yaml: not a regular file (a FIFO, socket or device)\n --> DIR/fifo.yaml:0:0\n"
    );
}

/// A suite with `rounds` rounds and a temperature axis of `values` values.
fn big(rounds: u32, values: usize) -> String {
    let temps: Vec<String> = (0..values)
        .map(|i| format!("{}", i as f64 / 100.0))
        .collect();
    without_env(GOOD).replace("rounds: 2", &format!("rounds: {rounds}\n  warmup: 0"))
        + &format!("matrix:\n  temperature: [{}]\n", temps.join(", "))
}

#[test]
fn validate_counts_100000_rounds_by_200_values_without_building_the_plan() {
    let tree = Tree::new(&[("s.yaml", &big(100_000, 200))]);
    let s = suite::load(&tree.path("s.yaml"), &test_env).unwrap();
    assert_eq!(plan::count(&s, &Filter::default()).unwrap(), 20_000_000);
    match plan::plan(&s, &Filter::default()) {
        Err(err @ PlanError::TooLarge { .. }) => assert_eq!(
            err.to_string(),
            "the plan has 20000000 requests; dyno plans at most 10000000 (fewer rounds, prompts or matrix values, or --models/--prompts to run a part)"
        ),
        other => panic!("{other:?}"),
    }
    let out = Command::new(env!("CARGO_BIN_EXE_dyno"))
        .args(["validate", tree.path("s.yaml").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = tree.anonymize(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: DIR/s.yaml: the plan has 20000000 requests;"),
        "{stderr}"
    );
}

#[test]
fn plan_count_matches_the_plan() {
    let yaml = big(3, 4).replace(
        "models:",
        "servers:\n  s:\n    command: [x, \"{port}\", \"{threads}\", \"{ctx}\"]\n    variants: { threads: [1, 2], ctx: [a, b, c] }\nmodels:\n  - id: m2\n    server: s",
    );
    let tree = Tree::new(&[("s.yaml", &yaml)]);
    let s = suite::load(&tree.path("s.yaml"), &test_env).unwrap_or_else(|e| panic!("{e}"));
    let cells = plan::plan(&s, &Filter::default()).unwrap();
    assert_eq!(cells.len(), (4 * 3) + (6 * 4 * 3));
    assert_eq!(
        plan::count(&s, &Filter::default()).unwrap(),
        cells.len() as u64
    );
    let only = Filter {
        models: vec!["m2".into()],
        ..Filter::default()
    };
    assert_eq!(plan::count(&s, &only).unwrap(), 6 * 4 * 3);

    // Under load, a cell per point (and one for the sweep).
    let loaded = yaml.replace(
        "  - id: m2\n    server: s",
        "  - id: m2\n    server: s\n    load: { concurrency: [1, 2], requests: 8 }",
    );
    let tree = Tree::new(&[("s.yaml", &loaded)]);
    let s = suite::load(&tree.path("s.yaml"), &test_env).unwrap_or_else(|e| panic!("{e}"));
    let cells = plan::plan(&s, &Filter::default()).unwrap();
    assert_eq!(cells.len(), (4 * 3) + (6 * 4 * 2));
    assert_eq!(
        plan::count(&s, &Filter::default()).unwrap(),
        cells.len() as u64
    );
}

#[test]
fn too_many_server_variants_are_refused_at_their_key() {
    let values: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let list = values.join(", ");
    let yaml = GOOD.replace(
        "models:",
        &format!(
            "servers:\n  s:\n    command: [x, \"{{port}}\", \"{{a}}\", \"{{b}}\"]\n    variants: {{ a: [{list}], b: [{list}] }}\nmodels:"
        ),
    );
    let out = errors(&yaml, &[]);
    assert!(
        out.starts_with(
            "error: server `s` has 1600 variant combinations, each its own launch; at most 1000\n --> DIR/s.yaml:8:15\n"
        ),
        "{out}"
    );
}

#[test]
fn unknown_template_is_refused_at_its_line() {
    let yaml = format!("{GOOD}outputs:\n  templates: [report.md, reprot.md]\n");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: unknown template `reprot.md` (available: compare.html, compare.md, judge.md, load.md, page.css, page.js, report.html, report.md, results.csv)
  --> DIR/s.yaml:14:26
   |
14 |   templates: [report.md, reprot.md]
   |                          ^^^^^^^^^
   = hint: a template of your own is found with `--templates DIR` (as `<name>.j2`)
"
    );
}

#[test]
fn own_templates_are_found_in_the_templates_dir_and_compiled() {
    let yaml = format!("{GOOD}outputs:\n  templates: [mine.md, broken.md]\n");
    let tree = Tree::new(&[
        ("s.yaml", &yaml),
        ("tpl/mine.md.j2", "{{ suite.name }}\n"),
        ("tpl/broken.md.j2", "{% for %}\n"),
    ]);
    let out = checked(&tree, Some(&tree.path("tpl")));
    assert!(
        out.starts_with("error: template `broken.md` line 1: syntax error: ")
            && out.contains("\n  --> DIR/s.yaml:14:24\n")
            && out.matches("-->").count() == 1,
        "{out}"
    );
}

#[test]
fn outputs_dir_that_is_a_file_or_dev_null_is_refused_at_its_line() {
    for dir in ["taken", "/dev/null", "taken/sub"] {
        let yaml = format!("{GOOD}outputs:\n  dir: {dir}\n");
        let tree = Tree::new(&[("s.yaml", &yaml), ("taken", "a file")]);
        let out = checked(&tree, None);
        let shown = if dir.starts_with('/') {
            dir.to_string()
        } else {
            format!("DIR/{dir}")
        };
        assert!(
            out.starts_with(&format!(
                "error: results directory {shown} cannot be written: "
            )) && out.contains("\n  --> DIR/s.yaml:14:8\n"),
            "{dir}: {out}"
        );
    }
}

#[test]
fn the_run_refuses_an_unwritable_out_dir_before_the_first_request() {
    let tree = Tree::new(&[("s.yaml", &without_env(GOOD)), ("taken", "a file")]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let err = runtime
        .block_on(dyno::run::run_suite(
            &tree.path("s.yaml"),
            &Filter::default(),
            Some(&tree.path("taken")),
            true,
        ))
        .unwrap_err();
    assert_eq!(
        tree.anonymize(&err.to_string()),
        "cannot write reports to DIR/taken: it exists and is not a directory"
    );
    // Nothing was measured: no journal, no results.
    assert_eq!(
        std::fs::read_to_string(tree.path("taken")).unwrap(),
        "a file"
    );
}

#[test]
fn compare_refuses_an_unknown_format_version() {
    let committed =
        std::fs::read_to_string(crate::repo_root().join("results/quickstart/results.json"))
            .unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&committed).unwrap();
    doc["format_version"] = serde_json::json!(999);
    let tree = Tree::new(&[
        ("a/results.json", &committed),
        ("b/results.json", &doc.to_string()),
    ]);
    for args in [["a", "b"], ["b", "a"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_dyno"))
            .arg("compare")
            .args(args)
            .current_dir(tree.dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("has results format 999; this dyno reads formats"),
            "{args:?}: {stderr}"
        );
    }
}
