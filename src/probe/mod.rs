//! Probes before a run: what an endpoint or a suite serves (`dyno models`)
//! and the validation checklist (`dyno check`: the suite loads, endpoints
//! answer, models are listed, managed servers start, one tiny chat per
//! model). Everything is returned as plain data and rendered by small pure
//! functions.
//!
//! Must never: measure or record benchmark results, print (the CLI does),
//! show an API key or a header value, download a model, or leave anything
//! it started behind: servers and adapters are stopped, and a Foundry Local
//! model it loaded is unloaded again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use std::sync::Arc;

use crate::plan::Variant;
use crate::provider::foundry::{
    self, CatalogEntry, CliRunner, Device, Discovered, Foundry, FoundryError,
};
use crate::provider::openai::Target;
use crate::provider::{Measured, Providers, Request, Source as _};
use crate::run::executor::timeout;
use crate::suite::{
    self, Endpoint, EndpointKind, LoadError, Message, Model, Role, ServedBy, Suite,
};
use crate::text::first_line;

/// How long listing an endpoint's models may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// The user message of every probe chat (answered with one token).
const PROBE_PROMPT: &str = "Say OK.";
/// How many model ids a failing check quotes.
const SHOWN_IDS: usize = 10;

/// What the probes read from the outside world; tests substitute both.
pub struct Context<'a> {
    /// Environment lookups: `${VAR}` in suites and `FOUNDRY_LOCAL_ENDPOINT`.
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
    /// The `foundry` CLI, to find a Foundry Local service that has no URL.
    pub foundry_cli: &'a dyn CliRunner,
}

/// Why a target cannot be probed. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Nothing answered.
    #[error(
        "cannot reach {url}: {reason}; check that the server is running and that the URL (`base_url`) is right"
    )]
    Unreachable { url: String, reason: String },
    /// Something answered with an error status.
    #[error(
        "{url} answered HTTP {status}: {body}; check the URL, and for a hosted API the key named by `api_key_env`"
    )]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    /// Something answered, but not with an OpenAI model list.
    #[error(
        "{url} did not answer with an OpenAI model list ({detail}); check that the URL points at an OpenAI-compatible server"
    )]
    NotAModelList { url: String, detail: String },
    /// `dyno models` was given something it cannot probe.
    #[error(
        "`{0}` is neither a suite file nor an http:// or https:// URL; give a suite file, or a URL such as http://127.0.0.1:8080/v1"
    )]
    UnknownTarget(String),
    /// `--kind` was given with a suite file.
    #[error(
        "--kind applies to a URL; the endpoints of a suite declare their own `kind`, drop --kind"
    )]
    KindWithSuite,
}

// ---------------------------------------------------------------------------
// What is served
// ---------------------------------------------------------------------------

/// The kind of service behind a URL given to `dyno models`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UrlKind {
    /// Any OpenAI-compatible server: `GET /v1/models`.
    #[default]
    Openai,
    /// Foundry Local: its catalog, with cache and load state.
    Foundry,
}

impl std::str::FromStr for UrlKind {
    type Err = String;
    fn from_str(s: &str) -> Result<UrlKind, String> {
        match s {
            "openai" => Ok(UrlKind::Openai),
            "foundry" => Ok(UrlKind::Foundry),
            other => Err(format!("unknown kind `{other}`; use openai or foundry")),
        }
    }
}

/// What `dyno models` was pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Url { url: String, kind: UrlKind },
    Suite(PathBuf),
}

/// Tells a URL (`http://` or `https://`) from a suite file (an existing
/// file, or a name ending in `.yaml` / `.yml`).
pub fn classify(target: &str, kind: Option<UrlKind>) -> Result<Source, ProbeError> {
    if target.starts_with("http://") || target.starts_with("https://") {
        return Ok(Source::Url {
            url: target.to_string(),
            kind: kind.unwrap_or_default(),
        });
    }
    let path = Path::new(target);
    let yaml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if !(path.is_file() || yaml) {
        return Err(ProbeError::UnknownTarget(target.to_string()));
    }
    if kind.is_some() {
        return Err(ProbeError::KindWithSuite);
    }
    Ok(Source::Suite(path.to_path_buf()))
}

/// Where a listed model was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Openai,
    Foundry,
    Command,
    Server,
}

impl SourceKind {
    fn name(self) -> &'static str {
        match self {
            SourceKind::Openai => "openai",
            SourceKind::Foundry => "foundry",
            SourceKind::Command => "command",
            SourceKind::Server => "server",
        }
    }
}

