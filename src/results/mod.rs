//! The results document: every raw sample, per-cell aggregates and the
//! context needed to trust them (suite hash, tool version, git revision,
//! environment). Plain data that imports no stage: the types its figures
//! are made of (`Round`, `Slo`, `EnergySettings`) are its own, and `plan`
//! and `suite` re-export them. Writing goes through `fsutil`, rendering
//! through `report`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use std::path::PathBuf;

pub use crate::measure::machine::Environment;
use crate::measure::resources::GpuSnapshot;

mod engine;
mod identity;
mod io;
mod judging;
mod merge;
mod mode;
mod parts;
mod point;
mod prompts;
mod reasoning;
mod summary;

pub use engine::{EngineBuild, EngineSetup};
pub use identity::{MachineLabel, PointLabel, VariantLabel};

pub use merge::{
    Fleet, FleetMachine, FleetRow, MergeError, Shard, machine, merge_fleet, merge_shards,
};

pub use judging::{JudgeSignal, NIL_AGREEMENT, judge_signal};

pub use point::{
    CLIENT_BOUND_CORES, CLIENT_BOUND_LAG_MS, ClientCost, LoadStats, Slo, SweepResult, load_stats,
};

pub use io::{
    RESULTS_FILE, ReadError, parse, parse_per_request, read, read_per_request, results_file,
    to_json,
};
pub use mode::on_one_thread;
pub use reasoning::{Reasoning, ReasoningForm, ReasoningStats};

pub use prompts::{PromptFigures, cache_hit_rate, context_tokens, prompt_tps};

pub use summary::{
    CellStats, Dist, EnergySettings, EnergySource, Failure, Highlight, ModelSummary,
    QualitySummary, aggregate, highlights, is_warm_measured, refresh_quality, summarize_models,
};

/// Version of the results format; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 2;

/// Formats this version reads: format 2 only added fields (with defaults).
pub(crate) const READABLE_FORMATS: std::ops::RangeInclusive<u32> = 1..=FORMAT_VERSION;

/// Where an output-token count came from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The server's `usage` object.
    Usage,
    /// Server-side timings (llama.cpp `timings.predicted_n`).
    ServerTimings,
    /// The server's tokenize endpoint.
    Tokenize,
    /// Counted from the stream (one per content event) or from text length.
    Estimate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Error,
}

/// What went wrong with a request.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Could not connect.
    Connect,
    /// No complete response within the timeout.
    Timeout,
    /// The server answered with a non-2xx status.
    HttpStatus,
    /// An event or body that is not the expected JSON.
    BadSse,
    /// The connection closed before the response was complete.
    EarlyEof,
    /// The server sent an `{"error": ...}` payload.
    ServerError,
    /// The managed server process exited.
    ServerExited,
    /// The model's server or endpoint failed earlier; the request was not sent.
    Skipped,
    /// The response was larger than dyno reads (a body over 16 MiB, one
    /// SSE event over 1 MiB).
    TooLarge,
    /// The prompt and its output do not fit the model's context window
    /// (the server said so).
    TooLong,
}

impl ErrorKind {
    /// The name results use for the kind (`http_status`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::BadSse => "bad_sse",
            ErrorKind::EarlyEof => "early_eof",
            ErrorKind::ServerError => "server_error",
            ErrorKind::ServerExited => "server_exited",
            ErrorKind::Skipped => "skipped",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::TooLong => "too_long",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", content = "n", rename_all = "snake_case")]
pub enum Round {
    Warmup(u32),
    Measured(u32),
}

impl Round {
    pub fn is_warmup(self) -> bool {
        matches!(self, Round::Warmup(_))
    }
}

impl std::fmt::Display for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Round::Warmup(n) => write!(f, "warmup {n}"),
            Round::Measured(n) => write!(f, "round {n}"),
        }
    }
}

