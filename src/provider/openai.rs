//! The OpenAI-compatible chat client: sends one request and measures it,
//! streaming or not. Owns the timing definitions (TTFT, E2E, ITL) and the
//! token-count fallbacks; never decides what to run or where results go.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::sse::SseFramer;
use super::{Measured, Request};
use crate::results::{ErrorKind, TokenSource};
use crate::text::{clip, root_cause};

/// Where to send requests. The API key is held here only; it is never
/// formatted into errors, logs or results.
#[derive(Clone)]
pub struct Target {
    /// Base URL as configured, with or without `/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Where an HTTP endpoint's requests go, its API key read from the
    /// variable `api_key_env` names.
    pub fn of(endpoint: &crate::suite::Endpoint) -> Target {
        Target {
            base_url: endpoint.base_url.clone().unwrap_or_default(),
            api_key: endpoint
                .api_key_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok()),
            headers: endpoint.headers.clone(),
        }
    }

    /// The target of a managed server started on this machine.
    pub fn local(base_url: String) -> Target {
        Target {
            base_url,
            api_key: None,
            headers: BTreeMap::new(),
        }
    }
    /// `request` with the API key and the endpoint's headers, which every
    /// request to the endpoint carries (chat, tokenize, version).
    pub(crate) fn authorize(
        &self,
        mut request: reqwest::RequestBuilder,
    ) -> reqwest::RequestBuilder {
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request
    }

    /// `…/v1/chat/completions`, keeping any base path (`/openai/v1`).
    pub fn chat_url(&self) -> String {
        format!("{}/chat/completions", self.v1_root())
    }

    /// The base URL ending in `/v1` (appended when absent).
    pub fn v1_root(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        if base.ends_with("/v1") {
            base.to_string()
        } else {
            format!("{base}/v1")
        }
    }

    /// The server root, without `/v1` (llama.cpp's `/tokenize` lives there).
    pub fn server_root(&self) -> String {
        let v1 = self.v1_root();
        v1.strip_suffix("/v1").unwrap_or(&v1).to_string()
    }
}

/// The body of a chat completion request for `model`.
pub fn body(model: &str, request: &Request) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| json!({ "role": m.role.as_str(), "content": m.content }))
        .collect();
    let mut body = json!({
        "model": model,
        "messages": messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "seed": request.seed,
        "stream": request.stream,
    });
    if let Some(top_p) = request.top_p {
        body["top_p"] = json!(top_p);
    }
    if let Some(format) = &request.response_format {
        body["response_format"] = format.clone();
    }
    if request.stream {
        body["stream_options"] = json!({ "include_usage": true });
    }
    body
}

/// A measurement under way: what is measured, and the number of
/// content-bearing events seen (the last-resort token estimate).
#[derive(Default)]
struct Progress {
    m: Measured,
    content_events: u64,
}

fn ms(since: Instant, at: Instant) -> f64 {
    at.duration_since(since).as_secs_f64() * 1000.0
}

/// Sends `request` for `model` to `target` and measures it. Never panics;
/// every failure is a [`Measured::error`] with its kind, and what was
/// measured before it stays.
pub async fn chat(
    client: &reqwest::Client,
    target: &Target,
    model: &str,
    request: &Request,
) -> Measured {
    let mut progress = Progress::default();
    let deadline = tokio::time::Instant::now() + request.timeout;
    let work = exchange(client, target, model, request, &mut progress);
    let result = tokio::time::timeout_at(deadline, work).await;
    let Progress {
        mut m,
        content_events,
    } = progress;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(err)) => m.error = Some(err),
        Err(_) => {
            m.error = Some((
                ErrorKind::Timeout,
                format!(
                    "no complete response within {:.1} s",
                    request.timeout.as_secs_f64()
                ),
            ));
        }
    }
    if m.error.is_none() {
        count_tokens(client, target, &mut m, content_events).await;
    }
    m
}

type Failure = (ErrorKind, String);

