//! The OpenAI-compatible chat client: sends one request and measures it,
//! streaming or not. Owns the timing definitions (TTFT, E2E, ITL), the
//! token-count fallbacks and the bounds on what a server may send (error
//! bodies read to 64 KiB, bodies and outputs to 16 MiB, one SSE event to
//! 1 MiB, token counts to 10,000,000); never decides what to run or where
//! results go.
//!
//! The hot path is one streamed chunk: its events are read in place (no
//! allocation for the common chunk), timed with the instant its bytes
//! arrived. Around it, the connection: whether the request opened one,
//! reading the body to its end after `[DONE]` so a kept-alive connection
//! can serve again, and sending again, timed afresh, when a kept-alive
//! connection turns out closed by the server before any answer.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::sse::SseFramer;
use super::{Measured, Request};
use crate::results::{ErrorKind, ReasoningForm, TokenSource};
use crate::secrets::Secrets;
use crate::text::{clip, root_cause};

/// Where to send requests. The API key is held here only; it is never
/// formatted into errors, logs or results.
#[derive(Clone)]
pub struct Target {
    /// Base URL as configured, with or without `/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// The suite's secrets, scrubbed (with the key) from error bodies
    /// before they are cut to length.
    pub secrets: Secrets,
    /// The endpoint's `ca_cert:` as written, which certificate errors name.
    pub ca_cert: Option<String>,
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
    pub fn of(endpoint: &crate::suite::Endpoint, secrets: &Secrets) -> Target {
        Target {
            base_url: endpoint.base_url.clone().unwrap_or_default(),
            api_key: endpoint
                .api_key_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok()),
            headers: endpoint.headers.clone(),
            secrets: secrets.clone(),
            ca_cert: endpoint.ca_cert_written.clone(),
        }
    }

    /// The target of a managed server started on this machine.
    pub fn local(base_url: String, secrets: &Secrets) -> Target {
        Target {
            base_url,
            api_key: None,
            headers: BTreeMap::new(),
            secrets: secrets.clone(),
            ca_cert: None,
        }
    }

    /// `text` (a server's error body) with the key and every secret of
    /// the suite redacted; scrub before cutting, so no part of a key stays.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut secrets = self.secrets.clone();
        if let Some(key) = &self.api_key {
            secrets.add(key);
        }
        secrets.redact(text)
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

    /// `…/v1/chat/completions`, keeping any base path (`/openai/v1`) and
    /// query (`?api-version=…`).
    pub fn chat_url(&self) -> String {
        self.v1_url("chat/completions")
    }

    /// `path` below the `/v1` root (`models`), keeping the base URL's query.
    pub(crate) fn v1_url(&self, path: &str) -> String {
        self.join(true, path)
    }

    /// `path` below the server root, without `/v1` (llama.cpp's `tokenize`
    /// and `props`), keeping the base URL's query.
    pub(crate) fn root_url(&self, path: &str) -> String {
        self.join(false, path)
    }

    fn join(&self, v1: bool, path: &str) -> String {
        let below = |base: &str| {
            let base = base.trim_end_matches('/');
            let root = base.strip_suffix("/v1").unwrap_or(base);
            let root = if v1 {
                format!("{root}/v1")
            } else {
                root.to_string()
            };
            if path.is_empty() {
                root
            } else {
                format!("{root}/{path}")
            }
        };
        match reqwest::Url::parse(&self.base_url) {
            Ok(mut url) if !url.cannot_be_a_base() => {
                let joined = below(url.path());
                url.set_path(&joined);
                url.set_fragment(None);
                url.to_string()
            }
            _ => below(&self.base_url),
        }
    }

    /// The base URL with its path ending in `/v1` (appended when absent),
    /// query kept.
    pub(crate) fn v1_root(&self) -> String {
        self.join(true, "")
    }
}

