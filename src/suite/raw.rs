//! `RawSuite`: the suite file exactly as written (format version 1). serde and
//! schemars read these types; doc comments become the schema's descriptions.
//! Nothing here applies defaults or checks references: that is `resolve`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A dyno benchmark suite: models × prompts × rounds, measured against
/// OpenAI-compatible endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "dyno suite (format version 1)")]
pub(crate) struct RawSuite {
    /// Suite name; also names the default results directory `results/<name>`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"))]
    pub name: String,
    /// What this suite decides, in one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Named HTTP endpoints that serve OpenAI-compatible chat completions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, RawEndpoint>,
    /// Named local servers that dyno starts, measures and stops.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, RawServer>,
    /// The models to measure, in execution order.
    #[schemars(length(min = 1))]
    pub models: Vec<RawModel>,
    /// The prompt set, in execution order: inline prompts and `include:` globs.
    #[schemars(length(min = 1))]
    pub prompts: Vec<RawPrompt>,
    /// Request parameters and round counts for every model (overridable per model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<RawParams>,
    /// Extra axes: every listed value multiplies the cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<RawMatrix>,
    /// Where results and reports are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<RawOutputs>,
    /// How `dyno compare` judges changes in this suite's results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<RawCompare>,
    /// Power and price, for energy and cost per output token where the
    /// machine does not expose RAPL energy counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<RawEnergy>,
    /// The order requests are sent in: `model_major` (one model at a time,
    /// one server up at a time; the default) or `interleaved` (every model
    /// up at once, each round rotating through them, so drift during the
    /// run is shared instead of landing on one model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// Load points: many requests side by side (concurrency, rates, a sweep
    /// to saturation) instead of one at a time; every model without its
    /// own `load:` is driven at them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<super::raw_load::RawLoad>,
    /// Output quality: checks applied to every prompt and a judge model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<RawQuality>,
}

/// The order a plan sends its requests in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Model by model: each model's rounds, then the next model's.
    #[default]
    ModelMajor,
    /// Round by round: each round visits every model (and variant) in turn.
    Interleaved,
}

impl std::str::FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> Result<Order, String> {
        match s {
            "model_major" | "model-major" => Ok(Order::ModelMajor),
            "interleaved" => Ok(Order::Interleaved),
            other => Err(format!(
                "unknown order `{other}`; use model_major or interleaved"
            )),
        }
    }
}

/// How outputs are scored besides their speed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuality {
    /// Checks applied to every prompt's outputs, before the prompt's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::quality::CheckSpec>,
    /// A model of this suite that scores every output after the timed runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<RawJudge>,
}

/// The judge: a model of the suite, asked at temperature 0 to score each
/// distinct output against the prompt's `rubric`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJudge {
    /// The judging model (an `id` of `models`). A model's own `judge` overrides it.
    pub model: String,
    /// Score scale, `"min-max"` (default `"1-5"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<crate::quality::JudgeScale>,
    /// Maximum tokens of a judge reply (default 48; at most 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_tokens: Option<u32>,
}

/// Power draw and electricity price. Energy per request is read from RAPL
/// package counters when the machine exposes them; otherwise it is
/// `watts` × the request's wall time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEnergy {
    /// Average power of the machine while it serves, in watts (used without
    /// RAPL; at most 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1_000_000.0))]
    pub watts: Option<f64>,
    /// Electricity price per kWh, for cost per million output tokens (at
    /// most 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1_000_000.0))]
    pub price_per_kwh: Option<f64>,
    /// Currency of `price_per_kwh` (e.g. `EUR`), shown beside costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Use the declared `watts` even where RAPL counters are readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_rapl: Option<bool>,
}

