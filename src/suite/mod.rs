//! Suites: the YAML format (`raw`), its source positions (`node`), the
//! diagnostics renderer (`diag`), and `load`, which turns a file into a
//! resolved, validated [`Suite`]. Nothing after this module sees YAML.

pub mod diag;
pub mod files;
pub mod node;
pub mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use diag::Diagnostic;
use node::{Node, Pos};
pub use raw::{EndpointKind, Role};
use raw::{RawMessage, RawParams, RawPrompt, RawSuite};

/// A validated suite: defaults applied, includes expanded, references checked.
#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    pub name: String,
    pub description: Option<String>,
    /// The suite file, as the user named it.
    pub file: PathBuf,
    pub endpoints: BTreeMap<String, Endpoint>,
    pub servers: BTreeMap<String, Server>,
    pub models: Vec<Model>,
    pub prompts: Vec<Prompt>,
    pub matrix: Vec<Axis>,
    pub outputs: Outputs,
    pub compare: CompareSettings,
    pub energy: EnergySettings,
    /// The default judge, when the suite has one.
    pub judge: Option<Judge>,
}

/// Judge replies are one line ("Score: 4"); this leaves room for a reason.
pub const DEFAULT_JUDGE_MAX_TOKENS: u32 = 48;

/// The judge model and its scale.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Judge {
    pub model: String,
    pub scale: crate::quality::JudgeScale,
    pub max_tokens: u32,
}

/// Declared power and price (see `RawEnergy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct EnergySettings {
    pub watts: Option<f64>,
    pub price_per_kwh: Option<f64>,
    pub currency: Option<String>,
    pub ignore_rapl: bool,
}

/// How `dyno compare` judges this suite's results (fractions, 0.1 = 10%).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct CompareSettings {
    pub alpha: f64,
    pub noise_ttft: f64,
    pub noise_e2e: f64,
    pub noise_tpot: f64,
    pub noise_tokens_per_s: f64,
}

impl Default for CompareSettings {
    /// 10% everywhere: rounds within one run share a server launch and miss
    /// the launch-to-launch spread, which reached 6.7% between two identical
    /// quickstart runs on a 2-core machine; 5% cried wolf there.
    fn default() -> Self {
        CompareSettings {
            alpha: 0.05,
            noise_ttft: 0.10,
            noise_e2e: 0.10,
            noise_tpot: 0.10,
            noise_tokens_per_s: 0.10,
        }
    }
}

