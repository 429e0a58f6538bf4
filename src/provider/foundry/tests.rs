//! Foundry Local: parsing, resolution and discovery against sample outputs.
#![allow(clippy::unnecessary_wraps)] // the fake CLI answers with Results, as the real one does

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

// --- sample CLI outputs ---------------------------------------------------

const SERVER_STATUS_JSON: &str = r#"{
  "status": "Running",
  "pid": 23140,
  "webUrls": ["http://127.0.0.1:61823/"],
  "modelCachePath": "C:\\Users\\me\\.foundry\\cache\\models"
}"#;

const SERVER_STATUS_STOPPED: &str = r#"{"status":"Stopped","pid":null,"webUrls":[]}"#;

const SERVICE_STATUS_RUNNING: &str =
    "🟢 Model management service is running on http://127.0.0.1:5273/openai/status\n";

const SERVICE_STATUS_STOPPED: &str = "🔴 Model management service is not running!\nTo start the service, run the following command: foundry service start\n";

const UNKNOWN_SUBCOMMAND: &str = "Unrecognized command or argument 'server'.\n";

/// A [`CliRunner`] replaying recorded outputs, keyed by joined args.
struct FakeCli {
    outputs: HashMap<String, Result<CliOutput, CliError>>,
    calls: Mutex<Vec<String>>,
}

impl FakeCli {
    fn new(entries: &[(&str, Result<CliOutput, CliError>)]) -> Self {
        FakeCli {
            outputs: entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            calls: Mutex::new(Vec::new()),
        }
    }

    fn absent() -> Self {
        Self::new(&[
            ("server status -o json", Err(CliError::NotFound)),
            ("service status", Err(CliError::NotFound)),
        ])
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl CliRunner for FakeCli {
    fn run<'a>(&'a self, args: &'a [&'a str]) -> BoxFuture<'a, Result<CliOutput, CliError>> {
        let key = args.join(" ");
        self.calls.lock().unwrap().push(key.clone());
        let result = self
            .outputs
            .get(&key)
            .cloned()
            .unwrap_or_else(|| Err(CliError::Io(format!("unexpected call `{key}`"))));
        Box::pin(async move { result })
    }
}

fn ok(stdout: &str) -> Result<CliOutput, CliError> {
    Ok(CliOutput {
        success: true,
        stdout: stdout.to_string(),
        stderr: String::new(),
    })
}