/// Settings of `dyno compare`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompare {
    /// Significance level of each test and false-discovery rate (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0001, max = 0.5))]
    pub alpha: Option<f64>,
    /// Noise thresholds: a change smaller than this is UNCHANGED (default 10% each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<RawNoise>,
    /// Absolute floors of the noise band for times, in milliseconds: a
    /// shift smaller than timer and loopback jitter is never a regression
    /// (defaults: TTFT 1, E2E 1, TPOT 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_ms: Option<RawFloor>,
    /// A request measured while other processes kept more than this many
    /// cores busy is noisy; `dyno compare` calls such rows NOISY instead of
    /// REGRESSED or IMPROVED (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 4096.0))]
    pub noisy_cores: Option<f64>,
}

/// Per-metric absolute floors of the noise band, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFloor {
    /// Time to first token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 86400000.0))]
    pub ttft: Option<f64>,
    /// End-to-end latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 86400000.0))]
    pub e2e: Option<f64>,
    /// Time per output token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 86400000.0))]
    pub tpot: Option<f64>,
}

/// Per-metric noise thresholds, written as percentages (`"10%"`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNoise {
    /// Time to first token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?%$"))]
    pub ttft: Option<String>,
    /// End-to-end latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?%$"))]
    pub e2e: Option<String>,
    /// Time per output token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?%$"))]
    pub tpot: Option<String>,
    /// Decode tokens per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?%$"))]
    pub tokens_per_s: Option<String>,
}

/// The kind of service behind an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// Any OpenAI-compatible server (llama-server, Ollama, vLLM, LM Studio, hosted APIs).
    #[default]
    Openai,
    /// Foundry Local: port discovery, alias resolution and model loading.
    Foundry,
    /// A custom adapter program speaking dyno's JSON-lines protocol on
    /// stdin/stdout (`docs/adapter-protocol.md`).
    Command,
}

/// An OpenAI-compatible HTTP endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEndpoint {
    /// The kind of service (default `openai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EndpointKind>,
    /// Base URL, with or without the trailing `/v1` (e.g. `http://127.0.0.1:8080/v1`).
    /// Required for `openai` endpoints; `foundry` endpoints discover it when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Name of the environment variable that holds the API key. The key itself
    /// is never written into results, reports or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub api_key_env: Option<String>,
    /// Extra HTTP headers sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `openai` and `foundry` endpoints: a PEM file of certificates trusted
    /// besides the system's (relative to the suite file), for an `https://`
    /// server with a self-signed certificate or one from a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// `command` endpoints: the adapter program and its arguments (paths
    /// relative to the suite file's directory, where it runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub command: Option<Vec<String>>,
    /// `command` endpoints: the weights file passed in the `load` message
    /// (relative to the suite file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    /// `command` endpoints: parameters passed as is in the `load` message.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Seconds a managed adapter (or Foundry model load) may take (default
    /// 120; at most 86400, one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub load_timeout_s: Option<u32>,
    /// How the endpoint takes a `reasoning_effort`: `reasoning_effort`
    /// (the OpenAI field, sent as is; the default) or `enable_thinking`
    /// (`chat_template_kwargs: {enable_thinking}`, as llama-server and
    /// vLLM take it: `none` turns thinking off, any other effort on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_control: Option<ReasoningControl>,
}

/// How a reasoning model is told how hard to think.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningControl {
    /// `reasoning_effort: low` (OpenAI and compatible hosted APIs).
    ReasoningEffort,
    /// `chat_template_kwargs: {enable_thinking: true|false}` (llama-server,
    /// vLLM, for templates such as Qwen3's).
    EnableThinking,
}

