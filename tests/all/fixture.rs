//! A scripted OpenAI-compatible server (axum on 127.0.0.1:0) that releases
//! chunks on a programmed timetable, so metric code is tested against known
//! truth, and that produces the faults a real server cannot be made to
//! produce on demand. Each model name selects a script; `GET /v1/models`
//! lists them.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// Requests the `judge` model has answered (it always says "Score: 4").
pub(crate) static JUDGE_CALLS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Requests `/echo/…` has answered (it echoes headers and query in a 401).
pub(crate) static ECHO_CALLS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);
/// The `response_format` of the `judge` model's last request (`null` when
/// it sent none).
pub(crate) static JUDGE_FORMAT: std::sync::Mutex<Value> = std::sync::Mutex::new(Value::Null);

/// When the fixture wrote each step of the last streamed response of a
/// model, by model name (the instants the client's figures are held to).
pub(crate) static WRITTEN: std::sync::Mutex<
    std::collections::BTreeMap<String, Vec<std::time::Instant>>,
> = std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Every request body the fixture took, by model name, in order.
pub(crate) static BODIES: std::sync::Mutex<std::collections::BTreeMap<String, Vec<Value>>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Every model name the fixture answers to, as `GET /v1/models` lists them.
pub(crate) const MODELS: &[&str] = &[
    "timetable",
    "slower-first-token",
    "no-usage",
    "timings-only",
    "garbage",
    "early-eof",
    "error-payload",
    "slow",
    "oddities",
    "http-500",
    "judge",
    "non-stream",
    "reasoning-content",
    "think-tags",
];
// The size faults (`huge-error`, `huge-body`, `huge-event`, `huge-usage`)
// answer too, unlisted, so listings stay as the probe tests expect.

