//! Microsoft Foundry Local support.
//!
//! Owns: finding a running Foundry Local service (the suite's `base_url`,
//! then `FOUNDRY_LOCAL_ENDPOINT`, then the `foundry` CLI), telling its two
//! service generations apart, its management routes (catalog, cached and
//! loaded models, load / unload / download, token count) and resolving an
//! alias to the exact catalog variant a run must use.
//!
//! Must never: assume a port, hand an alias to the service (the exact variant
//! id is resolved here and recorded), send chat requests (the
//! OpenAI-compatible client does that against [`Foundry::chat_base_url`]),
//! download a model unless asked to, or start, stop or reconfigure the
//! Foundry Local service itself.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

/// Environment variable holding an explicit service URL.
pub const ENDPOINT_ENV: &str = "FOUNDRY_LOCAL_ENDPOINT";
/// How long one `foundry` CLI call may take before it is killed.
pub const DEFAULT_CLI_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a load may take: first loads of large models take minutes.
pub const DEFAULT_LOAD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Idle time after which the service may unload a model we loaded.
pub const DEFAULT_LOAD_TTL: Duration = Duration::from_secs(600);

/// Timeout of the generation probes made by [`Foundry::connect`].
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of catalog / list / unload calls.
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of the token-count call.
const TOKEN_COUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest response-body excerpt quoted in an error.
const BODY_EXCERPT: usize = 300;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Everything that can go wrong talking to Foundry Local. Every message says
/// what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum FoundryError {
    /// The `foundry` CLI is absent and no URL was configured.
    #[error(
        "Foundry Local not found (tried: {}); install Foundry Local, or set the suite's `base_url` or {ENDPOINT_ENV} to the service URL",
        .tried.join("; ")
    )]
    NotFound { tried: Vec<String> },

    /// The CLI exists but reported no running service.
    #[error(
        "Foundry Local is installed but no running service was found (tried: {}); start it with `foundry service start` (its port changes on every start) or set {ENDPOINT_ENV}",
        .tried.join("; ")
    )]
    NotRunning { tried: Vec<String> },

    /// A configured or discovered URL is unusable.
    #[error(
        "invalid Foundry Local URL `{url}` (from {origin}): {reason}; use e.g. `http://127.0.0.1:5273`, with or without `/v1`"
    )]
    InvalidUrl {
        url: String,
        origin: String,
        reason: String,
    },

    /// Nothing answered at the URL.
    #[error(
        "cannot reach Foundry Local at {url}: {reason}; check it is running (`foundry service status`) and that the URL is current (the port changes on restart)"
    )]
    Unreachable { url: String, reason: String },

    /// Something answered, but it is neither service generation.
    #[error(
        "{url} does not look like Foundry Local: neither `/openai/status` nor `/status` answered with JSON ({detail}); check the URL points at the Foundry Local service"
    )]
    NotFoundry { url: String, detail: String },

    /// A request failed after the service was found.
    #[error(
        "request `{route}` to Foundry Local failed: {reason}; check the service is still running (`foundry service status`)"
    )]
    Request { route: String, reason: String },

    /// The service answered with an error status.
    #[error("Foundry Local answered HTTP {status} to `{route}`: {body}; {hint}")]
    Http {
        route: String,
        status: u16,
        body: String,
        hint: String,
    },

    /// The service answered 2xx with a body we cannot read.
    #[error(
        "Foundry Local sent an unexpected response to `{route}`: {detail}; this Foundry Local version may not be supported yet"
    )]
    BadResponse { route: String, detail: String },

    /// The variant is in the catalog but not downloaded.
    #[error(
        "model `{id}` is not cached; run `foundry model download {id}` or set `download: true`"
    )]
    NotCached { id: String },

    /// Neither a variant id nor an alias of the catalog.
    #[error("unknown Foundry Local model `{query}`; {}", unknown_hint(.suggestions, .available))]
    UnknownModel {
        query: String,
        /// Aliases or ids close to the query.
        suggestions: Vec<String>,
        /// Every alias of the catalog (empty when the catalog was not read).
        available: Vec<String>,
    },

    /// The alias exists but not for the requested device.
    #[error(
        "alias `{alias}` has no {device} variant (it has: {}); choose one of those devices or remove `device` to let dyno pick",
        join_devices(.available)
    )]
    NoVariantForDevice {
        alias: String,
        device: Device,
        available: Vec<Device>,
    },

    /// An exact variant id was given together with a different device.
    #[error(
        "`{id}` is a {actual} variant but device {requested} was requested; give the alias `{alias}` to pick a variant per device, or drop the device"
    )]
    DeviceMismatch {
        id: String,
        alias: String,
        actual: Device,
        requested: Device,
    },

    /// The service generation has no route for this.
    #[error("{operation} is not available on the {generation}; {hint}")]
    Unsupported {
        operation: &'static str,
        generation: Generation,
        hint: String,
    },

    /// The service reported a failed download.
    #[error(
        "download of `{id}` failed: {message}; retry, or run `foundry model download {id}` to see the CLI's own error"
    )]
    DownloadFailed { id: String, message: String },

    /// The HTTP client could not be created.
    #[error("could not create the HTTP client: {0}; this is a bug or a broken TLS/system setup")]
    Client(String),
}