async fn exchange(
    client: &reqwest::Client,
    target: &Target,
    model: &str,
    req: &Request,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let Progress { m, content_events } = progress;
    let builder = target.authorize(client.post(target.chat_url()).json(&body(model, req)));
    let start = Instant::now();
    let response = builder.send().await.map_err(|e| transport_error(&e))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err((
            ErrorKind::HttpStatus,
            format!("HTTP {}: {}", status.as_u16(), error_text(&body)),
        ));
    }
    if !req.stream {
        let body = response.bytes().await.map_err(|e| body_error(&e))?;
        m.e2e_ms = Some(ms(start, Instant::now()));
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| (ErrorKind::BadSse, format!("response is not JSON: {e}")))?;
        return absorb_final(&value, m);
    }
    let mut framer = SseFramer::new();
    let mut stream = response.bytes_stream();
    let mut last_content: Option<Instant> = None;
    let mut done = false;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(&e))?;
        let now = Instant::now();
        for event in framer.push(&chunk) {
            if event.is_done() {
                done = true;
                break;
            }
            let value: Value = serde_json::from_str(&event.data).map_err(|e| {
                (
                    ErrorKind::BadSse,
                    format!("event is not JSON ({e}): {}", clip(&event.data, 120)),
                )
            })?;
            if let Some(error) = value.get("error") {
                return Err((ErrorKind::ServerError, error_text(&error.to_string())));
            }
            for choice in value
                .get("choices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let delta = choice.get("delta");
                let content = delta
                    .and_then(|d| d.get("content"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let reasoning = delta
                    .and_then(|d| d.get("reasoning_content"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !reasoning.is_empty() && m.ttfo_reasoning_ms.is_none() {
                    m.ttfo_reasoning_ms = Some(ms(start, now));
                }
                if !content.is_empty() {
                    match last_content {
                        None => m.ttft_ms = Some(ms(start, now)),
                        Some(previous) => m.itl_ms.push(ms(previous, now)),
                    }
                    last_content = Some(now);
                    *content_events += 1;
                    m.text.push_str(content);
                }
                if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                    m.finish_reason = Some(reason.to_string());
                }
            }
            absorb_usage(&value, m);
        }
        if done {
            m.e2e_ms = Some(ms(start, now));
            break;
        }
    }
    if !done {
        let end = Instant::now();
        let finish = framer.finish();
        if finish.pending_partial || m.finish_reason.is_none() {
            return Err((
                ErrorKind::EarlyEof,
                format!(
                    "stream closed before the response was complete ({content_events} content events received)"
                ),
            ));
        }
        m.e2e_ms = Some(ms(start, end));
    }
    Ok(())
}

/// Reads a non-streaming response body.
fn absorb_final(value: &Value, m: &mut Measured) -> Result<(), Failure> {
    if let Some(error) = value.get("error") {
        return Err((ErrorKind::ServerError, error_text(&error.to_string())));
    }
    let choice = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| (ErrorKind::BadSse, "response has no choices".to_string()))?;
    m.text = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    m.finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    absorb_usage(value, m);
    Ok(())
}

/// Takes `usage` and llama.cpp's `timings` from a chunk or body that has them.
fn absorb_usage(value: &Value, m: &mut Measured) {
    if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
        if let Some(n) = usage.get("completion_tokens").and_then(Value::as_u64) {
            m.output_tokens = Some(n);
            m.token_source = Some(TokenSource::Usage);
        }
        if let Some(n) = usage.get("prompt_tokens").and_then(Value::as_u64) {
            m.prompt_tokens = Some(n);
        }
    }
    if let Some(timings) = value.get("timings").and_then(Value::as_object) {
        let numbers: BTreeMap<String, f64> = timings
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        m.server_timings = Some(numbers);
    }
}

/// Output tokens when `usage` did not say: server timings, then the
/// server's tokenizer, then the number of content events.
async fn count_tokens(
    client: &reqwest::Client,
    target: &Target,
    m: &mut Measured,
    content_events: u64,
) {
    if m.token_source.is_some() {
        return;
    }
    if let Some(n) = m
        .server_timings
        .as_ref()
        .and_then(|t| t.get("predicted_n"))
        .filter(|n| n.is_finite() && **n >= 0.0)
    {
        m.output_tokens = Some(*n as u64);
        m.token_source = Some(TokenSource::ServerTimings);
        return;
    }
    if !m.text.is_empty()
        && let Some(n) = tokenize(client, target, &m.text).await
    {
        m.output_tokens = Some(n);
        m.token_source = Some(TokenSource::Tokenize);
        return;
    }
    m.output_tokens = Some(if content_events > 0 {
        content_events
    } else {
        // About four characters per token for English text.
        (m.text.chars().count() as u64).div_ceil(4)
    });
    m.token_source = Some(TokenSource::Estimate);
}

/// llama.cpp's `POST /tokenize`, with the endpoint's key and headers;
/// `None` where the server has no such route.
async fn tokenize(client: &reqwest::Client, target: &Target, text: &str) -> Option<u64> {
    let url = format!("{}/tokenize", target.server_root());
    let request = client
        .post(url)
        .json(&json!({ "content": text }))
        .timeout(Duration::from_secs(5));
    let value = json_reply(target.authorize(request)).await?;
    Some(value.get("tokens")?.as_array()?.len() as u64)
}

/// POSTs `body` and returns the JSON answer of a 2xx response; `None` on
/// any failure (for best-effort side requests such as token counts).
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    timeout: Duration,
) -> Option<Value> {
    json_reply(client.post(url).json(body).timeout(timeout)).await
}