impl CompareSettings {
    fn from_raw(raw: Option<&raw::RawCompare>) -> CompareSettings {
        let defaults = CompareSettings::default();
        let Some(raw) = raw else { return defaults };
        let noise = raw.noise.clone().unwrap_or_default();
        let pct = |v: &Option<String>, default: f64| {
            v.as_deref()
                .and_then(|t| t.trim_end_matches('%').parse::<f64>().ok())
                .map_or(default, |p| p / 100.0)
        };
        CompareSettings {
            alpha: raw.alpha.unwrap_or(defaults.alpha),
            noise_ttft: pct(&noise.ttft, defaults.noise_ttft),
            noise_e2e: pct(&noise.e2e, defaults.noise_e2e),
            noise_tpot: pct(&noise.tpot, defaults.noise_tpot),
            noise_tokens_per_s: pct(&noise.tokens_per_s, defaults.noise_tokens_per_s),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub kind: EndpointKind,
    pub base_url: Option<String>,
    /// The variable's name only; its value is read when a request is sent.
    pub api_key_env: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// `command` endpoints: the adapter program, its weights and load parameters.
    pub command: Vec<String>,
    pub weights: Option<PathBuf>,
    pub params: BTreeMap<String, serde_json::Value>,
    pub load_timeout_s: u32,
    /// Where a `command` adapter runs: the suite file's directory.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub command: Vec<String>,
    pub ready: String,
    pub startup_timeout_s: u32,
    pub env: BTreeMap<String, String>,
    /// Variant names and their values (as text), in name order.
    pub variants: Vec<(String, Vec<String>)>,
    pub cold_start: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Model {
    pub id: String,
    /// The name sent to the API.
    pub api_model: String,
    pub served_by: ServedBy,
    pub capabilities: Vec<String>,
    pub size_mb: Option<f64>,
    pub license: Option<String>,
    /// Files whose total size is the model's footprint on disk.
    pub files: Vec<PathBuf>,
    /// Restart the managed server before every round.
    pub cold_start: bool,
    /// The model that judges this one: its own `judge`, else the suite's
    /// (which does not judge itself).
    pub judge: Option<String>,
    /// Foundry Local devices to measure, each a variant (empty: the preferred one).
    pub devices: Vec<Device>,
    /// Download through Foundry Local when not cached.
    pub download: bool,
    pub params: Params,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServedBy {
    Endpoint(String),
    Server(String),
}

/// Effective request parameters of a model (before matrix axes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Params {
    pub rounds: u32,
    pub warmup: u32,
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub seed: u32,
    pub max_tokens: u32,
    pub stream: bool,
    pub timeout_s: f64,
}

impl Params {
    pub const BUILT_IN: Params = Params {
        rounds: 5,
        warmup: 1,
        temperature: 0.0,
        top_p: None,
        seed: 42,
        max_tokens: 128,
        stream: true,
        timeout_s: 60.0,
    };

    fn overlay(self, raw: Option<&RawParams>) -> Params {
        let Some(raw) = raw else { return self };
        Params {
            rounds: raw.rounds.unwrap_or(self.rounds),
            warmup: raw.warmup.unwrap_or(self.warmup),
            temperature: raw.temperature.unwrap_or(self.temperature),
            top_p: raw.top_p.or(self.top_p),
            seed: raw.seed.unwrap_or(self.seed),
            max_tokens: raw.max_tokens.unwrap_or(self.max_tokens),
            stream: raw.stream.unwrap_or(self.stream),
            timeout_s: raw.timeout_s.unwrap_or(self.timeout_s),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Prompt {
    pub id: String,
    pub messages: Vec<Message>,
    /// The suite's checks, then the prompt's own (validated).
    pub checks: Vec<crate::quality::CheckSpec>,
    pub rubric: Option<String>,
    /// The file the prompt was written in.
    pub origin: PathBuf,
    /// Where its `id` stands in that file.
    #[serde(skip)]
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// One matrix axis with its values, in suite order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    Stream(Vec<bool>),
    Temperature(Vec<f64>),
    MaxTokens(Vec<u32>),
}

#[derive(Debug, Clone, Serialize)]
pub struct Outputs {
    pub dir: PathBuf,
    pub templates: Vec<String>,
}

impl Suite {
    /// A SHA-256 over the resolved suite, so results can say which suite made them.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        crate::text::hex(&Sha256::digest(json))
    }
}

/// The hardware a variant runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Device {
    Cpu,
    Gpu,
    Npu,
    /// Anything else the catalog reports, lower-cased.
    Other(String),
}

impl Device {
    /// Parses `CPU` / `gpu` / `Npu` …; anything else is [`Device::Other`].
    pub fn parse(text: &str) -> Device {
        let lower = text.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Device::Cpu,
            "gpu" => Device::Gpu,
            "npu" => Device::Npu,
            _ => Device::Other(lower),
        }
    }

    /// Rank when no device is requested: NPU, then GPU, then CPU (the order
    /// the Foundry Local SDK used), then anything else.
    pub(crate) fn preference(&self) -> u8 {
        match self {
            Device::Npu => 0,
            Device::Gpu => 1,
            Device::Cpu => 2,
            Device::Other(_) => 3,
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu => f.write_str("gpu"),
            Device::Npu => f.write_str("npu"),
            Device::Other(other) => f.write_str(other),
        }
    }
}

impl From<String> for Device {
    fn from(text: String) -> Self {
        Device::parse(&text)
    }
}

impl From<Device> for String {
    fn from(device: Device) -> Self {
        device.to_string()
    }
}

/// Everything wrong with a suite, with the text of every file it points into.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.render())]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
    sources: BTreeMap<PathBuf, String>,
}

impl LoadError {
    pub(crate) fn io(file: &Path, err: &std::io::Error) -> LoadError {
        LoadError {
            diagnostics: vec![Diagnostic::new(
                format!("cannot read {}: {err}", file.display()),
                file,
                Pos::default(),
            )],
            sources: BTreeMap::new(),
        }
    }

    /// All diagnostics, rendered, in the order they were found.
    pub fn render(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render(self.sources.get(&d.file).map_or("", String::as_str)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The process environment, for `${VAR}` interpolation.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads, validates and resolves the suite at `file`.
pub fn load(file: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Suite, LoadError> {
    let text = std::fs::read_to_string(file).map_err(|e| LoadError::io(file, &e))?;
    let mut loader = Loader {
        env,
        diagnostics: Vec::new(),
        sources: BTreeMap::new(),
    };
    let suite = loader.suite(file, text);
    match suite {
        Some(suite) if loader.diagnostics.is_empty() => Ok(suite),
        _ => Err(LoadError {
            diagnostics: loader.diagnostics,
            sources: loader.sources,
        }),
    }
}

struct Loader<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    diagnostics: Vec<Diagnostic>,
    sources: BTreeMap<PathBuf, String>,
}

impl Loader<'_> {
    /// Parses, interpolates and schema-checks one file; returns its tree and
    /// the typed value when it is sound.
    fn parse<T: serde::de::DeserializeOwned>(
        &mut self,
        file: &Path,
        text: String,
        schema: &serde_json::Value,
    ) -> Option<(Node, T)> {
        self.sources.insert(file.to_path_buf(), text);
        let text = self.sources.get(file).map_or("", String::as_str);
        let mut root = match Node::parse(text) {
            Ok(root) => root,
            Err(err) => {
                let pos = err.location().map_or(Pos::default(), |l| Pos {
                    line: usize::try_from(l.line()).unwrap_or(0),
                    col: usize::try_from(l.column()).unwrap_or(0),
                    len: 1,
                });
                let message = yaml_message(&err);
                self.diagnostics.push(Diagnostic::new(message, file, pos));
                return None;
            }
        };
        let before = self.diagnostics.len();
        for (pos, err) in root.interpolate(self.env) {
            let hint = err.hint();
            self.diagnostics
                .push(Diagnostic::new(err.to_string(), file, pos).with_hint(hint));
        }
        let json = root.to_json();
        self.schema_errors(file, &root, &json, schema);
        if self.diagnostics.len() > before {
            return None;
        }
        match serde_json::from_value::<T>(json) {
            Ok(value) => Some((root, value)),
            Err(err) => {
                self.diagnostics
                    .push(Diagnostic::new(err.to_string(), file, root.pos));
                None
            }
        }
    }

    fn schema_errors(
        &mut self,
        file: &Path,
        root: &Node,
        json: &serde_json::Value,
        schema: &serde_json::Value,
    ) {
        let validator = match jsonschema::validator_for(schema) {
            Ok(v) => v,
            Err(err) => {
                self.diagnostics.push(Diagnostic::new(
                    format!("internal error: the suite schema does not compile: {err}"),
                    file,
                    root.pos,
                ));
                return;
            }
        };
        let mut found: Vec<Diagnostic> = Vec::new();
        for err in validator.iter_errors(json) {
            let pointer = err.instance_path().as_str().to_string();
            let node = root.lookup(&pointer).unwrap_or(root);
            let at = display_pointer(&pointer);
            match err.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let allowed = allowed_keys(schema, err.schema_path().as_str());
                    for key in unexpected {
                        let pos = node.key(key).map_or(node.pos, |k| k.pos);
                        found.push(
                            Diagnostic::new(format!("unknown key `{key}` in {at}"), file, pos)
                                .with_hint(allowed.clone()),
                        );
                    }
                }
                _ => found.push(Diagnostic::new(
                    format!("{} at {at}", schema_message(&err)),
                    file,
                    node.pos,
                )),
            }
        }
        found.sort_by_key(|d| (d.pos.line, d.pos.col));
        found.dedup();
        self.diagnostics.extend(found);
    }

    fn suite(&mut self, file: &Path, text: String) -> Option<Suite> {
        let (root, raw): (Node, RawSuite) = self.parse(file, text, &raw::suite_schema())?;
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let at = |pointer: &str| root.lookup(pointer).map_or(root.pos, |n| n.pos);

        let endpoints: BTreeMap<String, Endpoint> = raw
            .endpoints
            .iter()
            .map(|(name, e)| {
                let kind = e.kind.unwrap_or_default();
                if kind == EndpointKind::Openai && e.base_url.is_none() {
                    self.diagnostics.push(
                        Diagnostic::new(
                            format!("endpoint `{name}` needs a `base_url`"),
                            file,
                            root.lookup("/endpoints")
                                .and_then(|n| n.key(name))
                                .map_or(root.pos, |k| k.pos),
                        )
                        .with_hint(Some(
                            "for example base_url: http://127.0.0.1:8080/v1".into(),
                        )),
                    );
                }
                if let Some(url) = &e.base_url
                    && !(url.starts_with("http://") || url.starts_with("https://"))
                {
                    self.diagnostics.push(Diagnostic::new(
                        format!("base_url `{url}` is not an http:// or https:// URL"),
                        file,
                        at(&format!("/endpoints/{}/base_url", escape(name))),
                    ));
                }
                if kind == EndpointKind::Command && e.command.is_none() {
                    self.diagnostics.push(
                        Diagnostic::new(
                            format!("endpoint `{name}` of kind `command` needs a `command`"),
                            file,
                            at(&format!("/endpoints/{}", escape(name))),
                        )
                        .with_hint(Some(
                            "for example command: [python3, examples/adapter/echo_adapter.py]"
                                .into(),
                        )),
                    );
                }
                let endpoint = Endpoint {
                    kind,
                    base_url: e.base_url.clone(),
                    api_key_env: e.api_key_env.clone(),
                    headers: e.headers.clone(),
                    command: e.command.clone().unwrap_or_default(),
                    weights: e.weights.as_ref().map(|w| dir.join(w)),
                    params: e.params.clone(),
                    load_timeout_s: e.load_timeout_s.unwrap_or(120),
                    dir: dir.clone(),
                };
                (name.clone(), endpoint)
            })
            .collect();

        let servers: BTreeMap<String, Server> = raw
            .servers
            .iter()
            .map(|(name, s)| {
                if !s.command.iter().any(|arg| arg.contains("{port}")) {
                    self.diagnostics.push(
                        Diagnostic::new(
                            format!("server `{name}` has no `{{port}}` in its command"),
                            file,
                            at(&format!("/servers/{}/command", escape(name))),
                        )
                        .with_hint(Some(
                            "dyno picks a free port: pass it as `--port, \"{port}\"`".into(),
                        )),
                    );
                }
                self.check_variants(file, name, s, &at);
                let server = Server {
                    command: s.command.clone(),
                    ready: s.ready.clone().unwrap_or_else(|| "/health".into()),
                    startup_timeout_s: s.startup_timeout_s.unwrap_or(120),
                    env: s.env.clone(),
                    variants: s
                        .variants
                        .iter()
                        .map(|(k, vs)| (k.clone(), vs.iter().map(ToString::to_string).collect()))
                        .collect(),
                    cold_start: s.cold_start.unwrap_or(false),
                };
                (name.clone(), server)
            })
            .collect();

        let defaults = Params::BUILT_IN.overlay(raw.defaults.as_ref());
        let mut models = Vec::new();
        let mut model_ids = BTreeSet::new();
        for (i, m) in raw.models.iter().enumerate() {
            let here = format!("/models/{i}");
            if !model_ids.insert(m.id.as_str()) {
                self.diagnostics.push(Diagnostic::new(
                    format!("duplicate model id `{}`", m.id),
                    file,
                    at(&format!("{here}/id")),
                ));
            }
            let served_by = match (&m.endpoint, &m.server) {
                (Some(e), None) => {
                    self.check_ref(
                        file,
                        "endpoint",
                        e,
                        &endpoints,
                        at(&format!("{here}/endpoint")),
                    );
                    ServedBy::Endpoint(e.clone())
                }
                (None, Some(s)) => {
                    self.check_ref(file, "server", s, &servers, at(&format!("{here}/server")));
                    ServedBy::Server(s.clone())
                }
                _ => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            format!(
                                "model `{}` needs exactly one of `endpoint` or `server`",
                                m.id
                            ),
                            file,
                            at(&here),
                        )
                        .with_hint(defined("endpoints", endpoints.keys().chain(servers.keys()))),
                    );
                    continue;
                }
            };
            let server = match &served_by {
                ServedBy::Server(name) => servers.get(name),
                ServedBy::Endpoint(_) => None,
            };
            let on_foundry = matches!(&served_by, ServedBy::Endpoint(e)
                if endpoints.get(e).is_some_and(|e| e.kind == EndpointKind::Foundry));
            if !on_foundry && (!m.variants.is_empty() || m.download.is_some()) {
                let key = if m.variants.is_empty() {
                    "download"
                } else {
                    "variants"
                };
                self.diagnostics.push(
                    Diagnostic::new(
                        format!("`{key}` of model `{}` needs a `foundry` endpoint", m.id),
                        file,
                        at(&format!("{here}/{key}")),
                    )
                    .with_hint(Some(
                        "managed servers declare variants on the server (e.g. threads: [1, 2])"
                            .into(),
                    )),
                );
            }
            let files = if m.files.is_empty() {
                server.map_or_else(Vec::new, |s| {
                    crate::measure::resources::files::model_files_in_command(&s.command)
                        .into_iter()
                        .map(PathBuf::from)
                        .collect()
                })
            } else {
                m.files.iter().map(|f| dir.join(f)).collect()
            };
            models.push(Model {
                id: m.id.clone(),
                api_model: m.model.clone().unwrap_or_else(|| m.id.clone()),
                served_by,
                capabilities: m.capabilities.clone(),
                size_mb: m.size_mb,
                license: m.license.clone(),
                files,
                cold_start: m
                    .cold_start
                    .unwrap_or_else(|| server.is_some_and(|s| s.cold_start)),
                devices: m.variants.iter().map(|d| Device::parse(d)).collect(),
                download: m.download.unwrap_or(false),
                // The suite's judge never judges its own outputs.
                judge: m.judge.clone().or_else(|| {
                    let judge = &raw.quality.as_ref()?.judge.as_ref()?.model;
                    (judge != &m.id).then(|| judge.clone())
                }),
                params: defaults.overlay(m.params.as_ref()),
            });
        }