fn unknown_hint(suggestions: &[String], available: &[String]) -> String {
    if !suggestions.is_empty() {
        format!(
            "did you mean {}? (`foundry model list` shows the catalog)",
            quote_list(suggestions)
        )
    } else if !available.is_empty() {
        const SHOWN: usize = 30;
        let mut text = format!(
            "available aliases: {}",
            quote_list(&available[..available.len().min(SHOWN)])
        );
        if available.len() > SHOWN {
            text.push_str(&format!(" and {} more", available.len() - SHOWN));
        }
        text
    } else {
        "run `foundry model list` to see the catalog".to_string()
    }
}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_devices(devices: &[Device]) -> String {
    devices
        .iter()
        .map(Device::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------

/// Where the service URL came from; record it with results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoverySource {
    /// The suite's `base_url`.
    Suite,
    /// The `FOUNDRY_LOCAL_ENDPOINT` environment variable.
    Env,
    /// `foundry server status -o json` (newer CLI).
    ServerStatus,
    /// `foundry service status` text (older CLI).
    ServiceStatus,
}

impl fmt::Display for DiscoverySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiscoverySource::Suite => "suite `base_url`",
            DiscoverySource::Env => ENDPOINT_ENV,
            DiscoverySource::ServerStatus => "`foundry server status -o json`",
            DiscoverySource::ServiceStatus => "`foundry service status`",
        })
    }
}

/// A service URL and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// Service root: no `/v1`, no trailing slash.
    pub base_url: String,
    pub source: DiscoverySource,
}

/// What one CLI invocation printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliOutput {
    /// Whether the process exited with status 0.
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Why a CLI invocation produced no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// The binary is not installed or not on `PATH`.
    #[error("`foundry` is not installed or not on PATH")]
    NotFound,
    /// It ran longer than allowed and was killed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Any other failure to start or wait for it.
    #[error("could not run it: {0}")]
    Io(String),
}

/// Runs the `foundry` CLI. A trait so tests can inject recorded outputs.
pub trait CliRunner: Send + Sync {
    /// Runs `foundry <args>` and returns what it printed.
    fn run<'a>(&'a self, args: &'a [&'a str]) -> BoxFuture<'a, Result<CliOutput, CliError>>;
}

/// The real [`CliRunner`]: spawns the binary, kills it after `timeout`.
#[derive(Debug, Clone)]
pub struct SystemCli {
    /// Program to run; `foundry` (found on `PATH`) by default.
    pub program: String,
    pub timeout: Duration,
}

impl Default for SystemCli {
    fn default() -> Self {
        SystemCli {
            program: "foundry".to_string(),
            timeout: DEFAULT_CLI_TIMEOUT,
        }
    }
}

impl CliRunner for SystemCli {
    fn run<'a>(&'a self, args: &'a [&'a str]) -> BoxFuture<'a, Result<CliOutput, CliError>> {
        Box::pin(async move {
            let mut command = tokio::process::Command::new(&self.program);
            command
                .args(args)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
            match tokio::time::timeout(self.timeout, command.output()).await {
                Err(_) => Err(CliError::Timeout(self.timeout)),
                Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => {
                    Err(CliError::NotFound)
                }
                Ok(Err(err)) => Err(CliError::Io(err.to_string())),
                Ok(Ok(output)) => Ok(CliOutput {
                    success: output.status.success(),
                    stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                }),
            }
        })
    }
}

/// Finds the service URL, in this order: the suite's `base_url`,
/// `FOUNDRY_LOCAL_ENDPOINT` (read through `env`), `foundry server status -o
/// json` (`webUrls`), then the older `foundry service status` text.
///
/// An explicitly configured URL that is malformed is an error, not a reason
/// to fall through. The returned URL is not probed; [`Foundry::connect`]
/// does that.
pub async fn discover(
    base_url: Option<&str>,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    cli: &dyn CliRunner,
) -> Result<Discovered, FoundryError> {
    let mut tried = Vec::new();
    match base_url.map(str::trim).filter(|s| !s.is_empty()) {
        Some(url) => return explicit(url, DiscoverySource::Suite),
        None => tried.push("suite `base_url`: not set".to_string()),
    }
    match env(ENDPOINT_ENV).filter(|s| !s.trim().is_empty()) {
        Some(url) => return explicit(&url, DiscoverySource::Env),
        None => tried.push(format!("{ENDPOINT_ENV}: not set")),
    }

    let server_cmd = ["server", "status", "-o", "json"];
    if let Some(out) = run_cli(cli, &server_cmd, &mut tried).await? {
        match (out.success, parse_server_status_json(&out.stdout)) {
            (true, Some(base_url)) => {
                return Ok(Discovered {
                    base_url,
                    source: DiscoverySource::ServerStatus,
                });
            }
            (true, None) => tried.push(format!(
                "`foundry {}`: no usable `webUrls` in its output ({})",
                server_cmd.join(" "),
                first_line(&out.stdout)
            )),
            (false, _) => tried.push(format!(
                "`foundry {}`: failed ({})",
                server_cmd.join(" "),
                first_line(if out.stderr.trim().is_empty() {
                    &out.stdout
                } else {
                    &out.stderr
                })
            )),
        }
    }

    let service_cmd = ["service", "status"];
    if let Some(out) = run_cli(cli, &service_cmd, &mut tried).await? {
        // The older CLI may exit non-zero when the service is stopped; a
        // URL in its output is what matters.
        let text = format!("{}\n{}", out.stdout, out.stderr);
        match parse_service_status_text(&text) {
            Some(base_url) => {
                return Ok(Discovered {
                    base_url,
                    source: DiscoverySource::ServiceStatus,
                });
            }
            None => tried.push(format!(
                "`foundry {}`: no service URL in its output ({})",
                service_cmd.join(" "),
                first_line(&text)
            )),
        }
    }
    Err(FoundryError::NotRunning { tried })
}

