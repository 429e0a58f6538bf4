//! A connected Foundry Local service: generation detection and the
//! management routes (catalog, cached and loaded models, load, unload,
//! download with progress, token count).

use std::fmt;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::{
    BODY_EXCERPT, CatalogEntry, DEFAULT_LOAD_TIMEOUT, DEFAULT_LOAD_TTL, Discovered, FoundryError,
    MANAGEMENT_TIMEOUT, PROBE_TIMEOUT, TOKEN_COUNT_TIMEOUT, aliases, field, list_items,
    normalize_base_url, parse_catalog, same_variant, split_version, str_field, suggest,
};
use crate::text::error_chain;

/// Which Foundry Local service is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Generation {
    /// 2025 – mid-2026 service + CLI: `/openai/*` management routes,
    /// `/foundry/list` catalog, streamed downloads, token-count route.
    Service,
    /// 2026 core web service: `/status`, `/models/*` routes, catalog from
    /// `/v1/models`; no cached-model listing or download route.
    Core,
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Generation::Service => "Foundry Local service (`/openai/*` routes)",
            Generation::Core => "Foundry Local core web service (`/models/*` routes)",
        })
    }
}

/// A connected Foundry Local service.
#[derive(Debug, Clone)]
pub struct Foundry {
    base_url: String,
    /// The service's process, when known (its memory and CPU are sampled).
    pid: Option<u32>,
    generation: Generation,
    http: reqwest::Client,
    load_timeout: Duration,
    load_ttl: Duration,
}

/// The service is local: a system proxy must not intercept it.
pub(super) fn http_client() -> Result<reqwest::Client, FoundryError> {
    crate::provider::http::client(crate::provider::http::Purpose::Local, None)
        .map_err(|e| FoundryError::Client(error_chain(&e)))
}

impl Foundry {
    /// Connects to a discovered URL and detects the generation: `GET
    /// /openai/status` answering JSON means [`Generation::Service`], else
    /// `GET /status` answering a JSON object means [`Generation::Core`].
    pub async fn connect(discovered: &Discovered) -> Result<Foundry, FoundryError> {
        let base_url = normalize_base_url(&discovered.base_url).map_err(|reason| {
            FoundryError::InvalidUrl {
                url: discovered.base_url.clone(),
                origin: discovered.source.to_string(),
                reason,
            }
        })?;
        let http = http_client()?;
        let mut foundry = Foundry::with_generation(&base_url, Generation::Service, http);
        let mut details = Vec::new();
        for (generation, segments) in [
            (Generation::Service, &["openai", "status"][..]),
            (Generation::Core, &["status"][..]),
        ] {
            let url = foundry.endpoint(segments)?;
            let response = foundry
                .http
                .get(url)
                .timeout(PROBE_TIMEOUT)
                .send()
                .await
                .map_err(|e| FoundryError::Unreachable {
                    url: base_url.clone(),
                    reason: error_chain(&e),
                })?;
            let status = response.status();
            let body = response.bytes().await.unwrap_or_default();
            let json: Option<Value> = serde_json::from_slice(&body).ok();
            if status.is_success() && json.as_ref().is_some_and(Value::is_object) {
                foundry.generation = generation;
                return Ok(foundry);
            }
            details.push(format!(
                "/{} → HTTP {}",
                segments.join("/"),
                status.as_u16()
            ));
        }
        Err(FoundryError::NotFoundry {
            url: base_url,
            detail: details.join(", "),
        })
    }

    /// A client for a service whose generation is already known (no probe).
    /// `base_url` must already be normalized.
    pub fn with_generation(
        base_url: &str,
        generation: Generation,
        http: reqwest::Client,
    ) -> Foundry {
        Foundry {
            base_url: base_url.trim_end_matches('/').to_string(),
            pid: None,
            generation,
            http,
            load_timeout: DEFAULT_LOAD_TIMEOUT,
            load_ttl: DEFAULT_LOAD_TTL,
        }
    }

    /// Says which process serves the service.
    #[must_use]
    pub(crate) fn with_pid(mut self, pid: Option<u32>) -> Foundry {
        self.pid = pid;
        self
    }

    /// The service's process, when known.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Changes how long [`Foundry::load`] may take.
    #[must_use]
    pub(crate) fn with_load_timeout(mut self, timeout: Duration) -> Foundry {
        self.load_timeout = timeout;
        self
    }