/// One model an endpoint, adapter or managed server serves. Fields that
/// the source does not tell are `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelListing {
    /// The URL asked, or the endpoint's or server's name in the suite.
    pub source: String,
    pub kind: SourceKind,
    /// The model id (a Foundry Local variant id; a command line for an
    /// adapter; the model file's name for a managed server).
    pub id: String,
    pub alias: Option<String>,
    pub device: Option<String>,
    pub execution_provider: Option<String>,
    /// Catalog size in MB (10^6 bytes).
    pub size_mb: Option<f64>,
    /// Size on disk of `path`.
    pub bytes: Option<u64>,
    pub license: Option<String>,
    /// `None` where the service cannot tell (Foundry Local's core web service).
    pub cached: Option<bool>,
    pub loaded: Option<bool>,
    /// The weights: llama-server's `model_path`, an adapter's weights, a
    /// managed server's `-m` file.
    pub path: Option<String>,
    pub note: Option<String>,
}

impl ModelListing {
    fn new(source: &str, kind: SourceKind, id: &str) -> ModelListing {
        ModelListing {
            source: source.to_string(),
            kind,
            id: id.to_string(),
            alias: None,
            device: None,
            execution_provider: None,
            size_mb: None,
            bytes: None,
            license: None,
            cached: None,
            loaded: None,
            path: None,
            note: None,
        }
    }

    /// `path`, its size, and a note when it is missing.
    fn with_file(mut self, path: &Path) -> ModelListing {
        let bytes = file_size(path);
        self.path = Some(path.display().to_string());
        self.bytes = bytes;
        if bytes.is_none() {
            self.note = Some("file not found".to_string());
        }
        self
    }
}

/// A source that could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unlisted {
    pub source: String,
    pub message: String,
}

/// Everything `dyno models` found, and what it could not list.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inventory {
    pub models: Vec<ModelListing>,
    pub errors: Vec<Unlisted>,
}

/// What an OpenAI-compatible endpoint says it serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    /// The model ids of `GET /v1/models`, in its order.
    pub ids: Vec<String>,
    /// llama-server's `model_path` (from `GET /props`).
    pub model_path: Option<String>,
    /// The server is llama.cpp's llama-server, which answers any model
    /// name with the one model it serves.
    pub llama_server: bool,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(LIST_TIMEOUT)
        .build()
        .unwrap_or_default()
}

fn get(http: &reqwest::Client, target: &Target, url: &str) -> reqwest::RequestBuilder {
    let mut request = http.get(url).timeout(LIST_TIMEOUT);
    if let Some(key) = &target.api_key {
        request = request.bearer_auth(key);
    }
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    request
}

/// `GET /v1/models` of `target`, and llama-server's `/props` when it has one.
pub async fn openai_models(http: &reqwest::Client, target: &Target) -> Result<Served, ProbeError> {
    let url = format!("{}/models", target.v1_root());
    let response = get(http, target, &url)
        .send()
        .await
        .map_err(|e| ProbeError::Unreachable {
            url: url.clone(),
            reason: crate::text::root_cause(&e),
        })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(ProbeError::Http {
            url,
            status: status.as_u16(),
            body: crate::provider::openai::error_text(&body),
        });
    }
    let value: Value = serde_json::from_str(&body).map_err(|e| ProbeError::NotAModelList {
        url: url.clone(),
        detail: format!("not JSON: {e}"),
    })?;
    let ids = model_ids(&value).ok_or_else(|| ProbeError::NotAModelList {
        url: url.clone(),
        detail: "no `data` list".to_string(),
    })?;
    let owned_by_llamacpp = value
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|m| m.get("owned_by").and_then(Value::as_str) == Some("llamacpp"));
    let props = llama_props(http, target).await;
    let model_path = props
        .as_ref()
        .and_then(|p| p.get("model_path"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let llama_server = owned_by_llamacpp
        || props
            .as_ref()
            .is_some_and(|p| p.get("model_path").is_some() || p.get("build_info").is_some());
    Ok(Served {
        ids,
        model_path,
        llama_server,
    })
}

/// The ids of an OpenAI model list (`data[].id`), or of llama-server's
/// `models[]` when `data` is absent.
fn model_ids(value: &Value) -> Option<Vec<String>> {
    if let Some(data) = value.get("data").and_then(Value::as_array) {
        return Some(
            data.iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str))
                .map(str::to_string)
                .collect(),
        );
    }
    let models = value.get("models").and_then(Value::as_array)?;
    Some(
        models
            .iter()
            .filter_map(|m| {
                ["id", "model", "name"]
                    .iter()
                    .find_map(|k| m.get(*k).and_then(Value::as_str))
            })
            .map(str::to_string)
            .collect(),
    )
}