/// Runs `foundry ARGS`: its output, or `None` after noting in `tried` why
/// it gave none; a missing CLI ends discovery.
async fn run_cli(
    cli: &dyn CliRunner,
    args: &[&str],
    tried: &mut Vec<String>,
) -> Result<Option<CliOutput>, FoundryError> {
    match cli.run(args).await {
        Ok(out) => Ok(Some(out)),
        Err(CliError::NotFound) => {
            tried.push(format!(
                "`foundry {}`: {}",
                args.join(" "),
                CliError::NotFound
            ));
            Err(FoundryError::NotFound {
                tried: std::mem::take(tried),
            })
        }
        Err(err) => {
            tried.push(format!("`foundry {}`: {err}", args.join(" ")));
            Ok(None)
        }
    }
}

fn explicit(url: &str, source: DiscoverySource) -> Result<Discovered, FoundryError> {
    let base_url = normalize_base_url(url).map_err(|reason| FoundryError::InvalidUrl {
        url: url.to_string(),
        origin: source.to_string(),
        reason,
    })?;
    Ok(Discovered { base_url, source })
}

fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        Some(line) => clip(line, 160),
        None => "no output".to_string(),
    }
}

/// Turns a user- or CLI-supplied URL into the service root: scheme and host
/// kept, `/v1` (or a pasted `/openai/status`) and trailing slashes removed,
/// `http://` added when no scheme is given. `Err` says why it is unusable.
pub fn normalize_base_url(input: &str) -> Result<String, String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err("it is empty".to_string());
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|e| e.to_string())?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("scheme `{}` is not http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".to_string());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("it has a query or fragment".to_string());
    }
    let mut path = url.path().trim_end_matches('/');
    for suffix in ["/v1", "/openai/status"] {
        if let Some(stripped) = path.strip_suffix(suffix) {
            path = stripped.trim_end_matches('/');
            break;
        }
    }
    Ok(format!("{}{}", url.origin().ascii_serialization(), path))
}

/// Reads the service URL from `foundry server status -o json` output: the
/// first connectable entry of `webUrls` (a string or an array; searched at
/// any depth, key case ignored). Text around the JSON object is tolerated.
/// Wildcard bind addresses (`0.0.0.0`, `[::]`) become `127.0.0.1`.
pub fn parse_server_status_json(stdout: &str) -> Option<String> {
    let value = parse_embedded_json(stdout)?;
    let mut candidates = Vec::new();
    collect_web_urls(&value, &mut candidates);
    candidates.iter().find_map(|url| connectable_root(url))
}

fn parse_embedded_json(text: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(text.trim()) {
        return Some(value);
    }
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    if end <= start {
        return None;
    }
    serde_json::from_str(&text[start..=end]).ok()
}

fn collect_web_urls(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key.eq_ignore_ascii_case("webUrls") || key.eq_ignore_ascii_case("webUrl") {
                    match child {
                        Value::String(s) => out.push(s.clone()),
                        Value::Array(items) => {
                            out.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
                        }
                        _ => {}
                    }
                } else {
                    collect_web_urls(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_web_urls(item, out)),
        _ => {}
    }
}

/// Reads the service URL from the older `foundry service status` text, e.g.
/// `🟢 Model management service is running on http://127.0.0.1:5273/openai/status`.
/// Only scheme, host and port are kept.
pub fn parse_service_status_text(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(at) = find_url_start(rest) {
        let candidate: String = rest[at..]
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .collect();
        let candidate = candidate.trim_end_matches(['.', ',', ';', ')', ']', '!']);
        if let Some(root) = connectable_root(candidate) {
            return Some(root);
        }
        rest = &rest[at + 4..];
    }
    None
}

