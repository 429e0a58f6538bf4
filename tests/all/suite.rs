//! Suite loading: exact diagnostics for known mistakes, and the shipped suites.

use std::path::Path;

use dyno::suite::{self, ServedBy};

use crate::{Tree, repo_root, test_env};

pub(crate) const GOOD: &str = "\
name: t
endpoints:
  local:
    base_url: http://${DYNO_TEST_HOST}:8080/v1
models:
  - id: m1
    endpoint: local
prompts:
  - id: p1
    text: hello
defaults:
  rounds: 2
";

/// Loads `yaml` as `s.yaml` (with `extra` files beside it) and returns the
/// rendered diagnostics, with the temp dir shown as `DIR`.
fn errors(yaml: &str, extra: &[(&str, &str)]) -> String {
    errors_with(yaml, extra, &|file| suite::load(file, &test_env))
}

/// [`errors`] with `load` (`suite::load` or a variant).
pub(crate) fn errors_with(
    yaml: &str,
    extra: &[(&str, &str)],
    load: &dyn Fn(&Path) -> Result<suite::Suite, suite::SuiteError>,
) -> String {
    let mut files = vec![("s.yaml", yaml)];
    files.extend_from_slice(extra);
    let tree = Tree::new(&files);
    match load(&tree.path("s.yaml")) {
        Ok(_) => String::from("(valid)"),
        Err(err) => tree.anonymize(&err.render()),
    }
}

#[test]
fn good_suite_resolves_with_defaults() {
    let tree = Tree::new(&[("s.yaml", GOOD)]);
    let s = suite::load(&tree.path("s.yaml"), &test_env).unwrap();
    assert_eq!(
        s.endpoints["local"].base_url.as_deref(),
        Some("http://127.0.0.1:8080/v1")
    );
    let m = &s.models[0];
    assert_eq!(m.served_by, ServedBy::Endpoint("local".into()));
    assert_eq!(m.api_model, "m1");
    assert_eq!(
        (m.params.rounds, m.params.warmup, m.params.max_tokens),
        (2, 1, 128)
    );
    assert_eq!(s.outputs.dir, tree.path("results/t"));
}

#[test]
fn wrong_type() {
    let yaml = GOOD.replace("rounds: 2", "rounds: two");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: \"two\" is not of type \"integer\" at `defaults.rounds`
  --> DIR/s.yaml:12:11
   |
12 |   rounds: two
   |           ^^^
"
    );
}

#[test]
fn unknown_key() {
    let yaml = GOOD.replace(
        "    endpoint: local",
        "    endpoint: local\n    temprature: 0.2",
    );
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: unknown key `temprature` in `models[0]`
 --> DIR/s.yaml:8:5
  |
8 |     temprature: 0.2
  |     ^^^^^^^^^^
  = hint: allowed keys: capabilities, cold_start, context_window, download, endpoint, files, id, judge, license, load, model, params, server, size_mb, variants
"
    );
}

#[test]
fn undefined_endpoint() {
    let yaml = GOOD.replace("endpoint: local", "endpoint: foundry");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: endpoint `foundry` is not defined in this suite
 --> DIR/s.yaml:7:15
  |
7 |     endpoint: foundry
  |               ^^^^^^^
  = hint: defined endpoints: local
"
    );
}

#[test]
fn undefined_server() {
    let yaml = GOOD.replace("endpoint: local", "server: llama");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: server `llama` is not defined in this suite
 --> DIR/s.yaml:7:13
  |
7 |     server: llama
  |             ^^^^^
  = hint: no servers are defined
"
    );
}

#[test]
fn duplicate_model_id() {
    let yaml = GOOD.replace("prompts:", "  - id: m1\n    endpoint: local\nprompts:");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: duplicate model id `m1`
 --> DIR/s.yaml:8:9
  |
8 |   - id: m1
  |         ^^
"
    );
}

#[test]
fn duplicate_prompt_id_across_an_include() {
    let yaml = GOOD.replace("defaults:", "  - include: more/*.yaml\ndefaults:");
    let more = "- id: p2\n  text: a\n- id: p1\n  text: b\n";
    assert_eq!(
        errors(&yaml, &[("more/x.yaml", more)]),
        "\
error: duplicate prompt id `p1` (first defined at DIR/s.yaml:9)
 --> DIR/more/x.yaml:3:7
  |
3 | - id: p1
  |       ^^
"
    );
}