/// llama-server's `GET /props`; `None` on any other server.
async fn llama_props(http: &reqwest::Client, target: &Target) -> Option<Value> {
    let url = format!("{}/props", target.server_root());
    let response = get(http, target, &url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json::<Value>().await.ok().filter(Value::is_object)
}

fn openai_listings(source: &str, served: &Served) -> Vec<ModelListing> {
    served
        .ids
        .iter()
        .map(|id| {
            let mut listing = ModelListing::new(source, SourceKind::Openai, id);
            if served.ids.len() == 1 {
                listing.path.clone_from(&served.model_path);
            }
            listing
        })
        .collect()
}

/// A connected Foundry Local service and what it holds.
struct FoundryState {
    foundry: Foundry,
    discovered: Discovered,
    catalog: Vec<CatalogEntry>,
    /// `None` on the core web service, which cannot list its cache.
    cached: Option<Vec<String>>,
    loaded: Vec<String>,
}

impl FoundryState {
    async fn connect(base_url: Option<&str>, ctx: &Context<'_>) -> Result<Self, FoundryError> {
        let discovered = foundry::discover(base_url, ctx.env, ctx.foundry_cli).await?;
        let foundry = Foundry::connect(&discovered).await?;
        let catalog = foundry.catalog().await?;
        let cached = match foundry.cached().await {
            Ok(cached) => Some(cached),
            Err(FoundryError::Unsupported { .. }) => None,
            Err(err) => return Err(err),
        };
        let loaded = foundry.loaded().await?;
        Ok(FoundryState {
            foundry,
            discovered,
            catalog,
            cached,
            loaded,
        })
    }

    fn is_loaded(&self, id: &str) -> bool {
        self.loaded.iter().any(|l| foundry::same_variant(l, id))
    }

    /// Whether `id` is downloaded; `None` when the service cannot tell.
    fn is_cached(&self, id: &str) -> Option<bool> {
        if self.is_loaded(id) {
            return Some(true);
        }
        let cached = self.cached.as_ref()?;
        Some(cached.iter().any(|c| foundry::same_variant(c, id)))
    }

    fn listings(&self, source: &str) -> Vec<ModelListing> {
        self.catalog
            .iter()
            .map(|entry| ModelListing {
                alias: Some(entry.alias.clone()),
                device: Some(entry.device.to_string()),
                execution_provider: Some(entry.execution_provider.clone())
                    .filter(|ep| !ep.is_empty()),
                size_mb: entry.file_size_mb,
                license: entry.license.clone(),
                cached: self.is_cached(&entry.id),
                loaded: Some(self.is_loaded(&entry.id)),
                ..ModelListing::new(source, SourceKind::Foundry, &entry.id)
            })
            .collect()
    }
}

/// What the service at `url` serves.
pub async fn list_url(url: &str, kind: UrlKind, ctx: &Context<'_>) -> Inventory {
    let listed = match kind {
        UrlKind::Openai => {
            let target = Target {
                base_url: url.to_string(),
                api_key: None,
                headers: Default::default(),
            };
            openai_models(&http_client(), &target)
                .await
                .map(|served| openai_listings(url, &served))
                .map_err(|e| e.to_string())
        }
        UrlKind::Foundry => FoundryState::connect(Some(url), ctx)
            .await
            .map(|state| state.listings(url))
            .map_err(|e| e.to_string()),
    };
    let mut inventory = Inventory::default();
    inventory.add(url, listed);
    inventory
}

impl Inventory {
    fn add(&mut self, source: &str, listed: Result<Vec<ModelListing>, String>) {
        match listed {
            Ok(models) => self.models.extend(models),
            Err(message) => self.errors.push(Unlisted {
                source: source.to_string(),
                message,
            }),
        }
    }
}

/// What every endpoint of the suite at `file` serves, and the model files
/// of its managed servers (which are not started).
pub async fn list_suite(file: &Path, ctx: &Context<'_>) -> Result<Inventory, LoadError> {
    let suite = suite::load(file, ctx.env)?;
    let http = http_client();
    let mut inventory = Inventory::default();
    for (name, endpoint) in &suite.endpoints {
        let listed = match endpoint.kind {
            EndpointKind::Openai => openai_models(&http, &Target::of(endpoint))
                .await
                .map(|served| openai_listings(name, &served))
                .map_err(|e| e.to_string()),
            EndpointKind::Foundry => FoundryState::connect(endpoint.base_url.as_deref(), ctx)
                .await
                .map(|state| state.listings(name))
                .map_err(|e| e.to_string()),
            EndpointKind::Command => {
                let listing =
                    ModelListing::new(name, SourceKind::Command, &endpoint.command.join(" "));
                Ok(vec![match &endpoint.weights {
                    Some(weights) => listing.with_file(weights),
                    None => listing,
                }])
            }
        };
        inventory.add(name, listed);
    }
    for (name, server) in &suite.servers {
        let files = server_model_files(server);
        if files.is_empty() {
            let program = server.command.first().map_or("", String::as_str);
            let mut listing = ModelListing::new(name, SourceKind::Server, program);
            listing.note = Some("no -m/--model in its command".to_string());
            inventory.models.push(listing);
        }
        for file in files {
            let id = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            inventory
                .models
                .push(ModelListing::new(name, SourceKind::Server, &id).with_file(&file));
        }
    }
    Ok(inventory)
}

/// The `-m` / `--model` files of a server's command over all its variants,
/// first seen first.
fn server_model_files(server: &suite::Server) -> Vec<PathBuf> {
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    for variant in Variant::of_server(server) {
        let command: Vec<String> = server.command.iter().map(|arg| variant.fill(arg)).collect();
        for file in crate::measure::resources::files::model_files_in_command(&command) {
            if seen.insert(file.clone()) {
                files.push(PathBuf::from(file));
            }
        }
    }
    files
}

// ---------------------------------------------------------------------------
// The checklist
// ---------------------------------------------------------------------------

/// One line of `dyno check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CheckLine {
    pub ok: bool,
    /// What was checked, e.g. `endpoint local reachable`.
    pub what: String,
    /// What was found; for a failure, what to do about it.
    pub detail: String,
}

