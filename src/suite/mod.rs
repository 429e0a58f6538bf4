//! Suites: the YAML format (`raw`), its source positions (`node`), the
//! diagnostics renderer (`diag`), and `load`, which turns a file into a
//! resolved, validated [`Suite`]. Nothing after this module sees YAML.

mod depth;
pub(crate) mod diag;
pub(crate) mod files;
pub(crate) mod node;
mod parse;
mod prefix;
pub mod raw;
pub(crate) mod raw_load;
mod resolve;
pub mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use diag::Diagnostic;
use node::Pos;
use parse::{Loader, OutputsCheck};
use raw::RawParams;
pub use raw::{EndpointKind, FormatChoice, Order, ReasoningControl, ReasoningEffort, Role};

pub use crate::results::EnergySettings;
use crate::results::SuiteRecord;

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
    /// The order requests are sent in.
    pub order: Order,
    /// Values that must never be written or printed (keys, tokens,
    /// passwords); see [`crate::secrets`]. Not part of the hash.
    #[serde(skip)]
    pub secrets: crate::secrets::Secrets,
}

/// Judge replies are one line ("Score: 4"); this leaves room for a reason.
pub(crate) const DEFAULT_JUDGE_MAX_TOKENS: u32 = 48;

/// The judge model and its scale.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Judge {
    pub model: String,
    pub scale: crate::quality::JudgeScale,
    pub max_tokens: u32,
}

/// How `dyno compare` judges this suite's results (fractions, 0.1 = 10%;
/// floors in milliseconds). Fields missing from older results take their
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CompareSettings {
    pub alpha: f64,
    pub noise_ttft: f64,
    pub noise_e2e: f64,
    pub noise_tpot: f64,
    pub noise_tokens_per_s: f64,
    pub floor_ttft_ms: f64,
    pub floor_e2e_ms: f64,
    pub floor_tpot_ms: f64,
    /// Requests measured while others kept more cores busy are noisy.
    pub noisy_cores: f64,
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
            floor_ttft_ms: 1.0,
            floor_e2e_ms: 1.0,
            floor_tpot_ms: 0.1,
            noisy_cores: crate::measure::noise::DEFAULT_NOISY_CORES,
        }
    }
}

impl CompareSettings {
    pub(crate) fn from_raw(raw: Option<&raw::RawCompare>) -> CompareSettings {
        let defaults = CompareSettings::default();
        let Some(raw) = raw else { return defaults };
        let noise = raw.noise.clone().unwrap_or_default();
        let floor = raw.floor_ms.clone().unwrap_or_default();
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
            floor_ttft_ms: floor.ttft.unwrap_or(defaults.floor_ttft_ms),
            floor_e2e_ms: floor.e2e.unwrap_or(defaults.floor_e2e_ms),
            floor_tpot_ms: floor.tpot.unwrap_or(defaults.floor_tpot_ms),
            noisy_cores: raw.noisy_cores.unwrap_or(defaults.noisy_cores),
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
    /// `ca_cert:` as written: what results record, the same on every machine.
    #[serde(rename = "ca_cert", skip_serializing_if = "Option::is_none")]
    pub ca_cert_written: Option<String>,
    /// The `ca_cert:` file, absolute (checked to hold PEM certificates when
    /// the suite loaded); not recorded, since it differs between checkouts.
    #[serde(skip)]
    pub ca_cert: Option<PathBuf>,
    /// `command` endpoints: the adapter program, its weights and load parameters.
    pub command: Vec<String>,
    pub weights: Option<PathBuf>,
    pub params: BTreeMap<String, serde_json::Value>,
    pub load_timeout_s: u32,
    /// Where a `command` adapter runs: the suite file's directory.
    pub dir: PathBuf,
    /// How the endpoint takes a reasoning effort, when the suite says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_control: Option<ReasoningControl>,
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
    /// The tokens its server holds per request, when declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
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
    /// Load points (its own `load:`, else the suite's); `None`: one request
    /// at a time.
    pub load: Option<workload::Workload>,
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
    pub retry: Retry,
    /// Sequential requests share a kept-alive connection (left out of the
    /// suite's hash while false, so existing suites keep theirs).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reuse_connections: bool,
    /// How hard a reasoning model thinks; not sent when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Structured output as the `response_format` axis sets it; unset,
    /// each prompt's own `response_format` is sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<FormatChoice>,
    /// Tokens of filler context before each prompt (left out of the hash
    /// while 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub context_tokens: u32,
    /// The server may reuse cached prompt tokens (left out of the hash
    /// while true).
    #[serde(skip_serializing_if = "is_true")]
    pub cache: bool,
}

// serde's `skip_serializing_if` passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_true(b: &bool) -> bool {
    *b
}

