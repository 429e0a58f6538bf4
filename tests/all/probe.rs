//! `dyno check` and `dyno models` against the scripted `OpenAI` fixture and
//! the Foundry Local fixture (both generations): the library in-process,
//! the binary for exit codes.

use std::process::Output;
use std::time::Duration;

use dyno::probe::{self, CheckLine, Context, SourceKind, UrlKind};
use dyno::provider::foundry::{Discovered, DiscoverySource, Foundry, Generation, SystemCli};

use crate::foundry_fixture;
use crate::{Tree, fixture, repo_root, test_env};

const QWEN_GPU: &str = "qwen2.5-0.5b-instruct-cuda-gpu:4";
const QWEN_CPU: &str = "qwen2.5-0.5b-instruct-generic-cpu:4";

/// A `foundry` CLI that is not installed: every endpoint here has a URL.
fn no_cli() -> SystemCli {
    SystemCli {
        program: "/nonexistent/foundry-for-dyno-tests".into(),
        timeout: Duration::from_secs(5),
    }
}

async fn check(tree: &Tree) -> Vec<CheckLine> {
    let cli = no_cli();
    let ctx = Context {
        env: &test_env,
        foundry_cli: &cli,
    };
    probe::check(&tree.path("s.yaml"), &ctx)
        .await
        .unwrap_or_else(|e| panic!("{}", e.render()))
}

async fn dyno(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_dyno"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .await
        .unwrap()
}