impl CheckLine {
    fn pass(what: impl Into<String>, detail: impl Into<String>) -> CheckLine {
        CheckLine {
            ok: true,
            what: what.into(),
            detail: detail.into(),
        }
    }

    fn fail(what: impl Into<String>, detail: impl Into<String>) -> CheckLine {
        CheckLine {
            ok: false,
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// One line for several (one per device variant): passes when all do.
    fn all(what: impl Into<String>, mut lines: Vec<CheckLine>) -> CheckLine {
        if lines.len() == 1
            && let Some(line) = lines.pop()
        {
            return line;
        }
        CheckLine {
            ok: lines.iter().all(|l| l.ok),
            what: what.into(),
            detail: lines
                .iter()
                .map(|l| l.detail.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// How an endpoint answered its reachability check.
enum Reached {
    Openai(Served),
    Foundry(Box<FoundryState>),
    Command,
    /// It failed its check; nothing more is asked of it.
    Failed,
}

/// Runs the checklist on the suite at `file`, in order: the suite loads
/// (else its diagnostics are the error); every endpoint is reachable;
/// every model is listed where it is served (or its files are on disk);
/// every managed server starts; one chat per model (1 token, not
/// streamed, temperature 0) succeeds. Servers, adapters and Foundry models
/// are started through the same providers a run uses.
pub async fn check(file: &Path, ctx: &Context<'_>) -> Result<Vec<CheckLine>, LoadError> {
    let suite = Arc::new(suite::load(file, ctx.env)?);
    let http = http_client();
    let mut lines = vec![CheckLine::pass(
        format!("suite {} loads", file.display()),
        format!(
            "{}, {}, {}",
            plural(suite.endpoints.len(), "endpoint"),
            plural(suite.servers.len(), "server"),
            plural(suite.models.len(), "model")
        ),
    )];

    let mut reached = BTreeMap::new();
    for (name, endpoint) in &suite.endpoints {
        let (line, state) = reach(name, endpoint, &http, ctx).await;
        lines.push(line);
        reached.insert(name.clone(), state);
    }

    for model in &suite.models {
        lines.push(match &model.served_by {
            ServedBy::Endpoint(name) => match (reached.get(name), suite.endpoints.get(name)) {
                (Some(state), Some(endpoint)) => listed(model, name, endpoint, state),
                _ => CheckLine::fail(
                    format!("model {} listed by {name}", model.id),
                    format!("endpoint `{name}` is not defined"),
                ),
            },
            ServedBy::Server(name) => files_on_disk(model, name),
        });
    }

    // Server logs; kept when a server failed, since its error names the log.
    let work_dir = tempfile::tempdir().map_err(|err| {
        LoadError::io(
            file,
            &std::io::Error::other(format!(
                "cannot create a temporary directory for server logs: {err}; check that TMPDIR is writable"
            )),
        )
    })?;
    let mut providers = Providers::for_probe(Arc::clone(&suite), work_dir.path().to_path_buf());

    // Each server starts once and its models' probes run while it is up;
    // their lines go after every server's line.
    let mut probes: Vec<Option<CheckLine>> = vec![None; suite.models.len()];
    let (server_lines, failed) = start_servers(&suite, &mut providers, &mut probes).await;
    lines.extend(server_lines);

    for (i, model) in suite.models.iter().enumerate() {
        let line = match probes[i].take() {
            Some(line) => line,
            None => match &model.served_by {
                ServedBy::Endpoint(name) => match (reached.get(name), suite.endpoints.get(name)) {
                    (Some(Reached::Failed), Some(endpoint)) => CheckLine::fail(
                        probe_what(model),
                        format!("not sent: {}", failed_endpoint(name, endpoint)),
                    ),
                    (Some(_), Some(_)) => {
                        let variants = Variant::of_model(&suite, model);
                        let mut per_variant = Vec::new();
                        for variant in &variants {
                            per_variant.push(probe_model(&mut providers, model, variant).await);
                        }
                        CheckLine::all(probe_what(model), per_variant)
                    }
                    _ => CheckLine::fail(
                        probe_what(model),
                        format!("not sent: endpoint `{name}` is not defined"),
                    ),
                },
                ServedBy::Server(name) => CheckLine::fail(
                    probe_what(model),
                    format!("not sent: server `{name}` is not defined"),
                ),
            },
        };
        lines.push(line);
    }
    if failed {
        let _ = work_dir.keep();
    }
    Ok(lines)
}

/// Starts each managed server in turn (its first variant, through its first
/// model's provider), sends the probe chat of each of its models into
/// `probes`, and stops it. Returns one line per server, and whether any
/// failed to start.
async fn start_servers(
    suite: &Suite,
    providers: &mut Providers,
    probes: &mut [Option<CheckLine>],
) -> (Vec<CheckLine>, bool) {
    let mut lines = Vec::new();
    let mut any_failed = false;
    for (name, server) in &suite.servers {
        let users: Vec<usize> = (0..suite.models.len())
            .filter(|i| suite.models[*i].served_by == ServedBy::Server(name.clone()))
            .collect();
        let Some(first) = users.first().map(|i| &suite.models[*i]) else {
            lines.push(CheckLine::pass(
                format!("server {name}"),
                "not started: no model uses it",
            ));
            continue;
        };
        let what = format!("server {name} starts");
        let variant = Variant::of_server(server)
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut provider = match providers.open(first, &variant) {
            Ok(provider) => provider,
            Err(reason) => {
                lines.push(CheckLine::fail(what, reason));
                any_failed = true;
                continue;
            }
        };
        match provider.start(&|_| {}).await {
            Ok(started) => {
                lines.push(CheckLine::pass(what, started.description));
                for i in &users {
                    let model = &suite.models[*i];
                    let m = provider.measure(&probe_request(model)).await;
                    probes[*i] = Some(match chat_outcome(&m) {
                        Ok(detail) => CheckLine::pass(probe_what(model), detail),
                        Err(reason) => CheckLine::fail(probe_what(model), reason),
                    });
                }
                provider.stop().await;
            }
            Err(reason) => {
                any_failed = true;
                lines.push(CheckLine::fail(what, reason));
                for i in &users {
                    probes[*i] = Some(CheckLine::fail(
                        probe_what(&suite.models[*i]),
                        format!("not sent: server `{name}` did not start"),
                    ));
                }
            }
        }
    }
    (lines, any_failed)
}

/// The probe chat of one model in one variant: start its provider, one
/// chat, stop it; the line tells what each step did.
async fn probe_model(providers: &mut Providers, model: &Model, variant: &Variant) -> CheckLine {
    let what = probe_what(model);
    let mut provider = match providers.open(model, variant) {
        Ok(provider) => provider,
        Err(reason) => return CheckLine::fail(what, format!("not sent: {reason}")),
    };
    let started = match provider.start(&|_| {}).await {
        Ok(started) => started,
        Err(reason) => return CheckLine::fail(what, format!("not sent: {reason}")),
    };
    let m = provider.measure(&probe_request(model)).await;
    let stopped = provider.stop().await;
    let mut steps: Vec<String> = Some(started.description)
        .filter(|d| !d.is_empty())
        .into_iter()
        .collect();
    match chat_outcome(&m) {
        Err(reason) if steps.is_empty() => CheckLine::fail(what, reason),
        Err(reason) => CheckLine::fail(what, format!("{}, then {reason}", steps.join(", "))),
        Ok(_) if stopped.exit.is_some() => CheckLine::fail(
            what,
            format!(
                "the chat passed, but it did not exit cleanly ({})",
                stopped.exit.unwrap_or_default()
            ),
        ),
        Ok(_) if stopped.warning.is_some() => CheckLine::fail(
            what,
            format!(
                "the chat passed, but stopping failed: {}",
                stopped.warning.unwrap_or_default()
            ),
        ),
        Ok(detail) => {
            steps.push(detail);
            steps.extend(stopped.description);
            CheckLine::pass(what, steps.join(", "))
        }
    }
}

/// Whether `endpoint` answers, and what it told.
async fn reach(
    name: &str,
    endpoint: &Endpoint,
    http: &reqwest::Client,
    ctx: &Context<'_>,
) -> (CheckLine, Reached) {
    let what = format!("endpoint {name} reachable");
    match endpoint.kind {
        EndpointKind::Openai => {
            let target = Target::of(endpoint);
            match openai_models(http, &target).await {
                Ok(served) => {
                    let mut detail = format!(
                        "{}, {}",
                        target.v1_root(),
                        plural(served.ids.len(), "model")
                    );
                    if served.llama_server {
                        detail.push_str(", llama-server");
                    }
                    (CheckLine::pass(what, detail), Reached::Openai(served))
                }
                Err(err) => (CheckLine::fail(what, err.to_string()), Reached::Failed),
            }
        }
        EndpointKind::Foundry => {
            match FoundryState::connect(endpoint.base_url.as_deref(), ctx).await {
                Ok(state) => {
                    let detail = format!(
                        "{}, {}, found via {}, {} catalog variants",
                        state.foundry.base_url(),
                        state.foundry.generation(),
                        state.discovered.source,
                        state.catalog.len()
                    );
                    (
                        CheckLine::pass(what, detail),
                        Reached::Foundry(Box::new(state)),
                    )
                }
                Err(err) => (CheckLine::fail(what, err.to_string()), Reached::Failed),
            }
        }
        EndpointKind::Command => {
            let what = format!("endpoint {name} runnable");
            let program = endpoint.command.first().map_or("", String::as_str);
            match find_program(program, &endpoint.dir) {
                Some(found) => (
                    CheckLine::pass(what, format!("`{program}` is {}", found.display())),
                    Reached::Command,
                ),
                None => (
                    CheckLine::fail(
                        what,
                        format!(
                            "`{program}` is neither on PATH nor a file in {}; install it or fix the endpoint's `command`",
                            shown_dir(&endpoint.dir)
                        ),
                    ),
                    Reached::Failed,
                ),
            }
        }
    }
}

/// "3 models", "1 model".
fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn shown_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        ".".to_string()
    } else {
        dir.display().to_string()
    }
}

/// Where `program` would be run from: a path (relative to `dir`, where
/// adapters run) when it names one, else the first executable on `PATH`.
fn find_program(program: &str, dir: &Path) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let path = dir.join(program);
        return is_executable(&path).then_some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `model` is among what its endpoint serves.
fn listed(model: &Model, name: &str, endpoint: &Endpoint, state: &Reached) -> CheckLine {
    let what = format!("model {} listed by {name}", model.id);
    let api = &model.api_model;
    match state {
        Reached::Failed => CheckLine::fail(
            what,
            format!("not checked: {}", failed_endpoint(name, endpoint)),
        ),
        Reached::Openai(served) => {
            if served.ids.iter().any(|id| id == api) {
                CheckLine::pass(what, format!("`{api}` is in /v1/models"))
            } else if served.llama_server && served.ids.len() == 1 {
                CheckLine::pass(
                    what,
                    format!(
                        "`{api}` is not in /v1/models, but llama-server answers any name with its one model `{}`",
                        served.ids[0]
                    ),
                )
            } else if served.ids.is_empty() {
                CheckLine::fail(what, format!("`{api}`: the endpoint lists no models"))
            } else {
                CheckLine::fail(
                    what,
                    format!(
                        "`{api}` is not in /v1/models, which lists {}; set the model's `model` to one of them",
                        quoted(&served.ids)
                    ),
                )
            }
        }
        Reached::Foundry(state) => {
            let lines: Vec<CheckLine> = devices(model)
                .iter()
                .map(|device| listed_variant(&what, api, state, device.as_ref()))
                .collect();
            CheckLine::all(what, lines)
        }
        Reached::Command => match &endpoint.weights {
            None => CheckLine::pass(what, "the adapter declares no weights file"),
            Some(weights) => match file_size(weights) {
                Some(bytes) => CheckLine::pass(
                    what,
                    format!("weights {}, {bytes} bytes", weights.display()),
                ),
                None => CheckLine::fail(
                    what,
                    format!(
                        "weights {} not found; fix the endpoint's `weights`",
                        weights.display()
                    ),
                ),
            },
        },
    }
}

/// The devices a Foundry model is measured on; `[None]` for the preferred one.
fn devices(model: &Model) -> Vec<Option<Device>> {
    if model.devices.is_empty() {
        vec![None]
    } else {
        model.devices.iter().cloned().map(Some).collect()
    }
}

/// Whether one device variant of a Foundry model is in the catalog and cached.
fn listed_variant(
    what: &str,
    api: &str,
    state: &FoundryState,
    device: Option<&Device>,
) -> CheckLine {
    let what = what.to_string();
    match foundry::resolve(&state.catalog, api, device) {
        Ok(entry) => {
            let variant = format!("`{api}` → `{}` ({})", entry.id, device_label(&entry));
            match state.is_cached(&entry.id) {
                Some(true) => CheckLine::pass(what, format!("{variant}, cached")),
                Some(false) => CheckLine::fail(
                    what,
                    format!(
                        "{variant} is not cached; run `foundry model download {}`",
                        entry.id
                    ),
                ),
                None => CheckLine::pass(
                    what,
                    format!(
                        "{variant}; the core web service cannot list its cache, the probe load tells"
                    ),
                ),
            }
        }
        Err(err) => CheckLine::fail(what, err.to_string()),
    }
}

/// Why nothing more is asked of an endpoint that failed its check.
fn failed_endpoint(name: &str, endpoint: &Endpoint) -> String {
    match endpoint.kind {
        EndpointKind::Command => format!("the adapter of endpoint `{name}` cannot be run"),
        EndpointKind::Openai | EndpointKind::Foundry => {
            format!("endpoint `{name}` is unreachable")
        }
    }
}

fn device_label(entry: &CatalogEntry) -> String {
    if entry.execution_provider.is_empty() {
        entry.device.to_string()
    } else {
        format!("{}, {}", entry.device, entry.execution_provider)
    }
}

/// `` `a`, `b` `` and at most [`SHOWN_IDS`] of them.
fn quoted(ids: &[String]) -> String {
    let mut text = ids
        .iter()
        .take(SHOWN_IDS)
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN_IDS {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN_IDS));
    }
    text
}

fn file_size(path: &Path) -> Option<u64> {
    crate::measure::resources::files::file_bytes(&[path.to_path_buf()])
        .into_iter()
        .next()
        .and_then(|(_, bytes)| bytes)
}

/// Whether a managed server's model files are on disk.
fn files_on_disk(model: &Model, server: &str) -> CheckLine {
    let what = format!("model {} files on disk", model.id);
    if model.files.is_empty() {
        return CheckLine::pass(
            what,
            format!("server `{server}` names no -m/--model file; nothing to check"),
        );
    }
    let mut found = Vec::new();
    for file in &model.files {
        match file_size(file) {
            Some(bytes) => found.push(format!("{}, {bytes} bytes", file.display())),
            None => {
                return CheckLine::fail(
                    what,
                    format!(
                        "{} not found; fix the path in the command of server `{server}` (or the model's `files`)",
                        file.display()
                    ),
                );
            }
        }
    }
    CheckLine::pass(what, found.join(", "))
}

fn probe_what(model: &Model) -> String {
    format!("probe chat {}", model.id)
}

/// The probe request: one user message, one token, not streamed, temperature 0.
fn probe_request(model: &Model) -> Request {
    Request {
        id: 0,
        model: model.api_model.clone(),
        messages: vec![Message {
            role: Role::User,
            content: PROBE_PROMPT.to_string(),
        }],
        temperature: 0.0,
        top_p: None,
        max_tokens: 1,
        seed: model.params.seed,
        stream: false,
        timeout: timeout(model.params.timeout_s),
    }
}

/// "1 token in 12 ms", or why the chat failed (its first line: an HTML
/// error page says no more after it).
fn chat_outcome(m: &Measured) -> Result<String, String> {
    match &m.error {
        Some((_, message)) => Err(first_line(message).to_string()),
        None => {
            let tokens = plural(m.output_tokens.unwrap_or(0) as usize, "token");
            Ok(format!("{tokens} in {:.0} ms", m.e2e_ms.unwrap_or(0.0)))
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// Whether every line passed.
pub fn all_passed(lines: &[CheckLine]) -> bool {
    lines.iter().all(|l| l.ok)
}

/// `pass  what (detail)` / `FAIL  what: detail`, one per line; further
/// lines of a detail are indented under the first.
pub fn render_check_text(lines: &[CheckLine]) -> String {
    let mut out = String::new();
    for line in lines {
        let mark = if line.ok { "pass" } else { "FAIL" };
        let body = match (line.ok, line.detail.is_empty()) {
            (_, true) => line.what.clone(),
            (true, false) => format!("{} ({})", line.what, line.detail),
            (false, false) => format!("{}: {}", line.what, line.detail),
        };
        out.push_str(mark);
        out.push_str("  ");
        out.push_str(&body.replace('\n', "\n      "));
        out.push('\n');
    }
    out
}

/// `12 checks: 11 passed, 1 failed`.
pub fn render_check_summary(lines: &[CheckLine]) -> String {
    let failed = lines.iter().filter(|l| !l.ok).count();
    format!(
        "{} checks: {} passed, {failed} failed\n",
        lines.len(),
        lines.len() - failed
    )
}

/// The lines as a JSON array of `{ok, what, detail}`.
pub fn render_check_json(lines: &[CheckLine]) -> String {
    serde_json::to_string_pretty(lines).unwrap_or_default() + "\n"
}

/// An aligned table of the listings; columns that are empty for every row
/// are left out.
pub fn render_models_text(models: &[ModelListing]) -> String {
    if models.is_empty() {
        return "no models listed\n".to_string();
    }
    type Cell = fn(&ModelListing) -> String;
    let columns: [(&str, Cell); 12] = [
        ("SOURCE", |m| m.source.clone()),
        ("KIND", |m| m.kind.name().to_string()),
        ("MODEL", |m| m.id.clone()),
        ("ALIAS", |m| m.alias.clone().unwrap_or_default()),
        ("DEVICE", |m| m.device.clone().unwrap_or_default()),
        ("EP", |m| m.execution_provider.clone().unwrap_or_default()),
        ("SIZE MB", |m| {
            m.size_mb.map(|v| v.to_string()).unwrap_or_default()
        }),
        ("BYTES", |m| {
            m.bytes.map(|v| v.to_string()).unwrap_or_default()
        }),
        ("LICENCE", |m| m.license.clone().unwrap_or_default()),
        ("STATE", state_label),
        ("PATH", |m| m.path.clone().unwrap_or_default()),
        ("NOTE", |m| m.note.clone().unwrap_or_default()),
    ];
    let table: Vec<(&str, Vec<String>)> = columns
        .iter()
        .map(|(header, cell)| (*header, models.iter().map(cell).collect::<Vec<_>>()))
        .filter(|(_, cells)| cells.iter().any(|c| !c.is_empty()))
        .collect();
    let widths: Vec<usize> = table
        .iter()
        .map(|(header, cells)| {
            cells
                .iter()
                .map(|c| c.chars().count())
                .chain([header.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let row = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = row(table.iter().map(|(header, _)| *header).collect());
    for i in 0..models.len() {
        out.push_str(&row(table
            .iter()
            .map(|(_, cells)| cells[i].as_str())
            .collect()));
    }
    out
}

fn state_label(m: &ModelListing) -> String {
    match (m.loaded, m.cached) {
        (Some(true), _) => "loaded",
        (_, Some(true)) => "cached",
        (_, Some(false)) => "not cached",
        _ => "",
    }
    .to_string()
}

/// `error: SOURCE: message`, one line per source that could not be listed.
pub fn render_unlisted(errors: &[Unlisted]) -> String {
    errors
        .iter()
        .map(|e| format!("error: {}: {}\n", e.source, e.message))
        .collect()
}

/// `{"models": [...], "errors": [...]}`, keys in a fixed order.
pub fn render_models_json(inventory: &Inventory) -> String {
    serde_json::to_string_pretty(inventory).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ok: bool, what: &str, detail: &str) -> CheckLine {
        CheckLine {
            ok,
            what: what.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn check_lines_render_pass_in_parentheses_and_failures_after_a_colon() {
        let lines = [
            line(true, "endpoint local reachable", "http://h/v1, 3 models"),
            line(false, "server s starts", "it exited\nlog line"),
            line(true, "server t", ""),
        ];
        assert_eq!(
            render_check_text(&lines),
            "pass  endpoint local reachable (http://h/v1, 3 models)\n\
             FAIL  server s starts: it exited\n      log line\n\
             pass  server t\n"
        );
        assert_eq!(
            render_check_summary(&lines),
            "3 checks: 2 passed, 1 failed\n"
        );
        assert!(!all_passed(&lines));
        assert!(render_check_json(&lines).starts_with("[\n  {\n    \"ok\": true,\n    \"what\""));
    }

    #[test]
    fn the_table_aligns_and_drops_empty_columns() {
        let mut a = ModelListing::new("http://h/v1", SourceKind::Openai, "qwen");
        a.path = Some("/m/qwen.gguf".into());
        let b = ModelListing::new("http://h/v1", SourceKind::Openai, "a-longer-name");
        assert_eq!(
            render_models_text(&[a, b]),
            "SOURCE       KIND    MODEL          PATH\n\
             http://h/v1  openai  qwen           /m/qwen.gguf\n\
             http://h/v1  openai  a-longer-name\n"
        );
        assert_eq!(render_models_text(&[]), "no models listed\n");
    }

    #[test]
    fn foundry_state_reads_loaded_then_cached() {
        let mut m = ModelListing::new("f", SourceKind::Foundry, "x");
        assert_eq!(state_label(&m), "");
        m.cached = Some(false);
        assert_eq!(state_label(&m), "not cached");
        m.cached = Some(true);
        assert_eq!(state_label(&m), "cached");
        m.loaded = Some(true);
        assert_eq!(state_label(&m), "loaded");
    }

    #[test]
    fn targets_are_urls_or_suite_files() {
        assert_eq!(
            classify("http://127.0.0.1:8080", None).unwrap(),
            Source::Url {
                url: "http://127.0.0.1:8080".into(),
                kind: UrlKind::Openai
            }
        );
        assert_eq!(
            classify("suites/x.yaml", None).unwrap(),
            Source::Suite(PathBuf::from("suites/x.yaml"))
        );
        assert!(matches!(
            classify("suites/x.yaml", Some(UrlKind::Foundry)),
            Err(ProbeError::KindWithSuite)
        ));
        assert!(matches!(
            classify("localhost-ish", None),
            Err(ProbeError::UnknownTarget(_))
        ));
    }

    #[test]
    fn model_ids_read_openai_and_llama_server_lists() {
        let openai = serde_json::json!({"data": [{"id": "a"}, {"id": "b"}, {"object": "model"}]});
        assert_eq!(model_ids(&openai), Some(vec!["a".into(), "b".into()]));
        let llama = serde_json::json!({"models": [{"name": "m.gguf", "model": "m.gguf"}]});
        assert_eq!(model_ids(&llama), Some(vec!["m.gguf".into()]));
        assert_eq!(model_ids(&serde_json::json!({"x": 1})), None);
    }

    #[test]
    fn many_ids_are_cut_short() {
        let ids: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
        assert!(quoted(&ids).ends_with("`m9` and 2 more"));
    }
}
