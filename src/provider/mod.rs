//! Providers: what stands behind a model. An OpenAI-compatible endpoint
//! (`openai`, with its SSE framer `sse`), a managed server process
//! (`server`), a command adapter over stdin/stdout (`adapter`) and Foundry
//! Local (`foundry`). Process control shared by the managed kinds lives in
//! `process`.
//!
//! Every kind implements [`Provider`]: start what serves the model, measure
//! one request at a time into a [`Measured`], say whether it died, stop it.
//! The executor and the probes see nothing else, and an in-memory provider
//! with programmed timings can stand in for any of them. Providers never
//! decide what to run or where results go.
//!
//! A new kind (say, Ollama's native API) is a file here with a type that
//! implements [`Provider`], and one arm in [`Providers::open`].

pub(crate) mod adapter;
pub(crate) mod children;
mod endpoint;
pub(crate) mod engine;
mod error;
pub mod foundry;
pub(crate) mod http;
pub mod openai;
pub(crate) mod orphans;
pub(crate) mod process;
pub mod reasoning;
pub(crate) mod server;
pub(crate) mod sse;
#[cfg(not(any(windows, target_vendor = "apple")))]
mod tls;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

pub use error::ProviderError;

use crate::measure::resources::GpuSnapshot;
use crate::plan::Variant;
use crate::results::{EngineBuild, ErrorKind, FoundryVariant, TokenSource};
use crate::secrets::Secrets;
use crate::suite::{EndpointKind, Message, Model, ServedBy, Suite};

/// One request as a provider sends it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Unique within a run (the plan index); adapters use it as the request id.
    pub id: usize,
    /// The model name sent to the API (a provider that resolves names, as
    /// Foundry Local does, sends its own resolution instead).
    pub model: String,
    pub messages: Vec<Message>,
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub max_tokens: u32,
    pub seed: u32,
    pub stream: bool,
    /// Generate exactly `max_tokens` (`ignore_eos`, `min_tokens`), for
    /// prompts of controlled lengths.
    pub ignore_eos: bool,
    pub timeout: Duration,
    /// The shape the reply must take, sent as the OpenAI `response_format`
    /// (`{"type": "json_schema", "json_schema": {...}}`; llama-server turns
    /// it into a grammar); `None` for free text. The judge asks for its score
    /// this way, so that even a tiny judge model answers parseably.
    pub response_format: Option<serde_json::Value>,
    /// The server may reuse cached prompt tokens; `false` asks it not to
    /// (llama.cpp `cache_prompt: false`, and a `cache_salt` of the request's
    /// own, vLLM's per-request cache isolation).
    pub cache: bool,
    /// How hard a reasoning model thinks, in the endpoint's own field;
    /// `None` sends nothing.
    pub thinking: Option<Thinking>,
}

/// A reasoning effort as one endpoint takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinking {
    /// `reasoning_effort: <effort>`.
    Effort(crate::suite::ReasoningEffort),
    /// `chat_template_kwargs: {enable_thinking: <bool>}`.
    Enable(bool),
}

impl Thinking {
    /// `effort` in the field `control` names.
    pub fn of(
        effort: crate::suite::ReasoningEffort,
        control: crate::suite::ReasoningControl,
    ) -> Thinking {
        match control {
            crate::suite::ReasoningControl::ReasoningEffort => Thinking::Effort(effort),
            crate::suite::ReasoningControl::EnableThinking => {
                Thinking::Enable(effort != crate::suite::ReasoningEffort::None)
            }
        }
    }
}