fn whats(lines: &[CheckLine]) -> Vec<(bool, &str)> {
    lines.iter().map(|l| (l.ok, l.what.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_on_the_scripted_fixture() {
    let base = fixture::start().await;
    let suite = format!(
        "name: fx\nendpoints:\n  fx: {{ base_url: \"{base}\" }}\nmodels:\n  - {{ id: timetable, endpoint: fx }}\nprompts:\n  - {{ id: p, text: Hi. }}\n"
    );
    let tree = Tree::new(&[("s.yaml", &suite)]);
    let lines = check(&tree).await;
    let file = tree.path("s.yaml").display().to_string();
    assert_eq!(
        whats(&lines),
        vec![
            (true, format!("suite {file} loads").as_str()),
            (true, "endpoint fx reachable"),
            (true, "model timetable listed by fx"),
            (true, "probe chat timetable"),
        ],
        "{}",
        probe::render_check_text(&lines)
    );
    assert_eq!(lines[0].detail, "1 endpoint, 0 servers, 1 model");
    assert_eq!(
        lines[1].detail,
        format!("{base}, {} models", fixture::MODELS.len())
    );
    assert_eq!(lines[2].detail, "`timetable` is in /v1/models");
    // One token, not streamed: the fixture's usage says 1.
    assert!(
        lines[3].detail.starts_with("1 token in "),
        "{}",
        lines[3].detail
    );
    assert!(probe::all_passed(&lines));

    let out = dyno(&["check", &file]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "4 checks: 4 passed, 0 failed\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_an_unreachable_endpoint_and_an_unknown_model() {
    let base = fixture::start().await;
    let suite = format!(
        r#"name: broken
endpoints:
  fx: {{ base_url: "{base}" }}
  down: {{ base_url: "http://127.0.0.1:9/v1" }}
models:
  - {{ id: timetable, endpoint: fx }}
  - {{ id: nope, endpoint: fx }}
  - {{ id: lost, endpoint: down }}
prompts:
  - {{ id: p, text: Hi. }}
"#
    );
    let tree = Tree::new(&[("s.yaml", &suite)]);
    let lines = check(&tree).await;
    let text = probe::render_check_text(&lines);
    let failures: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    let listed: Vec<String> = fixture::MODELS[..10]
        .iter()
        .map(|m| format!("`{m}`"))
        .collect();
    assert_eq!(
        failures,
        vec![
            "FAIL  endpoint down reachable: cannot reach http://127.0.0.1:9/v1/models: Connection refused (os error 111); check that the server is running and that the URL (`base_url`) is right".to_string(),
            format!(
                "FAIL  model nope listed by fx: `nope` is not in /v1/models, which lists {} and {} more; set the model's `model` to one of them",
                listed.join(", "),
                fixture::MODELS.len() - 10
            ),
            "FAIL  model lost listed by down: not checked: endpoint `down` is unreachable".to_string(),
            "FAIL  probe chat nope: HTTP 404: model 'nope' not found".to_string(),
            "FAIL  probe chat lost: not sent: endpoint `down` is unreachable".to_string(),
        ],
        "{text}"
    );
    // The rest still passes.
    assert_eq!(lines.iter().filter(|l| l.ok).count(), 4, "{text}");

    let file = tree.path("s.yaml").display().to_string();
    let out = dyno(&["check", &file]).await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let binary_failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(binary_failures, failures);
    let json = dyno(&["check", &file, "--json"]).await;
    assert_eq!(json.status.code(), Some(1));
    let doc: Vec<CheckLine> = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc.iter().filter(|l| !l.ok).count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_of_a_broken_suite_prints_its_diagnostics_with_exit_2() {
    let tree = Tree::new(&[("s.yaml", "name: x\nmodels: 3\n")]);
    let out = dyno(&["check", tree.path("s.yaml").to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = tree.anonymize(&String::from_utf8_lossy(&out.stderr));
    assert!(stderr.contains("--> DIR/s.yaml:2:9"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_the_fixture_url() {
    let base = fixture::start().await;
    let cli = no_cli();
    let ctx = Context {
        env: &test_env,
        foundry_cli: &cli,
    };
    let inventory = probe::list_url(&base, UrlKind::Openai, &ctx).await;
    assert!(inventory.errors.is_empty(), "{:?}", inventory.errors);
    let ids: Vec<&str> = inventory.models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, fixture::MODELS);
    assert!(
        inventory
            .models
            .iter()
            .all(|m| m.kind == SourceKind::Openai)
    );
    let text = probe::render_models_text(&inventory.models);
    let width = base.len();
    assert!(
        text.starts_with(&format!(
            "{:<width$}  KIND    MODEL\n{base}  openai  timetable\n",
            "SOURCE"
        )),
        "{text}"
    );

    // Without `/v1` too, and through the binary.
    let root = base.trim_end_matches("/v1");
    let out = dyno(&["models", root, "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["models"].as_array().unwrap().len(),
        fixture::MODELS.len()
    );
    assert_eq!(doc["errors"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_of_an_unreachable_url_is_exit_2_with_the_reason() {
    let out = dyno(&["models", "http://127.0.0.1:9/v1"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: http://127.0.0.1:9/v1: cannot reach http://127.0.0.1:9/v1/models: Connection refused (os error 111); check that the server is running and that the URL (`base_url`) is right\n"
    );
    let out = dyno(&["models", "not-a-target"]).await;
    assert_eq!(out.status.code(), Some(2));
}

/// `cells` padded to `widths`, two spaces apart, as a table row.
fn row(cells: &[&str], widths: &[usize]) -> String {
    let padded: Vec<String> = cells
        .iter()
        .zip(widths)
        .map(|(cell, width)| format!("{cell:<width$}"))
        .collect();
    padded.join("  ").trim_end().to_string() + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_the_foundry_catalog_on_both_generations() {
    let catalog = [
        (
            QWEN_GPU,
            "qwen2.5-0.5b",
            "gpu",
            "CUDAExecutionProvider",
            "528",
            "apache-2.0",
        ),
        (
            QWEN_CPU,
            "qwen2.5-0.5b",
            "cpu",
            "CPUExecutionProvider",
            "822",
            "apache-2.0",
        ),
        (
            "Phi-4-mini-instruct-qnn-npu:2",
            "phi-4-mini",
            "npu",
            "QNNExecutionProvider",
            "2560",
            "MIT",
        ),
        (
            "Phi-4-mini-instruct-cuda-gpu:5",
            "phi-4-mini",
            "gpu",
            "CUDAExecutionProvider",
            "3768",
            "MIT",
        ),
        (
            "Phi-4-mini-instruct-generic-cpu:5",
            "phi-4-mini",
            "cpu",
            "CPUExecutionProvider",
            "4915",
            "MIT",
        ),
    ];
    for generation in [Generation::Service, Generation::Core] {
        let fx = foundry_fixture::start(generation, &[QWEN_CPU]).await;
        let out = dyno(&["models", &fx.base_url, "--kind", "foundry"]).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The core web service cannot list its cache: no STATE column.
        let with_state = generation == Generation::Service;
        let widths = [fx.base_url.len(), 7, 35, 12, 6, 21, 7, 10, 10];
        let mut header = vec![
            "SOURCE", "KIND", "MODEL", "ALIAS", "DEVICE", "EP", "SIZE MB", "LICENCE",
        ];
        if with_state {
            header.push("STATE");
        }
        let mut expected = row(&header, &widths);
        for (id, alias, device, ep, mb, licence) in catalog {
            let state = if id == QWEN_CPU {
                "cached"
            } else {
                "not cached"
            };
            let mut cells = vec![
                fx.base_url.as_str(),
                "foundry",
                id,
                alias,
                device,
                ep,
                mb,
                licence,
            ];
            if with_state {
                cells.push(state);
            }
            expected.push_str(&row(&cells, &widths));
        }
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "{generation:?}"
        );
        // Without `--kind`: the first generation lists only what is cached
        // at `/v1/models`, the core service every variant as Microsoft's;
        // either way the URL is recognized as Foundry Local.
        let guessed = dyno(&["models", &fx.base_url]).await;
        assert_eq!(
            (
                guessed.status.code(),
                String::from_utf8_lossy(&guessed.stdout)
            ),
            (Some(0), expected.as_str().into()),
            "{generation:?}: {}",
            String::from_utf8_lossy(&guessed.stderr)
        );

        let cli = no_cli();
        let ctx = Context {
            env: &test_env,
            foundry_cli: &cli,
        };
        let inventory = probe::list_url(&fx.base_url, UrlKind::Foundry, &ctx).await;
        let cpu = &inventory.models[1];
        assert_eq!(cpu.kind, SourceKind::Foundry);
        assert_eq!(cpu.size_mb, Some(822.0));
        assert_eq!(cpu.loaded, Some(false));
        assert_eq!(cpu.cached, with_state.then_some(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_of_a_foundry_url_with_nothing_cached_lists_its_catalog_without_kind() {
    // Its `/v1/models` lists nothing: "no models listed" would be a lie.
    let fx = foundry_fixture::start(Generation::Service, &[]).await;
    let out = dyno(&["models", &fx.base_url, "--json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = doc["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["foundry"; 5], "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_resolves_loads_chats_and_unloads_a_foundry_model() {
    for generation in [Generation::Service, Generation::Core] {
        let fx = foundry_fixture::start(generation, &[QWEN_GPU]).await;
        let suite = format!(
            r#"name: foundry
endpoints:
  foundry: {{ kind: foundry, base_url: "{}/v1" }}
models:
  - {{ id: qwen, endpoint: foundry, model: qwen2.5-0.5b }}
prompts:
  - {{ id: p, text: Hi. }}
"#,
            fx.base_url
        );
        let tree = Tree::new(&[("s.yaml", &suite)]);
        let lines = check(&tree).await;
        let text = probe::render_check_text(&lines);
        assert!(probe::all_passed(&lines), "{generation:?}:\n{text}");
        assert_eq!(
            lines[1].detail,
            format!(
                "{}, {generation}, found via suite `base_url`, 5 catalog variants",
                fx.base_url
            )
        );
        let resolved = format!("`qwen2.5-0.5b` → `{QWEN_GPU}` (gpu, CUDAExecutionProvider)");
        assert_eq!(
            lines[2].detail,
            match generation {
                Generation::Service => format!("{resolved}, cached"),
                Generation::Core => format!(
                    "{resolved}; the core web service cannot list its cache, the probe load tells"
                ),
            }
        );
        let probe = &lines[3].detail;
        assert!(
            probe.starts_with(&format!("loaded `{QWEN_GPU}` in ")) && probe.ends_with(", unloaded"),
            "{probe}"
        );
        assert!(probe.contains(", 4 tokens in "), "{probe}");

        let service = Foundry::connect(&Discovered {
            base_url: fx.base_url.clone(),
            source: DiscoverySource::Suite,
            pid: None,
        })
        .await
        .unwrap();
        assert!(service.loaded().await.unwrap().is_empty(), "left loaded");

        // A model that was loaded before is loaded cold for the probe, and
        // stays loaded.
        service.load(QWEN_GPU).await.unwrap();
        let lines = check(&tree).await;
        let probe = &lines[3].detail;
        assert!(
            probe.starts_with(&format!(
                "`{QWEN_GPU}` was loaded; unloaded, then loaded in "
            )) && probe.ends_with(", left loaded, as it was before"),
            "{probe}"
        );
        assert!(service.is_loaded(QWEN_GPU).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_foundry_models_that_are_not_cached_or_unknown() {
    let fx = foundry_fixture::start(Generation::Service, &[]).await;
    let suite = format!(
        r#"name: foundry
endpoints:
  foundry: {{ kind: foundry, base_url: "{}" }}
models:
  - {{ id: phi, endpoint: foundry, model: phi-4-mini }}
  - {{ id: qwen, endpoint: foundry, model: qwen2.5-0.5b-instruct-generic-cpu }}
  - {{ id: llama, endpoint: foundry, model: llama-70b }}
prompts:
  - {{ id: p, text: Hi. }}
"#,
        fx.base_url
    );
    let tree = Tree::new(&[("s.yaml", &suite)]);
    let text = probe::render_check_text(&check(&tree).await);
    let failures: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(
        failures,
        vec![
            "FAIL  model phi listed by foundry: `phi-4-mini` → `Phi-4-mini-instruct-qnn-npu:2` (npu, QNNExecutionProvider) is not cached; run `foundry model download Phi-4-mini-instruct-qnn-npu:2`",
            "FAIL  model qwen listed by foundry: `qwen2.5-0.5b-instruct-generic-cpu` → `qwen2.5-0.5b-instruct-generic-cpu:4` (cpu, CPUExecutionProvider) is not cached; run `foundry model download qwen2.5-0.5b-instruct-generic-cpu:4`",
            "FAIL  model llama listed by foundry: unknown Foundry Local model `llama-70b`; available aliases: `phi-4-mini`, `qwen2.5-0.5b`",
            "FAIL  probe chat phi: not sent: model `phi` (variant `Phi-4-mini-instruct-qnn-npu:2`) is not cached; run `foundry model download Phi-4-mini-instruct-qnn-npu:2` or set `download: true`",
            "FAIL  probe chat qwen: not sent: model `qwen` (variant `qwen2.5-0.5b-instruct-generic-cpu:4`) is not cached; run `foundry model download qwen2.5-0.5b-instruct-generic-cpu:4` or set `download: true`",
            "FAIL  probe chat llama: not sent: unknown Foundry Local model `llama-70b`; available aliases: `phi-4-mini`, `qwen2.5-0.5b`",
        ],
        "{text}"
    );
}

/// A managed server (Python's static file server, ready once `/health`
/// exists) starts, answers the probe chat with an error, and is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_starts_and_stops_a_managed_server() {
    let tree = Tree::new(&[("www/health", "ok\n"), ("www/model.bin", "weights")]);
    let www = tree.path("www").display().to_string();
    let suite = format!(
        r#"name: served
servers:
  web:
    command: [python3, -m, http.server, "{{port}}", --bind, 127.0.0.1, --directory, "{www}"]
  idle:
    command: [python3, -m, http.server, "{{port}}"]
models:
  - {{ id: web, server: web, files: [www/model.bin] }}
prompts:
  - {{ id: p, text: Hi. }}
"#
    );
    std::fs::write(tree.path("s.yaml"), suite).unwrap();
    let lines = check(&tree).await;
    let text = probe::render_check_text(&lines);
    assert_eq!(
        whats(&lines)[1..],
        [
            (true, "model web files on disk"),
            (true, "server idle"),
            (true, "server web starts"),
            (false, "probe chat web"),
        ],
        "{text}"
    );
    assert_eq!(
        tree.anonymize(&lines[1].detail),
        "DIR/www/model.bin, 7 bytes"
    );
    assert_eq!(lines[2].detail, "not started: no model uses it");
    assert!(lines[4].detail.starts_with("HTTP 501"), "{text}");
    // The server is gone once the check is over.
    let url = lines[3].detail.rsplit(" at ").next().unwrap();
    let url = url.trim_end_matches("/v1");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let after = reqwest::Client::new()
        .get(format!("{url}/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "the server still answers at {url}");
}

/// The example adapter, named by a path relative to the working directory
/// (it runs in its suite's directory, so its weights path must not be).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_starts_the_example_adapter_and_generates_one_token() {
    let out = dyno(&["check", "examples/adapter/suite.yaml"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[2],
        "pass  model echo listed by echo (weights examples/adapter/weights.txt, 170 bytes)"
    );
    assert!(
        lines[3].starts_with("pass  probe chat echo (adapter loaded in ")
            && lines[3].contains(", 1 token in "),
        "{stdout}"
    );
}
