//! A recorded-behaviour Foundry Local service: an axum server per
//! generation that follows `shared/reference/foundry-local.md`. It serves
//! the catalog, tracks cached and loaded state, loads and unloads, streams
//! downloads, and refuses chat for unloaded models and aliases.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use dyno::provider::foundry::{Generation, same_variant, split_version};

/// Simulated load time, so load timings are visibly non-zero.
pub(crate) const LOAD_DELAY: Duration = Duration::from_millis(20);

struct FixtureState {
    generation: Generation,
    catalog: Vec<Value>,
    cached: BTreeSet<String>,
    loaded: BTreeSet<String>,
}

type Shared = Arc<Mutex<FixtureState>>;

/// A running fixture; stops when dropped.
pub(crate) struct Fixture {
    /// `http://127.0.0.1:<port>` (no `/v1`).
    pub base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The catalog both generations serve (the first as `/foundry/list`,
/// the core service as `/v1/models` items); the same file the unit tests
/// of `dyno::provider::foundry` parse.
pub(crate) fn sample_catalog() -> Vec<Value> {
    serde_json::from_str(include_str!("../fixtures/foundry-catalog.json"))
        .expect("tests/fixtures/foundry-catalog.json is a JSON array")
}

/// Starts a fixture of `generation` with the given variant ids cached.
pub(crate) async fn start(generation: Generation, cached: &[&str]) -> Fixture {
    let state: Shared = Arc::new(Mutex::new(FixtureState {
        generation,
        catalog: sample_catalog(),
        cached: cached
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        loaded: BTreeSet::new(),
    }));
    let chat = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(openai_models));
    let router = match generation {
        Generation::Service => chat
            .route("/openai/status", get(service_status))
            .route("/foundry/list", get(foundry_list))
            .route("/openai/models", get(service_cached))
            .route("/openai/loadedmodels", get(service_loaded))
            .route("/openai/load/{id}", get(service_load))
            .route("/openai/unload/{id}", get(service_unload))
            .route("/openai/download", post(service_download))
            .route(
                "/v1/chat/completions/tokenizer/encode/count",
                post(token_count),
            ),
        Generation::Core => chat
            .route("/status", get(core_status))
            .route("/models/loaded", get(core_loaded))
            .route("/models/load/{id}", get(core_load))
            .route("/models/unload/{id}", get(core_unload)),
    }
    .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fixture");
    let addr = listener.local_addr().expect("fixture address");
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve fixture");
    });
    Fixture {
        base_url: format!("http://{addr}"),
        task,
    }
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, FixtureState> {
    state.lock().expect("fixture state")
}

fn find(catalog: &[Value], id: &str) -> Option<String> {
    catalog
        .iter()
        .filter_map(|v| v["name"].as_str())
        .find(|name| same_variant(name, id))
        .map(str::to_string)
}

fn without_version(ids: &BTreeSet<String>) -> Vec<String> {
    ids.iter()
        .map(|id| split_version(id).0.to_string())
        .collect()
}

#[allow(clippy::needless_pass_by_value)] // built inline at every call
fn error_json(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({ "error": { "message": message, "type": "invalid_request_error" } })),
    )
        .into_response()
}

// --- first generation ---------------------------------------------------

async fn service_status() -> Json<Value> {
    Json(json!({
        "endpoints": ["http://127.0.0.1:5273"],
        "modelDirPath": "/home/user/.foundry/cache/models",
        "pipeName": "inference_agent"
    }))
}

async fn foundry_list(State(state): State<Shared>) -> Json<Value> {
    Json(Value::Array(lock(&state).catalog.clone()))
}

async fn service_cached(State(state): State<Shared>) -> Json<Vec<String>> {
    Json(without_version(&lock(&state).cached))
}

async fn service_loaded(State(state): State<Shared>) -> Json<Vec<String>> {
    Json(without_version(&lock(&state).loaded))
}

async fn service_load(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let found = {
        let s = lock(&state);
        find(&s.catalog, &id).map(|name| (s.cached.contains(&name), name))
    };
    match found {
        None => (StatusCode::NOT_FOUND, format!("Model {id} not found")).into_response(),
        Some((false, _)) => (StatusCode::BAD_REQUEST, "Model not cached").into_response(),
        Some((true, name)) => {
            tokio::time::sleep(LOAD_DELAY).await;
            lock(&state).loaded.insert(name);
            StatusCode::OK.into_response()
        }
    }
}

async fn service_unload(State(state): State<Shared>, Path(id): Path<String>) -> StatusCode {
    let mut s = lock(&state);
    s.loaded.retain(|name| !same_variant(name, &id));
    StatusCode::OK
}