fn find_url_start(text: &str) -> Option<usize> {
    match (text.find("http://"), text.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `scheme://host:port` of `url`, with a wildcard bind host replaced by the
/// loopback address; `None` when it cannot be a client URL.
fn connectable_root(url: &str) -> Option<String> {
    let url = url.trim();
    let fixed = url
        .replacen("://0.0.0.0", "://127.0.0.1", 1)
        .replacen("://[::]", "://127.0.0.1", 1)
        .replacen("://*", "://127.0.0.1", 1)
        .replacen("://+", "://127.0.0.1", 1);
    let parsed = reqwest::Url::parse(&fixed).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return None;
    }
    Some(parsed.origin().ascii_serialization())
}

// ---------------------------------------------------------------------------
// Catalog model
// ---------------------------------------------------------------------------

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
    fn preference(&self) -> u8 {
        match self {
            Device::Npu => 0,
            Device::Gpu => 1,
            Device::Cpu => 2,
            Device::Other(_) => 3,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// One catalog variant. Record `id`, `device` and `execution_provider` with
/// every result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CatalogEntry {
    /// Exact variant id, e.g. `qwen2.5-0.5b-instruct-generic-cpu:4`; this is
    /// what load, unload and chat requests must use.
    pub id: String,
    /// Alias shared by the device variants, e.g. `qwen2.5-0.5b`. Derived from
    /// `id` when the service does not report one.
    pub alias: String,
    pub device: Device,
    /// E.g. `CPUExecutionProvider`; empty when the service does not say.
    pub execution_provider: String,
    pub file_size_mb: Option<f64>,
    pub license: Option<String>,
    /// E.g. `chat-completion`; empty when the service does not say.
    pub task: String,
}

/// Parses a catalog response of either generation: a bare array, `{models:
/// [...]}` or an OpenAI list `{data: [...]}`, with items carrying `name` or
/// `id`. Items without an id are skipped.
pub fn parse_catalog(body: &Value) -> Vec<CatalogEntry> {
    list_items(body)
        .iter()
        .filter_map(parse_catalog_entry)
        .collect()
}

fn list_items(body: &Value) -> &[Value] {
    match body {
        Value::Array(items) => items,
        Value::Object(_) => ["data", "models", "value"]
            .iter()
            .find_map(|key| field(body, key).and_then(Value::as_array))
            .map_or(&[], Vec::as_slice),
        _ => &[],
    }
}

fn parse_catalog_entry(item: &Value) -> Option<CatalogEntry> {
    let id = str_field(item, "id")
        .or_else(|| str_field(item, "name"))?
        .to_string();
    let runtime = field(item, "runtime");
    let device_text = runtime
        .and_then(|r| str_field(r, "deviceType"))
        .or_else(|| str_field(item, "deviceType"))
        .or_else(|| str_field(item, "device"));
    let device = match device_text {
        Some(text) => Device::parse(text),
        None => device_from_id(&id),
    };
    let execution_provider = runtime
        .and_then(|r| str_field(r, "executionProvider"))
        .or_else(|| str_field(item, "executionProvider"))
        .unwrap_or_default()
        .to_string();
    let alias = match str_field(item, "alias").filter(|a| !a.is_empty()) {
        Some(alias) => alias.to_string(),
        None => derive_alias(&id),
    };
    Some(CatalogEntry {
        alias,
        device,
        execution_provider,
        file_size_mb: field(item, "fileSizeMb").and_then(Value::as_f64),
        license: str_field(item, "license").map(str::to_string),
        task: str_field(item, "task").unwrap_or_default().to_string(),
        id,
    })
}

/// Case-insensitive object field lookup (the two generations and the docs
/// disagree on `Success` vs `success` and the like).
fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    let map = value.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn str_field<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    field(value, name).and_then(Value::as_str)
}

/// Splits `name:4` into (`name`, Some(4)).
pub fn split_version(id: &str) -> (&str, Option<u64>) {
    match id.rsplit_once(':') {
        Some((base, version)) if !base.is_empty() => match version.parse() {
            Ok(v) => (base, Some(v)),
            Err(_) => (id, None),
        },
        _ => (id, None),
    }
}

/// Whether two model ids name the same variant: equal ignoring case, and
/// the `:version` suffix is ignored when only one side carries it (the first
/// generation lists cached and loaded models without versions).
pub fn same_variant(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let (base_a, ver_a) = split_version(a);
    let (base_b, ver_b) = split_version(b);
    base_a.eq_ignore_ascii_case(base_b) && (ver_a.is_none() || ver_b.is_none())
}

/// Execution-provider words that sit between a model name and its device in
/// variant ids (`-generic-cpu`, `-cuda-gpu`, `-trt-rtx-gpu`, `-qnn-npu`).
const EP_WORDS: &[&str] = &[
    "generic", "cuda", "trt", "rtx", "trtrtx", "tensorrt", "dml", "directml", "qnn", "openvino",
    "ov", "vitis", "vitisai", "webgpu", "migraphx", "rocm", "nv",
];

fn device_from_id(id: &str) -> Device {
    let (base, _) = split_version(id);
    match base.rsplit('-').next() {
        Some(last) if matches!(last.to_ascii_lowercase().as_str(), "cpu" | "gpu" | "npu") => {
            Device::parse(last)
        }
        _ => Device::Other("unknown".to_string()),
    }
}

/// Best-effort alias for a catalog item that has none: the id without its
/// version and its `-<ep>-<device>` suffix. May differ from the official
/// alias (e.g. it keeps `-instruct`).
fn derive_alias(id: &str) -> String {
    let (base, _) = split_version(id);
    let mut words: Vec<&str> = base.split('-').collect();
    if words
        .last()
        .is_some_and(|w| matches!(w.to_ascii_lowercase().as_str(), "cpu" | "gpu" | "npu"))
        && words.len() > 1
    {
        words.pop();
        while words.len() > 1
            && words
                .last()
                .is_some_and(|w| EP_WORDS.contains(&w.to_ascii_lowercase().as_str()))
        {
            words.pop();
        }
    }
    words.join("-")
}

// ---------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------

/// Picks the exact variant to run.
///
/// 1. An exact variant id wins (then the same id ignoring case, then the id
///    without `:version`, taking the highest version). If `device` is given
///    and differs, that is an error rather than a silent mislabel.
/// 2. Otherwise `id_or_alias` is an alias (case ignored): the variant for
///    `device`, or without a device the first of NPU, GPU, CPU, other (the
///    order the Foundry Local SDK used); catalog order breaks ties.
/// 3. Otherwise an error listing close aliases, or all of them.
pub fn resolve(
    catalog: &[CatalogEntry],
    id_or_alias: &str,
    device: Option<&Device>,
) -> Result<CatalogEntry, FoundryError> {
    let query = id_or_alias.trim();
    let by_id = catalog
        .iter()
        .find(|e| e.id == query)
        .or_else(|| catalog.iter().find(|e| e.id.eq_ignore_ascii_case(query)))
        .or_else(|| highest_version(catalog, query));
    if let Some(entry) = by_id {
        if let Some(requested) = device
            && *requested != entry.device
        {
            return Err(FoundryError::DeviceMismatch {
                id: entry.id.clone(),
                alias: entry.alias.clone(),
                actual: entry.device.clone(),
                requested: requested.clone(),
            });
        }
        return Ok(entry.clone());
    }

    let variants: Vec<&CatalogEntry> = catalog
        .iter()
        .filter(|e| e.alias.eq_ignore_ascii_case(query))
        .collect();
    if variants.is_empty() {
        return Err(FoundryError::UnknownModel {
            query: query.to_string(),
            suggestions: suggest(catalog, query),
            available: aliases(catalog),
        });
    }
    let chosen = match device {
        Some(requested) => variants
            .iter()
            .find(|e| e.device == *requested)
            .ok_or_else(|| FoundryError::NoVariantForDevice {
                alias: variants[0].alias.clone(),
                device: requested.clone(),
                available: variants.iter().map(|e| e.device.clone()).collect(),
            })?,
        None => variants
            .iter()
            .min_by_key(|e| e.device.preference())
            .ok_or_else(|| FoundryError::UnknownModel {
                query: query.to_string(),
                suggestions: Vec::new(),
                available: aliases(catalog),
            })?,
    };
    Ok((*chosen).clone())
}

fn highest_version<'a>(catalog: &'a [CatalogEntry], query: &str) -> Option<&'a CatalogEntry> {
    if split_version(query).1.is_some() {
        return None;
    }
    catalog
        .iter()
        .filter(|e| split_version(&e.id).0.eq_ignore_ascii_case(query))
        .fold(None, |best: Option<&CatalogEntry>, e| match best {
            Some(b) if split_version(&b.id).1 >= split_version(&e.id).1 => Some(b),
            _ => Some(e),
        })
}

