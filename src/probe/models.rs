//! `dyno models`: what an endpoint, a Foundry Local service or a suite
//! serves (model ids, devices, sizes, licences, cache and load state),
//! listed without starting anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::{Context, LIST_TIMEOUT, ProbeError, file_size, http_client};
use crate::plan::Variant;
use crate::provider::foundry::{self, CatalogEntry, Discovered, Foundry, FoundryError};
use crate::provider::http::{Clients, Purpose};
use crate::provider::openai::{self, Target};
use crate::results::EngineBuild;
use crate::suite::{self, EndpointKind, SuiteError};

/// The kind of service behind a URL given to `dyno models`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UrlKind {
    /// Not said (no `--kind`): `GET /v1/models`, and Foundry Local's
    /// catalog when that fails, lists nothing or lists Microsoft's models
    /// and the URL answers Foundry Local's status route.
    #[default]
    Auto,
    /// Any OpenAI-compatible server: `GET /v1/models`.
    Openai,
    /// Foundry Local: its catalog, with cache and load state.
    Foundry,
}

impl std::str::FromStr for UrlKind {
    type Err = String;
    fn from_str(s: &str) -> Result<UrlKind, String> {
        match s {
            "auto" => Ok(UrlKind::Auto),
            "openai" => Ok(UrlKind::Openai),
            "foundry" => Ok(UrlKind::Foundry),
            other => Err(format!(
                "unknown kind `{other}`; use openai or foundry (or auto, the default)"
            )),
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
    /// A managed server's engine, as dyno's setup recorded it (servers are
    /// not started to be listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<crate::results::EngineBuild>,
    pub note: Option<String>,
}

impl ModelListing {
    pub(super) fn new(source: &str, kind: SourceKind, id: &str) -> ModelListing {
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
            engine: None,
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
    /// Some model is `owned_by` Microsoft, as Foundry Local lists them.
    pub microsoft: bool,
}

/// `GET /v1/models` of `target`, and llama-server's `/props` when it has one.
pub async fn openai_models(http: &reqwest::Client, target: &Target) -> Result<Served, ProbeError> {
    let url = target.v1_url("models");
    let response = get(http, target, &url).send().await.map_err(|e| {
        match crate::provider::http::certificate_problem(&e, target.ca_cert.as_deref()) {
            Some(problem) => ProbeError::Tls {
                url: url.clone(),
                problem,
            },
            None => ProbeError::Unreachable {
                url: url.clone(),
                reason: crate::text::root_cause(&e),
            },
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        let body = target.scrub(&openai::error_body(response).await);
        return Err(ProbeError::Http {
            url,
            status: status.as_u16(),
            body: openai::error_text(&body),
        });
    }
    let value = openai::json_body(response, openai::MAX_BODY)
        .await
        .map_err(|detail| ProbeError::NotAModelList {
            url: url.clone(),
            detail,
        })?;
    let ids = model_ids(&value).ok_or_else(|| ProbeError::NotAModelList {
        url: url.clone(),
        detail: "no `data` list".to_string(),
    })?;
    let owned_by = |owner: &str| {
        value
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("owned_by").and_then(Value::as_str))
            .any(|o| o.eq_ignore_ascii_case(owner))
    };
    let owned_by_llamacpp = owned_by("llamacpp");
    let microsoft = owned_by("microsoft");
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
        microsoft,
    })
}

/// The ids of an OpenAI model list (`data[].id`), or of llama-server's
/// `models[]` when `data` is absent.
pub(super) fn model_ids(value: &Value) -> Option<Vec<String>> {
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
    let url = target.root_url("props");
    let response = get(http, target, &url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    openai::json_body(response, openai::MAX_BODY)
        .await
        .ok()
        .filter(Value::is_object)
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
pub(super) struct FoundryState {
    pub(super) foundry: Foundry,
    pub(super) discovered: Discovered,
    pub(super) catalog: Vec<CatalogEntry>,
    /// `None` on the core web service, which cannot list its cache.
    pub(super) cached: Option<Vec<String>>,
    pub(super) loaded: Vec<String>,
}

impl FoundryState {
    pub(super) async fn connect(
        base_url: Option<&str>,
        ctx: &Context<'_>,
    ) -> Result<Self, FoundryError> {
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
    pub(super) fn is_cached(&self, id: &str) -> Option<bool> {
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

/// What the service at `url` serves. Without a kind, a URL whose
/// `/v1/models` fails, lists nothing or lists Microsoft's models is asked
/// whether it is Foundry Local (its status route), and its catalog is
/// listed when it is; otherwise the `/v1/models` answer stands.
pub async fn list_url(url: &str, kind: UrlKind, ctx: &Context<'_>) -> Inventory {
    let foundry = || async {
        FoundryState::connect(Some(url), ctx)
            .await
            .map(|state| state.listings(url))
            .map_err(|e| e.to_string())
    };
    let openai = || async {
        let target = Target {
            base_url: url.to_string(),
            api_key: None,
            headers: std::collections::BTreeMap::default(),
            secrets: crate::secrets::of_url(url),
            ca_cert: None,
        };
        openai_models(&http_client(), &target).await
    };
    let as_listings = |served: Result<Served, ProbeError>| {
        served
            .map(|s| openai_listings(url, &s))
            .map_err(|e| e.to_string())
    };
    let listed = match kind {
        UrlKind::Openai => as_listings(openai().await),
        UrlKind::Foundry => foundry().await,
        UrlKind::Auto => {
            let served = openai().await;
            let maybe_foundry = served.as_ref().map_or(true, |s| {
                !s.llama_server && (s.ids.is_empty() || s.microsoft)
            });
            let catalog = if maybe_foundry {
                foundry().await.ok()
            } else {
                None
            };
            catalog.map_or_else(|| as_listings(served), Ok)
        }
    };
    let mut inventory = Inventory::default();
    inventory.add(url, listed);
    inventory.redact(&crate::secrets::of_url(url));
    inventory
}

impl Inventory {
    /// Every text that names a source, a model or a failure, redacted.
    fn redact(&mut self, secrets: &crate::secrets::Secrets) {
        if secrets.is_empty() {
            return;
        }
        for listing in &mut self.models {
            for text in [&mut listing.source, &mut listing.id] {
                *text = secrets.redact(text);
            }
            for text in [&mut listing.note, &mut listing.path].into_iter().flatten() {
                *text = secrets.redact(text);
            }
        }
        for unlisted in &mut self.errors {
            unlisted.source = secrets.redact(&unlisted.source);
            unlisted.message = secrets.redact(&unlisted.message);
        }
    }

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
pub async fn list_suite(file: &Path, ctx: &Context<'_>) -> Result<Inventory, SuiteError> {
    let suite = suite::load(file, ctx.env)?;
    let mut clients = Clients::default();
    let mut inventory = Inventory::default();
    for (name, endpoint) in &suite.endpoints {
        let listed = match endpoint.kind {
            EndpointKind::Openai => {
                match clients.get(Purpose::Probe, endpoint.ca_cert.as_deref()) {
                    Ok(http) => openai_models(&http, &Target::of(endpoint, &suite.secrets))
                        .await
                        .map(|served| openai_listings(name, &served))
                        .map_err(|e| e.to_string()),
                    Err(err) => Err(err.to_string()),
                }
            }
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
        let program = server.command.first().map_or("", String::as_str);
        let engine = crate::provider::engine::identify(program, "", None);
        if files.is_empty() {
            let mut listing = ModelListing::new(name, SourceKind::Server, program);
            listing.note = Some("no -m/--model in its command".to_string());
            listing.engine.clone_from(&engine);
            inventory.models.push(listing);
        }
        for file in files {
            let id = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            let mut listing = ModelListing::new(name, SourceKind::Server, &id).with_file(&file);
            listing.engine.clone_from(&engine);
            inventory.models.push(listing);
        }
    }
    inventory.redact(&suite.secrets);
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

/// How a column of the listing table reads one listing.
type Cell = fn(&ModelListing) -> String;

/// An aligned table of the listings; columns that are empty for every row
/// are left out.
pub fn render_models_text(models: &[ModelListing]) -> String {
    if models.is_empty() {
        return "no models listed\n".to_string();
    }
    let columns: [(&str, Cell); 13] = [
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
        ("ENGINE", |m| {
            m.engine
                .as_ref()
                .map(EngineBuild::describe)
                .unwrap_or_default()
        }),
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

pub(super) fn state_label(m: &ModelListing) -> String {
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

fn get(http: &reqwest::Client, target: &Target, url: &str) -> reqwest::RequestBuilder {
    target.authorize(http.get(url).timeout(LIST_TIMEOUT))
}