/// One request, measured. Times are milliseconds on a monotonic clock,
/// from just before the request was written.
// Its flags (warmup, stream, cold, new_connection) are independent facts
// of one request, named as other tools read them.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sample {
    /// Position in the plan (1-based).
    pub index: usize,
    pub key: String,
    pub model: String,
    pub prompt: String,
    pub round: Round,
    pub warmup: bool,
    pub seed: u32,
    pub stream: bool,
    pub status: Status,
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
    /// Time to the first event carrying non-empty content (streaming only).
    pub ttft_ms: Option<f64>,
    /// Time to the first reasoning token (`reasoning_content`, `reasoning`
    /// or text inside `<think>`), when the model reasons.
    pub ttfo_reasoning_ms: Option<f64>,
    /// Time to the end of the response.
    pub e2e_ms: Option<f64>,
    /// Gaps between consecutive content-bearing events (left empty when
    /// read for per-request figures only).
    #[serde(deserialize_with = "mode::per_token")]
    pub itl_ms: Vec<f64>,
    /// (e2e − ttft) / (`output_tokens` − 1).
    pub tpot_ms: Option<f64>,
    pub output_tokens: Option<u64>,
    pub prompt_tokens: Option<u64>,
    /// Prompt tokens the server reports it took from its prompt cache
    /// (`usage.prompt_tokens_details.cached_tokens`, llama.cpp
    /// `timings.cache_n`); `None` when it does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    pub token_source: Option<TokenSource>,
    /// (`output_tokens` − 1) / (e2e − ttft), per second.
    pub decode_tps: Option<f64>,
    pub finish_reason: Option<String>,
    pub text: String,
    /// The server's own timings (llama.cpp `timings`), as sent.
    pub server_timings: Option<BTreeMap<String, f64>>,
    /// The server variant (`threads=2`), when the server declares variants.
    #[serde(default)]
    pub variant: Option<VariantLabel>,
    /// The matrix axis values (`stream=false,max_tokens=64`), when the
    /// suite has axes; each combination is its own summary row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axes: Option<String>,
    /// The first request after its managed server became ready. Cold
    /// requests are aggregated apart and left out of the cell statistics.
    #[serde(default)]
    pub cold: bool,
    /// Peak and median resident memory of the server's process tree while
    /// this request ran, in MB (10^6 bytes).
    #[serde(default)]
    pub rss_peak_mb: Option<f64>,
    #[serde(default)]
    pub rss_median_mb: Option<f64>,
    /// CPU time the server's process tree spent during this request (all
    /// cores), in milliseconds.
    #[serde(default)]
    pub cpu_ms: Option<f64>,
    /// Package energy during this request (RAPL), in joules.
    #[serde(default)]
    pub energy_j: Option<f64>,
    /// The prompt's checks on this output (successful requests only).
    #[serde(default)]
    pub checks: Vec<crate::quality::CheckResult>,
    /// The judge model's score of this output.
    #[serde(default)]
    pub judge: Option<Judgement>,
    /// A human rating merged from the results' annotation file.
    #[serde(default)]
    pub human_score: Option<f64>,
    /// Cores other processes (not dyno, not the measured server tree) kept
    /// busy while this request ran (`measure::noise`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_busy_cores: Option<f64>,
    /// Attempts it took (more than one when the server turned it away for
    /// now and it was tried again); its figures are the last attempt's.
    #[serde(default = "one")]
    pub attempts: u32,
    /// Load points: when the request was due, from the point's start, and
    /// how late it went out (milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_lag_ms: Option<f64>,
    /// The request opened a new connection, so its TTFT and E2E include
    /// connecting (TCP, and TLS for `https`); false when it went over a
    /// connection kept alive (load points; `reuse_connections`) or the
    /// provider is not HTTP.
    #[serde(default)]
    pub new_connection: bool,
    /// What the model spent reasoning before it answered, when it did;
    /// `text` is then the answer alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
}

fn one() -> u32 {
    1
}

/// One judge model's verdict on one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Judgement {
    /// The judging model.
    pub model: String,
    /// The score when the reply had one inside the scale.
    pub score: Option<f64>,
    pub parse: crate::quality::JudgeParse,
    /// The judge's reply as sent (or the error that prevented one).
    pub reply: String,
}

impl Sample {
    /// A request of cell `key` (model × prompt × axes) at `round`, with
    /// nothing measured yet: status error, every figure empty.
    pub fn new(key: String, model: &str, prompt: &str, round: Round) -> Sample {
        Sample {
            index: 0,
            key,
            model: model.to_string(),
            prompt: prompt.to_string(),
            round,
            warmup: round.is_warmup(),
            seed: 0,
            stream: true,
            status: Status::Error,
            error_kind: None,
            error: None,
            ttft_ms: None,
            ttfo_reasoning_ms: None,
            e2e_ms: None,
            itl_ms: Vec::new(),
            tpot_ms: None,
            output_tokens: None,
            prompt_tokens: None,
            cached_tokens: None,
            token_source: None,
            decode_tps: None,
            finish_reason: None,
            text: String::new(),
            server_timings: None,
            variant: None,
            axes: None,
            cold: false,
            rss_peak_mb: None,
            rss_median_mb: None,
            cpu_ms: None,
            energy_j: None,
            checks: Vec::new(),
            judge: None,
            human_score: None,
            host_busy_cores: None,
            attempts: 1,
            scheduled_ms: None,
            schedule_lag_ms: None,
            new_connection: false,
            reasoning: None,
        }
    }