/// Retrying a request the server turned away for now (429, 503): at most
/// `max` more attempts, waiting `Retry-After` when the server sends it,
/// else `backoff_ms` doubling each time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Retry {
    pub max: u32,
    pub backoff_ms: u32,
    pub on: Statuses,
}

/// A set of HTTP status codes from 400 to 599.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statuses([u64; 4]);

impl Statuses {
    const FIRST: u16 = 400;

    /// The codes of `codes` between 400 and 599 (others are left out).
    pub const fn of(codes: &[u16]) -> Statuses {
        let mut bits = [0u64; 4];
        let mut k = 0;
        while k < codes.len() {
            let code = codes[k];
            if code >= 400 && code <= 599 {
                let i = (code - Self::FIRST) as usize;
                bits[i / 64] |= 1 << (i % 64);
            }
            k += 1;
        }
        Statuses(bits)
    }

    pub fn contains(self, code: u16) -> bool {
        (400..=599).contains(&code) && {
            let i = usize::from(code - Self::FIRST);
            self.0[i / 64] & (1 << (i % 64)) != 0
        }
    }

    /// The codes, ascending.
    pub fn codes(self) -> Vec<u16> {
        (400..=599).filter(|c| self.contains(*c)).collect()
    }
}

impl Serialize for Statuses {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.codes().serialize(serializer)
    }
}

impl Params {
    pub(crate) const BUILT_IN: Params = Params {
        rounds: 5,
        warmup: 1,
        temperature: 0.0,
        top_p: None,
        seed: 42,
        max_tokens: 128,
        stream: true,
        timeout_s: 60.0,
        retry: Retry {
            max: 3,
            backoff_ms: 500,
            on: Statuses::of(&[429, 503]),
        },
        reuse_connections: false,
        reasoning_effort: None,
        response_format: None,
        context_tokens: 0,
        cache: true,
    };

    pub(crate) fn overlay(self, raw: Option<&RawParams>) -> Params {
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
            retry: raw.retry.as_ref().map_or(self.retry, |r| Retry {
                max: r.max.unwrap_or(self.retry.max),
                backoff_ms: r.backoff_ms.unwrap_or(self.retry.backoff_ms),
                on: r.statuses.as_deref().map_or(self.retry.on, |codes| {
                    Statuses::of(&codes.iter().map(|c| c.0).collect::<Vec<u16>>())
                }),
            }),
            reuse_connections: raw.reuse_connections.unwrap_or(self.reuse_connections),
            reasoning_effort: raw.reasoning_effort.or(self.reasoning_effort),
            response_format: self.response_format,
            context_tokens: raw.context_tokens.unwrap_or(self.context_tokens),
            cache: raw.cache.unwrap_or(self.cache),
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
    /// The JSON schema the reply must meet, sent as `response_format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
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

/// A JSON schema a reply must meet, with the name the request gives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseFormat {
    pub name: String,
    pub schema: serde_json::Value,
}

impl ResponseFormat {
    /// The OpenAI `response_format` body (llama-server and vLLM take it too).
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "json_schema",
            "json_schema": { "name": self.name, "strict": true, "schema": self.schema },
        })
    }
}

impl Prompt {
    /// What `choice` sends for this prompt: its `response_format` (by
    /// default, and for `json_schema`), else, for `json_schema`, the schema
    /// of its first `json_schema` check; nothing for `none`.
    pub fn format(&self, choice: Option<FormatChoice>) -> Option<ResponseFormat> {
        match choice {
            Some(FormatChoice::None) => None,
            None => self.response_format.clone(),
            Some(FormatChoice::JsonSchema) => self.response_format.clone().or_else(|| {
                let schema = self.checks.iter().find_map(|c| c.json_schema.clone())?;
                Some(ResponseFormat {
                    name: self.id.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
                    schema,
                })
            }),
        }
    }
}

/// One matrix axis with its values, in suite order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    Stream(Vec<bool>),
    Temperature(Vec<f64>),
    MaxTokens(Vec<u32>),
    ReasoningEffort(Vec<ReasoningEffort>),
    ResponseFormat(Vec<FormatChoice>),
    ContextTokens(Vec<u32>),
    Cache(Vec<bool>),
}

#[derive(Debug, Clone, Serialize)]
pub struct Outputs {
    pub dir: PathBuf,
    pub templates: Vec<String>,
}