fn failed(stderr: &str) -> Result<CliOutput, CliError> {
    Ok(CliOutput {
        success: false,
        stdout: String::new(),
        stderr: stderr.to_string(),
    })
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// The catalog the Foundry Local fixture of the integration tests serves.
fn sample_catalog() -> Vec<Value> {
    serde_json::from_str(include_str!("../../../tests/fixtures/foundry-catalog.json")).unwrap()
}

// --- pure parsing -----------------------------------------------------------

#[test]
fn normalize_accepts_v1_and_trailing_slashes() {
    for input in [
        "http://127.0.0.1:5273",
        "http://127.0.0.1:5273/",
        "http://127.0.0.1:5273/v1",
        "http://127.0.0.1:5273/v1/",
        " 127.0.0.1:5273/v1 ",
        "http://127.0.0.1:5273/openai/status",
    ] {
        assert_eq!(
            normalize_base_url(input).unwrap(),
            "http://127.0.0.1:5273",
            "{input}"
        );
    }
    assert_eq!(
        normalize_base_url("http://localhost:5273/proxy/v1").unwrap(),
        "http://localhost:5273/proxy"
    );
    assert!(normalize_base_url("").is_err());
    assert!(normalize_base_url("ftp://host:1").is_err());
    assert!(normalize_base_url("http://h:1/v1?x=1").is_err());
}

#[test]
fn server_status_json_samples() {
    assert_eq!(
        parse_server_status_json(SERVER_STATUS_JSON).as_deref(),
        Some("http://127.0.0.1:61823")
    );
    assert_eq!(parse_server_status_json(SERVER_STATUS_STOPPED), None);
    // Log lines around the JSON, a string instead of an array, nesting,
    // and a wildcard bind address.
    let noisy = "Checking service...\n{\"server\":{\"webUrls\":\"http://0.0.0.0:5280\"}}\nDone.";
    assert_eq!(
        parse_server_status_json(noisy).as_deref(),
        Some("http://127.0.0.1:5280")
    );
    let two = r#"{"webUrls":["not a url","http://[::]:6000","http://localhost:6000"]}"#;
    assert_eq!(
        parse_server_status_json(two).as_deref(),
        Some("http://127.0.0.1:6000")
    );
    assert_eq!(parse_server_status_json(UNKNOWN_SUBCOMMAND), None);
}

#[test]
fn service_status_text_samples() {
    assert_eq!(
        parse_service_status_text(SERVICE_STATUS_RUNNING).as_deref(),
        Some("http://127.0.0.1:5273")
    );
    assert_eq!(parse_service_status_text(SERVICE_STATUS_STOPPED), None);
    let quoted = "Service is Started on http://localhost:5272/, PID 1234.";
    assert_eq!(
        parse_service_status_text(quoted).as_deref(),
        Some("http://localhost:5272")
    );
}

#[test]
fn catalog_parses_both_shapes_and_derives_missing_fields() {
    let service = parse_catalog(&Value::Array(sample_catalog()));
    assert_eq!(service.len(), 5);
    let cpu = &service[1];
    assert_eq!(cpu.id, "qwen2.5-0.5b-instruct-generic-cpu:4");
    assert_eq!(cpu.alias, "qwen2.5-0.5b");
    assert_eq!(cpu.device, Device::Cpu);
    assert_eq!(cpu.execution_provider, "CPUExecutionProvider");
    assert_eq!(cpu.file_size_mb, Some(822.0));
    assert_eq!(cpu.license.as_deref(), Some("apache-2.0"));
    assert_eq!(cpu.task, "chat-completion");

    // An OpenAI list with ids only: device and alias come from the id.
    let bare = json!({"object": "list", "data": [
        {"id": "Phi-4-mini-instruct-trt-rtx-gpu:1", "object": "model"},
        {"id": "qwen2.5-0.5b-instruct-generic-cpu:4", "object": "model"},
        {"id": "mystery-model", "object": "model"},
        {"object": "model"}
    ]});
    let parsed = parse_catalog(&bare);
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed[0].device, Device::Gpu);
    assert_eq!(parsed[0].alias, "Phi-4-mini-instruct");
    assert_eq!(parsed[1].alias, "qwen2.5-0.5b-instruct");
    assert_eq!(parsed[2].device, Device::Other("unknown".into()));
    assert_eq!(parsed[2].alias, "mystery-model");
    assert_eq!(parsed[2].execution_provider, "");

    let wrapped = json!({"models": sample_catalog()});
    assert_eq!(parse_catalog(&wrapped), service);
}

#[test]
fn same_variant_ignores_case_and_a_missing_version() {
    assert!(same_variant(
        "Phi-4-mini-instruct-generic-cpu",
        "Phi-4-mini-instruct-generic-cpu:5"
    ));
    assert!(same_variant(
        "phi-4-mini-instruct-generic-cpu:5",
        "Phi-4-mini-instruct-generic-cpu:5"
    ));
    assert!(!same_variant("x-generic-cpu:4", "x-generic-cpu:5"));
    assert!(!same_variant("x-generic-cpu", "x-cuda-gpu"));
}