    /// The summary row this sample belongs to, as reports name it:
    /// `smollm2 [threads=2,stream=false]`.
    pub(crate) fn row_label(&self) -> String {
        row_label(&self.model, self.variant.as_deref(), self.axes.as_deref())
    }

    /// Derives TPOT and decode tokens/s from TTFT, E2E and the token
    /// count: the answer's tokens when the model reasoned (the reasoning
    /// was generated before TTFT, outside the decode window).
    pub fn derive_rates(&mut self) {
        let tokens = match &self.reasoning {
            Some(r) => r.answer_tokens,
            None => self.output_tokens,
        };
        if let Some((tpot, tps)) = rates(self.ttft_ms, self.e2e_ms, tokens) {
            self.tpot_ms = Some(tpot);
            self.decode_tps = Some(tps);
        }
    }
}

/// A time in milliseconds as results record it: to the microsecond, which
/// is finer than loopback and timer jitter, so `results.json` does not
/// spend 17 digits on noise.
pub fn to_microsecond(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// TPOT `(e2e − ttft) / (tokens − 1)` in ms and decode tokens/s
/// `(tokens − 1) / (e2e − ttft)`; `None` without two tokens and a decode time.
pub fn rates(ttft_ms: Option<f64>, e2e_ms: Option<f64>, tokens: Option<u64>) -> Option<(f64, f64)> {
    let (ttft, e2e, tokens) = (ttft_ms?, e2e_ms?, tokens?);
    if tokens <= 1 || e2e <= ttft {
        return None;
    }
    let decode_ms = e2e - ttft;
    let steps = (tokens - 1) as f64;
    Some((decode_ms / steps, steps / (decode_ms / 1000.0)))
}

/// How one model (in one server variant) fared: each server launch, the
/// model's footprint on disk and what the GPU held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelRun {
    pub id: String,
    /// The server variant (`threads=2`), when its server declares variants.
    #[serde(default)]
    pub variant: Option<VariantLabel>,
    pub api_model: String,
    pub license: Option<String>,
    pub capabilities: Vec<String>,
    /// Managed server: spawn → ready of the first launch, in milliseconds.
    pub load_ms: Option<f64>,
    /// Every launch of the managed server (one per round with `cold_start`).
    #[serde(default)]
    pub launches: Vec<Launch>,
    /// Files on disk and their total size.
    #[serde(default)]
    pub footprint: Option<Footprint>,
    /// GPU memory and utilisation right after the first load (`nvidia-smi`);
    /// `None` on machines without an NVIDIA GPU.
    #[serde(default)]
    pub gpu: Option<GpuSnapshot>,
    /// What the server reports as its version (llama.cpp `build_info`).
    pub server_version: Option<String>,
    /// Foundry Local: the exact variant measured.
    #[serde(default)]
    pub foundry: Option<FoundryVariant>,
    pub status: Status,
    pub failure: Option<String>,
}

/// The Foundry Local catalog variant a model resolved to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FoundryVariant {
    /// Exact variant id sent as `model`.
    pub variant_id: String,
    pub alias: String,
    pub device: String,
    pub execution_provider: String,
    pub file_size_mb: Option<f64>,
    pub license: Option<String>,
    /// Which service generation served it.
    pub generation: String,
}

impl ModelRun {
    /// `smollm2-135m` or `smollm2-135m [threads=2]`.
    pub fn label(&self) -> String {
        label(&self.id, self.variant.as_deref())
    }
}

/// `model` or `model [variant]`: how reports name a model in one variant.
pub fn label(model: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{model} [{v}]"),
        None => model.to_string(),
    }
}

/// `model`, `model [variant]`, `model [axes]` or `model [variant,axes]`:
/// how reports name a summary row (a model in one variant and one
/// combination of axis values).
pub(crate) fn row_label(model: &str, variant: Option<&str>, axes: Option<&str>) -> String {
    match (variant, axes) {
        (Some(v), Some(a)) => label(model, Some(&format!("{v},{a}"))),
        (v, a) => label(model, v.or(a)),
    }
}