/// What one request measured, whichever provider sent it. Times are
/// milliseconds on a monotonic clock from just before the request was
/// written; fields stay `None` when the response never got there, and what
/// was measured before a failure stays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    pub error: Option<(ErrorKind, String)>,
    /// First content (a non-empty `content` delta, or adapter token).
    pub ttft_ms: Option<f64>,
    /// First reasoning (`reasoning_content`, `reasoning`, or text inside
    /// `<think>`), when the model reasons.
    pub ttfo_reasoning_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
    /// Gaps between consecutive content-bearing events.
    pub itl_ms: Vec<f64>,
    pub output_tokens: Option<u64>,
    pub prompt_tokens: Option<u64>,
    /// Prompt tokens the server took from its prompt cache, as it reports.
    pub cached_tokens: Option<u64>,
    pub token_source: Option<TokenSource>,
    pub finish_reason: Option<String>,
    /// The answer (without the reasoning).
    pub text: String,
    /// The reasoning, told apart from the answer as it came.
    pub reasoning: reasoning::Thought,
    /// The server's own timings (llama.cpp `timings`), as sent.
    pub server_timings: Option<BTreeMap<String, f64>>,
    /// The HTTP status of a response that was not a success.
    pub http_status: Option<u16>,
    /// How long the server asked to wait before trying again.
    pub retry_after: Option<Duration>,
    /// The instant the times count from: just before the request was
    /// written (where the provider knows it).
    pub sent_at: Option<std::time::Instant>,
    /// The request opened a new connection (its TTFT and E2E include the
    /// connect); false when it went over one kept alive.
    pub new_connection: bool,
}

impl Measured {
    /// A request that failed before anything was measured.
    pub fn failed(kind: ErrorKind, message: impl Into<String>) -> Measured {
        Measured {
            error: Some((kind, message.into())),
            ..Measured::default()
        }
    }
}

/// How a provider came up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Started {
    /// Spawn → ready of a managed process, or the timed load of a model;
    /// `None` when nothing was started (a plain endpoint).
    pub load: Option<Duration>,
    /// The process tree to sample for memory and CPU, when dyno knows it.
    pub pid: Option<u32>,
    /// What the start did, in a few words for people ("ready in 311 ms at
    /// <http://127.0.0.1:41234/v1>"); empty when nothing was started.
    pub description: String,
    /// What the server says it is (llama.cpp `build_info`, adapter `info`).
    pub version: Option<String>,
    /// GPU memory and utilisation right after the load, where measured.
    pub gpu: Option<GpuSnapshot>,
    /// The exact model the requests go to, when the provider resolved one
    /// (a Foundry alias to a device variant).
    pub resolved: Option<FoundryVariant>,
    /// What the server says of its own build (managed servers).
    pub engine: Option<EngineBuild>,
}

/// How a provider ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stopped {
    /// How the process ended when it did not end at dyno's request.
    pub exit: Option<String>,
    /// Something worth a warning (a model that could not be unloaded).
    pub warning: Option<String>,
    /// What the stop did, in a few words for people ("unloaded").
    pub description: Option<String>,
}

/// Reports progress while a provider starts (`downloading 40%`).
pub(crate) type Progress<'a> = &'a (dyn Fn(String) + Send + Sync);

/// What stands behind one model in one variant. Calls come in order:
/// `start`, any number of `measure`, `stop`; `start` again after `stop`
/// makes a new launch (cold starts).
pub trait Provider: Send {
    /// Starts (or loads) what serves the model. The error is for the user.
    fn start<'a>(
        &'a mut self,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Started, ProviderError>>;

    /// Sends one request and measures it. Never panics; every failure is
    /// [`Measured::error`].
    fn measure<'a>(&'a mut self, request: &'a Request) -> BoxFuture<'a, Measured>;

    /// After a failed request: why what serves the model is gone (its exit
    /// and last log lines), or `None` while it runs.
    fn died(&mut self) -> Option<ProviderError>;

    /// Stops what `start` started; harmless when nothing runs.
    fn stop(&mut self) -> BoxFuture<'_, Stopped>;

    /// While started: a handle that sends requests side by side (load
    /// modes); `None` for providers that take one request at a time.
    fn sender(&self) -> Option<Arc<dyn Concurrent>> {
        None
    }
}

/// Sends requests side by side: what load modes drive. Cheap to share.
pub trait Concurrent: Send + Sync {
    /// Sends one request and measures it, like [`Provider::measure`].
    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Measured>;

    /// Tokens the server counts in `text`; `None` where it cannot tell.
    fn count_tokens<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Option<u64>> {
        let _ = text;
        Box::pin(async { None })
    }
}

/// An OpenAI-compatible target that takes requests side by side, over
/// connections kept alive (a request that finds none idle opens one).
pub struct HttpSender {
    http: reqwest::Client,
    target: openai::Target,
    /// Sent instead of each request's model (a resolved Foundry variant).
    model: Option<String>,
}