#[test]
fn download_body_carries_versioned_name_and_provider() {
    let mut item = sample_catalog()[1].clone();
    item["name"] = json!("qwen2.5-0.5b-instruct-generic-cpu");
    let body = download_body(&item);
    assert_eq!(body["model"]["Name"], "qwen2.5-0.5b-instruct-generic-cpu:4");
    assert_eq!(body["model"]["ProviderType"], "AzureFoundryLocal");
    assert_eq!(body["ignorePipeReport"], true);
    assert!(
        body["model"]["Uri"]
            .as_str()
            .unwrap()
            .starts_with("azureml://")
    );
}

fn run_parser(chunks: &[&str]) -> (Vec<f64>, Result<(), String>) {
    let mut seen = Vec::new();
    let mut parser = ProgressParser::new();
    for chunk in chunks {
        parser.push(chunk.as_bytes(), &mut |p| seen.push(p));
    }
    let result = parser.finish(&mut |p| seen.push(p));
    (seen, result)
}

#[test]
fn progress_parser_reads_percent_lines_split_across_chunks() {
    let (seen, result) = run_parser(&[
        "Total 0.00% Downloading a\r",
        "Total 3",
        "3.5% Downloading b\rTotal 33.5% again\r",
        "Total 90% \n{\"Success\": true, \"ErrorMessage\": null}",
    ]);
    assert_eq!(result, Ok(()));
    assert_eq!(seen, vec![0.0, 33.5, 90.0, 100.0]);
}

#[test]
fn progress_parser_reads_documented_tuples() {
    let (seen, result) = run_parser(&[
        "(\"genai_config.json\", 0.01)\n(\"model.onnx.data\", 0.",
        "5)\n(\"\", 1)\n",
        "{\"success\":true,\"errorMessage\":null}",
    ]);
    assert_eq!(result, Ok(()));
    assert_eq!(seen, vec![1.0, 50.0, 100.0]);
}

#[test]
fn progress_parser_reports_failures() {
    let (_, result) = run_parser(&[
        "Total 10% x\r",
        "{\"success\":false,\"errorMessage\":\"disk 100% full\"}",
    ]);
    assert_eq!(result, Err("disk 100% full".to_string()));
    let (_, result) = run_parser(&["Total 10% x\r"]);
    assert!(
        result
            .unwrap_err()
            .contains("ended without a result at 10%")
    );
}

// --- resolution -------------------------------------------------------------

fn catalog() -> Vec<CatalogEntry> {
    parse_catalog(&Value::Array(sample_catalog()))
}

#[test]
fn alias_resolves_to_requested_device() {
    let entry = resolve(&catalog(), "qwen2.5-0.5b", Some(&Device::Cpu)).unwrap();
    assert_eq!(entry.id, "qwen2.5-0.5b-instruct-generic-cpu:4");
    let entry = resolve(&catalog(), "PHI-4-MINI", Some(&Device::Gpu)).unwrap();
    assert_eq!(entry.id, "Phi-4-mini-instruct-cuda-gpu:5");
}

#[test]
fn a_missing_device_names_the_variants_key() {
    let err = resolve(&catalog(), "qwen2.5-0.5b", Some(&Device::Npu)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("alias `qwen2.5-0.5b` has no npu variant (it has: ")
            && message.ends_with(
                "list only those in the model's `variants`, or remove `variants` to let dyno pick"
            ),
        "{message}"
    );
}

#[test]
fn alias_without_device_prefers_npu_then_gpu_then_cpu() {
    assert_eq!(
        resolve(&catalog(), "phi-4-mini", None).unwrap().device,
        Device::Npu
    );
    assert_eq!(
        resolve(&catalog(), "qwen2.5-0.5b", None).unwrap().device,
        Device::Gpu
    );
    let cpu_only: Vec<CatalogEntry> = catalog()
        .into_iter()
        .filter(|e| e.device == Device::Cpu)
        .collect();
    assert_eq!(
        resolve(&cpu_only, "qwen2.5-0.5b", None).unwrap().device,
        Device::Cpu
    );
}