/// A body of `len` bytes of `x`, produced 64 KiB at a time (never held).
fn endless_x(len: usize) -> Body {
    let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
    let chunks = len.div_ceil(chunk.len());
    Body::from_stream(futures_util::stream::iter(
        (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    ))
}

/// One step of a script: wait, then send these bytes.
pub(crate) type Step = (Duration, String);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[allow(clippy::needless_pass_by_value)] // built inline at every call
fn chunk(delta: Value, finish: Option<&str>) -> String {
    let c = json!({
        "id": "x", "object": "chat.completion.chunk",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
    });
    format!("data: {c}\n\n")
}

fn usage(completion: u64) -> String {
    let c = json!({ "id": "x", "choices": [], "usage": {
        "prompt_tokens": 12, "completion_tokens": completion, "total_tokens": 12 + completion } });
    format!("data: {c}\n\n")
}

/// Role-only chunk at 5 ms, first content at 150 ms, 19 more tokens 20 ms
/// apart, then (optionally) a usage chunk and `[DONE]`.
pub(crate) fn timetable(first_token_ms: u64, with_usage: bool) -> Vec<Step> {
    let mut steps = vec![(
        ms(5),
        chunk(json!({ "role": "assistant", "content": "" }), None),
    )];
    steps.push((
        ms(first_token_ms - 5),
        chunk(json!({ "content": "tok0" }), None),
    ));
    for i in 1..20 {
        let finish = (i == 19).then_some("length");
        steps.push((
            ms(20),
            chunk(json!({ "content": format!(" tok{i}") }), finish),
        ));
    }
    if with_usage {
        steps.push((ms(0), usage(20)));
    }
    steps.push((ms(0), "data: [DONE]\n\n".into()));
    steps
}

/// A reasoning model: role-only chunk at 5 ms, the first of 15 reasoning
/// events at 100 ms and the rest 20 ms apart, the first of 20 answer
/// tokens at 400 ms (300 ms of reasoning) and the rest 10 ms apart, then
/// usage (35 tokens). `think_tags`: the reasoning inside `<think>…</think>`
/// in `content`, and no reasoning count in usage; else in
/// `reasoning_content`, counted in `completion_tokens_details`.
pub(crate) fn reasoning(think_tags: bool) -> Vec<Step> {
    let mut steps = vec![(
        ms(5),
        chunk(json!({ "role": "assistant", "content": "" }), None),
    )];
    for i in 0..15 {
        let wait = if i == 0 { 95 } else { 20 };
        let delta = match (think_tags, i) {
            (true, 0) => json!({ "content": "<think>Let" }),
            (true, _) => json!({ "content": format!(" r{i}") }),
            (false, _) => json!({ "reasoning_content": format!(" r{i}"), "content": null }),
        };
        steps.push((ms(wait), chunk(delta, None)));
    }
    for i in 0..20 {
        let wait = if i == 0 { 20 } else { 10 };
        let text = match (think_tags, i) {
            (true, 0) => "</think>\n\nAnswer".to_string(),
            (_, 0) => "Answer".to_string(),
            _ => format!(" a{i}"),
        };
        let finish = (i == 19).then_some("stop");
        steps.push((ms(wait), chunk(json!({ "content": text }), finish)));
    }
    let mut usage = json!({ "prompt_tokens": 12, "completion_tokens": 35, "total_tokens": 47 });
    if !think_tags {
        usage["completion_tokens_details"] = json!({ "reasoning_tokens": 15 });
    }
    let last = json!({ "id": "x", "choices": [], "usage": usage });
    steps.push((ms(0), format!("data: {last}\n\n")));
    steps.push((ms(0), "data: [DONE]\n\n".into()));
    steps
}

fn script(model: &str) -> Option<Vec<Step>> {
    let steps = match model {
        "timetable" => timetable(150, true),
        "slower-first-token" => timetable(200, true),
        "no-usage" => timetable(150, false),
        // Names that begin so (`reasoning-content-run`) keep one test's
        // stamps apart from another's.
        m if m.starts_with("reasoning-content") => reasoning(false),
        m if m.starts_with("think-tags") => reasoning(true),
        "timings-only" => {
            let mut steps = timetable(150, false);
            let timings = json!({ "choices": [], "timings": { "predicted_n": 20, "predicted_per_second": 50.0 } });
            steps.insert(steps.len() - 1, (ms(0), format!("data: {timings}\n\n")));
            steps
        }
        "garbage" => vec![
            (ms(5), chunk(json!({ "content": "a" }), None)),
            (ms(5), "data: {not json\n\n".into()),
        ],
        "early-eof" => vec![
            (ms(5), chunk(json!({ "content": "a" }), None)),
            (ms(5), chunk(json!({ "content": "b" }), None)),
            (ms(5), "data: {\"choices\":[{\"delta\":{\"content\":\"c".into()),
        ],
        "error-payload" => vec![
            (ms(5), chunk(json!({ "content": "a" }), None)),
            (ms(5), "data: {\"error\":{\"message\":\"out of memory\"}}\n\n".into()),
        ],
        "slow" => vec![(ms(3000), chunk(json!({ "content": "late" }), Some("stop")))],
        // CRLF, comments, keep-alives, events split mid-line and mid-CRLF.
        "oddities" => vec![
            (ms(2), ": keep-alive\r\n\r\n".into()),
            (ms(2), "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r\n\r".into()),
            (ms(2), "\n: ping\r\n\r\ndata: {\"choices\":[{\"delta\":{\"cont".into()),
            (ms(40), "ent\":\"Hel\"}}]}\r\n\r\n".into()),
            (ms(10), "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\r\n\r\n".into()),
            (ms(1), "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\r\n\r\ndata: [DONE]\r\n\r\n".into()),
        ],
        _ => return None,
    };
    Some(steps)
}

async fn chat(body: String) -> Response {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or("").to_string();
    BODIES
        .lock()
        .unwrap()
        .entry(model.clone())
        .or_default()
        .push(request.clone());
    match model.as_str() {
        "http-500" => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":{"message":"internal failure"}}"#,
            )
                .into_response();
        }
        "judge" => {
            JUDGE_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            *JUDGE_FORMAT.lock().unwrap() = request["response_format"].clone();
            let body = json!({
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Score: 4" }, "finish_reason": "stop" }],
                "usage": { "prompt_tokens": 50, "completion_tokens": 3 }
            });
            return (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response();
        }
        // 200 MB error body: dyno reads 64 KiB of it.
        "huge-error" => {
            return (StatusCode::INTERNAL_SERVER_ERROR, endless_x(200_000_000)).into_response();
        }
        // 20 MB non-streamed body: over dyno's 16 MiB.
        "huge-body" => {
            return (
                [(header::CONTENT_TYPE, "application/json")],
                endless_x(20_000_000),
            )
                .into_response();
        }
        // One SSE line of 2 MB that never ends.
        "huge-event" => {
            return (
                [(header::CONTENT_TYPE, "text/event-stream")],
                Body::from(format!("data: {}", "x".repeat(2_000_000))),
            )
                .into_response();
        }
        "huge-usage" => {
            let body = json!({
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": "hi" }, "finish_reason": "stop" }],
                "usage": { "prompt_tokens": 5, "completion_tokens": u64::MAX }
            });
            return (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response();
        }
        "non-stream" => {
            tokio::time::sleep(ms(100)).await;
            let body = json!({
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hello there" }, "finish_reason": "stop" }],
                "usage": { "prompt_tokens": 5, "completion_tokens": 2 }
            });
            return (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response();
        }
        // Not streamed: the timetable's first `max_tokens` tokens at once.
        "timetable" if request["stream"] != true => {
            let n = request["max_tokens"].as_u64().unwrap_or(20).clamp(1, 20);
            let text: Vec<String> = (0..n).map(|i| format!("tok{i}")).collect();
            let body = json!({
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": text.join(" ") }, "finish_reason": "length" }],
                "usage": { "prompt_tokens": 12, "completion_tokens": n }
            });
            return (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response();
        }
        _ => {}
    }
    let Some(steps) = script(&model) else {
        return (
            StatusCode::NOT_FOUND,
            format!(r#"{{"error":{{"message":"model '{model}' not found"}}}}"#),
        )
            .into_response();
    };
    // Each step is due at the sum of the waits before it, counted from the
    // response's start (no drift), and stamped as it is written.
    WRITTEN.lock().unwrap().remove(&model);
    let start = tokio::time::Instant::now();
    let state = (steps.into_iter(), start, model);
    let stream = futures_util::stream::unfold(state, |(mut steps, mut due, model)| async move {
        let (wait, bytes) = steps.next()?;
        due += wait;
        tokio::time::sleep_until(due).await;
        WRITTEN
            .lock()
            .unwrap()
            .entry(model.clone())
            .or_default()
            .push(std::time::Instant::now());
        Some((Ok::<_, std::io::Error>(bytes), (steps, due, model)))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// llama.cpp's `/tokenize`, for callers that send the API key and the
/// `x-dyno-test` header (one token per word); 401 for anyone else.
async fn tokenize(headers: axum::http::HeaderMap, body: String) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("authorization") != Some("Bearer sk-test-secret")
        || header("x-dyno-test") != Some("on")
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let words = request["content"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .count();
    axum::Json(json!({ "tokens": (0..words).collect::<Vec<_>>() })).into_response()
}

async fn models() -> axum::Json<Value> {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "owned_by": "fixture" }))
        .collect();
    axum::Json(json!({ "object": "list", "data": data }))
}

/// `/echo/v1/chat/completions`: a 401 whose error message echoes every
/// request header and the query, as a careless server does.
async fn echo(headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    ECHO_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let shown: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let message = format!(
        "unauthorized; headers: {}; query: {}",
        shown.join(", "),
        query.unwrap_or_default()
    );
    (
        StatusCode::UNAUTHORIZED,
        json!({ "error": { "message": message } }).to_string(),
    )
        .into_response()
}

/// `/redirect/v1/chat/completions`: a 307 to the echo route on another
/// origin (`localhost` instead of `127.0.0.1`), query kept.
async fn redirect(headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .replace("127.0.0.1", "localhost");
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(
            header::LOCATION,
            format!("http://{host}/echo/v1/chat/completions{query}"),
        )],
    )
        .into_response()
}

/// The fixture's routes, whatever serves them (plain HTTP here, TLS in
/// `tls.rs`).
pub(crate) fn router() -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/tokenize", post(tokenize))
        .route("/echo/v1/chat/completions", post(echo))
        .route("/echo/v1/models", get(echo))
        .route("/redirect/v1/chat/completions", post(redirect))
}

/// Starts the fixture; returns its base URL (`http://127.0.0.1:PORT/v1`).
/// `/echo/v1` and `/redirect/v1` are further bases on the same server.
pub(crate) async fn start() -> String {
    let app = router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}/v1")
}
