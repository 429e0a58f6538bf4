//! The execution plan: count, order, determinism, filters.

use std::process::Command;

use dyno::plan::{self, Filter, Round};
use dyno::suite;

use crate::{Tree, test_env};

const SUITE: &str = "\
name: t
endpoints:
  local: { base_url: http://127.0.0.1:1/v1 }
models:
  - { id: small-a, endpoint: local }
  - { id: small-b, endpoint: local, params: { rounds: 3, warmup: 0 } }
  - { id: big, endpoint: local }
prompts:
  - { id: p1, text: one }
  - { id: p2, text: two }
defaults: { rounds: 2, warmup: 1, seed: 7 }
matrix: { stream: [true, false], max_tokens: [16, 32, 64] }
";

fn load() -> (Tree, suite::Suite) {
    let tree = Tree::new(&[("s.yaml", SUITE)]);
    let s = suite::load(&tree.path("s.yaml"), &test_env).unwrap();
    (tree, s)
}

#[test]
fn count_is_models_times_prompts_times_rounds_times_axes() {
    let (_tree, s) = load();
    let cells = plan::plan(&s, &Filter::default()).unwrap();
    // small-a and big: 2 prompts × (1 + 2) rounds × 2 × 3 axis values; small-b: 2 × 3 × 6.
    assert_eq!(cells.len(), 2 * 2 * 3 * 6 + 2 * 3 * 6);
    let indices: Vec<usize> = cells.iter().map(|c| c.index).collect();
    assert_eq!(indices, (1..=cells.len()).collect::<Vec<_>>());
}

#[test]
fn order_is_model_major_then_axes_then_rounds_then_prompts() {
    let (_tree, s) = load();
    let cells = plan::plan(&s, &Filter::default()).unwrap();
    let head: Vec<(String, Round)> = cells
        .iter()
        .take(7)
        .map(|c| (c.key.to_string(), c.round))
        .collect();
    let key = |p: &str, axes: &str| format!("small-a/{p}[{axes}]");
    assert_eq!(
        head,
        vec![
            (key("p1", "stream=true,max_tokens=16"), Round::Warmup(1)),
            (key("p2", "stream=true,max_tokens=16"), Round::Warmup(1)),
            (key("p1", "stream=true,max_tokens=16"), Round::Measured(1)),
            (key("p2", "stream=true,max_tokens=16"), Round::Measured(1)),
            (key("p1", "stream=true,max_tokens=16"), Round::Measured(2)),
            (key("p2", "stream=true,max_tokens=16"), Round::Measured(2)),
            (key("p1", "stream=true,max_tokens=32"), Round::Warmup(1)),
        ]
    );
    let models: Vec<&str> = cells.iter().map(plan::Cell::model).collect();
    let first_b = models.iter().position(|m| *m == "small-b").unwrap();
    let first_big = models.iter().position(|m| *m == "big").unwrap();
    assert!(models[..first_b].iter().all(|m| *m == "small-a"));
    assert!(models[first_b..first_big].iter().all(|m| *m == "small-b"));
    assert!(
        cells[first_b..first_big]
            .iter()
            .all(|c| !c.round.is_warmup())
    );
    let c = &cells[0];
    assert!(c.params().stream);
    assert_eq!(c.params().max_tokens, 16);
}

#[test]
fn seeds_are_stable_per_cell_and_differ_between_cells() {
    let (_tree, s) = load();
    let cells = plan::plan(&s, &Filter::default()).unwrap();
    let seeds_of = |key: &str| -> Vec<u32> {
        cells
            .iter()
            .filter(|c| *c.key == *key)
            .map(|c| c.seed)
            .collect()
    };
    let a = seeds_of("small-a/p1[stream=true,max_tokens=16]");
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|s| *s == a[0]));
    assert_ne!(a[0], seeds_of("small-a/p2[stream=true,max_tokens=16]")[0]);
    assert_eq!(
        a[0],
        plan::derive_seed(7, "small-a/p1[stream=true,max_tokens=16]")
    );
    assert!(a[0] < 1 << 31);
}

#[test]
fn same_suite_same_bytes() {
    let (_tree, s) = load();
    let one = serde_json::to_string(&plan::plan(&s, &Filter::default()).unwrap()).unwrap();
    let (_tree2, s2) = load();
    let two = serde_json::to_string(&plan::plan(&s2, &Filter::default()).unwrap()).unwrap();
    assert_eq!(one, two);
    assert_eq!(
        plan::render_text(&plan::plan(&s, &Filter::default()).unwrap()),
        plan::render_text(&plan::plan(&s2, &Filter::default()).unwrap())
    );
}