#[test]
fn exact_variant_id_wins() {
    let cat = catalog();
    assert_eq!(
        resolve(&cat, "Phi-4-mini-instruct-generic-cpu:5", None)
            .unwrap()
            .device,
        Device::Cpu
    );
    assert_eq!(
        resolve(&cat, "phi-4-mini-instruct-generic-cpu", Some(&Device::Cpu))
            .unwrap()
            .id,
        "Phi-4-mini-instruct-generic-cpu:5"
    );
    let err = resolve(
        &cat,
        "Phi-4-mini-instruct-generic-cpu:5",
        Some(&Device::Gpu),
    )
    .unwrap_err();
    assert!(matches!(err, FoundryError::DeviceMismatch { .. }), "{err}");
    assert!(err.to_string().contains("alias `phi-4-mini`"), "{err}");
}

#[test]
fn unknown_model_lists_close_or_all_aliases() {
    let err = resolve(&catalog(), "phi-4-mni", None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("did you mean `phi-4-mini`"), "{text}");
    let err = resolve(&catalog(), "llama-70b", None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("available aliases: `phi-4-mini`, `qwen2.5-0.5b`"),
        "{text}"
    );
    let err = resolve(&catalog(), "qwen2.5-0.5b", Some(&Device::Npu)).unwrap_err();
    assert!(
        err.to_string()
            .contains("has no npu variant (it has: gpu, cpu)"),
        "{err}"
    );
}

#[test]
fn device_serde_round_trip() {
    let devices: Vec<Device> = serde_json::from_str(r#"["cpu","GPU","npu","fpga"]"#).unwrap();
    assert_eq!(
        devices,
        vec![
            Device::Cpu,
            Device::Gpu,
            Device::Npu,
            Device::Other("fpga".into())
        ]
    );
    assert_eq!(
        serde_json::to_string(&devices).unwrap(),
        r#"["cpu","gpu","npu","fpga"]"#
    );
}

// --- discovery --------------------------------------------------------------

#[tokio::test]
async fn discovery_order_suite_env_server_service() {
    let cli = FakeCli::new(&[
        ("server status -o json", ok(SERVER_STATUS_JSON)),
        ("service status", ok(SERVICE_STATUS_RUNNING)),
    ]);
    let env = |k: &str| (k == ENDPOINT_ENV).then(|| "http://127.0.0.1:7000/v1/".to_string());

    let d = discover(Some("http://127.0.0.1:9000/v1"), &env, &cli)
        .await
        .unwrap();
    assert_eq!(
        d,
        Discovered {
            base_url: "http://127.0.0.1:9000".into(),
            source: DiscoverySource::Suite,
            pid: None
        }
    );

    let d = discover(None, &env, &cli).await.unwrap();
    assert_eq!(
        d,
        Discovered {
            base_url: "http://127.0.0.1:7000".into(),
            source: DiscoverySource::Env,
            pid: None
        }
    );
    assert!(cli.calls().is_empty(), "explicit URLs must not run the CLI");

    let d = discover(None, &no_env, &cli).await.unwrap();
    assert_eq!(
        d,
        Discovered {
            base_url: "http://127.0.0.1:61823".into(),
            source: DiscoverySource::ServerStatus,
            pid: Some(23140)
        }
    );

    // Older CLI: no `server` subcommand, so fall back to the status text.
    let old = FakeCli::new(&[
        ("server status -o json", failed(UNKNOWN_SUBCOMMAND)),
        ("service status", ok(SERVICE_STATUS_RUNNING)),
    ]);
    let d = discover(None, &no_env, &old).await.unwrap();
    assert_eq!(
        d,
        Discovered {
            base_url: "http://127.0.0.1:5273".into(),
            source: DiscoverySource::ServiceStatus,
            pid: None
        }
    );
    assert_eq!(old.calls(), vec!["server status -o json", "service status"]);
}

#[tokio::test]
async fn discovery_errors_list_what_was_tried() {
    let err = discover(None, &no_env, &FakeCli::absent())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, FoundryError::NotFound { .. }));
    assert!(text.starts_with("Foundry Local not found"), "{text}");
    for needle in [
        "suite `base_url`: not set",
        "FOUNDRY_LOCAL_ENDPOINT: not set",
        "`foundry server status -o json`: `foundry` is not installed",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }

    let stopped = FakeCli::new(&[
        ("server status -o json", ok(SERVER_STATUS_STOPPED)),
        ("service status", failed(SERVICE_STATUS_STOPPED)),
    ]);
    let err = discover(None, &no_env, &stopped).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, FoundryError::NotRunning { .. }), "{text}");
    assert!(
        text.contains("`foundry service start`") && text.contains("`foundry service status`"),
        "{text}"
    );

    let err = discover(Some("ftp://x"), &no_env, &FakeCli::absent())
        .await
        .unwrap_err();
    assert!(matches!(err, FoundryError::InvalidUrl { .. }), "{err}");
}