/// The most of an error body dyno reads: enough for any message.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// The most of a non-streamed body, or of a streamed output, dyno reads.
pub(crate) const MAX_BODY: usize = 16 * 1024 * 1024;
/// The most one SSE event (its unterminated line and data) may hold.
const MAX_EVENT: usize = 1024 * 1024;
/// The largest token count dyno believes: more than any context window; a
/// larger `usage` count is bad data and fails the request.
pub(crate) const MAX_TOKEN_COUNT: u64 = 10_000_000;

/// Up to `limit` bytes of `response`'s body, and whether there was more
/// (the rest is never read).
pub(crate) async fn read_body(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// The start of an error body as text (at most [`MAX_ERROR_BODY`] bytes).
pub(crate) async fn error_body(mut response: reqwest::Response) -> String {
    match read_body(&mut response, MAX_ERROR_BODY).await {
        Ok((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// A JSON body of at most `limit` bytes; why not, when it is larger,
/// broken or not JSON.
pub(crate) async fn json_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Value, String> {
    match read_body(&mut response, limit).await {
        Ok((bytes, false)) => serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}")),
        Ok((_, true)) => Err(format!("larger than {} MiB", limit / (1024 * 1024))),
        Err(err) => Err(format!("cannot read the body: {}", root_cause(&err))),
    }
}

fn too_large(what: &str, limit: usize) -> Failure {
    (
        ErrorKind::TooLarge,
        format!(
            "{what} is larger than {} KiB; dyno stops reading there",
            limit / 1024
        ),
    )
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
    match request.thinking {
        Some(super::Thinking::Effort(effort)) => body["reasoning_effort"] = json!(effort.name()),
        Some(super::Thinking::Enable(on)) => {
            body["chat_template_kwargs"] = json!({ "enable_thinking": on });
        }
        None => {}
    }
    if request.stream {
        body["stream_options"] = json!({ "include_usage": true });
    }
    if !request.cache {
        body["cache_prompt"] = json!(false);
        body["cache_salt"] = json!(format!("dyno-{}-{}", request.id, request.seed));
    }
    if request.ignore_eos {
        body["ignore_eos"] = json!(true);
        body["min_tokens"] = json!(request.max_tokens);
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
    let work = exchange(client, target, model, request, deadline, &mut progress);
    let result = tokio::time::timeout_at(deadline, work).await;
    // Lets the connection go back to its pool (a task of its own) before
    // the next request asks for one, so a kept-alive connection serves it.
    tokio::task::yield_now().await;
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
    // What a tag under way held back when the stream ended.
    let held = m.reasoning.flush();
    m.text.push_str(&held);
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
    deadline: tokio::time::Instant,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let Progress { m, content_events } = progress;
    let payload = body(model, req);
    let mut attempts = 0;
    let (start, mut response) = loop {
        let builder = target.authorize(client.post(target.chat_url()).json(&payload));
        let start = Instant::now();
        m.sent_at = Some(start);
        match builder.send().await {
            Ok(response) => break (start, response),
            // A kept-alive connection the server had closed: the request
            // is sent again, on another connection, and timed afresh.
            Err(err)
                if attempts < STALE_RETRIES
                    && super::http::closed_unanswered(&err)
                    && start.elapsed() < STALE_WITHIN =>
            {
                attempts += 1;
            }
            Err(err) => {
                m.new_connection = err.is_connect();
                return Err(transport_error(&err, target));
            }
        }
    };
    m.new_connection = super::http::opened_new(&response, start);
    let status = response.status();
    if !status.is_success() {
        m.http_status = Some(status.as_u16());
        m.retry_after = retry_after(response.headers());
        let body = target.scrub(&error_body(response).await);
        return Err((
            if too_long(&body) {
                ErrorKind::TooLong
            } else {
                ErrorKind::HttpStatus
            },
            format!("HTTP {}: {}", status.as_u16(), error_text(&body)),
        ));
    }
    if !req.stream {
        return whole(&mut response, start, m, target).await;
    }
    let mut framer = SseFramer::new();
    let mut stream = response.bytes_stream();
    let mut streamed = Streamed {
        start,
        now: start,
        last_content: None,
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(&e))?;
        streamed.now = Instant::now();
        let flow = framer.push_with(&chunk, |event| {
            streamed.event(event.data, m, content_events, target)
        });
        if framer.pending() > MAX_EVENT {
            return Err(too_large("one SSE event", MAX_EVENT));
        }
        match flow {
            ControlFlow::Continue(()) => {}
            ControlFlow::Break(End::Failed(failure)) => return Err(failure),
            ControlFlow::Break(End::Done) => {
                m.e2e_ms = Some(ms(start, streamed.now));
                // The body's end may follow `[DONE]`; a connection kept
                // alive serves the next request only once it is read.
                let rest = async { while let Some(Ok(_)) = stream.next().await {} };
                let until = deadline.min(tokio::time::Instant::now() + DRAIN);
                let _ = tokio::time::timeout_at(until, rest).await;
                return Ok(());
            }
        }
    }
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
    Ok(())
}

/// How often a request goes out again after meeting a kept-alive
/// connection the server had closed, and how soon such a failure comes (a
/// round trip); a connection that closes later, after the server may have
/// worked on the request, fails the request.
const STALE_RETRIES: u32 = 3;
const STALE_WITHIN: Duration = Duration::from_secs(1);

/// How long dyno reads on after `[DONE]` for the end of the body (which
/// servers send at once), outside the measured time.
const DRAIN: Duration = Duration::from_millis(200);

/// Why reading a stream's events stopped before its end.
enum End {
    /// `[DONE]`.
    Done,
    Failed(Failure),
}

/// A stream being read: when the request went out, when the bytes being
/// read arrived, and when the last content did.
struct Streamed {
    start: Instant,
    now: Instant,
    last_content: Option<Instant>,
}

impl Streamed {
    /// Takes one event's data into `m`. The common event (choices only) is
    /// read in place, borrowing its text; anything else (usage, timings, an
    /// error, a shape the fast reading refuses) goes through a JSON tree,
    /// with the same outcome.
    fn event(
        &mut self,
        data: &str,
        m: &mut Measured,
        content_events: &mut u64,
        target: &Target,
    ) -> ControlFlow<End> {
        if data == "[DONE]" {
            return ControlFlow::Break(End::Done);
        }
        let outcome = match serde_json::from_str::<Event<'_>>(data) {
            Ok(event) if event.is_plain() => {
                self.choices(event.choices.unwrap_or_default(), m, content_events)
            }
            _ => self.slow_event(data, m, content_events, target),
        };
        match outcome {
            Ok(()) => ControlFlow::Continue(()),
            Err(failure) => ControlFlow::Break(End::Failed(failure)),
        }
    }

    fn slow_event(
        &mut self,
        data: &str,
        m: &mut Measured,
        content_events: &mut u64,
        target: &Target,
    ) -> Result<(), Failure> {
        let value: Value = serde_json::from_str(data).map_err(|e| {
            (
                ErrorKind::BadSse,
                format!(
                    "event is not JSON ({e}): {}",
                    clip(&target.scrub(data), 120)
                ),
            )
        })?;
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            let error = target.scrub(&error.to_string());
            return Err((ErrorKind::ServerError, error_text(&error)));
        }
        self.choices(Choices::of_value(&value), m, content_events)?;
        absorb_usage(&value, m)
    }

    /// Times and keeps what one event's choices carry.
    fn choices(
        &mut self,
        choices: Choices<'_>,
        m: &mut Measured,
        content_events: &mut u64,
    ) -> Result<(), Failure> {
        let field = choices.reasoning.as_ref().map(|(t, f)| (&**t, *f));
        let (content, with_content, reasoned) =
            m.reasoning
                .take(field, choices.content, choices.with_content);
        if reasoned && m.ttfo_reasoning_ms.is_none() {
            m.ttfo_reasoning_ms = Some(ms(self.start, self.now));
        }
        for _ in 0..with_content {
            match self.last_content {
                None => m.ttft_ms = Some(ms(self.start, self.now)),
                Some(previous) => m.itl_ms.push(ms(previous, self.now)),
            }
            self.last_content = Some(self.now);
            *content_events += 1;
        }
        m.text.push_str(&content);
        if m.text.len() + m.reasoning.text.len() > MAX_BODY {
            return Err(too_large("the output", MAX_BODY));
        }
        if let Some(reason) = choices.finish_reason {
            m.finish_reason = Some(reason.into_owned());
        }
        Ok(())
    }
}

/// A streamed event as the fast reading sees it: its choices, and whether
/// it carries anything else worth a closer look.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(default, borrow)]
    choices: Option<Choices<'a>>,
    #[serde(default)]
    usage: Option<IgnoredAny>,
    #[serde(default)]
    timings: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

impl Event<'_> {
    /// Only choices: no usage, timings or error (each may be `null`).
    fn is_plain(&self) -> bool {
        self.usage.is_none() && self.timings.is_none() && self.error.is_none()
    }
}

/// What the choices of one event say, folded as they are read.
#[derive(Default)]
struct Choices<'a> {
    /// The content of every choice that has some, in order; borrowed from
    /// the event when there is one and it needs no unescaping.
    content: Cow<'a, str>,
    /// Choices with non-empty content.
    with_content: u32,
    /// The reasoning of every choice that has some, in order, and the form
    /// of the first (`reasoning_content` is preferred over `reasoning`
    /// when a server sends both).
    reasoning: Option<(Cow<'a, str>, ReasoningForm)>,
    /// The last `finish_reason` given.
    finish_reason: Option<Cow<'a, str>>,
}

impl<'a> Choices<'a> {
    fn add(
        &mut self,
        content: Option<Text<'a>>,
        reasoning: Option<(Text<'a>, ReasoningForm)>,
        finish: Option<Text<'a>>,
    ) {
        if let Some(Text(content)) = content.filter(|c| !c.0.is_empty()) {
            self.with_content += 1;
            if self.content.is_empty() {
                self.content = content;
            } else {
                self.content.to_mut().push_str(&content);
            }
        }
        if let Some((Text(text), form)) = reasoning.filter(|(r, _)| !r.0.is_empty()) {
            match &mut self.reasoning {
                None => self.reasoning = Some((text, form)),
                Some((all, _)) => all.to_mut().push_str(&text),
            }
        }
        if let Some(Text(reason)) = finish {
            self.finish_reason = Some(reason);
        }
    }

    /// The same reading of an event already parsed into a JSON tree.
    fn of_value(value: &'a Value) -> Choices<'a> {
        let mut choices = Choices::default();
        for choice in value
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let delta = choice.get("delta");
            let text = |field: &str| {
                delta
                    .and_then(|d| d.get(field))
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(|t| Text(Cow::Borrowed(t)))
            };
            let reasoning = reasoning_of(text("reasoning_content"), || text("reasoning"));
            choices.add(
                text("content"),
                reasoning,
                choice
                    .get("finish_reason")
                    .and_then(Value::as_str)
                    .map(|r| Text(Cow::Borrowed(r))),
            );
        }
        choices
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fold;
        impl<'de> serde::de::Visitor<'de> for Fold {
            type Value = Choices<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of choices")
            }

            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<Choices<'de>, S::Error> {
                let mut choices = Choices::default();
                while let Some(choice) = seq.next_element::<Choice<'de>>()? {
                    let (content, reasoning) = choice.delta.map_or((None, None), Delta::parts);
                    choices.add(content, reasoning, choice.finish_reason);
                }
                Ok(choices)
            }
        }
        deserializer.deserialize_seq(Fold)
    }
}

