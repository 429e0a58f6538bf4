//! The results document: every raw sample, per-cell aggregates and the
//! context needed to trust them (suite hash, tool version, git revision,
//! environment). Plain data; writing goes through `fsutil`, rendering
//! through `report`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::Round;
use crate::stats;

/// Version of the results format; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// Where an output-token count came from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Error,
}

/// What went wrong with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
}

/// One request, measured. Times are milliseconds on a monotonic clock,
/// from just before the request was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Time to the first non-empty `reasoning_content`, when the model reasons.
    pub ttfo_reasoning_ms: Option<f64>,
    /// Time to the end of the response.
    pub e2e_ms: Option<f64>,
    /// Gaps between consecutive content-bearing events.
    pub itl_ms: Vec<f64>,
    /// (e2e − ttft) / (output_tokens − 1).
    pub tpot_ms: Option<f64>,
    pub output_tokens: Option<u64>,
    pub prompt_tokens: Option<u64>,
    pub token_source: Option<TokenSource>,
    /// (output_tokens − 1) / (e2e − ttft), per second.
    pub decode_tps: Option<f64>,
    pub finish_reason: Option<String>,
    pub text: String,
    /// The server's own timings (llama.cpp `timings`), as sent.
    pub server_timings: Option<BTreeMap<String, f64>>,
}

impl Sample {
    /// Derives TPOT and decode tokens/s from TTFT, E2E and the token count.
    pub fn derive_rates(&mut self) {
        if let (Some(ttft), Some(e2e), Some(tokens)) =
            (self.ttft_ms, self.e2e_ms, self.output_tokens)
            && tokens > 1
            && e2e > ttft
        {
            let decode_ms = e2e - ttft;
            let steps = (tokens - 1) as f64;
            self.tpot_ms = Some(decode_ms / steps);
            self.decode_tps = Some(steps / (decode_ms / 1000.0));
        }
    }
}

/// Distribution of one metric over a cell's measured rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    #[serde(flatten)]
    pub summary: stats::Summary,
    /// Whether n is large enough for a 95% one-sided bound on p95.
    pub p95_bounded: bool,
}

impl Dist {
    pub fn of(values: &[f64]) -> Option<Dist> {
        let summary = stats::summarize(values)?;
        Some(Dist {
            p95_bounded: stats::percentile_is_bounded(summary.n, 0.95),
            summary,
        })
    }
}

/// Aggregates of one cell (model × prompt × axes) over its measured rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellStats {
    pub key: String,
    pub model: String,
    pub prompt: String,
    pub requests: usize,
    pub errors: BTreeMap<ErrorKind, usize>,
    pub ttft_ms: Option<Dist>,
    pub e2e_ms: Option<Dist>,
    pub tpot_ms: Option<Dist>,
    pub decode_tps: Option<Dist>,
    pub output_tokens: Option<Dist>,
    /// Server-reported decode speed (llama.cpp `timings.predicted_per_second`).
    pub server_decode_tps: Option<Dist>,
}

/// Aggregates every cell of `samples` (warmup excluded), in first-seen order.
pub fn aggregate(samples: &[Sample]) -> Vec<CellStats> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_key: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for s in samples.iter().filter(|s| !s.warmup) {
        by_key
            .entry(&s.key)
            .or_insert_with(|| {
                order.push(&s.key);
                Vec::new()
            })
            .push(s);
    }
    order
        .into_iter()
        .filter_map(|key| {
            let cell = by_key.get(key)?;
            let first = cell.first()?;
            let ok: Vec<&&Sample> = cell.iter().filter(|s| s.status == Status::Ok).collect();
            let dist = |f: &dyn Fn(&Sample) -> Option<f64>| {
                Dist::of(&ok.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
            };
            let mut errors = BTreeMap::new();
            for s in cell.iter() {
                if let Some(kind) = s.error_kind {
                    *errors.entry(kind).or_insert(0) += 1;
                }
            }
            Some(CellStats {
                key: key.to_string(),
                model: first.model.clone(),
                prompt: first.prompt.clone(),
                requests: cell.len(),
                errors,
                ttft_ms: dist(&|s| s.ttft_ms),
                e2e_ms: dist(&|s| s.e2e_ms),
                tpot_ms: dist(&|s| s.tpot_ms),
                decode_tps: dist(&|s| s.decode_tps),
                output_tokens: dist(&|s| s.output_tokens.map(|t| t as f64)),
                server_decode_tps: dist(&|s| {
                    s.server_timings
                        .as_ref()
                        .and_then(|t| t.get("predicted_per_second").copied())
                }),
            })
        })
        .collect()
}

/// Where and on what a run happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub cpu: String,
    pub cores: usize,
    pub ram_mb: u64,
    pub os: String,
}

impl Environment {
    /// Reads the machine's description (Linux `/proc`; `unknown` elsewhere).
    pub fn detect() -> Environment {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split(':').nth(1))
            })
            .map_or_else(|| "unknown".to_string(), |s| s.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let ram_mb = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024);
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        Environment {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            ram_mb,
            os,
        }
    }
}

/// The suite as recorded: its identity and the resolved content, with
/// header and server-environment values redacted (they may hold secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteRecord {
    pub name: String,
    pub description: Option<String>,
    pub file: String,
    pub hash: String,
    pub resolved: serde_json::Value,
}

impl SuiteRecord {
    pub fn of(suite: &crate::suite::Suite) -> SuiteRecord {
        let mut resolved = serde_json::to_value(suite).unwrap_or_default();
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

/// One run of one suite: what `results.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub format_version: u32,
    pub tool_version: String,
    /// UTC, ISO 8601; the only wall-clock time in the document.
    pub started_at: String,
    pub git_revision: Option<String>,
    pub suite: SuiteRecord,
    pub environment: Environment,
    pub models: Vec<crate::exec::ModelRun>,
    pub cells: Vec<CellStats>,
    pub samples: Vec<Sample>,
}

/// The git revision (`HEAD`) of the repository holding `dir`, if any.
pub fn git_revision(dir: &std::path::Path) -> Option<String> {
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