impl HttpSender {
    pub fn new(http: reqwest::Client, target: openai::Target, model: Option<String>) -> HttpSender {
        HttpSender {
            http,
            target,
            model,
        }
    }
}

impl Concurrent for HttpSender {
    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Measured> {
        let model = self.model.as_deref().unwrap_or(&request.model);
        Box::pin(openai::chat(&self.http, &self.target, model, request))
    }

    fn count_tokens<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Option<u64>> {
        Box::pin(openai::tokenize(&self.http, &self.target, text))
    }
}

/// The HTTP clients of one model's timed requests.
#[derive(Debug, Clone)]
pub struct Timed {
    /// Requests sent one at a time: a new connection each, or one kept
    /// alive when the model's `reuse_connections` says so. Side requests
    /// (version, token counts) go through it too.
    pub(crate) one: reqwest::Client,
    /// Load points: each stream keeps its connection alive.
    pub(crate) kept: reqwest::Client,
}

/// The client dyno times requests to a service on this machine with (a
/// managed server): a new connection per request, or (`reuse`)
/// connections kept alive, as load points and `reuse_connections` have
/// them. For benchmarks and tests of the client itself.
pub fn local_timing_client(reuse: bool) -> Result<reqwest::Client, ProviderError> {
    http::client(http::Purpose::Measure { local: true, reuse }, None)
        .map_err(|e| ProviderError::Client(e.to_string()))
}

/// Where providers come from: the executor and the judge ask for one per
/// model and variant. Tests give the executor an in-memory source.
pub trait Source {
    /// The provider of `model` in `variant`; the error is for the user.
    fn open(
        &mut self,
        model: &Model,
        variant: &Variant,
    ) -> Result<Box<dyn Provider>, ProviderError>;
}

/// The providers a suite declares: endpoints, managed servers, adapters and
/// Foundry Local services (each service discovered once per run).
pub(crate) struct Providers {
    suite: Arc<Suite>,
    /// Where server logs go (`logs/` below it).
    work_dir: PathBuf,
    /// The clients of timed requests, by purpose and `ca_cert`.
    clients: http::Clients,
    foundry: BTreeMap<String, foundry::Shared>,
    /// For `dyno check`: nothing is downloaded.
    probing: bool,
}

impl Providers {
    pub(crate) fn new(suite: Arc<Suite>, work_dir: PathBuf) -> Providers {
        Providers {
            suite,
            work_dir,
            clients: http::Clients::default(),
            foundry: BTreeMap::new(),
            probing: false,
        }
    }

    /// Providers for probes: like a run's, but nothing is downloaded.
    pub(crate) fn for_probe(suite: Arc<Suite>, work_dir: PathBuf) -> Providers {
        Providers {
            probing: true,
            ..Providers::new(suite, work_dir)
        }
    }

