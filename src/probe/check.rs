//! `dyno check`: the validation checklist. The suite loads, endpoints
//! answer, models are listed where they are served (or their files are on
//! disk), managed servers start, and one tiny chat per model succeeds,
//! through the same providers a run uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::models::{FoundryState, Served, openai_models};
use super::{Context, file_size, plural, quoted};
use crate::plan::Variant;
use crate::provider::foundry::{self, CatalogEntry, Device};
use crate::provider::http::{Clients, Purpose};
use crate::provider::openai::Target;
use crate::provider::{Measured, Providers, Request, Source as _};
use crate::run::executor::timeout;
use crate::suite::{
    self, Endpoint, EndpointKind, Message, Model, Role, ServedBy, Suite, SuiteError,
};
use crate::text::first_line;

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
pub async fn check(file: &Path, ctx: &Context<'_>) -> Result<Vec<CheckLine>, SuiteError> {
    let suite = Arc::new(suite::load(file, ctx.env)?);
    let mut clients = Clients::default();
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
        let (line, state) = reach(name, endpoint, &suite.secrets, &mut clients, ctx).await;
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

    // Servers an earlier run into the suite's directory left running when it
    // was killed outright hold memory and ports the checks need.
    for line in crate::provider::orphans::end_leftovers(&suite.outputs.dir.join("logs")) {
        eprintln!("warning: {line}");
    }

    // Server logs; kept when a server failed, since its error names the log.
    let work_dir = tempfile::tempdir().map_err(|err| {
        SuiteError::io(
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
    for line in &mut lines {
        line.what = suite.secrets.redact(&line.what);
        line.detail = suite.secrets.redact(&line.detail);
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
                lines.push(CheckLine::fail(what, reason.to_string()));
                any_failed = true;
                continue;
            }
        };
        match provider.start(&|_| {}).await {
            Ok(started) => {
                let detail = match &started.engine {
                    Some(engine) => {
                        format!("{}; engine {}", started.description, engine.describe())
                    }
                    None => started.description,
                };
                lines.push(CheckLine::pass(what, detail));
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
                lines.push(CheckLine::fail(what, reason.to_string()));
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
    secrets: &crate::secrets::Secrets,
    clients: &mut Clients,
    ctx: &Context<'_>,
) -> (CheckLine, Reached) {
    let what = format!("endpoint {name} reachable");
    match endpoint.kind {
        EndpointKind::Openai => {
            let target = Target::of(endpoint, secrets);
            let http = match clients.get(Purpose::Probe, endpoint.ca_cert.as_deref()) {
                Ok(http) => http,
                Err(err) => return (CheckLine::fail(what, err.to_string()), Reached::Failed),
            };
            match openai_models(&http, &target).await {
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
    if program.contains(std::path::is_separator) {
        return executable(&dir.join(program));
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find_map(|d| executable(&d.join(program)))
}

/// `path`, when it is a file with an execute permission bit.
#[cfg(unix)]
fn executable(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .then(|| path.to_path_buf())
}

/// `path` when it is a file with an executable extension, else the first
/// file that is `path` with one appended (`foundry` → `foundry.exe`); the
/// extensions are those of `PATHEXT`, as the shell tries them.
#[cfg(windows)]
fn executable(path: &Path) -> Option<PathBuf> {
    let pathext = std::env::var("PATHEXT").unwrap_or_else(|_| ".COM;.EXE;.BAT;.CMD".into());
    let extensions: Vec<&str> = pathext.split(';').filter(|e| !e.is_empty()).collect();
    let runnable = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        extensions
            .iter()
            .any(|x| x.trim_start_matches('.').eq_ignore_ascii_case(e))
    });
    if runnable && path.is_file() {
        return Some(path.to_path_buf());
    }
    extensions
        .iter()
        .map(|extension| {
            let mut name = path.as_os_str().to_owned();
            name.push(extension);
            PathBuf::from(name)
        })
        .find(|candidate| candidate.is_file())
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
        ignore_eos: false,
        timeout: timeout(model.params.timeout_s),
        response_format: None,
        thinking: None,
        cache: true,
    }
}

/// "1 token in 12 ms", or why the chat failed (its first line: an HTML
/// error page says no more after it).
fn chat_outcome(m: &Measured) -> Result<String, String> {
    if let Some((_, message)) = &m.error {
        Err(first_line(message).to_string())
    } else {
        let tokens = plural(m.output_tokens.unwrap_or(0) as usize, "token");
        Ok(format!("{tokens} in {:.0} ms", m.e2e_ms.unwrap_or(0.0)))
    }
}

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

/// The user message of every probe chat (answered with one token).
const PROBE_PROMPT: &str = "Say OK.";