/// How hard a reasoning model should think.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningEffort {
    /// No thinking (`enable_thinking: false`).
    None,
    Minimal,
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    /// The value as suites and requests write it (`high`).
    pub fn name(self) -> &'static str {
        match self {
            ReasoningEffort::None => "none",
            ReasoningEffort::Minimal => "minimal",
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// A local server process that dyno starts before the first cell that needs
/// it and stops after the last.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    /// Program and arguments; `{port}` is replaced by a free port chosen by
    /// dyno. It must appear here or in an `env` value.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// HTTP path polled until it answers 200 (default `/health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Seconds to wait for readiness before the server's models fail
    /// (default 120; at most 86400, one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub startup_timeout_s: Option<u32>,
    /// Extra environment variables for the server process; `{port}` and
    /// variant placeholders are replaced in the values (`PORT: "{port}"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Configurations measured side by side, each its own launch: every
    /// `{name}` in `command` (or in `env` values) takes each listed value in
    /// turn, e.g. `threads: [1, 2]` or `gpu_layers: [0, 99]` (without/with
    /// acceleration). Several variants multiply.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"pattern": "^[a-z_][a-z0-9_]*$"}))]
    pub variants: BTreeMap<String, Vec<VariantValue>>,
    /// Restart the server before every round, so each round starts cold and
    /// cold starts get their own statistics (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<bool>,
}

/// One value of a server variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum VariantValue {
    Integer(i64),
    Number(f64),
    Bool(bool),
    Text(String),
}

impl std::fmt::Display for VariantValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VariantValue::Integer(v) => write!(f, "{v}"),
            VariantValue::Number(v) => write!(f, "{v}"),
            VariantValue::Bool(v) => write!(f, "{v}"),
            VariantValue::Text(v) => f.write_str(v),
        }
    }
}

/// One model to measure, served by an endpoint or by a managed server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel {
    /// Identifier used in results, reports and filters.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"))]
    pub id: String,
    /// The endpoint that serves it (a key of `endpoints`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The managed server that serves it (a key of `servers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The model name sent to the API (default: `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Capability tags shown in reports (e.g. `chat`, `summarize`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Declared size on disk in MB (10^6 bytes), when dyno cannot measure it
    /// (at most 10^9, a petabyte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1_000_000_000.0))]
    pub size_mb: Option<f64>,
    /// Licence identifier (SPDX where one exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The tokens the model's server holds per request (llama-server's
    /// `--ctx-size`), when known: a `context_tokens` plus `max_tokens` that
    /// does not fit is an error before the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub context_window: Option<u32>,
    /// The model's files on disk, whose total size is its footprint
    /// (relative to the suite file). Default for a managed server: the
    /// `-m`/`--model` arguments of its command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Restart its managed server before every round (cold-start statistics;
    /// default: the server's `cold_start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<bool>,
    /// Foundry Local models: the devices to measure (`cpu`, `gpu`, `npu`),
    /// each its own variant, loaded in turn — with and without acceleration
    /// side by side. Default: the service's preferred variant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[a-z]+$")))]
    pub variants: Vec<String>,
    /// Foundry Local models: download the model through the service when it
    /// is not cached (default false: a clear error naming the command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<bool>,
    /// The model that judges this one's outputs (default `quality.judge.model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    /// Parameter overrides for this model only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<RawParams>,
    /// Load points for this model only (instead of the suite's `load:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<super::raw_load::RawLoad>,
}

/// One entry of the prompt set: an inline prompt (`id` with `text` or
/// `messages`) or `include:` of prompt files.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrompt {
    /// Identifier used in results, reports and filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"))]
    pub id: Option<String>,
    /// The user message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A system message sent before `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The whole conversation, instead of `text` and `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub messages: Option<Vec<RawMessage>>,
    /// A glob of prompt files (relative to this file), YAML or JSON; each
    /// file holds a list of prompts: prompt objects, or strings (the user
    /// message, with the id `<file stem>-<position>`, 1-based). Files are
    /// taken in path order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// Deterministic checks on every output of this prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::quality::CheckSpec>,
    /// What a good answer covers, for the judge model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rubric: Option<String>,
    /// The shape the reply must take, sent as the request's
    /// `response_format` (llama-server enforces a JSON schema with a
    /// grammar: constrained decoding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<RawResponseFormat>,
    /// Text shared by this prompt (or, beside `include`, every included
    /// prompt) and sent before it as the system message: a system prompt
    /// or a document, as text or `{ file: PATH }` (relative to this file).
    /// A server with a prompt cache processes it once for the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<RawPrefix>,
}