    /// The clients for `model`'s timed requests to a service (`what`
    /// names it in errors), which trust its `ca_cert`; a service on this
    /// machine (`local`: a managed server, Foundry Local) is never reached
    /// through a proxy.
    fn timed_for(
        &mut self,
        what: &str,
        model: &Model,
        local: bool,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Timed, ProviderError> {
        let mut get = |reuse| {
            self.clients
                .get(http::Purpose::Measure { local, reuse }, ca_cert)
                .map_err(|e| ProviderError::Client(format!("{what}: {e}")))
        };
        Ok(Timed {
            one: get(model.params.reuse_connections)?,
            kept: get(true)?,
        })
    }
}

impl Source for Providers {
    /// The provider of `model` in `variant`, behind [`Redacted`]: no secret
    /// of the suite leaves it in an error, a description or a warning.
    fn open(
        &mut self,
        model: &Model,
        variant: &Variant,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        let secrets = self.suite.secrets.clone();
        match self.open_plain(model, variant) {
            Ok(inner) => Ok(Box::new(Redacted { inner, secrets })),
            Err(err) => Err(err.redact(&secrets)),
        }
    }
}

impl Providers {
    fn open_plain(
        &mut self,
        model: &Model,
        variant: &Variant,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        let suite = Arc::clone(&self.suite);
        match &model.served_by {
            ServedBy::Server(name) => {
                let server = suite.servers.get(name).ok_or_else(|| {
                    ProviderError::Undefined(format!("server `{name}` is not defined"))
                })?;
                let spec = server::spec(name, server, variant, &self.work_dir, &suite.secrets);
                let http = self.timed_for(&format!("server `{name}`"), model, true, None)?;
                Ok(Box::new(server::Managed::new(spec, http)))
            }
            ServedBy::Endpoint(name) => {
                let endpoint = suite.endpoints.get(name).ok_or_else(|| {
                    ProviderError::Undefined(format!("endpoint `{name}` is not defined"))
                })?;
                Ok(match endpoint.kind {
                    EndpointKind::Openai => Box::new(endpoint::Endpoint::new(
                        openai::Target::of(endpoint, &suite.secrets),
                        self.timed_for(
                            &format!("endpoint `{name}`"),
                            model,
                            false,
                            endpoint.ca_cert.as_deref(),
                        )?,
                    )),
                    EndpointKind::Command => {
                        Box::new(adapter::Command::new(name, adapter::spec(endpoint)))
                    }
                    EndpointKind::Foundry => {
                        let http = self.timed_for(
                            &format!("endpoint `{name}`"),
                            model,
                            true,
                            endpoint.ca_cert.as_deref(),
                        )?;
                        let service = self
                            .foundry
                            .entry(name.clone())
                            .or_insert_with(|| foundry::Shared::new(name, endpoint))
                            .clone();
                        Box::new(foundry::Local::new(
                            service,
                            model,
                            self.probing,
                            variant.device().cloned(),
                            openai::Target::of(endpoint, &suite.secrets),
                            http,
                        ))
                    }
                })
            }
        }
    }
}

/// A provider whose every message passes through [`Secrets::redact`]:
/// start errors, descriptions and versions, request errors (stored error
/// bodies included), deaths and stop warnings. The outputs themselves are
/// measured data and pass unchanged.
struct Redacted {
    inner: Box<dyn Provider>,
    secrets: Secrets,
}

impl Provider for Redacted {
    fn start<'a>(
        &'a mut self,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Started, ProviderError>> {
        async move {
            let secrets = &self.secrets;
            match self.inner.start(progress).await {
                Ok(started) => Ok(Started {
                    description: secrets.redact(&started.description),
                    version: started.version.map(|v| secrets.redact(&v)),
                    ..started
                }),
                Err(err) => Err(err.redact(secrets)),
            }
        }
        .boxed()
    }

    fn measure<'a>(&'a mut self, request: &'a Request) -> BoxFuture<'a, Measured> {
        async move {
            let mut measured = self.inner.measure(request).await;
            if let Some((_, message)) = &mut measured.error {
                *message = self.secrets.redact(message);
            }
            measured
        }
        .boxed()
    }

    fn died(&mut self) -> Option<ProviderError> {
        Some(self.inner.died()?.redact(&self.secrets))
    }

    fn stop(&mut self) -> BoxFuture<'_, Stopped> {
        async move {
            let stopped = self.inner.stop().await;
            let redact = |text: Option<String>| text.map(|t| self.secrets.redact(&t));
            Stopped {
                exit: redact(stopped.exit),
                warning: redact(stopped.warning),
                description: redact(stopped.description),
            }
        }
        .boxed()
    }

    fn sender(&self) -> Option<Arc<dyn Concurrent>> {
        let inner = self.inner.sender()?;
        Some(Arc::new(RedactedSender {
            inner,
            secrets: self.secrets.clone(),
        }))
    }
}

/// A [`Concurrent`] sender behind the same redaction as [`Redacted`].
struct RedactedSender {
    inner: Arc<dyn Concurrent>,
    secrets: Secrets,
}

impl Concurrent for RedactedSender {
    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Measured> {
        async move {
            let mut measured = self.inner.send(request).await;
            if let Some((_, message)) = &mut measured.error {
                *message = self.secrets.redact(message);
            }
            measured
        }
        .boxed()
    }

    fn count_tokens<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Option<u64>> {
        self.inner.count_tokens(text)
    }
}
