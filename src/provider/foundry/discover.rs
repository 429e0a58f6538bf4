//! Finding a running Foundry Local service: the suite's `base_url`, then
//! `FOUNDRY_LOCAL_ENDPOINT`, then the `foundry` CLI (both generations of
//! its status output). Never assumes a port.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{DEFAULT_CLI_TIMEOUT, ENDPOINT_ENV, FoundryError, clip};

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
    /// The service's process, when the CLI said which.
    pub pid: Option<u32>,
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
                    pid: parse_server_status_pid(&out.stdout),
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
                    pid: None,
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
pub(super) async fn run_cli(
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

pub(super) fn explicit(url: &str, source: DiscoverySource) -> Result<Discovered, FoundryError> {
    let base_url = normalize_base_url(url).map_err(|reason| FoundryError::InvalidUrl {
        url: url.to_string(),
        origin: source.to_string(),
        reason,
    })?;
    Ok(Discovered {
        base_url,
        source,
        pid: None,
    })
}

/// The process serving `discovered`, whose memory and CPU a run samples:
/// the pid the CLI reported; else the process listening on the service's
/// port on this machine (Linux); else the pid `foundry server status -o
/// json` reports when it names the same service. `None` when none says.
pub(crate) async fn service_pid(discovered: &Discovered, cli: &dyn CliRunner) -> Option<u32> {
    if discovered.pid.is_some() {
        return discovered.pid;
    }
    let url = reqwest::Url::parse(&discovered.base_url).ok()?;
    let port = url.port_or_known_default()?;
    #[cfg(target_os = "linux")]
    if let Some(pid) = listening_pid(port) {
        return Some(pid);
    }
    let out = cli.run(&["server", "status", "-o", "json"]).await.ok()?;
    let same_port = parse_server_status_json(&out.stdout)
        .and_then(|root| reqwest::Url::parse(&root).ok()?.port_or_known_default())
        == Some(port);
    same_port
        .then(|| parse_server_status_pid(&out.stdout))
        .flatten()
}

/// The `pid` of `foundry server status -o json` output (at any depth, key
/// case ignored).
pub(crate) fn parse_server_status_pid(stdout: &str) -> Option<u32> {
    fn find(value: &Value) -> Option<u32> {
        let map = value.as_object()?;
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("pid"))
            .and_then(|(_, v)| u32::try_from(v.as_u64()?).ok())
            .or_else(|| map.values().find_map(find))
    }
    find(&parse_embedded_json(stdout)?)
}

/// The process listening on TCP `port` on this machine, from
/// `/proc/net/tcp{,6}` (the socket's inode) and `/proc/*/fd` (who holds it).
#[cfg(target_os = "linux")]
pub(crate) fn listening_pid(port: u16) -> Option<u32> {
    const LISTEN: &str = "0A";
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local_port = fields.get(1)?.rsplit(':').next()?;
                (u16::from_str_radix(local_port, 16).ok()? == port && *fields.get(3)? == LISTEN)
                    .then(|| fields.get(9).map(|i| (*i).to_string()))
                    .flatten()
            })
        })?;
    let socket = std::ffi::OsString::from(format!("socket:[{inode}]"));
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
            fds.flatten()
                .any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == socket)
                })
                .then_some(pid)
        })
}

pub(super) fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        Some(line) => clip(line, 160),
        None => "no output".to_string(),
    }
}

/// Turns a user- or CLI-supplied URL into the service root: scheme and host
/// kept, `/v1` (or a pasted `/openai/status`) and trailing slashes removed,
/// `http://` added when no scheme is given. `Err` says why it is unusable.
pub(crate) fn normalize_base_url(input: &str) -> Result<String, String> {
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
pub(crate) fn parse_server_status_json(stdout: &str) -> Option<String> {
    let value = parse_embedded_json(stdout)?;
    let mut candidates = Vec::new();
    collect_web_urls(&value, &mut candidates);
    candidates.iter().find_map(|url| connectable_root(url))
}

pub(super) fn parse_embedded_json(text: &str) -> Option<Value> {
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

pub(super) fn collect_web_urls(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key.eq_ignore_ascii_case("webUrls") || key.eq_ignore_ascii_case("webUrl") {
                    match child {
                        Value::String(s) => out.push(s.clone()),
                        Value::Array(items) => {
                            out.extend(items.iter().filter_map(Value::as_str).map(str::to_string));
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
pub(crate) fn parse_service_status_text(text: &str) -> Option<String> {
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

pub(super) fn find_url_start(text: &str) -> Option<usize> {
    match (text.find("http://"), text.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `scheme://host:port` of `url`, with a wildcard bind host replaced by the
/// loopback address; `None` when it cannot be a client URL.
pub(super) fn connectable_root(url: &str) -> Option<String> {
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