/// One choice of a streamed event (its other fields are skipped).
#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Text<'a>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Text<'a>>,
    #[serde(default, borrow)]
    reasoning: Option<Text<'a>>,
}

impl<'a> Delta<'a> {
    /// Its content, and its reasoning with the form it came in (non-empty
    /// `reasoning_content` first, else `reasoning`).
    fn parts(self) -> (Option<Text<'a>>, Option<(Text<'a>, ReasoningForm)>) {
        let said = |t: Option<Text<'a>>| t.filter(|t| !t.0.is_empty());
        let reasoning = reasoning_of(said(self.reasoning_content), || said(self.reasoning));
        (self.content, reasoning)
    }
}

/// The reasoning a delta or message carries, with the form it came in: a
/// non-empty `reasoning_content` first (a server may send both), else a
/// non-empty `reasoning` (looked up only then).
fn reasoning_of<T>(
    reasoning_content: Option<T>,
    reasoning: impl FnOnce() -> Option<T>,
) -> Option<(T, ReasoningForm)> {
    match reasoning_content {
        Some(t) => Some((t, ReasoningForm::ReasoningContent)),
        None => reasoning().map(|t| (t, ReasoningForm::Reasoning)),
    }
}

/// A JSON string, borrowed from the input unless it had escapes (serde's
/// own `Cow<str>` never borrows inside an `Option`).
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Str;
        impl<'de> serde::de::Visitor<'de> for Str {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(Str)
    }
}