impl Suite {
    /// A SHA-256 over the resolved suite, so results can say which suite
    /// made them; over its redacted form when it holds secrets, so the hash
    /// cannot confirm a guessed key.
    pub fn hash(&self) -> String {
        let json = if self.secrets.is_empty() {
            serde_json::to_vec(self).unwrap_or_default()
        } else {
            let mut value = serde_json::to_value(self).unwrap_or_default();
            self.secrets.redact_json(&mut value);
            serde_json::to_vec(&value).unwrap_or_default()
        };
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
pub struct SuiteError {
    pub diagnostics: Vec<Diagnostic>,
    sources: BTreeMap<PathBuf, String>,
}

impl SuiteError {
    pub(crate) fn io(file: &Path, err: &std::io::Error) -> SuiteError {
        SuiteError {
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

/// Recording a suite in its results is the suite's business: only it
/// knows which of its values are secret.
impl SuiteRecord {
    /// `suite` as recorded: its secret values, header values and server
    /// environment values redacted.
    pub fn of(suite: &Suite) -> SuiteRecord {
        let mut resolved = serde_json::to_value(suite).unwrap_or_default();
        suite.secrets.redact_json(&mut resolved);
        for (section, field) in [("endpoints", "headers"), ("servers", "env")] {
            if let Some(entries) = resolved.get_mut(section).and_then(|v| v.as_object_mut()) {
                for entry in entries.values_mut() {
                    if let Some(map) = entry.get_mut(field).and_then(|v| v.as_object_mut()) {
                        map.values_mut()
                            .for_each(|v| *v = serde_json::Value::from("<redacted>"));
                    }
                }
            }
        }
        SuiteRecord {
            name: suite.name.clone(),
            description: suite.description.clone(),
            file: suite.file.display().to_string(),
            hash: suite.hash(),
            resolved,
        }
    }
}

/// The process environment, for `${VAR}` interpolation.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads, validates and resolves the suite at `file`.
pub fn load(file: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Suite, SuiteError> {
    load_with(file, env, OutputsCheck::Skip)
}

/// A report template named in `outputs.templates` that cannot be
/// rendered, as the renderer found it (`report::check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateFault {
    /// Not a template the renderer knows; the message says which it does.
    Unknown(String),
    /// Found, but it (or a template it includes) cannot be read or compiled.
    Broken(String),
}

/// What checks one name of `outputs.templates` for [`load_checked`]; the
/// renderer's check, passed in so that suites need not know the renderer.
pub(crate) type TemplateCheck<'a> = &'a dyn Fn(&str) -> Result<(), TemplateFault>;

/// [`load`], and checks the outputs as a run needs them: `outputs.dir` is
/// a directory that can be written (or created), and `templates` finds
/// nothing wrong with any name in `outputs.templates` (for `dyno validate`,
/// every name is a built-in template or a `<name>.j2` in the templates
/// directory and compiles). Errors point at the key.
pub fn load_checked(
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    templates: TemplateCheck<'_>,
) -> Result<Suite, SuiteError> {
    load_with(file, env, OutputsCheck::Check { templates })
}

fn load_with(
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    outputs: OutputsCheck<'_>,
) -> Result<Suite, SuiteError> {
    let text = crate::fsutil::read_text(file, crate::fsutil::MAX_INPUT_BYTES)
        .map_err(|e| SuiteError::io(file, &e))?;
    let mut loader = Loader {
        env,
        diagnostics: Vec::new(),
        sources: BTreeMap::new(),
        outputs,
        secrets: crate::secrets::Secrets::default(),
    };
    let suite = loader.suite(file, text);
    match suite {
        Some(mut suite) if loader.diagnostics.is_empty() => {
            suite.secrets = loader.secrets;
            Ok(suite)
        }
        _ => {
            let secrets = loader.secrets;
            let mut diagnostics = loader.diagnostics;
            for d in &mut diagnostics {
                d.message = secrets.redact(&d.message);
                d.hint = d.hint.as_deref().map(|h| secrets.redact(h));
            }
            Err(SuiteError {
                diagnostics,
                sources: loader.sources,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_hold_codes_from_400_to_599() {
        let set = Statuses::of(&[429, 503, 200, 600]);
        assert_eq!(set.codes(), [429, 503]);
        assert!(set.contains(429) && set.contains(503) && !set.contains(500));
        assert_eq!(Params::BUILT_IN.retry.on.codes(), [429, 503]);
    }

    #[test]
    fn retry_statuses_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(
            &file,
            "name: r\nendpoints:\n  e: { base_url: http://127.0.0.1:9 }\nmodels:\n  - { id: a, endpoint: e }\nprompts:\n  - { id: p, text: hi }\ndefaults:\n  retry: { max: 2, statuses: [429, 502] }\n",
        )
        .unwrap();
        let suite = load(&file, &|_| None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(suite.models[0].params.retry.on.codes(), [429, 502]);
    }
}