#[test]
fn bad_glob() {
    let yaml = GOOD.replace("defaults:", "  - include: \"prompts/[a-\"\ndefaults:");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: invalid glob `prompts/[a-`: unclosed character class; missing ']'
  --> DIR/s.yaml:11:14
   |
11 |   - include: \"prompts/[a-\"
   |              ^^^^^^^^^^^^^
"
    );
}

#[test]
fn include_matching_nothing() {
    let yaml = GOOD.replace("defaults:", "  - include: prompts/*.yaml\ndefaults:");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: `prompts/*.yaml` matches no file
  --> DIR/s.yaml:11:14
   |
11 |   - include: prompts/*.yaml
   |              ^^^^^^^^^^^^^^
   = hint: paths are relative to DIR
"
    );
}

#[test]
fn missing_variable() {
    let yaml = GOOD.replace("${DYNO_TEST_HOST}", "${DYNO_NOT_SET}");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: environment variable `DYNO_NOT_SET` is not set and has no default
 --> DIR/s.yaml:4:15
  |
4 |     base_url: http://${DYNO_NOT_SET}:8080/v1
  |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  = hint: export DYNO_NOT_SET=..., or give a default: ${DYNO_NOT_SET:-value}
"
    );
}

#[test]
fn invalid_yaml() {
    let yaml = GOOD.replace("  - id: p1", "  - id: [p1");
    let out = errors(&yaml, &[]);
    assert!(out.starts_with("error: invalid YAML: "), "{out}");
    assert!(out.contains(" --> DIR/s.yaml:"), "{out}");
}

#[test]
fn value_out_of_range() {
    let yaml = GOOD.replace("rounds: 2", "rounds: 0\n  temperature: 3.5");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: 0 is less than the minimum of 1 at `defaults.rounds`
  --> DIR/s.yaml:12:11
   |
12 |   rounds: 0
   |           ^
error: 3.5 is greater than the maximum of 2.0 at `defaults.temperature`
  --> DIR/s.yaml:13:16
   |
13 |   temperature: 3.5
   |                ^^^
"
        .replace("^\nerror", "^\n\nerror")
    );
}

#[test]
fn duplicate_key() {
    let yaml = GOOD.replace("name: t\n", "name: t\nname: u\n");
    let out = errors(&yaml, &[]);
    assert!(out.contains("duplicate"), "{out}");
    assert!(out.contains("DIR/s.yaml:2:"), "{out}");
}

#[test]
fn empty_prompt_set() {
    let yaml = GOOD
        .replace("  - id: p1\n    text: hello\n", "  []\n")
        .replace("prompts:\n  []", "prompts: []");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: [] has less than 1 item at `prompts`
 --> DIR/s.yaml:8:10
  |
8 | prompts: []
  |          ^
"
    );
}

#[test]
fn model_needs_exactly_one_target() {
    let yaml = GOOD.replace("    endpoint: local\n", "");
    assert_eq!(
        errors(&yaml, &[]),
        "\
error: model `m1` needs exactly one of `endpoint` or `server`
 --> DIR/s.yaml:6:5
  |
6 |   - id: m1
  |     ^
  = hint: defined endpoints: local
"
    );
}

#[test]
fn every_error_in_one_pass() {
    let yaml = GOOD
        .replace("rounds: 2", "rounds: two")
        .replace("models:", "colour: blue\nmodels:");
    let out = errors(&yaml, &[]);
    assert_eq!(out.matches("error: ").count(), 2, "{out}");
}

#[test]
fn shipped_suites_validate() {
    let dir = repo_root().join("suites");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let env = |name: &str| match name {
                "HOME" => Some("/home/u".to_string()),
                _ => None,
            };
            if let Err(err) = suite::load(&path, &env) {
                panic!("{}", err.render());
            }
            seen += 1;
        }
    }
    assert!(seen >= 2);
}

#[test]
fn committed_schemas_match_the_code() {
    use dyno::cli::SchemaKind;
    for (file, kind) in [
        ("suite.schema.json", SchemaKind::Suite),
        ("prompts.schema.json", SchemaKind::Prompts),
        ("results.schema.json", SchemaKind::Results),
    ] {
        let committed = std::fs::read_to_string(repo_root().join("schemas").join(file)).unwrap();
        assert_eq!(
            committed,
            dyno::cli::schema_text(kind),
            "schemas/{file} is stale: run `make schema`"
        );
    }
}

#[test]
fn recorded_suite_redacts_header_values() {
    let yaml = GOOD.replace(
        "    base_url:",
        "    headers: { Authorization: \"Bearer ${DYNO_TEST_HOST}-token\" }\n    base_url:",
    );
    let tree = Tree::new(&[("s.yaml", &yaml)]);
    let s = suite::load(&tree.path("s.yaml"), &test_env).unwrap();
    assert_eq!(
        s.endpoints["local"].headers["Authorization"],
        "Bearer 127.0.0.1-token"
    );
    let record = serde_json::to_string(&dyno::results::SuiteRecord::of(&s)).unwrap();
    assert!(!record.contains("127.0.0.1-token"), "{record}");
    assert!(record.contains("<redacted>"));
}

#[test]
fn compare_settings_resolve_from_percentages() {
    let yaml =
        format!("{GOOD}compare:\n  alpha: 0.01\n  noise: {{ ttft: 20%, tokens_per_s: 2.5% }}\n");
    let tree = Tree::new(&[("s.yaml", &yaml)]);
    let s = suite::load(&tree.path("s.yaml"), &test_env).unwrap();
    assert_eq!(s.compare.alpha, 0.01);
    assert!((s.compare.noise_ttft - 0.20).abs() < 1e-12);
    assert!((s.compare.noise_tokens_per_s - 0.025).abs() < 1e-12);
    assert_eq!(s.compare.noise_e2e, 0.10);

    let bad = format!("{GOOD}compare:\n  noise: {{ ttft: 0.2 }}\n");
    let out = errors(&bad, &[]);
    assert!(out.contains("at `compare.noise.ttft`"), "{out}");
}

#[test]
fn a_prompt_file_may_be_a_list_of_strings_with_ids_from_its_position() {
    let yaml = GOOD.replace("defaults:", "  - include: prompts.json\ndefaults:");
    let prompts = r#"["Explain RAG.", {"id": "named", "text": "Hi."}, "List 3 benefits."]"#;
    let tree = Tree::new(&[("s.yaml", &yaml), ("prompts.json", prompts)]);
    let s = suite::load(&tree.path("s.yaml"), &test_env)
        .unwrap_or_else(|e| panic!("{}", tree.anonymize(&e.render())));
    let loaded: Vec<(&str, &str)> = s
        .prompts
        .iter()
        .map(|p| (p.id.as_str(), p.messages[0].content.as_str()))
        .collect();
    assert_eq!(
        loaded,
        [
            ("p1", "hello"),
            ("prompts-1", "Explain RAG."),
            ("named", "Hi."),
            ("prompts-3", "List 3 benefits."),
        ]
    );
    // Neither a string nor a prompt object: an error at the item.
    assert_eq!(
        errors(&yaml, &[("prompts.json", "[\"a\", 3]\n")]),
        "\
error: 3 is not of type \"object\" at `[1]`
 --> DIR/prompts.json:1:7
  |
1 | [\"a\", 3]
  |       ^
"
    );
}

#[test]
fn a_server_may_take_its_port_from_env() {
    let server = |env: &str| {
        format!(
            "name: t\nservers:\n  s:\n    command: [my-server]\n{env}models:\n  - {{ id: m, server: s }}\nprompts:\n  - {{ id: p, text: hi }}\n"
        )
    };
    assert_eq!(
        errors(&server("    env: { PORT: \"{port}\" }\n"), &[]),
        "(valid)"
    );
    assert_eq!(
        errors(&server(""), &[]),
        "\
error: server `s` has no `{port}` in its command or env
 --> DIR/s.yaml:4:14
  |
4 |     command: [my-server]
  |              ^
  = hint: dyno picks a free port: pass it as `--port, \"{port}\"`, or in `env:` (e.g. `PORT: \"{port}\"`)
"
    );
}