#[tokio::test]
async fn system_cli_reports_a_missing_binary() {
    let cli = SystemCli {
        program: "/nonexistent/foundry-for-dyno-tests".into(),
        timeout: Duration::from_secs(5),
    };
    assert_eq!(
        cli.run(&["service", "status"]).await,
        Err(CliError::NotFound)
    );
    let err = discover(None, &no_env, &cli).await.unwrap_err();
    assert!(matches!(err, FoundryError::NotFound { .. }), "{err}");
}

/// dyno may run these on spawned tasks.
#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let cli = SystemCli::default();
    let discovered = Discovered {
        base_url: "http://127.0.0.1:1".into(),
        source: DiscoverySource::Suite,
        pid: None,
    };
    assert_send(&discover(None, &no_env, &cli));
    assert_send(&Foundry::connect(&discovered));
    let foundry = Foundry::with_generation(
        "http://127.0.0.1:1",
        Generation::Service,
        reqwest::Client::new(),
    );
    let mut progress = |_: f64| {};
    assert_send(&foundry.download("x", &mut progress));
    assert_send(&foundry.load("x"));
    assert_send(&foundry.catalog());
}

#[tokio::test]
async fn connect_errors_are_specific() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let closed = Discovered {
        base_url: format!("http://127.0.0.1:{port}"),
        source: DiscoverySource::Suite,
        pid: None,
    };
    let err = Foundry::connect(&closed).await.unwrap_err();
    assert!(matches!(err, FoundryError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains("`foundry service status`"),
        "{err}"
    );

    // Something that is not Foundry Local: an axum app with no routes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, axum::Router::new()).await.unwrap();
    });
    let other = Discovered {
        base_url: format!("http://{addr}"),
        source: DiscoverySource::Suite,
        pid: None,
    };
    let err = Foundry::connect(&other).await.unwrap_err();
    assert!(matches!(err, FoundryError::NotFoundry { .. }), "{err}");
    assert!(
        err.to_string().contains("/openai/status → HTTP 404"),
        "{err}"
    );
    server.abort();
}

#[test]
fn the_server_status_names_the_service_process() {
    assert_eq!(parse_server_status_pid(SERVER_STATUS_JSON), Some(23140));
    assert_eq!(parse_server_status_pid(SERVER_STATUS_STOPPED), None);
    assert_eq!(parse_server_status_pid("not json"), None);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_process_listening_on_the_service_port_is_found() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(listening_pid(port), Some(std::process::id()));
    let here = Discovered {
        base_url: format!("http://127.0.0.1:{port}"),
        source: DiscoverySource::Suite,
        pid: None,
    };
    // No CLI asked: the port said.
    let cli = FakeCli::new(&[]);
    assert_eq!(service_pid(&here, &cli).await, Some(std::process::id()));
    assert!(cli.calls().is_empty(), "{:?}", cli.calls());
    drop(listener);
    assert_eq!(listening_pid(port), None);
}