        let mut prompts = Vec::new();
        for (i, p) in raw.prompts.iter().enumerate() {
            let here = format!("/prompts/{i}");
            self.prompt_entry(
                file,
                &dir,
                p,
                &|suffix: &str| at(&format!("{here}{suffix}")),
                &mut prompts,
            );
        }
        let mut prompt_ids: BTreeMap<&str, &Prompt> = BTreeMap::new();
        for p in &prompts {
            if let Some(first) = prompt_ids.insert(&p.id, p) {
                self.diagnostics.push(Diagnostic::new(
                    format!(
                        "duplicate prompt id `{}` (first defined at {}:{})",
                        p.id,
                        first.origin.display(),
                        first.pos.line
                    ),
                    &p.origin,
                    p.pos,
                ));
            }
        }

        let matrix = raw.matrix.map_or_else(Vec::new, |m| {
            let mut axes = Vec::new();
            axes.extend(m.stream.map(Axis::Stream));
            axes.extend(m.temperature.map(Axis::Temperature));
            axes.extend(m.max_tokens.map(Axis::MaxTokens));
            axes
        });
        let outputs = raw.outputs.unwrap_or_default();
        let outputs = Outputs {
            dir: outputs
                .dir
                .map(|d| dir.join(d))
                .unwrap_or_else(|| default_results_dir(&dir, &raw.name)),
            templates: outputs
                .templates
                .unwrap_or_else(|| vec!["report.md".into(), "results.csv".into()]),
        };
        let mut quality = raw.quality.clone().unwrap_or_default();
        self.compile_checks(file, &dir, &mut quality.checks, "check", &|suffix: &str| {
            at(&format!("/quality/checks{suffix}"))
        });
        for prompt in &mut prompts {
            prompt.checks.splice(0..0, quality.checks.iter().cloned());
        }
        let judge = quality.judge.as_ref().map(|j| Judge {
            model: j.model.clone(),
            scale: j.scale.unwrap_or_default(),
            max_tokens: j.max_tokens.unwrap_or(DEFAULT_JUDGE_MAX_TOKENS),
        });
        let judges =
            judge
                .iter()
                .map(|j| (j.model.as_str(), "/quality/judge/model".to_string()))
                .chain(raw.models.iter().enumerate().filter_map(|(i, m)| {
                    Some((m.judge.as_deref()?, format!("/models/{i}/judge")))
                }));
        for (name, pointer) in judges {
            if !model_ids.contains(name) {
                self.diagnostics.push(
                    Diagnostic::new(
                        format!("judge `{name}` is not a model of this suite"),
                        file,
                        at(&pointer),
                    )
                    .with_hint(defined("models", raw.models.iter().map(|m| &m.id))),
                );
            }
        }
        let energy = raw.energy.unwrap_or_default();
        Some(Suite {
            judge,
            energy: EnergySettings {
                watts: energy.watts,
                price_per_kwh: energy.price_per_kwh,
                currency: energy.currency,
                ignore_rapl: energy.ignore_rapl.unwrap_or(false),
            },
            compare: CompareSettings::from_raw(raw.compare.as_ref()),
            name: raw.name,
            description: raw.description,
            file: file.to_path_buf(),
            endpoints,
            servers,
            models,
            prompts,
            matrix,
            outputs,
        })
    }

    /// Every `{name}` placeholder of a server's command and env is `{port}`
    /// or a declared variant, and every variant is used somewhere.
    fn check_variants(
        &mut self,
        file: &Path,
        name: &str,
        server: &raw::RawServer,
        at: &dyn Fn(&str) -> Pos,
    ) {
        let texts: Vec<&String> = server.command.iter().chain(server.env.values()).collect();
        let declared: Vec<&str> = server.variants.keys().map(String::as_str).collect();
        for (i, arg) in server.command.iter().enumerate() {
            for placeholder in placeholders(arg) {
                if placeholder != "port" && !declared.contains(&placeholder) {
                    self.diagnostics.push(
                        Diagnostic::new(
                            format!("`{{{placeholder}}}` in the command of server `{name}` is not a variant"),
                            file,
                            at(&format!("/servers/{}/command/{i}", escape(name))),
                        )
                        .with_hint(Some(if declared.is_empty() {
                            format!("declare it, e.g. variants: {{ {placeholder}: [1, 2] }}")
                        } else {
                            format!("declared variants: {}", declared.join(", "))
                        })),
                    );
                }
            }
        }
        for (variant, values) in &server.variants {
            let here = format!("/servers/{}/variants/{}", escape(name), escape(variant));
            let token = format!("{{{variant}}}");
            if !texts.iter().any(|t| t.contains(&token)) {
                self.diagnostics.push(
                    Diagnostic::new(
                        format!("variant `{variant}` of server `{name}` is not used: no `{token}` in its command or env"),
                        file,
                        at(&here),
                    )
                    .with_hint(Some(format!("pass it, e.g. `--{}, \"{token}\"`", variant.replace('_', "-")))),
                );
            }
            if values.is_empty() {
                self.diagnostics.push(Diagnostic::new(
                    format!("variant `{variant}` of server `{name}` lists no values"),
                    file,
                    at(&here),
                ));
            }
        }
    }

    /// Reads `json_schema: {file: PATH}` schemas (relative to `dir`, the
    /// directory of the file they are written in) into the checks, then
    /// compiles every check (regexes, JSON schemas); a bad one is an error
    /// at its key. `at("/j/field")` locates check `j`'s `field`.
    fn compile_checks(
        &mut self,
        file: &Path,
        dir: &Path,
        checks: &mut [crate::quality::CheckSpec],
        what: &str,
        at: &dyn Fn(&str) -> Pos,
    ) {
        for (j, check) in checks.iter_mut().enumerate() {
            let Some(schema) = &check.json_schema else {
                continue;
            };
            let Some(path) = schema
                .as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.get("file")?.as_str())
            else {
                continue;
            };
            let path = dir.join(path);
            let loaded = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|t| {
                    serde_json::from_str::<serde_json::Value>(&t)
                        .map_err(|e| format!("{} is not JSON: {e}", path.display()))
                });
            match loaded {
                Ok(schema) => check.json_schema = Some(schema),
                Err(message) => {
                    self.diagnostics.push(Diagnostic::new(
                        format!("{what}: {message}"),
                        file,
                        at(&format!("/{j}/json_schema/file")),
                    ));
                    // Reported here; compiling would report it again.
                    check.json_schema = Some(serde_json::Value::Bool(true));
                }
            }
        }
        for (j, check) in checks.iter().enumerate() {
            if let Err(err) = check.compile() {
                let field = if err.field.is_empty() {
                    String::new()
                } else {
                    format!("/{}", err.field)
                };
                self.diagnostics.push(Diagnostic::new(
                    format!("{what}: {err}"),
                    file,
                    at(&format!("/{j}{field}")),
                ));
            }
        }
    }

    fn check_ref<T>(
        &mut self,
        file: &Path,
        what: &str,
        name: &str,
        defined_here: &BTreeMap<String, T>,
        pos: Pos,
    ) {
        if !defined_here.contains_key(name) {
            self.diagnostics.push(
                Diagnostic::new(
                    format!("{what} `{name}` is not defined in this suite"),
                    file,
                    pos,
                )
                .with_hint(defined(&format!("{what}s"), defined_here.keys())),
            );
        }
    }

    /// Resolves one prompt entry (inline or include) into `out`.
    fn prompt_entry(
        &mut self,
        file: &Path,
        dir: &Path,
        p: &RawPrompt,
        at: &dyn Fn(&str) -> Pos,
        out: &mut Vec<Prompt>,
    ) {
        if let Some(pattern) = &p.include {
            if p.id.is_some()
                || p.text.is_some()
                || p.messages.is_some()
                || p.system.is_some()
                || !p.checks.is_empty()
                || p.rubric.is_some()
            {
                self.diagnostics.push(Diagnostic::new(
                    "`include` stands alone: move the other keys into the included files",
                    file,
                    at(""),
                ));
                return;
            }
            self.include(file, dir, pattern, at("/include"), out);
            return;
        }
        let Some(id) = &p.id else {
            self.diagnostics.push(
                Diagnostic::new("prompt needs an `id`", file, at(""))
                    .with_hint(Some("for example id: summarize-notes".into())),
            );
            return;
        };
        let messages = match (&p.text, &p.messages) {
            (Some(text), None) => {
                let mut messages = Vec::new();
                if let Some(system) = &p.system {
                    messages.push(Message {
                        role: Role::System,
                        content: system.clone(),
                    });
                }
                messages.push(Message {
                    role: Role::User,
                    content: text.clone(),
                });
                messages
            }
            (None, Some(list)) if p.system.is_none() => list
                .iter()
                .map(|RawMessage { role, content }| Message {
                    role: *role,
                    content: content.clone(),
                })
                .collect(),
            _ => {
                self.diagnostics.push(Diagnostic::new(
                    format!("prompt `{id}` needs either `text` (with an optional `system`) or `messages`"),
                    file,
                    at(""),
                ));
                return;
            }
        };
        let mut checks = p.checks.clone();
        self.compile_checks(
            file,
            dir,
            &mut checks,
            &format!("check of prompt `{id}`"),
            &|suffix: &str| at(&format!("/checks{suffix}")),
        );
        out.push(Prompt {
            id: id.clone(),
            messages,
            checks,
            rubric: p.rubric.clone(),
            origin: file.to_path_buf(),
            pos: at("/id"),
        });
    }

    fn include(&mut self, file: &Path, dir: &Path, pattern: &str, pos: Pos, out: &mut Vec<Prompt>) {
        let glob = match files::compile(pattern) {
            Ok(glob) => glob,
            Err(err) => {
                self.diagnostics
                    .push(Diagnostic::new(err.to_string(), file, pos));
                return;
            }
        };
        let matches = files::matching(dir, |path| {
            path.strip_prefix(dir).is_ok_and(|rel| glob.is_match(rel))
        });
        if matches.is_empty() {
            self.diagnostics.push(
                Diagnostic::new(format!("`{pattern}` matches no file"), file, pos)
                    .with_hint(Some(format!("paths are relative to {}", display_dir(dir)))),
            );
            return;
        }
        let schema = raw::prompt_file_schema();
        for path in matches {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(err) => {
                    self.diagnostics.push(Diagnostic::new(
                        format!("cannot read {}: {err}", path.display()),
                        file,
                        pos,
                    ));
                    continue;
                }
            };
            let Some((root, list)) = self.parse::<Vec<RawPrompt>>(&path, text, &schema) else {
                continue;
            };
            let sub_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            for (i, p) in list.iter().enumerate() {
                let at = |suffix: &str| {
                    root.lookup(&format!("/{i}{suffix}"))
                        .map_or(root.pos, |n| n.pos)
                };
                if p.include.is_some() {
                    self.diagnostics.push(Diagnostic::new(
                        "included prompt files cannot include further files",
                        &path,
                        at("/include"),
                    ));
                    continue;
                }
                self.prompt_entry(&path, &sub_dir, p, &at, out);
            }
        }
    }
}