async fn service_download(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    let requested = body["model"]["Name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let found = {
        let mut s = lock(&state);
        let found = find(&s.catalog, &requested);
        if let Some(name) = &found {
            s.cached.insert(name.clone());
        }
        found
    };
    let chunks: Vec<String> = match found {
        Some(_) => [
            "Downloading genai_config.json...\n",
            "Total 0.00% Downloading genai_config.json\r",
            "Total 12.5",
            "0% Downloading model.onnx.data\r",
            "Total 57.13% Downloading model.onnx.data\r",
            "Total 57.13% Downloading model.onnx.data\r",
            "Total 100.00% Downloading tokenizer.json\n",
            "{\"success\":true,",
            "\"errorMessage\":null}",
        ]
        .iter()
        .map(std::string::ToString::to_string)
        .collect(),
        None => vec![format!(
            "{{\"success\":false,\"errorMessage\":\"Model {requested} not found in catalog\"}}"
        )],
    };
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(stream))
        .expect("download response")
}

async fn token_count(Json(body): Json<Value>) -> Json<Value> {
    let words: usize = body["messages"].as_array().map_or(0, |ms| {
        ms.iter()
            .map(|m| {
                m["content"]
                    .as_str()
                    .unwrap_or_default()
                    .split_whitespace()
                    .count()
                    + 4
            })
            .sum()
    });
    Json(json!({ "tokenCount": words }))
}

// --- core web service ---------------------------------------------------

async fn core_status() -> Json<Value> {
    Json(json!({
        "modelCachePath": "/home/user/.foundry/cache/models",
        "endpoints": ["http://127.0.0.1:0"],
        "pid": 4242
    }))
}

async fn core_loaded(State(state): State<Shared>) -> Json<Vec<String>> {
    Json(lock(&state).loaded.iter().cloned().collect())
}

async fn core_load(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let (known, cached, already) = {
        let s = lock(&state);
        let known = s.catalog.iter().any(|v| v["name"] == id.as_str());
        (known, s.cached.contains(&id), s.loaded.contains(&id))
    };
    if !known {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "Model not found" })),
        )
            .into_response();
    }
    if !cached {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "Model not cached" })),
        )
            .into_response();
    }
    if already {
        return Json(json!({ "status": "already_loaded" })).into_response();
    }
    tokio::time::sleep(LOAD_DELAY).await;
    lock(&state).loaded.insert(id);
    Json(json!({ "status": "loaded" })).into_response()
}

async fn core_unload(State(state): State<Shared>, Path(id): Path<String>) -> Json<Value> {
    let was = lock(&state).loaded.remove(&id);
    Json(json!({ "status": if was { "unloaded" } else { "not_loaded" } }))
}

// --- shared OpenAI-compatible routes -------------------------------------

async fn openai_models(State(state): State<Shared>) -> Json<Value> {
    let s = lock(&state);
    let data: Vec<Value> = s
        .catalog
        .iter()
        .filter(|v| {
            // The core service lists every catalog variant; the first
            // generation lists what is cached.
            s.generation == Generation::Core
                || v["name"].as_str().is_some_and(|n| s.cached.contains(n))
        })
        .map(|v| {
            let mut item = v.clone();
            if let Some(map) = item.as_object_mut() {
                map.remove("name");
                map.insert("id".into(), v["name"].clone());
                map.insert("object".into(), json!("model"));
                map.insert("owned_by".into(), json!("Microsoft"));
            }
            item
        })
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

async fn chat(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let (generation, resolved, loaded) = {
        let s = lock(&state);
        // Exact variant ids only: aliases are not resolved by the server.
        let resolved = match s.generation {
            Generation::Core => s
                .catalog
                .iter()
                .any(|v| v["name"] == model.as_str())
                .then(|| model.clone()),
            Generation::Service => find(&s.catalog, &model),
        };
        let loaded = resolved.as_ref().is_some_and(|r| s.loaded.contains(r));
        (s.generation, resolved, loaded)
    };
    let Some(resolved) = resolved else {
        return error_json(StatusCode::NOT_FOUND, format!("model `{model}` not found"));
    };
    if !loaded {
        return error_json(
            StatusCode::BAD_REQUEST,
            format!("model `{resolved}` is not loaded; load it first"),
        );
    }
    let words = ["Hello", " from", " Foundry", " Local."];
    if body["stream"].as_bool() != Some(true) {
        return Json(json!({
            "id": "chatcmpl-fixture",
            "object": "chat.completion",
            "model": resolved,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": words.concat() },
                "finish_reason": "stop"
            }],
            "usage": { "prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13 }
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-fixture",
            "object": "chat.completion.chunk",
            "model": resolved,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
        })
    };
    let mut events: Vec<Value> = words
        .iter()
        .map(|w| chunk(json!({ "role": "assistant", "content": w }), Value::Null))
        .collect();
    // Older releases sent no finish_reason and no usage.
    if generation == Generation::Core {
        events.push(chunk(json!({}), json!("stop")));
        if body["stream_options"]["include_usage"].as_bool() == Some(true) {
            events.push(json!({
                "id": "chatcmpl-fixture",
                "object": "chat.completion.chunk",
                "model": resolved,
                "choices": [],
                "usage": { "prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13 }
            }));
        }
    }
    let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    ([(header::CONTENT_TYPE, "text/event-stream")], text).into_response()
}