fn aliases(catalog: &[CatalogEntry]) -> Vec<String> {
    catalog
        .iter()
        .map(|e| e.alias.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Up to five aliases or ids close to `query` (edit distance or containment).
fn suggest(catalog: &[CatalogEntry], query: &str) -> Vec<String> {
    let q = query.to_ascii_lowercase();
    if q.is_empty() {
        return Vec::new();
    }
    let limit = (q.chars().count() / 4).max(2);
    let names: BTreeSet<&str> = catalog
        .iter()
        .flat_map(|e| [e.alias.as_str(), split_version(&e.id).0])
        .collect();
    let mut scored: Vec<(usize, &str)> = names
        .into_iter()
        .filter_map(|name| {
            let n = name.to_ascii_lowercase();
            let distance = edit_distance(&q, &n);
            let close = distance <= limit || n.contains(&q) || (q.contains(&n) && n.len() >= 3);
            close.then_some((distance, name))
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

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
    generation: Generation,
    http: reqwest::Client,
    load_timeout: Duration,
    load_ttl: Duration,
}

fn http_client() -> Result<reqwest::Client, FoundryError> {
    reqwest::Client::builder()
        // The service is local; a system proxy must not intercept it.
        .no_proxy()
        .connect_timeout(PROBE_TIMEOUT)
        .build()
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
            generation,
            http,
            load_timeout: DEFAULT_LOAD_TIMEOUT,
            load_ttl: DEFAULT_LOAD_TTL,
        }
    }

    /// Changes how long [`Foundry::load`] may take.
    pub fn with_load_timeout(mut self, timeout: Duration) -> Foundry {
        self.load_timeout = timeout;
        self
    }

    /// Changes the idle time after which the service may unload a model
    /// loaded by [`Foundry::load`] (first generation only).
    pub fn with_load_ttl(mut self, ttl: Duration) -> Foundry {
        self.load_ttl = ttl;
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
                let start = Instant::now();
                let response = self
                    .send(self.http.get(url).timeout(self.load_timeout), &route)
                    .await?;
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                let elapsed = start.elapsed();
                if status.is_success() {
                    return Ok(elapsed);
                }
                Err(load_error(id, &route, status.as_u16(), &body))
            }
            Generation::Core => {
                let url = self.endpoint(&["models", "load", id])?;
                let route = format!("GET /models/load/{id}");
                let start = Instant::now();
                let response = self
                    .send(self.http.get(url).timeout(self.load_timeout), &route)
                    .await?;
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                let elapsed = start.elapsed();
                if !status.is_success() {
                    return Err(load_error(id, &route, status.as_u16(), &body));
                }
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
fn load_error(id: &str, route: &str, status: u16, body: &str) -> FoundryError {
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
fn id_list(body: &Value, route: &str) -> Result<Vec<String>, FoundryError> {
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
fn download_body(item: &Value) -> Value {
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
struct ProgressParser {
    pending: Vec<u8>,
    tail: Option<Vec<u8>>,
    last: f64,
}

impl ProgressParser {
    fn new() -> Self {
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

    fn push(&mut self, chunk: &[u8], report: &mut dyn FnMut(f64)) {
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
    fn finish(mut self, report: &mut dyn FnMut(f64)) -> Result<(), String> {
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
fn number_before(bytes: &[u8]) -> Option<f64> {
    let trimmed = bytes.trim_ascii_end();
    let start = trimmed
        .iter()
        .rposition(|b| !(b.is_ascii_digit() || *b == b'.'))
        .map_or(0, |p| p + 1);
    std::str::from_utf8(&trimmed[start..]).ok()?.parse().ok()
}

/// The fraction of a `("file", 0.5` tuple whose `)` was just found.
fn tuple_fraction(bytes: &[u8]) -> Option<f64> {
    let open = bytes.iter().rposition(|b| *b == b'(')?;
    let inner = &bytes[open + 1..];
    let comma = inner.iter().rposition(|b| *b == b',')?;
    let value = number_before(&inner[comma + 1..])?;
    (0.0..=1.0).contains(&value).then_some(value)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    // --- sample CLI outputs ---------------------------------------------------

    const SERVER_STATUS_JSON: &str = r#"{
  "status": "Running",
  "pid": 23140,
  "webUrls": ["http://127.0.0.1:61823/"],
  "modelCachePath": "C:\\Users\\me\\.foundry\\cache\\models"
}"#;

    const SERVER_STATUS_STOPPED: &str = r#"{"status":"Stopped","pid":null,"webUrls":[]}"#;

    const SERVICE_STATUS_RUNNING: &str =
        "🟢 Model management service is running on http://127.0.0.1:5273/openai/status\n";

    const SERVICE_STATUS_STOPPED: &str = "🔴 Model management service is not running!\nTo start the service, run the following command: foundry service start\n";

    const UNKNOWN_SUBCOMMAND: &str = "Unrecognized command or argument 'server'.\n";

    /// A [`CliRunner`] replaying recorded outputs, keyed by joined args.
    struct FakeCli {
        outputs: HashMap<String, Result<CliOutput, CliError>>,
        calls: Mutex<Vec<String>>,
    }

    impl FakeCli {
        fn new(entries: &[(&str, Result<CliOutput, CliError>)]) -> Self {
            FakeCli {
                outputs: entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                calls: Mutex::new(Vec::new()),
            }
        }

        fn absent() -> Self {
            Self::new(&[
                ("server status -o json", Err(CliError::NotFound)),
                ("service status", Err(CliError::NotFound)),
            ])
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl CliRunner for FakeCli {
        fn run<'a>(&'a self, args: &'a [&'a str]) -> BoxFuture<'a, Result<CliOutput, CliError>> {
            let key = args.join(" ");
            self.calls.lock().unwrap().push(key.clone());
            let result = self
                .outputs
                .get(&key)
                .cloned()
                .unwrap_or_else(|| Err(CliError::Io(format!("unexpected call `{key}`"))));
            Box::pin(async move { result })
        }
    }

    fn ok(stdout: &str) -> Result<CliOutput, CliError> {
        Ok(CliOutput {
            success: true,
            stdout: stdout.to_string(),
            stderr: String::new(),
        })
    }

    fn failed(stderr: &str) -> Result<CliOutput, CliError> {
        Ok(CliOutput {
            success: false,
            stdout: String::new(),
            stderr: stderr.to_string(),
        })
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// The catalog the Foundry Local fixture of the integration tests serves.
    fn sample_catalog() -> Vec<Value> {
        serde_json::from_str(include_str!("../../../tests/fixtures/foundry-catalog.json")).unwrap()
    }

    // --- pure parsing -----------------------------------------------------------

    #[test]
    fn normalize_accepts_v1_and_trailing_slashes() {
        for input in [
            "http://127.0.0.1:5273",
            "http://127.0.0.1:5273/",
            "http://127.0.0.1:5273/v1",
            "http://127.0.0.1:5273/v1/",
            " 127.0.0.1:5273/v1 ",
            "http://127.0.0.1:5273/openai/status",
        ] {
            assert_eq!(
                normalize_base_url(input).unwrap(),
                "http://127.0.0.1:5273",
                "{input}"
            );
        }
        assert_eq!(
            normalize_base_url("http://localhost:5273/proxy/v1").unwrap(),
            "http://localhost:5273/proxy"
        );
        assert!(normalize_base_url("").is_err());
        assert!(normalize_base_url("ftp://host:1").is_err());
        assert!(normalize_base_url("http://h:1/v1?x=1").is_err());
    }

    #[test]
    fn server_status_json_samples() {
        assert_eq!(
            parse_server_status_json(SERVER_STATUS_JSON).as_deref(),
            Some("http://127.0.0.1:61823")
        );
        assert_eq!(parse_server_status_json(SERVER_STATUS_STOPPED), None);
        // Log lines around the JSON, a string instead of an array, nesting,
        // and a wildcard bind address.
        let noisy =
            "Checking service...\n{\"server\":{\"webUrls\":\"http://0.0.0.0:5280\"}}\nDone.";
        assert_eq!(
            parse_server_status_json(noisy).as_deref(),
            Some("http://127.0.0.1:5280")
        );
        let two = r#"{"webUrls":["not a url","http://[::]:6000","http://localhost:6000"]}"#;
        assert_eq!(
            parse_server_status_json(two).as_deref(),
            Some("http://127.0.0.1:6000")
        );
        assert_eq!(parse_server_status_json(UNKNOWN_SUBCOMMAND), None);
    }

    #[test]
    fn service_status_text_samples() {
        assert_eq!(
            parse_service_status_text(SERVICE_STATUS_RUNNING).as_deref(),
            Some("http://127.0.0.1:5273")
        );
        assert_eq!(parse_service_status_text(SERVICE_STATUS_STOPPED), None);
        let quoted = "Service is Started on http://localhost:5272/, PID 1234.";
        assert_eq!(
            parse_service_status_text(quoted).as_deref(),
            Some("http://localhost:5272")
        );
    }

    #[test]
    fn catalog_parses_both_shapes_and_derives_missing_fields() {
        let service = parse_catalog(&Value::Array(sample_catalog()));
        assert_eq!(service.len(), 5);
        let cpu = &service[1];
        assert_eq!(cpu.id, "qwen2.5-0.5b-instruct-generic-cpu:4");
        assert_eq!(cpu.alias, "qwen2.5-0.5b");
        assert_eq!(cpu.device, Device::Cpu);
        assert_eq!(cpu.execution_provider, "CPUExecutionProvider");
        assert_eq!(cpu.file_size_mb, Some(822.0));
        assert_eq!(cpu.license.as_deref(), Some("apache-2.0"));
        assert_eq!(cpu.task, "chat-completion");

        // An OpenAI list with ids only: device and alias come from the id.
        let bare = json!({"object": "list", "data": [
            {"id": "Phi-4-mini-instruct-trt-rtx-gpu:1", "object": "model"},
            {"id": "qwen2.5-0.5b-instruct-generic-cpu:4", "object": "model"},
            {"id": "mystery-model", "object": "model"},
            {"object": "model"}
        ]});
        let parsed = parse_catalog(&bare);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].device, Device::Gpu);
        assert_eq!(parsed[0].alias, "Phi-4-mini-instruct");
        assert_eq!(parsed[1].alias, "qwen2.5-0.5b-instruct");
        assert_eq!(parsed[2].device, Device::Other("unknown".into()));
        assert_eq!(parsed[2].alias, "mystery-model");
        assert_eq!(parsed[2].execution_provider, "");

        let wrapped = json!({"models": sample_catalog()});
        assert_eq!(parse_catalog(&wrapped), service);
    }

    #[test]
    fn same_variant_ignores_case_and_a_missing_version() {
        assert!(same_variant(
            "Phi-4-mini-instruct-generic-cpu",
            "Phi-4-mini-instruct-generic-cpu:5"
        ));
        assert!(same_variant(
            "phi-4-mini-instruct-generic-cpu:5",
            "Phi-4-mini-instruct-generic-cpu:5"
        ));
        assert!(!same_variant("x-generic-cpu:4", "x-generic-cpu:5"));
        assert!(!same_variant("x-generic-cpu", "x-cuda-gpu"));
    }

    #[test]
    fn download_body_carries_versioned_name_and_provider() {
        let mut item = sample_catalog()[1].clone();
        item["name"] = json!("qwen2.5-0.5b-instruct-generic-cpu");
        let body = download_body(&item);
        assert_eq!(body["model"]["Name"], "qwen2.5-0.5b-instruct-generic-cpu:4");
        assert_eq!(body["model"]["ProviderType"], "AzureFoundryLocal");
        assert_eq!(body["ignorePipeReport"], true);
        assert!(
            body["model"]["Uri"]
                .as_str()
                .unwrap()
                .starts_with("azureml://")
        );
    }

    fn run_parser(chunks: &[&str]) -> (Vec<f64>, Result<(), String>) {
        let mut seen = Vec::new();
        let mut parser = ProgressParser::new();
        for chunk in chunks {
            parser.push(chunk.as_bytes(), &mut |p| seen.push(p));
        }
        let result = parser.finish(&mut |p| seen.push(p));
        (seen, result)
    }

    #[test]
    fn progress_parser_reads_percent_lines_split_across_chunks() {
        let (seen, result) = run_parser(&[
            "Total 0.00% Downloading a\r",
            "Total 3",
            "3.5% Downloading b\rTotal 33.5% again\r",
            "Total 90% \n{\"Success\": true, \"ErrorMessage\": null}",
        ]);
        assert_eq!(result, Ok(()));
        assert_eq!(seen, vec![0.0, 33.5, 90.0, 100.0]);
    }

    #[test]
    fn progress_parser_reads_documented_tuples() {
        let (seen, result) = run_parser(&[
            "(\"genai_config.json\", 0.01)\n(\"model.onnx.data\", 0.",
            "5)\n(\"\", 1)\n",
            "{\"success\":true,\"errorMessage\":null}",
        ]);
        assert_eq!(result, Ok(()));
        assert_eq!(seen, vec![1.0, 50.0, 100.0]);
    }

    #[test]
    fn progress_parser_reports_failures() {
        let (_, result) = run_parser(&[
            "Total 10% x\r",
            "{\"success\":false,\"errorMessage\":\"disk 100% full\"}",
        ]);
        assert_eq!(result, Err("disk 100% full".to_string()));
        let (_, result) = run_parser(&["Total 10% x\r"]);
        assert!(
            result
                .unwrap_err()
                .contains("ended without a result at 10%")
        );
    }

    // --- resolution -------------------------------------------------------------

    fn catalog() -> Vec<CatalogEntry> {
        parse_catalog(&Value::Array(sample_catalog()))
    }

    #[test]
    fn alias_resolves_to_requested_device() {
        let entry = resolve(&catalog(), "qwen2.5-0.5b", Some(&Device::Cpu)).unwrap();
        assert_eq!(entry.id, "qwen2.5-0.5b-instruct-generic-cpu:4");
        let entry = resolve(&catalog(), "PHI-4-MINI", Some(&Device::Gpu)).unwrap();
        assert_eq!(entry.id, "Phi-4-mini-instruct-cuda-gpu:5");
    }

    #[test]
    fn alias_without_device_prefers_npu_then_gpu_then_cpu() {
        assert_eq!(
            resolve(&catalog(), "phi-4-mini", None).unwrap().device,
            Device::Npu
        );
        assert_eq!(
            resolve(&catalog(), "qwen2.5-0.5b", None).unwrap().device,
            Device::Gpu
        );
        let cpu_only: Vec<CatalogEntry> = catalog()
            .into_iter()
            .filter(|e| e.device == Device::Cpu)
            .collect();
        assert_eq!(
            resolve(&cpu_only, "qwen2.5-0.5b", None).unwrap().device,
            Device::Cpu
        );
    }

    #[test]
    fn exact_variant_id_wins() {
        let cat = catalog();
        assert_eq!(
            resolve(&cat, "Phi-4-mini-instruct-generic-cpu:5", None)
                .unwrap()
                .device,
            Device::Cpu
        );
        assert_eq!(
            resolve(&cat, "phi-4-mini-instruct-generic-cpu", Some(&Device::Cpu))
                .unwrap()
                .id,
            "Phi-4-mini-instruct-generic-cpu:5"
        );
        let err = resolve(
            &cat,
            "Phi-4-mini-instruct-generic-cpu:5",
            Some(&Device::Gpu),
        )
        .unwrap_err();
        assert!(matches!(err, FoundryError::DeviceMismatch { .. }), "{err}");
        assert!(err.to_string().contains("alias `phi-4-mini`"), "{err}");
    }

    #[test]
    fn unknown_model_lists_close_or_all_aliases() {
        let err = resolve(&catalog(), "phi-4-mni", None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("did you mean `phi-4-mini`"), "{text}");
        let err = resolve(&catalog(), "llama-70b", None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("available aliases: `phi-4-mini`, `qwen2.5-0.5b`"),
            "{text}"
        );
        let err = resolve(&catalog(), "qwen2.5-0.5b", Some(&Device::Npu)).unwrap_err();
        assert!(
            err.to_string()
                .contains("has no npu variant (it has: gpu, cpu)"),
            "{err}"
        );
    }

    #[test]
    fn device_serde_round_trip() {
        let devices: Vec<Device> = serde_json::from_str(r#"["cpu","GPU","npu","fpga"]"#).unwrap();
        assert_eq!(
            devices,
            vec![
                Device::Cpu,
                Device::Gpu,
                Device::Npu,
                Device::Other("fpga".into())
            ]
        );
        assert_eq!(
            serde_json::to_string(&devices).unwrap(),
            r#"["cpu","gpu","npu","fpga"]"#
        );
    }

    // --- discovery --------------------------------------------------------------

    #[tokio::test]
    async fn discovery_order_suite_env_server_service() {
        let cli = FakeCli::new(&[
            ("server status -o json", ok(SERVER_STATUS_JSON)),
            ("service status", ok(SERVICE_STATUS_RUNNING)),
        ]);
        let env = |k: &str| (k == ENDPOINT_ENV).then(|| "http://127.0.0.1:7000/v1/".to_string());

        let d = discover(Some("http://127.0.0.1:9000/v1"), &env, &cli)
            .await
            .unwrap();
        assert_eq!(
            d,
            Discovered {
                base_url: "http://127.0.0.1:9000".into(),
                source: DiscoverySource::Suite
            }
        );

        let d = discover(None, &env, &cli).await.unwrap();
        assert_eq!(
            d,
            Discovered {
                base_url: "http://127.0.0.1:7000".into(),
                source: DiscoverySource::Env
            }
        );
        assert!(cli.calls().is_empty(), "explicit URLs must not run the CLI");

        let d = discover(None, &no_env, &cli).await.unwrap();
        assert_eq!(
            d,
            Discovered {
                base_url: "http://127.0.0.1:61823".into(),
                source: DiscoverySource::ServerStatus
            }
        );

        // Older CLI: no `server` subcommand, so fall back to the status text.
        let old = FakeCli::new(&[
            ("server status -o json", failed(UNKNOWN_SUBCOMMAND)),
            ("service status", ok(SERVICE_STATUS_RUNNING)),
        ]);
        let d = discover(None, &no_env, &old).await.unwrap();
        assert_eq!(
            d,
            Discovered {
                base_url: "http://127.0.0.1:5273".into(),
                source: DiscoverySource::ServiceStatus
            }
        );
        assert_eq!(old.calls(), vec!["server status -o json", "service status"]);
    }

    #[tokio::test]
    async fn discovery_errors_list_what_was_tried() {
        let err = discover(None, &no_env, &FakeCli::absent())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, FoundryError::NotFound { .. }));
        assert!(text.starts_with("Foundry Local not found"), "{text}");
        for needle in [
            "suite `base_url`: not set",
            "FOUNDRY_LOCAL_ENDPOINT: not set",
            "`foundry server status -o json`: `foundry` is not installed",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }

        let stopped = FakeCli::new(&[
            ("server status -o json", ok(SERVER_STATUS_STOPPED)),
            ("service status", failed(SERVICE_STATUS_STOPPED)),
        ]);
        let err = discover(None, &no_env, &stopped).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, FoundryError::NotRunning { .. }), "{text}");
        assert!(
            text.contains("`foundry service start`") && text.contains("`foundry service status`"),
            "{text}"
        );

        let err = discover(Some("ftp://x"), &no_env, &FakeCli::absent())
            .await
            .unwrap_err();
        assert!(matches!(err, FoundryError::InvalidUrl { .. }), "{err}");
    }

    #[tokio::test]
    async fn system_cli_reports_a_missing_binary() {
        let cli = SystemCli {
            program: "/nonexistent/foundry-for-dyno-tests".into(),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(
            cli.run(&["service", "status"]).await,
            Err(CliError::NotFound)
        );
        let err = discover(None, &no_env, &cli).await.unwrap_err();
        assert!(matches!(err, FoundryError::NotFound { .. }), "{err}");
    }

    /// dyno may run these on spawned tasks.
    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let cli = SystemCli::default();
        let discovered = Discovered {
            base_url: "http://127.0.0.1:1".into(),
            source: DiscoverySource::Suite,
        };
        assert_send(&discover(None, &no_env, &cli));
        assert_send(&Foundry::connect(&discovered));
        let foundry = Foundry::with_generation(
            "http://127.0.0.1:1",
            Generation::Service,
            reqwest::Client::new(),
        );
        let mut progress = |_: f64| {};
        assert_send(&foundry.download("x", &mut progress));
        assert_send(&foundry.load("x"));
        assert_send(&foundry.catalog());
    }

    #[tokio::test]
    async fn connect_errors_are_specific() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let closed = Discovered {
            base_url: format!("http://127.0.0.1:{port}"),
            source: DiscoverySource::Suite,
        };
        let err = Foundry::connect(&closed).await.unwrap_err();
        assert!(matches!(err, FoundryError::Unreachable { .. }), "{err}");
        assert!(
            err.to_string().contains("`foundry service status`"),
            "{err}"
        );

        // Something that is not Foundry Local: an axum app with no routes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, axum::Router::new()).await.unwrap();
        });
        let other = Discovered {
            base_url: format!("http://{addr}"),
            source: DiscoverySource::Suite,
        };
        let err = Foundry::connect(&other).await.unwrap_err();
        assert!(matches!(err, FoundryError::NotFoundry { .. }), "{err}");
        assert!(
            err.to_string().contains("/openai/status → HTTP 404"),
            "{err}"
        );
        server.abort();
    }
}