/// One start of a managed server, measured while it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Launch {
    /// Spawn → ready, in milliseconds.
    pub load_ms: f64,
    /// Resident memory of the process tree once ready, before any request (MB).
    pub rss_idle_mb: Option<f64>,
    /// Peak and median resident memory over the whole launch (MB).
    pub rss_peak_mb: Option<f64>,
    pub rss_median_mb: Option<f64>,
    /// Memory readings taken (≥ 10 per second while it ran).
    pub rss_samples: usize,
    /// CPU time of the process tree over the launch, all cores, in seconds.
    pub cpu_s: Option<f64>,
    /// How the launch ended when the server died under dyno.
    pub exit: Option<String>,
    /// What the server said of its own build when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineBuild>,
}

/// A model's files on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Footprint {
    pub files: Vec<FileSize>,
    /// Total bytes of the files that exist.
    pub bytes: u64,
    /// `bytes` in MB (10^6 bytes).
    pub mb: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileSize {
    pub path: String,
    /// `None` when the file cannot be read.
    pub bytes: Option<u64>,
}

impl Footprint {
    /// A size known from a catalog or the suite, without files to measure.
    pub(crate) fn declared(mb: f64) -> Footprint {
        Footprint {
            files: Vec::new(),
            bytes: (mb * MB).round() as u64,
            mb,
        }
    }

    /// The footprint of files with their sizes (`None` where unreadable);
    /// `None` when there are no files.
    pub(crate) fn from_sizes(sizes: Vec<(PathBuf, Option<u64>)>) -> Option<Footprint> {
        if sizes.is_empty() {
            return None;
        }
        let files: Vec<FileSize> = sizes
            .into_iter()
            .map(|(path, bytes)| FileSize {
                path: path.display().to_string(),
                bytes,
            })
            .collect();
        let bytes = files.iter().filter_map(|f| f.bytes).sum();
        Some(Footprint {
            files,
            bytes,
            mb: bytes as f64 / MB,
        })
    }
}

/// Bytes per MB: reports use decimal megabytes throughout.
pub const MB: f64 = 1e6;

/// The suite as recorded: its identity and the resolved content, with
/// header and server-environment values redacted (they may hold secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SuiteRecord {
    pub name: String,
    pub description: Option<String>,
    pub file: String,
    pub hash: String,
    pub resolved: serde_json::Value,
}

/// A prompt of a recorded suite, as much as annotators need of it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PromptRecord {
    pub id: String,
    #[serde(default)]
    messages: Vec<MessageRecord>,
    #[serde(default)]
    pub rubric: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct MessageRecord {
    role: String,
    content: String,
}

impl PromptRecord {
    /// The user message(s), blank-line separated: what the output answers.
    pub(crate) fn question(&self) -> String {
        self.messages
            .iter()
            .filter(|m| m.role == "user")
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

impl SuiteRecord {
    /// The recorded suite's prompts; empty when the record holds none.
    pub fn prompts(&self) -> Vec<PromptRecord> {
        self.resolved
            .get("prompts")
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default()
    }
}

/// Why a run stopped early, and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Partial {
    /// E.g. `interrupted by SIGINT (Ctrl-C)`.
    pub reason: String,
    /// Cells of the plan recorded (sent or skipped; a load point is one
    /// cell, however many requests it sent).
    pub sent: usize,
    /// Cells the plan (or the shard) holds.
    pub planned: usize,
}

/// One run of one suite: what `results.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Results {
    pub format_version: u32,
    pub tool_version: String,
    /// UTC, ISO 8601; the only wall-clock time in the document.
    pub started_at: String,
    pub git_revision: Option<String>,
    pub suite: SuiteRecord,
    /// SHA-256 of the plan the run followed (cells, rounds, seeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    /// The part of a sharded run (`dyno run --shard I/N`) this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Set by `dyno merge --fleet`: the machines side by side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<Fleet>,
    /// Set when the run stopped before its last request (interrupted);
    /// `dyno run --resume` goes on from its journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
    pub environment: Environment,
    pub models: Vec<crate::results::ModelRun>,
    /// One row per model, server variant and combination of axis values,
    /// pooled over prompts.
    #[serde(default)]
    pub summaries: Vec<ModelSummary>,
    /// Best model per metric, against the runner-up.
    #[serde(default)]
    pub highlights: Vec<Highlight>,
    pub cells: Vec<CellStats>,
    /// Every load point driven: throughput, goodput, latency, client cost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load: Vec<LoadStats>,
    /// Every sweep to saturation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweeps: Vec<SweepResult>,
    pub samples: Vec<Sample>,
}

/// The JSON schema of `results.json`, as committed in `schemas/results.schema.json`.
pub(crate) fn results_schema() -> serde_json::Value {
    serde_json::Value::from(schemars::schema_for!(Results))
}