#[test]
fn filters_select_models_and_prompts_by_glob() {
    let (_tree, s) = load();
    let filter = Filter {
        models: vec!["small-*".into()],
        prompts: vec!["p2".into()],
        ..Filter::default()
    };
    let cells = plan::plan(&s, &filter).unwrap();
    assert_eq!(cells.len(), 3 * 6 + 3 * 6);
    assert!(
        cells
            .iter()
            .all(|c| &*c.prompt == "p2" && c.model().starts_with("small-"))
    );

    let err = plan::plan(
        &s,
        &Filter {
            models: vec!["gpt-*".into()],
            prompts: vec![],
            ..Filter::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--models gpt-* matches none of: small-a, small-b, big"
    );
}

/// The models and prompts a filter built from the command line keeps.
fn selected(filter: &Filter) -> (Vec<String>, Vec<String>) {
    let (_tree, s) = load();
    let cells = plan::plan(&s, filter).unwrap_or_else(|e| panic!("{e}"));
    let mut models: Vec<String> = cells.iter().map(|c| c.model().to_string()).collect();
    models.dedup();
    let mut prompts: Vec<String> = cells.iter().map(|c| c.prompt.to_string()).collect();
    prompts.sort();
    prompts.dedup();
    (models, prompts)
}

#[test]
fn comma_lists_and_repeated_flags_select_alike() {
    let no_env = |_: &str| None;
    let comma = Filter::from_args(&["small-a,big".into()], &[], None, &no_env);
    let repeated = Filter::from_args(&["small-a".into(), " big ".into()], &[], None, &no_env);
    assert_eq!(comma.models, ["small-a", "big"], "{comma:?}");
    assert_eq!(repeated.models, ["small-a", "big"], "{repeated:?}");
    assert_eq!(
        selected(&comma).0,
        ["small-a", "big"],
        "a comma list is the workshop's BENCH_MODELS form"
    );
    // A comma inside a glob's alternation does not split it.
    let braces = Filter::from_args(&["small-{a,b}".into(), "big,".into()], &[], None, &no_env);
    assert_eq!(braces.models, ["small-{a,b}", "big"], "{braces:?}");
    assert_eq!(selected(&braces).0, ["small-a", "small-b", "big"]);
}

#[test]
fn dyno_models_and_dyno_prompts_apply_when_the_flags_are_absent() {
    let env = |name: &str| match name {
        "DYNO_MODELS" => Some("big, small-b".to_string()),
        "DYNO_PROMPTS" => Some("p2".to_string()),
        _ => None,
    };
    let from_env = Filter::from_args(&[], &[], None, &env);
    assert_eq!(
        selected(&from_env),
        (vec!["small-b".into(), "big".into()], vec!["p2".into()]),
        "{from_env:?}"
    );
    // A flag wins over its variable; the other variable still applies.
    let flag = Filter::from_args(&["small-a".into()], &[], None, &env);
    assert_eq!(
        selected(&flag),
        (vec!["small-a".into()], vec!["p2".into()]),
        "{flag:?}"
    );
    // An error names the variable the globs came from.
    let wrong = |name: &str| (name == "DYNO_MODELS").then(|| "gpt-*".to_string());
    let (_tree, s) = load();
    let err = plan::plan(&s, &Filter::from_args(&[], &[], None, &wrong)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "DYNO_MODELS=gpt-* matches none of: small-a, small-b, big"
    );
}

/// The quickstart's shape (two models, each a server in two variants,
/// four prompts, one warmup and five measured rounds) with `max_tokens`
/// from 1 to `values`: 96 requests a value.
fn quickstart_with_max_tokens(values: u32) -> String {
    let list: Vec<String> = (1..=values).map(|n| n.to_string()).collect();
    format!(
        "\
name: huge
servers:
  smollm2: {{ command: [/absent/llama-server, --port, \"{{port}}\", --threads, \"{{threads}}\"], variants: {{ threads: [1, 2] }} }}
  gemma3: {{ command: [/absent/llama-server, --port, \"{{port}}\", --threads, \"{{threads}}\"], variants: {{ threads: [1, 2] }} }}
models:
  - {{ id: smollm2-135m, server: smollm2 }}
  - {{ id: gemma3-270m, server: gemma3 }}
prompts:
  - {{ id: rag, text: one }}
  - {{ id: privacy, text: two }}
  - {{ id: size-latency, text: three }}
  - {{ id: slm-vs-llm, text: four }}
defaults: {{ rounds: 5, warmup: 1 }}
matrix: {{ max_tokens: [{}] }}
",
        list.join(", ")
    )
}

#[test]
fn issue_23_a_plan_too_large_for_memory_is_refused_before_it_is_built_by_validate_plan_and_run() {
    let tree = Tree::new(&[("huge.yaml", &quickstart_with_max_tokens(100_000))]);
    let s = suite::load(&tree.path("huge.yaml"), &test_env).unwrap();
    let size = plan::footprint(&s, &Filter::default()).unwrap();
    println!("{size:?}");
    assert_eq!(size.requests, 9_600_000, "{size:?}");
    assert!(size.requests <= plan::MAX_REQUESTS, "{size:?}");
    assert!(size.bytes > plan::MAX_PLAN_BYTES, "{size:?}");
    // The figure follows the size of a planned cell, which grows with the
    // parameters a suite can set; the wording and the limit are fixed.
    let message = format!(
        "the plan of 9600000 requests would take about {} MiB of memory; dyno plans at most 1024 MiB (fewer matrix values, prompts or variants, shorter ids, or --models/--prompts to run a part)",
        size.bytes.div_ceil(1 << 20)
    );
    match plan::plan(&s, &Filter::default()) {
        Err(err @ plan::PlanError::TooMuchMemory { .. }) => {
            assert_eq!(err.to_string(), message, "{err}");
        }
        other => panic!("not refused: {:?}", other.map(|cells| cells.len())),
    }
    // Half of it, one model, fits and is what `--models` would plan.
    let one = Filter::from_args(&["smollm2-135m".into()], &[], None, &|_| None);
    let half = plan::footprint(&s, &one).unwrap();
    println!("{half:?}");
    assert!(half.check().is_ok(), "{half:?}");
    let huge = tree.path("huge.yaml");
    let out = tree.path("out");
    for args in [
        vec!["validate", huge.to_str().unwrap()],
        vec!["plan", huge.to_str().unwrap(), "--json"],
        vec![
            "run",
            huge.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_dyno"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = tree.anonymize(&String::from_utf8_lossy(&run.stderr));
        println!("{args:?}: {:?} {stderr}", run.status.code());
        assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&message), "{args:?}: {stderr}");
        assert!(
            run.stdout.is_empty(),
            "{args:?}: printed {} bytes",
            run.stdout.len()
        );
    }
    assert!(!out.exists(), "the refused run made {}", out.display());
}