/// Reads a non-streamed response (at most [`MAX_BODY`]); E2E ends when
/// the whole body is in.
async fn whole(
    response: &mut reqwest::Response,
    start: Instant,
    m: &mut Measured,
    target: &Target,
) -> Result<(), Failure> {
    let (body, more) = read_body(response, MAX_BODY)
        .await
        .map_err(|e| body_error(&e))?;
    if more {
        return Err(too_large("the response body", MAX_BODY));
    }
    m.e2e_ms = Some(ms(start, Instant::now()));
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| (ErrorKind::BadSse, format!("response is not JSON: {e}")))?;
    absorb_final(&value, m, target)
}

/// A `Retry-After` given in seconds (an HTTP date is not read); one too
/// large for a `Duration` is the longest (the caller caps the wait).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds >= 0.0).then(|| Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

/// Reads a non-streaming response body.
pub(super) fn absorb_final(
    value: &Value,
    m: &mut Measured,
    target: &Target,
) -> Result<(), Failure> {
    if let Some(error) = value.get("error") {
        let error = target.scrub(&error.to_string());
        return Err((ErrorKind::ServerError, error_text(&error)));
    }
    let choice = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| (ErrorKind::BadSse, "response has no choices".to_string()))?;
    let text = |field: &str| {
        choice
            .get("message")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    };
    let field = reasoning_of(text("reasoning_content"), || text("reasoning"));
    m.text = m.reasoning.take_whole(field, text("content").unwrap_or(""));
    m.finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    absorb_usage(value, m)
}