/// The JSON answer of a 2xx response to `request`; `None` on any failure.
async fn json_reply(request: reqwest::RequestBuilder) -> Option<Value> {
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// What the server says it is: llama.cpp's `/props` `build_info`, or
/// Ollama's `/api/version`; `None` when it says nothing.
pub async fn server_version(client: &reqwest::Client, target: &Target) -> Option<String> {
    let root = target.server_root();
    for (path, field) in [("/props", "build_info"), ("/api/version", "version")] {
        let request = client
            .get(format!("{root}{path}"))
            .timeout(Duration::from_secs(5));
        let Ok(response) = target.authorize(request).send().await else {
            return None;
        };
        if !response.status().is_success() {
            continue;
        }
        let value: Option<Value> = response.json().await.ok();
        if let Some(version) = value
            .as_ref()
            .and_then(|v| v.get(field))
            .and_then(Value::as_str)
        {
            return Some(version.to_string());
        }
    }
    None
}

fn transport_error(err: &reqwest::Error) -> Failure {
    if err.is_timeout() {
        (ErrorKind::Timeout, "request timed out".into())
    } else if err.is_connect() {
        (
            ErrorKind::Connect,
            format!("cannot connect: {}", root_cause(err)),
        )
    } else {
        (
            ErrorKind::Connect,
            format!("request failed: {}", root_cause(err)),
        )
    }
}

fn body_error(err: &reqwest::Error) -> Failure {
    (
        ErrorKind::EarlyEof,
        format!(
            "connection broke while reading the response: {}",
            root_cause(err)
        ),
    )
}

/// Adds what to do to an error that shows the endpoint is Foundry Local
/// reached as a plain OpenAI endpoint: HTTP 400 "Model not loaded" (Foundry
/// Local serves only models loaded through its own routes, by exact
/// variant id).
pub(crate) fn hint_foundry(m: &mut Measured) {
    if let Some((ErrorKind::HttpStatus, message)) = &mut m.error
        && message.starts_with("HTTP 400")
        && message.to_ascii_lowercase().contains("not loaded")
    {
        message.push_str(
            "; this looks like Foundry Local: use `kind: foundry` for this endpoint, so dyno loads the model (and resolves its alias) first",
        );
    }
}

/// The `message` of an OpenAI-style error body, else the body clipped.
pub fn error_text(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    clip(message.as_deref().unwrap_or(body).trim(), 300)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Message;

    fn target(base: &str) -> Target {
        Target {
            base_url: base.into(),
            api_key: Some("sk-secret".into()),
            headers: BTreeMap::new(),
        }
    }

    #[test]
    fn urls_keep_the_base_path() {
        assert_eq!(
            target("http://h:8080/v1").chat_url(),
            "http://h:8080/v1/chat/completions"
        );
        assert_eq!(
            target("http://h:8080/").chat_url(),
            "http://h:8080/v1/chat/completions"
        );
        assert_eq!(
            target("https://h/openai/v1/").chat_url(),
            "https://h/openai/v1/chat/completions"
        );
        assert_eq!(target("http://h:1/v1").server_root(), "http://h:1");
    }

    #[test]
    fn debug_never_shows_the_key() {
        assert!(!format!("{:?}", target("http://h")).contains("sk-secret"));
    }

    #[test]
    fn streaming_body_asks_for_usage() {
        let req = Request {
            id: 1,
            model: "m".into(),
            messages: vec![Message {
                role: crate::suite::Role::User,
                content: "hi".into(),
            }],
            temperature: 0.0,
            top_p: None,
            max_tokens: 8,
            seed: 3,
            stream: true,
            timeout: Duration::from_secs(1),
            response_format: None,
        };
        let body = body("m", &req);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["seed"], 3);
        assert!(body.get("top_p").is_none());
        assert!(body.get("response_format").is_none());
    }

    #[test]
    fn model_not_loaded_hints_kind_foundry() {
        let mut m = Measured::failed(ErrorKind::HttpStatus, "HTTP 400: Model not loaded");
        hint_foundry(&mut m);
        let (_, message) = m.error.unwrap();
        assert!(message.contains("use `kind: foundry`"), "{message}");
        let mut other = Measured::failed(ErrorKind::HttpStatus, "HTTP 404: model not found");
        hint_foundry(&mut other);
        assert_eq!(other.error.unwrap().1, "HTTP 404: model not found");
    }

    #[test]
    fn error_text_prefers_the_message() {
        assert_eq!(
            error_text(r#"{"error":{"message":"model not found","code":404}}"#),
            "model not found"
        );
        assert_eq!(error_text("plain"), "plain");
    }
}