/// A structured-output request: `{type: json_schema, schema: {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawResponseFormat {
    /// `json_schema`: the reply is JSON valid against `schema`.
    #[serde(rename = "type")]
    pub kind: ResponseFormatKind,
    /// The JSON schema: written inline, or `{file: PATH}` (relative to the
    /// file it is written in).
    #[schemars(extend("type" = "object"))]
    pub schema: serde_json::Value,
    /// The schema's name in the request (default: the prompt's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    pub name: Option<String>,
}

/// The kinds of structured output dyno asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormatKind {
    JsonSchema,
}

/// A value of the `response_format` matrix axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormatChoice {
    /// Send no `response_format`: free decoding.
    None,
    /// Send the prompt's `response_format`, else the schema of its
    /// `json_schema` check (a prompt with neither sends none).
    JsonSchema,
}

/// A shared prefix: its text, or the file that holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum RawPrefix {
    Text(String),
    File {
        /// A text file, relative to the file that names it.
        file: String,
    },
}

/// One item of an included prompt file: a prompt object, or just the user
/// message as a string (the workshop's `prompts.json` is a JSON list of
/// strings). A string's id is the file's stem and its 1-based position:
/// the second string of `prompts.json` is `prompts-2`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawPromptItem {
    /// The user message alone; the id derives from the file and position.
    Text(String),
    /// A prompt with its id, text or messages, checks and rubric (boxed:
    /// most items of a large file are plain strings).
    Prompt(Box<RawPrompt>),
}

impl JsonSchema for RawPromptItem {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RawPromptItem".into()
    }

    /// A string, or else a prompt object; written with `if`/`else` rather
    /// than `anyOf`, so a mistake inside an object is reported at its key
    /// instead of as "not valid under any of the schemas".
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let prompt = generator.subschema_for::<RawPrompt>();
        schemars::json_schema!({
            "description": "A prompt object, or a string: the user message, with the id `<file stem>-<position>` (1-based).",
            "if": { "type": "string" },
            "then": { "type": "string", "minLength": 1 },
            "else": prompt,
        })
    }
}

/// One chat message.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMessage {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

/// The author of a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The role as the chat APIs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// Request parameters and round counts. Unset fields inherit (model →
/// `defaults` → built-in defaults).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawParams {
    /// Measured rounds per cell (default 5; at most 100,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub rounds: Option<u32>,
    /// Warmup rounds run first and excluded from statistics (default 1; at
    /// most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1000))]
    pub warmup: Option<u32>,
    /// Sampling temperature (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    /// Nucleus sampling (not sent when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub top_p: Option<f64>,
    /// Suite seed; each cell's seed derives from it and the cell key
    /// (default 42; 0 to 4294967295).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 4_294_967_295_u32))]
    pub seed: Option<u32>,
    /// Maximum output tokens per request (default 128; at most 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_tokens: Option<u32>,
    /// Stream the response (needed for time to first token; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Retrying requests the server turned away for now (default: up to 3
    /// more attempts on 429 and 503, 500 ms backoff doubling, or the
    /// server's `Retry-After`). Every sample records its attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RawRetry>,
    /// Per-request timeout in seconds (default 60; from 0.001 to 86400, one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001, max = 86400.0))]
    pub timeout_s: Option<f64>,
    /// Requests sent one at a time go over one connection kept alive
    /// instead of a new connection each (default false: every TTFT then
    /// includes connecting, as a user's first request does). Load points
    /// always keep their connections alive. Each sample records whether
    /// its request opened a new connection (`new_connection`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_connections: Option<bool>,
    /// How hard a reasoning model thinks (`none`, `minimal`, `low`,
    /// `medium`, `high`), sent as the endpoint takes it (its
    /// `reasoning_control`; managed servers: `enable_thinking`). Not sent
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Tokens of filler context put before each prompt (default 0; at most
    /// 1,000,000), as llama-bench's `-d` does: deterministic text, different
    /// for every request so no prefix cache holds it, sized with the
    /// server's tokenizer where it has one (`/tokenize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1_000_000))]
    pub context_tokens: Option<u32>,
    /// Let the server reuse cached prompt tokens (default true). `false`
    /// sends llama.cpp's `cache_prompt: false` and a `cache_salt` unique to
    /// the request (vLLM), so the same work is measured cold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
}