/// The error body of a request longer than the model's context window:
/// llama.cpp's `exceed_context_size_error`, OpenAI's
/// `context_length_exceeded`, vLLM's "maximum context length".
fn too_long(body: &str) -> bool {
    [
        "exceed_context_size_error",
        "exceeds the available context size",
        "context_length_exceeded",
        "maximum context length",
    ]
    .iter()
    .any(|marker| body.contains(marker))
}

/// Takes `usage` and llama.cpp's `timings` from a chunk or body that has
/// them. A token count above [`MAX_TOKEN_COUNT`] is bad data: the request
/// fails (`bad_sse`) rather than record it.
fn absorb_usage(value: &Value, m: &mut Measured) -> Result<(), Failure> {
    if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
        // `field` is a dotted path below `usage`.
        let count = |field: &str| -> Result<Option<u64>, Failure> {
            let pointer = format!("/{}", field.replace('.', "/"));
            match usage.pointer(&pointer).and_then(Value::as_u64) {
                Some(n) if n > MAX_TOKEN_COUNT => Err((
                    ErrorKind::BadSse,
                    format!(
                        "usage.{field} is {n}, not a plausible token count (at most {MAX_TOKEN_COUNT})"
                    ),
                )),
                n => Ok(n),
            }
        };
        if let Some(n) = count("completion_tokens")? {
            m.output_tokens = Some(n);
            m.token_source = Some(TokenSource::Usage);
        }
        if let Some(n) = count("prompt_tokens")? {
            m.prompt_tokens = Some(n);
        }
        if let Some(n) = count("completion_tokens_details.reasoning_tokens")? {
            m.reasoning.usage_tokens = Some(n);
        }
    }
    if let Some(timings) = value.get("timings").and_then(Value::as_object) {
        let numbers: BTreeMap<String, f64> = timings
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        m.server_timings = Some(numbers);
    }
    m.cached_tokens = cached_tokens(value).or(m.cached_tokens);
    Ok(())
}

