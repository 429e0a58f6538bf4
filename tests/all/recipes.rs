//! The recipes under `docs/recipes/` work as written: the GitHub Actions
//! workflows validate against the workflow schema (SchemaStore's, kept in
//! `tests/fixtures/schemastore/`), every `dyno` command in them parses, the
//! shards of a matrix or an indexed Job cover the plan exactly once, the
//! merge job merges what the matrix produced, and the docs quote each
//! recipe verbatim.

use std::collections::BTreeSet;
use std::process::Command as Shell;

use clap::Parser;
use dyno::cli::{Cli, Command};
use serde_json::Value;

use crate::repo_root;

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_saphyr::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every `dyno` command `script` runs, as argument lists, from a shell
/// where `dyno` records its arguments instead of running; `env` is set.
fn dyno_commands(script: &str, env: &[(&str, &str)]) -> Vec<Vec<String>> {
    let shim = "dyno() { printf 'dyno\\037'; for a in \"$@\"; do printf '%s\\037' \"$a\"; done; printf '\\036'; }\n";
    let out = Shell::new("sh")
        .arg("-c")
        .arg(format!("{shim}{script}"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\u{1e}')
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.split('\u{1f}')
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// The `dyno` lines of a workflow's `run:` steps, with `${{ matrix.KEY }}`
/// replaced by `value` and the pipes cut off.
fn workflow_lines(doc: &Value, job: &str, matrix: Option<(&str, &str)>) -> String {
    let steps = doc["jobs"][job]["steps"].as_array().unwrap();
    let mut lines = String::new();
    for line in steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .flat_map(str::lines)
    {
        let Some((_, rest)) = line.split_once("cargo run --release -- ") else {
            continue;
        };
        let mut command = format!("dyno {}", rest.split(" | ").next().unwrap());
        if let Some((key, value)) = matrix {
            command = command.replace(&format!("${{{{ matrix.{key} }}}}"), value);
        }
        assert!(!command.contains("${{"), "unexpanded: {command}");
        lines.push_str(&command);
        lines.push('\n');
    }
    lines
}

fn parsed(args: &[String]) -> Command {
    Cli::try_parse_from(args)
        .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"))
        .command
}

fn matrix(doc: &Value, job: &str, key: &str) -> Vec<String> {
    doc["jobs"][job]["strategy"]["matrix"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[test]
fn workflows_validate_against_the_github_actions_schema() {
    let schema: Value =
        serde_json::from_str(&read("tests/fixtures/schemastore/github-workflow.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    // The check has teeth: a job without `runs-on` is refused.
    let mut broken = yaml("docs/recipes/github-shards.yml");
    broken["jobs"]["merge"]
        .as_object_mut()
        .unwrap()
        .remove("runs-on");
    assert!(!validator.is_valid(&broken));
    for file in [
        "docs/recipes/github-shards.yml",
        "docs/recipes/github-fleet.yml",
    ] {
        let doc = yaml(file);
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:#?}");
        let recipe = read(file);
        assert!(
            read("docs/ci.md").contains(&recipe),
            "docs/ci.md does not quote {file}"
        );
    }
}

#[test]
fn the_shard_matrix_covers_the_plan_and_the_merge_job_takes_every_part() {
    let doc = yaml("docs/recipes/github-shards.yml");
    let values = matrix(&doc, "shard", "shard");
    let mut covered = BTreeSet::new();
    for value in &values {
        for args in dyno_commands(&workflow_lines(&doc, "shard", Some(("shard", value))), &[]) {
            if let Command::Run {
                shard: Some(spec), ..
            } = parsed(&args)
            {
                assert_eq!(spec.count, values.len(), "{args:?}");
                assert!(covered.insert(spec.index), "shard {} twice", spec.index);
            }
        }
    }
    assert_eq!(covered, (1..=values.len()).collect(), "{values:?}");
    let merges = dyno_commands(&workflow_lines(&doc, "merge", None), &[]);
    let merge = merges
        .iter()
        .find_map(|args| match parsed(args) {
            Command::Merge { results, fleet, .. } => Some((results, fleet)),
            _ => None,
        })
        .expect("the merge job runs dyno merge");
    let expected: Vec<std::path::PathBuf> = values
        .iter()
        .map(|v| format!("shards/shard-{v}").into())
        .collect();
    assert_eq!(merge, (expected, false));
    let compares = merges
        .iter()
        .filter(|args| matches!(parsed(args), Command::Compare { .. }))
        .count();
    assert_eq!(compares, 1, "{merges:?}");
}

#[test]
fn the_fleet_matrix_labels_every_device_and_merges_them_all() {
    let doc = yaml("docs/recipes/github-fleet.yml");
    let machines = matrix(&doc, "device", "machine");
    for machine in &machines {
        let runs = dyno_commands(
            &workflow_lines(&doc, "device", Some(("machine", machine))),
            &[],
        );
        let labels: Vec<Option<String>> = runs
            .iter()
            .filter_map(|args| match parsed(args) {
                Command::Run { machine, .. } => Some(machine),
                _ => None,
            })
            .collect();
        assert_eq!(labels, [Some(machine.clone())]);
    }
    let merges = dyno_commands(&workflow_lines(&doc, "fleet", None), &[]);
    let [args] = merges.as_slice() else {
        panic!("{merges:?}");
    };
    let Command::Merge {
        results: inputs,
        fleet,
        ..
    } = parsed(args)
    else {
        panic!("{args:?}");
    };
    assert!(fleet, "{args:?}");
    let expected: Vec<std::path::PathBuf> = machines
        .iter()
        .map(|m| format!("devices/device-{m}").into())
        .collect();
    assert_eq!(inputs, expected);
}

#[test]
fn the_indexed_job_gives_each_pod_its_own_shard() {
    let file = "docs/recipes/kubernetes-job.yaml";
    let doc = yaml(file);
    assert_eq!(doc["kind"], "Job");
    assert_eq!(doc["spec"]["completionMode"], "Indexed");
    let completions = doc["spec"]["completions"].as_u64().unwrap();
    assert_eq!(doc["spec"]["parallelism"].as_u64(), Some(completions));
    let container = &doc["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], serde_json::json!(["/bin/sh", "-c"]));
    let script = container["args"][0].as_str().unwrap();
    let resources = &container["resources"];
    assert_eq!(resources["requests"], resources["limits"], "Guaranteed QoS");
    let mut covered = BTreeSet::new();
    for index in 0..completions {
        let index = index.to_string();
        let commands = dyno_commands(
            script,
            &[("JOB_COMPLETION_INDEX", &index), ("NODE_NAME", "node-a")],
        );
        let [args] = commands.as_slice() else {
            panic!("{commands:?}");
        };
        let Command::Run {
            shard: Some(spec),
            machine,
            out,
            ..
        } = parsed(args)
        else {
            panic!("{args:?}");
        };
        assert_eq!(spec.count as u64, completions, "{args:?}");
        assert_eq!(machine.as_deref(), Some("node-a"));
        assert_eq!(
            out,
            Some(format!("/results/shard-{}", spec.index).into()),
            "{args:?}"
        );
        assert!(covered.insert(spec.index), "{args:?}");
    }
    assert_eq!(covered.len() as u64, completions);
    assert_eq!(covered.first(), Some(&1));
    assert!(
        read("docs/kubernetes.md").contains(&read(file)),
        "docs/kubernetes.md does not quote {file}"
    );
}