    /// The service root (no `/v1`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The OpenAI-compatible root for chat completions: `<base>/v1`.
    pub fn chat_base_url(&self) -> String {
        format!("{}/v1", self.base_url)
    }

    /// The catalog: `/foundry/list` (first generation) or `/v1/models`
    /// (core web service).
    pub async fn catalog(&self) -> Result<Vec<CatalogEntry>, FoundryError> {
        let body = self.get_json(self.catalog_route()).await?;
        Ok(parse_catalog(&body))
    }

    fn catalog_route(&self) -> &'static [&'static str] {
        match self.generation {
            Generation::Service => &["foundry", "list"],
            Generation::Core => &["v1", "models"],
        }
    }

    /// Ids of downloaded models, as the service spells them (the first
    /// generation omits `:version`; compare with [`same_variant`]). The core
    /// web service has no such route: [`FoundryError::Unsupported`].
    pub async fn cached(&self) -> Result<Vec<String>, FoundryError> {
        match self.generation {
            Generation::Service => {
                let body = self.get_json(&["openai", "models"]).await?;
                id_list(&body, "GET /openai/models")
            }
            Generation::Core => Err(FoundryError::Unsupported {
                operation: "listing cached models",
                generation: self.generation,
                hint: "load the model and handle the not-cached error, or run `foundry cache list`"
                    .to_string(),
            }),
        }
    }

    /// Ids of loaded models (compare with [`same_variant`]).
    pub async fn loaded(&self) -> Result<Vec<String>, FoundryError> {
        let (segments, route): (&[&str], &str) = match self.generation {
            Generation::Service => (&["openai", "loadedmodels"], "GET /openai/loadedmodels"),
            Generation::Core => (&["models", "loaded"], "GET /models/loaded"),
        };
        let body = self.get_json(segments).await?;
        id_list(&body, route)
    }

    /// Whether `id` is currently loaded.
    pub async fn is_loaded(&self, id: &str) -> Result<bool, FoundryError> {
        Ok(self.loaded().await?.iter().any(|l| same_variant(l, id)))
    }

    /// Loads the exact variant `id` and returns how long the load request
    /// took (Foundry Local reports no load time itself). A not-downloaded
    /// model is [`FoundryError::NotCached`]. If the model was already loaded
    /// the duration is only a round trip; check [`Foundry::is_loaded`] first
    /// (or unload) when a cold load is to be measured.
    pub async fn load(&self, id: &str) -> Result<Duration, FoundryError> {
        match self.generation {
            Generation::Service => {
                let cached = self.cached().await?;
                if !cached.iter().any(|c| same_variant(c, id)) {
                    let catalog = self.catalog().await?;
                    if catalog.iter().any(|e| same_variant(&e.id, id)) {
                        return Err(FoundryError::NotCached { id: id.to_string() });
                    }
                    return Err(FoundryError::UnknownModel {
                        query: id.to_string(),
                        suggestions: suggest(&catalog, id),
                        available: aliases(&catalog),
                    });
                }
                let mut url = self.endpoint(&["openai", "load", id])?;
                url.query_pairs_mut()
                    .append_pair("ttl", &self.load_ttl.as_secs().max(1).to_string());
                let route = format!("GET /openai/load/{id}");
                self.timed_load(id, url, &route)
                    .await
                    .map(|(elapsed, _)| elapsed)
            }
            Generation::Core => {
                let url = self.endpoint(&["models", "load", id])?;
                let route = format!("GET /models/load/{id}");
                let (elapsed, body) = self.timed_load(id, url, &route).await?;
                let value: Value =
                    serde_json::from_str(&body).map_err(|e| FoundryError::BadResponse {
                        route: route.clone(),
                        detail: format!("not JSON ({e}): {}", clip(&body, BODY_EXCERPT)),
                    })?;
                match str_field(&value, "status") {
                    Some("loaded" | "already_loaded") => Ok(elapsed),
                    other => Err(FoundryError::BadResponse {
                        route,
                        detail: format!("status {other:?} instead of \"loaded\""),
                    }),
                }
            }
        }
    }

    /// Unloads `id` at once (ignoring its TTL). Unloading a model that is
    /// not loaded is not an error.
    pub async fn unload(&self, id: &str) -> Result<(), FoundryError> {
        let (url, route) = match self.generation {
            Generation::Service => {
                let mut url = self.endpoint(&["openai", "unload", id])?;
                url.query_pairs_mut().append_pair("force", "true");
                (url, format!("GET /openai/unload/{id}"))
            }
            Generation::Core => (
                self.endpoint(&["models", "unload", id])?,
                format!("GET /models/unload/{id}"),
            ),
        };
        let response = self
            .send(self.http.get(url).timeout(MANAGEMENT_TIMEOUT), &route)
            .await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        Err(FoundryError::Http {
            route,
            status: status.as_u16(),
            body: clip(&body, BODY_EXCERPT),
            hint: format!("check `{id}` is an exact variant id from the catalog"),
        })
    }

    /// Downloads the exact variant `id` (first generation only), calling
    /// `progress` with increasing percentages that end at 100. Already
    /// cached models report 100 at once. The core web service has no
    /// download route: [`FoundryError::Unsupported`] naming the CLI command.
    pub async fn download(
        &self,
        id: &str,
        progress: &mut (dyn FnMut(f64) + Send),
    ) -> Result<(), FoundryError> {
        if self.generation == Generation::Core {
            return Err(FoundryError::Unsupported {
                operation: "downloading models",
                generation: self.generation,
                hint: format!("run `foundry model download {id}` first"),
            });
        }
        if self.cached().await?.iter().any(|c| same_variant(c, id)) {
            progress(100.0);
            return Ok(());
        }
        let catalog = self.get_json(&["foundry", "list"]).await?;
        let items = list_items(&catalog);
        let item = items
            .iter()
            .find(|item| {
                str_field(item, "name")
                    .or_else(|| str_field(item, "id"))
                    .is_some_and(|name| same_variant(name, id))
            })
            .ok_or_else(|| {
                let parsed = parse_catalog(&catalog);
                FoundryError::UnknownModel {
                    query: id.to_string(),
                    suggestions: suggest(&parsed, id),
                    available: aliases(&parsed),
                }
            })?;
        let body = download_body(item);
        let route = "POST /openai/download";
        let url = self.endpoint(&["openai", "download"])?;
        // No overall timeout: large downloads take as long as they take.
        let response = self.send(self.http.post(url).json(&body), route).await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(FoundryError::Http {
                route: route.to_string(),
                status: status.as_u16(),
                body: clip(&text, BODY_EXCERPT),
                hint: format!("try `foundry model download {id}`"),
            });
        }
        let mut parser = ProgressParser::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| FoundryError::Request {
                route: route.to_string(),
                reason: error_chain(&e),
            })?;
            parser.push(&chunk, progress);
        }
        parser
            .finish(progress)
            .map_err(|message| FoundryError::DownloadFailed {
                id: id.to_string(),
                message,
            })
    }

    /// Tokens in `text` sent as one user message, from the first
    /// generation's token-count route; `None` when the route is absent or
    /// fails (callers fall back to counting stream events).
    pub async fn token_count(&self, id: &str, text: &str) -> Option<u64> {
        if self.generation != Generation::Service {
            return None;
        }
        let url = self
            .endpoint(&["v1", "chat", "completions", "tokenizer", "encode", "count"])
            .ok()?;
        let body = json!({
            "model": id,
            "messages": [{ "role": "user", "content": text }],
        });
        let value = crate::provider::openai::post_json(
            &self.http,
            url.as_str(),
            &body,
            TOKEN_COUNT_TIMEOUT,
        )
        .await?;
        field(&value, "tokenCount").and_then(Value::as_u64)
    }

    /// `<base>/<segments…>`, each segment percent-encoded as needed.
    fn endpoint(&self, segments: &[&str]) -> Result<reqwest::Url, FoundryError> {
        let invalid = |reason: String| FoundryError::InvalidUrl {
            url: self.base_url.clone(),
            origin: "the connected service".to_string(),
            reason,
        };
        let mut url = reqwest::Url::parse(&self.base_url).map_err(|e| invalid(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| invalid("it cannot have a path".to_string()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Asks the service to load `id` at `url`: how long it took and the
    /// reply's body, or the error the service answered with.
    async fn timed_load(
        &self,
        id: &str,
        url: reqwest::Url,
        route: &str,
    ) -> Result<(Duration, String), FoundryError> {
        let start = Instant::now();
        let response = self
            .send(self.http.get(url).timeout(self.load_timeout), route)
            .await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let elapsed = start.elapsed();
        if status.is_success() {
            Ok((elapsed, body))
        } else {
            Err(load_error(id, route, status.as_u16(), &body))
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        route: &str,
    ) -> Result<reqwest::Response, FoundryError> {
        request.send().await.map_err(|e| FoundryError::Request {
            route: route.to_string(),
            reason: error_chain(&e),
        })
    }

    async fn get_json(&self, segments: &[&str]) -> Result<Value, FoundryError> {
        let route = format!("GET /{}", segments.join("/"));
        let url = self.endpoint(segments)?;
        let response = self
            .send(self.http.get(url).timeout(MANAGEMENT_TIMEOUT), &route)
            .await?;
        let status = response.status();
        let body = response.text().await.map_err(|e| FoundryError::Request {
            route: route.clone(),
            reason: error_chain(&e),
        })?;
        if !status.is_success() {
            return Err(FoundryError::Http {
                route,
                status: status.as_u16(),
                body: clip(&body, BODY_EXCERPT),
                hint: format!(
                    "the {} may have changed; check `foundry --version`",
                    self.generation
                ),
            });
        }
        serde_json::from_str(&body).map_err(|e| FoundryError::BadResponse {
            route,
            detail: format!("not JSON ({e}): {}", clip(&body, BODY_EXCERPT)),
        })
    }
}

/// Maps a failed load to the error the user can act on.
pub(super) fn load_error(id: &str, route: &str, status: u16, body: &str) -> FoundryError {
    let lower = body.to_ascii_lowercase();
    if lower.contains("not cached") || lower.contains("not downloaded") {
        return FoundryError::NotCached { id: id.to_string() };
    }
    if status == 404 {
        return FoundryError::UnknownModel {
            query: id.to_string(),
            suggestions: Vec::new(),
            available: Vec::new(),
        };
    }
    FoundryError::Http {
        route: route.to_string(),
        status,
        body: clip(body, BODY_EXCERPT),
        hint: "check free RAM / VRAM for this variant or try its CPU variant".to_string(),
    }
}

/// Accepts `["a", "b"]`, `[{"id": "a"}, …]`, `{"data": […]}` or `{"models": […]}`.
pub(super) fn id_list(body: &Value, route: &str) -> Result<Vec<String>, FoundryError> {
    let items = match body {
        Value::Array(items) => items.as_slice(),
        Value::Object(_) => {
            let found = ["data", "models", "loaded", "value"]
                .iter()
                .find_map(|key| field(body, key).and_then(Value::as_array));
            match found {
                Some(items) => items.as_slice(),
                None => {
                    return Err(FoundryError::BadResponse {
                        route: route.to_string(),
                        detail: format!(
                            "expected a list of model ids, got {}",
                            clip(&body.to_string(), BODY_EXCERPT)
                        ),
                    });
                }
            }
        }
        _ => {
            return Err(FoundryError::BadResponse {
                route: route.to_string(),
                detail: format!(
                    "expected a list of model ids, got {}",
                    clip(&body.to_string(), BODY_EXCERPT)
                ),
            });
        }
    };
    Ok(items
        .iter()
        .filter_map(|item| match item {
            Value::String(s) => Some(s.clone()),
            other => str_field(other, "id")
                .or_else(|| str_field(other, "name"))
                .map(str::to_string),
        })
        .collect())
}

/// The first generation's download request for a raw `/foundry/list` item.
/// The name must carry its `:version`.
pub(super) fn download_body(item: &Value) -> Value {
    let name = str_field(item, "name")
        .or_else(|| str_field(item, "id"))
        .unwrap_or_default();
    let name = match (split_version(name).1, field(item, "version")) {
        (None, Some(Value::Number(v))) => format!("{name}:{v}"),
        (None, Some(Value::String(v))) if !v.is_empty() => format!("{name}:{v}"),
        _ => name.to_string(),
    };
    let provider = str_field(item, "providerType").unwrap_or("AzureFoundry");
    let provider = if provider.ends_with("Local") {
        provider.to_string()
    } else {
        format!("{provider}Local")
    };
    json!({
        "model": {
            "Name": name,
            "Uri": str_field(item, "uri").unwrap_or_default(),
            "Publisher": str_field(item, "publisher").unwrap_or_default(),
            "ProviderType": provider,
            "PromptTemplate": field(item, "promptTemplate").cloned().unwrap_or_else(|| json!({})),
        },
        "ignorePipeReport": true,
    })
}

/// Reads the first generation's download stream: progress text (`Total
/// 12.50% …` or `("file", 0.5)` lines, possibly split across chunks), then a
/// final JSON object `{success, errorMessage}`.
pub(super) struct ProgressParser {
    pending: Vec<u8>,
    tail: Option<Vec<u8>>,
    last: f64,
}

impl ProgressParser {
    pub(super) fn new() -> Self {
        ProgressParser {
            pending: Vec::new(),
            tail: None,
            last: f64::NEG_INFINITY,
        }
    }

    fn emit(&mut self, percent: f64, report: &mut dyn FnMut(f64)) {
        if (0.0..=100.0).contains(&percent) && percent > self.last {
            self.last = percent;
            report(percent);
        }
    }

    pub(super) fn push(&mut self, chunk: &[u8], report: &mut dyn FnMut(f64)) {
        if let Some(tail) = &mut self.tail {
            tail.extend_from_slice(chunk);
            return;
        }
        self.pending.extend_from_slice(chunk);
        loop {
            let brace = self.pending.iter().position(|b| *b == b'{');
            // A progress mark counts only before the final JSON object.
            let mark = self
                .pending
                .iter()
                .position(|b| *b == b'%' || *b == b')')
                .filter(|m| brace.is_none_or(|b| *m < b));
            match (mark, brace) {
                (Some(m), _) => {
                    let value = if self.pending[m] == b'%' {
                        number_before(&self.pending[..m])
                    } else {
                        tuple_fraction(&self.pending[..m]).map(|f| f * 100.0)
                    };
                    if let Some(value) = value {
                        self.emit(value, report);
                    }
                    self.pending.drain(..=m);
                }
                (None, Some(b)) => {
                    self.tail = Some(self.pending.split_off(b));
                    self.pending.clear();
                    return;
                }
                (None, None) => {
                    // Keep enough for a number or tuple split across chunks.
                    const KEEP: usize = 256;
                    if self.pending.len() > KEEP {
                        self.pending.drain(..self.pending.len() - KEEP);
                    }
                    return;
                }
            }
        }
    }

    /// `Ok` on success (reporting 100 if not yet reported), `Err(message)` on
    /// a reported failure or a stream that ended without a result.
    pub(super) fn finish(mut self, report: &mut dyn FnMut(f64)) -> Result<(), String> {
        let Some(tail) = self.tail.take() else {
            if self.last >= 100.0 {
                return Ok(());
            }
            return Err(format!(
                "the download stream ended without a result{}",
                if self.last >= 0.0 {
                    format!(" at {:.0}%", self.last)
                } else {
                    String::new()
                }
            ));
        };
        let value = serde_json::Deserializer::from_slice(&tail)
            .into_iter::<Value>()
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| {
                format!(
                    "unreadable final result: {}",
                    clip(&String::from_utf8_lossy(&tail), BODY_EXCERPT)
                )
            })?;
        if field(&value, "success").and_then(Value::as_bool) == Some(true) {
            self.emit(100.0, report);
            return Ok(());
        }
        Err(str_field(&value, "errorMessage")
            .filter(|m| !m.is_empty())
            .unwrap_or("the service reported failure without a message")
            .to_string())
    }
}

/// The decimal number right before `end` (spaces allowed in between).
pub(super) fn number_before(bytes: &[u8]) -> Option<f64> {
    let trimmed = bytes.trim_ascii_end();
    let start = trimmed
        .iter()
        .rposition(|b| !(b.is_ascii_digit() || *b == b'.'))
        .map_or(0, |p| p + 1);
    std::str::from_utf8(&trimmed[start..]).ok()?.parse().ok()
}

/// The fraction of a `("file", 0.5` tuple whose `)` was just found.
pub(super) fn tuple_fraction(bytes: &[u8]) -> Option<f64> {
    let open = bytes.iter().rposition(|b| *b == b'(')?;
    let inner = &bytes[open + 1..];
    let comma = inner.iter().rposition(|b| *b == b',')?;
    let value = number_before(&inner[comma + 1..])?;
    (0.0..=1.0).contains(&value).then_some(value)
}

pub(super) fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}