/// Prompt tokens the server says it took from its cache: OpenAI's and
/// vLLM's `usage.prompt_tokens_details.cached_tokens`, else llama.cpp's
/// `timings.cache_n`; `None` when the chunk says neither.
fn cached_tokens(value: &Value) -> Option<u64> {
    let plausible = |n: u64| (n <= MAX_TOKEN_COUNT).then_some(n);
    value
        .pointer("/usage/prompt_tokens_details/cached_tokens")
        .and_then(Value::as_u64)
        .or_else(|| value.pointer("/timings/cache_n").and_then(Value::as_u64))
        .and_then(plausible)
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
        .filter(|n| n.is_finite() && **n >= 0.0 && **n <= MAX_TOKEN_COUNT as f64)
    {
        m.output_tokens = Some(*n as u64);
        m.token_source = Some(TokenSource::ServerTimings);
        return;
    }
    // Every generated token: the reasoning's and the answer's.
    let generated = if m.reasoning.text.is_empty() {
        Cow::Borrowed(m.text.as_str())
    } else {
        Cow::Owned(format!("{}{}", m.reasoning.text, m.text))
    };
    if !generated.is_empty()
        && let Some(n) = tokenize(client, target, &generated).await
    {
        m.output_tokens = Some(n);
        m.token_source = Some(TokenSource::Tokenize);
        return;
    }
    let events = content_events + m.reasoning.events;
    m.output_tokens = Some(if events > 0 {
        events
    } else {
        // About four characters per token for English text.
        (m.text.chars().count() as u64).div_ceil(4)
    });
    m.token_source = Some(TokenSource::Estimate);
}

/// llama.cpp's `POST /tokenize`, with the endpoint's key and headers;
/// `None` where the server has no such route.
pub(crate) async fn tokenize(client: &reqwest::Client, target: &Target, text: &str) -> Option<u64> {
    let request = client
        .post(target.root_url("tokenize"))
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
    json_body(response, MAX_BODY).await.ok()
}

/// How long the version probe waits: a server that does not answer it
/// this soon costs a run no more than this.
const VERSION_TIMEOUT: Duration = Duration::from_secs(2);

/// What the server says it is: llama.cpp's `/props` `build_info`, or
/// Ollama's `/api/version`; `None` when it says nothing.
pub async fn server_version(client: &reqwest::Client, target: &Target) -> Option<String> {
    for (path, field) in [("props", "build_info"), ("api/version", "version")] {
        let request = client.get(target.root_url(path)).timeout(VERSION_TIMEOUT);
        let Ok(response) = target.authorize(request).send().await else {
            return None;
        };
        if !response.status().is_success() {
            continue;
        }
        let value = json_body(response, MAX_BODY).await.ok();
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

fn transport_error(err: &reqwest::Error, target: &Target) -> Failure {
    if let Some(problem) = super::http::certificate_problem(err, target.ca_cert.as_deref()) {
        (ErrorKind::Connect, problem)
    } else if err.is_timeout() {
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
pub(crate) fn error_text(body: &str) -> String {
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
mod tests;