/// When and how often a request is tried again.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    /// More attempts after the first (0: never retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 20))]
    pub max: Option<u32>,
    /// HTTP statuses worth another attempt (default 429 and 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<RetryStatus>>,
    /// The first wait when the server sends no `Retry-After`, in
    /// milliseconds; it doubles with each attempt (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 600_000))]
    pub backoff_ms: Option<u32>,
}

/// An HTTP status from 400 to 599.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub(crate) struct RetryStatus(#[schemars(range(min = 400, max = 599))] pub u16);

/// Extra axes. Each listed value is its own set of cells; axes multiply.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatrix {
    /// Streaming on and/or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub stream: Option<Vec<bool>>,
    /// Temperatures to try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), inner(range(min = 0.0, max = 2.0)))]
    pub temperature: Option<Vec<f64>>,
    /// Output token limits to try (each at most 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), inner(range(min = 1, max = 1_000_000)))]
    pub max_tokens: Option<Vec<u32>>,
    /// Reasoning efforts to try (`[none, high]`: what thinking costs and
    /// what it buys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub reasoning_effort: Option<Vec<ReasoningEffort>>,
    /// Structured output off and on (`[none, json_schema]`: what
    /// constrained decoding costs in decode speed, and buys in valid JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub response_format: Option<Vec<FormatChoice>>,
    /// Filler context depths to try, in tokens (each at most 1,000,000):
    /// the `context_tokens` of each cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), inner(range(max = 1_000_000)))]
    pub context_tokens: Option<Vec<u32>>,
    /// Prompt cache on and/or off: the `cache` of each cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub cache: Option<Vec<bool>>,
}

/// Where results and reports go.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutputs {
    /// Results directory, relative to the suite file (default `../results/<name>`
    /// for suites in `suites/`, else `results/<name>` beside the suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Report templates to render (default `report.md`, `results.csv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<String>>,
}

/// The JSON schema of a suite file (draft 2020-12), as committed in
/// `schemas/suite.schema.json`.
pub(crate) fn suite_schema() -> serde_json::Value {
    without_null(serde_json::Value::from(schemars::schema_for!(RawSuite)))
}

/// The JSON schema of an included prompt file: a list of prompts, each a
/// prompt object or a string.
pub(crate) fn prompt_file_schema() -> serde_json::Value {
    without_null(serde_json::Value::from(schemars::schema_for!(
        Vec<RawPromptItem>
    )))
}

/// An optional key is left out, never written as `null`: drops the `null`
/// alternative schemars adds to every `Option`, so a wrong value gets a
/// precise error (`"three" is not of type "integer"`) instead of an `anyOf`.
fn without_null(mut schema: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    fn is_null_type(v: &Value) -> bool {
        v.as_object()
            .is_some_and(|o| o.len() == 1 && o.get("type") == Some(&Value::from("null")))
    }
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(types)) = map.get_mut("type") {
                    types.retain(|t| t != "null");
                    if let [only] = types.as_slice() {
                        let only = only.clone();
                        map.insert("type".into(), only);
                    }
                }
                let single = match map.get("anyOf") {
                    Some(Value::Array(alts))
                        if alts.len() == 2 && alts.iter().any(is_null_type) =>
                    {
                        alts.iter().find(|a| !is_null_type(a)).cloned()
                    }
                    _ => None,
                };
                if let Some(Value::Object(inner)) = single {
                    map.remove("anyOf");
                    for (k, val) in inner {
                        map.entry(k).or_insert(val);
                    }
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}