fn default_results_dir(suite_dir: &Path, name: &str) -> PathBuf {
    if suite_dir.file_name().is_some_and(|n| n == "suites") {
        suite_dir.join("..").join("results").join(name)
    } else {
        suite_dir.join("results").join(name)
    }
}

fn display_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        ".".into()
    } else {
        dir.display().to_string()
    }
}

fn defined<'a>(what: &str, names: impl Iterator<Item = &'a String>) -> Option<String> {
    let names: Vec<&str> = names.map(String::as_str).collect();
    Some(if names.is_empty() {
        format!("no {what} are defined")
    } else {
        format!("defined {what}: {}", names.join(", "))
    })
}

/// The `name`s of `{name}` placeholders (lowercase identifiers) in `text`.
fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find('}') {
            let name = &rest[..close];
            if !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                found.push(name);
            }
        }
    }
    found
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `/models/0/id` → `models[0].id`; the root is `the suite`.
fn display_pointer(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        if token.parse::<usize>().is_ok() {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token.replace("~1", "/").replace("~0", "~"));
        }
    }
    if out.is_empty() {
        "the top level".into()
    } else {
        format!("`{out}`")
    }
}

/// The property names allowed where an `additionalProperties` error fired.
fn allowed_keys(schema: &serde_json::Value, schema_path: &str) -> Option<String> {
    let object_path = schema_path.strip_suffix("/additionalProperties")?;
    let mut node = schema.pointer(object_path)?;
    if let Some(reference) = node.get("$ref").and_then(|r| r.as_str()) {
        node = schema.pointer(reference.strip_prefix('#')?)?;
    }
    let keys: Vec<&str> = node
        .get("properties")?
        .as_object()?
        .keys()
        .map(String::as_str)
        .collect();
    Some(format!("allowed keys: {}", keys.join(", ")))
}

/// jsonschema's message, made plainer for the common cases.
fn schema_message(err: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match err.kind() {
        K::Required { property } => format!("missing required key {property}"),
        _ => err.to_string(),
    }
}

/// The parser's message without its own snippet (ours follows).
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let first = first.split(" at line ").next().unwrap_or(first);
    format!("invalid YAML: {first}")
}
