//! Custom adapters: run a user program that wraps some LLM runtime and talk
//! to it over the JSON-lines protocol in `docs/adapter-protocol.md` (one JSON
//! object per line on its stdin and stdout, its stderr is its log).
//!
//! This module owns the adapter process and its process group, the protocol
//! (handshake, load, generate, cancel, shutdown) and the timing of each
//! generation: every stdout line is timestamped with a monotonic clock by a
//! reader task the moment it is read, so TTFT, ITL and end-to-end latency
//! mean the same thing as for HTTP targets.
//!
//! It must never panic, never block on a full pipe (stdout and stderr are
//! drained continuously by background tasks), never leave the adapter or
//! anything it started running (the whole process group is killed on `stop`
//! and on drop), and never signal anything outside the adapter's own group.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::process::{CLEAN_EXIT, Group, describe_exit, own_group};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::{Measured, Progress, Request, Started};
use crate::results::{ErrorKind, TokenSource};

/// The protocol version this module speaks (the `protocol` field of `hello`
/// and `load`).
pub const PROTOCOL_VERSION: u64 = 1;

/// How many stderr lines are kept for [`Adapter::log_tail`].
const LOG_RING_LINES: usize = 50;
/// Longer stderr lines are cut to this many bytes in the ring.
const MAX_LOG_LINE_BYTES: usize = 4096;
/// A stdout line longer than this is a protocol error (and is not kept).
const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;
/// How many stderr lines go into an error message.
const ERROR_LOG_LINES: usize = 10;
/// At most this many characters of an offending line go into an error.
const EXCERPT_CHARS: usize = 200;
/// After stdout closes, how long to wait for the process to exit (to tell
/// `Exited` from `EarlyEof`).
const EXIT_WAIT: Duration = Duration::from_secs(1);
/// After the process exits, how long to keep reading stdout for lines it
/// wrote just before exiting (a child that inherited stdout may keep it open).
const EXIT_DRAIN: Duration = Duration::from_millis(300);
/// After the process exits, how long to wait for the stderr reader to catch
/// up so the last lines are in error messages.
const STDERR_DRAIN: Duration = Duration::from_millis(300);
/// How long writing a `cancel` or `shutdown` line may take.
const CONTROL_WRITE: Duration = Duration::from_millis(200);
/// How long `stop` waits for the adapter to exit after `shutdown`.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long `stop` waits for the process to be reaped after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// What to run and how to load it.
#[derive(Debug, Clone)]
pub struct AdapterSpec {
    /// Program and arguments, e.g. `["python3", "adapter.py"]`.
    pub command: Vec<String>,
    /// Sent as `weights_path` in the `load` message (`null` when `None`).
    pub weights_path: Option<String>,
    /// Sent as `params` in the `load` message, as is.
    pub params: Map<String, Value>,
    /// How long the adapter may take from spawn to `loaded`.
    pub load_timeout: Duration,
    /// Extra environment variables; the rest of dyno's environment is
    /// inherited.
    pub env: Vec<(String, String)>,
    /// Working directory; dyno's own when `None`.
    pub cwd: Option<PathBuf>,
}

/// One chat message, sent as `{"role": ..., "content": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// Sampling parameters of one generation. Unset fields are left out of the
/// `params` object of the `generate` message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerateParams {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub seed: Option<u64>,
    /// Further keys passed through as is; the typed fields above win on a
    /// name clash.
    pub extra: Map<String, Value>,
}

impl GenerateParams {
    /// The `params` object of a `generate` message.
    fn to_json(&self) -> Map<String, Value> {
        let mut params = self.extra.clone();
        if let Some(n) = self.max_tokens {
            params.insert("max_tokens".into(), n.into());
        }
        if let Some(t) = self.temperature {
            // A non-finite temperature has no JSON form; it is left out.
            if let Some(number) = serde_json::Number::from_f64(t) {
                params.insert("temperature".into(), Value::Number(number));
            }
        }
        if let Some(seed) = self.seed {
            params.insert("seed".into(), seed.into());
        }
        params
    }
}

/// How an adapter ended after [`Adapter::stop`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// It exited with status 0 on its own after `shutdown`.
    pub clean: bool,
    /// "exited with status 0", "killed by signal 9 (SIGKILL)", ...
    pub status: String,
}

/// Why an adapter could not be started. Every variant's message is meant
/// for the user; the ones after `Spawn` include the adapter's last stderr
/// lines. The process group is killed before any of them is returned.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("adapter: the command is empty")]
    EmptyCommand,
    #[error(
        "adapter: could not start `{program}`: {source} (check the program path in the adapter's command)"
    )]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error(
        "adapter `{program}` did not {stage} within {timeout_s:.1} s and was killed; {log_tail}"
    )]
    LoadTimeout {
        program: String,
        /// "send `hello`" or "send `loaded`".
        stage: &'static str,
        timeout_s: f64,
        log_tail: String,
    },
    #[error(
        "adapter `{program}` broke the protocol while starting: {message} \
         (stdout must carry protocol messages only; write logs to stderr); {log_tail}"
    )]
    Protocol {
        program: String,
        message: String,
        log_tail: String,
    },
    #[error(
        "adapter `{program}` speaks protocol version {version}, but this dyno speaks version {PROTOCOL_VERSION}"
    )]
    UnsupportedProtocol { program: String, version: String },
    #[error("adapter `{program}` failed to load: {message}; {log_tail}")]
    LoadFailed {
        program: String,
        message: String,
        log_tail: String,
    },
    /// The process exited, or closed its stdout, before `loaded`.
    #[error("adapter `{program}` stopped while starting: {message}")]
    Exited { program: String, message: String },
}

/// A running adapter process. Dropping it without [`Adapter::stop`]
/// SIGKILLs its process group.
#[derive(Debug)]
pub struct Adapter {
    program: String,
    pid: u32,
    /// The adapter leads its own process group.
    group: Group,
    stdin: Option<ChildStdin>,
    /// Stdout lines, timestamped on arrival by the reader task.
    lines: mpsc::UnboundedReceiver<StdoutEvent>,
    /// The exit, described, once the waiter task has reaped the process.
    exit: watch::Receiver<Option<String>>,
    /// The waiter task is gone; `exit` will not change any more.
    exit_watch_closed: bool,
    /// When the exit was first noticed.
    exited_at: Option<Instant>,
    log: Arc<Mutex<LogRing>>,
    stderr_task: Option<JoinHandle<()>>,
    /// The `info` object of `loaded`, if any.
    info: Option<Value>,
    /// Set for good once stdout is closed or the process is gone (or stdin
    /// is stuck); every later `generate` fails with it at once.
    dead: Option<(ErrorKind, String)>,
    /// The request being generated; still set if a `generate` future was
    /// dropped half way.
    in_flight: Option<String>,
    /// Requests given up on (timeout, bad message, dropped future) whose
    /// late events are skipped until their `done` or `error` arrives.
    stale: HashSet<String>,
    /// A line is being written; still set if that write was abandoned
    /// half way (a dropped future), which leaves stdin unusable.
    writing: bool,
    /// The group has been signalled for good; `Drop` then does nothing.
    stopped: bool,
}

/// What the stdout reader task reports.
#[derive(Debug)]
enum StdoutEvent {
    /// One non-blank line without its line ending.
    Line {
        at: Instant,
        bytes: Vec<u8>,
        /// The line was longer than `MAX_LINE_BYTES` and was cut.
        too_long: bool,
    },
    /// End of stdout; `Some` with the reason if reading failed.
    Closed(Option<String>),
}

/// The result of waiting for the next stdout line.
enum Next {
    Line {
        at: Instant,
        bytes: Vec<u8>,
        too_long: bool,
    },
    /// Stdout closed or the process exited; `Adapter::dead` is now set.
    Closed(ErrorKind, String),
    TimedOut,
}

/// Messages dyno sends.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Outgoing<'a> {
    Load {
        protocol: u64,
        weights_path: Option<&'a str>,
        params: &'a Map<String, Value>,
    },
    Generate {
        id: &'a str,
        messages: &'a [Message],
        params: Map<String, Value>,
    },
    Cancel {
        id: &'a str,
    },
    Shutdown,
}

/// Messages the adapter sends. Unknown fields are ignored.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Incoming {
    Hello {
        #[serde(default)]
        protocol: Value,
    },
    Loaded {
        #[serde(default)]
        info: Option<Value>,
    },
    Token {
        id: String,
        text: String,
    },
    Done {
        id: String,
        #[serde(default)]
        usage: Option<Usage>,
        #[serde(default)]
        finish_reason: Option<String>,
    },
    Error {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
}

impl Incoming {
    fn type_name(&self) -> &'static str {
        match self {
            Incoming::Hello { .. } => "hello",
            Incoming::Loaded { .. } => "loaded",
            Incoming::Token { .. } => "token",
            Incoming::Done { .. } => "done",
            Incoming::Error { .. } => "error",
        }
    }
}

/// The `usage` object of `done`.
#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// The last stderr lines.
#[derive(Debug, Default)]
struct LogRing {
    lines: VecDeque<String>,
}

impl LogRing {
    fn push(&mut self, line: String) {
        if self.lines.len() == LOG_RING_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    fn tail(&self, n: usize) -> Vec<String> {
        let skip = self.lines.len().saturating_sub(n);
        self.lines.iter().skip(skip).cloned().collect()
    }
}

impl Adapter {
    /// Spawns `spec.command` in its own process group (stdin, stdout and
    /// stderr piped, the environment inherited plus `spec.env`), waits for
    /// its `hello`, checks the protocol version, sends `load` and waits for
    /// `loaded`. Returns the adapter and its load time: from just before
    /// spawn to the arrival of `loaded`. All of it must happen within
    /// `spec.load_timeout`; on any failure the process group is killed.
    pub async fn start(spec: &AdapterSpec) -> Result<(Adapter, Duration), AdapterError> {
        let Some((program, args)) = spec.command.split_first() else {
            return Err(AdapterError::EmptyCommand);
        };
        let mut std_command = std::process::Command::new(program);
        std_command
            .args(args)
            .envs(spec.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        own_group(&mut std_command);
        if let Some(dir) = &spec.cwd {
            std_command.current_dir(dir);
        }
        let mut command = tokio::process::Command::from(std_command);
        command.kill_on_drop(true);

        let started = Instant::now();
        let deadline = started + spec.load_timeout;
        let spawn_error = |source| AdapterError::Spawn {
            program: program.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        // Until `adapter` exists, dropping `child` kills the leader
        // (kill_on_drop); nothing else can be running yet.
        let (pid, group) = Group::of(&child).map_err(spawn_error)?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(spawn_error(std::io::Error::other(
                "the adapter's pipes were not set up",
            )));
        };

        let (line_tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(read_stdout(BufReader::new(stdout), line_tx));
        let log = Arc::new(Mutex::new(LogRing::default()));
        let stderr_task = tokio::spawn(read_stderr(BufReader::new(stderr), Arc::clone(&log)));
        let (exit_tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(err) => format!("could not be waited for ({err})"),
            };
            // Take down whatever the adapter left in its group now: once
            // the leader is reaped and the group is empty, the group id may
            // be reused, so later signals are only sent while the leader
            // has not been reaped (see `Adapter::kill_group`).
            group.kill();
            // Nobody listening any more is fine.
            let _ = exit_tx.send(Some(status));
        });

        // From here on, dropping `adapter` (an error below, or the caller
        // dropping this future) kills the whole group.
        let mut adapter = Adapter {
            program: program.clone(),
            pid,
            group,
            stdin: Some(stdin),
            lines,
            exit,
            exit_watch_closed: false,
            exited_at: None,
            log,
            stderr_task: Some(stderr_task),
            info: None,
            dead: None,
            in_flight: None,
            stale: HashSet::new(),
            writing: false,
            stopped: false,
        };

        // 1. hello
        let hello = adapter
            .next_start_message(deadline, spec, "send `hello`")
            .await?;
        match hello {
            (_, Incoming::Hello { protocol }) => {
                if protocol.as_u64() != Some(PROTOCOL_VERSION) {
                    return Err(AdapterError::UnsupportedProtocol {
                        program: adapter.program.clone(),
                        version: protocol.to_string(),
                    });
                }
            }
            (_, Incoming::Error { message, .. }) => return Err(adapter.load_failed(message)),
            (_, other) => {
                return Err(adapter.protocol_error(format!(
                    "the first line must be `hello`, got `{}`",
                    other.type_name()
                )));
            }
        }

        // 2. load → loaded
        let load = Outgoing::Load {
            protocol: PROTOCOL_VERSION,
            weights_path: spec.weights_path.as_deref(),
            params: &spec.params,
        };
        match tokio::time::timeout_at(deadline, adapter.write_message(&load)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                let (_, message) = adapter
                    .closed(&format!("stopped reading its stdin ({err})"))
                    .await;
                return Err(AdapterError::Exited {
                    program: adapter.program.clone(),
                    message,
                });
            }
            Err(_) => return Err(adapter.load_timeout(spec, "read `load`")),
        }
        match adapter
            .next_start_message(deadline, spec, "send `loaded`")
            .await?
        {
            (at, Incoming::Loaded { info }) => {
                adapter.info = info;
                Ok((adapter, at.saturating_duration_since(started)))
            }
            (_, Incoming::Error { message, .. }) => Err(adapter.load_failed(message)),
            (_, other) => Err(adapter.protocol_error(format!(
                "expected `loaded` after `load`, got `{}`",
                other.type_name()
            ))),
        }
    }

    /// Sends one `generate` and measures it until `done`, an `error`, a bad
    /// line, the end of the process, or `timeout` (counted from just before
    /// the line is written). Never panics; every failure is
    /// [`Measured::error`], and what was measured before it stays.
    ///
    /// `id` must be unique for this adapter. After a timeout or a bad
    /// message dyno sends `cancel` for the request and skips its late
    /// events; after the process is gone every call fails at once.
    pub async fn generate(
        &mut self,
        id: &str,
        messages: &[Message],
        params: &GenerateParams,
        timeout: Duration,
    ) -> Measured {
        let mut g = Measured::default();
        if let Some(previous) = self.in_flight.take() {
            // A previous `generate` future was dropped half way.
            self.stale.insert(previous);
        }
        self.check_abandoned_write();
        if let Some((kind, message)) = &self.dead {
            g.error = Some((*kind, format!("the adapter is not running: {message}")));
            return g;
        }
        if let Err(failure) = self.drain_between_requests().await {
            g.error = Some(failure);
            return g;
        }
        self.stale.remove(id);

        let request = Outgoing::Generate {
            id,
            messages,
            params: params.to_json(),
        };
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        self.in_flight = Some(id.to_owned());
        match tokio::time::timeout_at(deadline, self.write_message(&request)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                self.in_flight = None;
                g.error = Some(
                    self.closed(&format!("stopped reading its stdin ({err})"))
                        .await,
                );
                return g;
            }
            Err(_) => {
                // Part of the line may be written: the stream is unusable.
                self.in_flight = None;
                let message = format!(
                    "the adapter did not read the `generate` line within {:.1} s; it is not used any more",
                    timeout.as_secs_f64()
                );
                self.dead = Some((ErrorKind::Timeout, message.clone()));
                g.error = Some((ErrorKind::Timeout, message));
                return g;
            }
        }

        let result = self.receive(id, t0, deadline, timeout, &mut g).await;
        self.in_flight = None;
        if let Err((kind, message)) = result {
            if matches!(kind, ErrorKind::Timeout | ErrorKind::BadSse) {
                self.stale.insert(id.to_owned());
                let cancel = Outgoing::Cancel { id };
                // Best effort: an adapter may ignore `cancel`. A write error
                // shows up (and is classified) at the next write.
                let written =
                    tokio::time::timeout(CONTROL_WRITE, self.write_message(&cancel)).await;
                if written.is_err() && self.dead.is_none() {
                    self.dead = Some((
                        ErrorKind::Timeout,
                        "the adapter stopped reading its stdin; it is not used any more".to_owned(),
                    ));
                }
            }
            g.error = Some((kind, message));
        }
        g
    }

    /// Sends `shutdown`, closes stdin, waits up to 2 s for the adapter to
    /// exit, else SIGKILLs its whole process group and reaps it. Whenever
    /// the adapter exits, anything it left in its group is SIGKILLed at
    /// once. Never panics.
    pub async fn stop(mut self) -> Stopped {
        self.check_abandoned_write();
        if self.dead.is_none() {
            let _ =
                tokio::time::timeout(CONTROL_WRITE, self.write_message(&Outgoing::Shutdown)).await;
        }
        self.stdin = None;
        let on_its_own = self.wait_exit(STOP_GRACE).await;
        if let Some(status) = on_its_own {
            // The waiter task has already killed the rest of the group.
            self.stopped = true;
            return Stopped {
                clean: status == CLEAN_EXIT,
                status,
            };
        }
        self.kill_group();
        self.stopped = true;
        let status = self
            .wait_exit(KILL_WAIT)
            .await
            .unwrap_or_else(|| "was sent SIGKILL but could not be reaped".to_owned());
        Stopped {
            clean: false,
            status,
        }
    }

    /// The last `lines` lines the adapter wrote to stderr (at most 50 are
    /// kept; long lines are cut to 4 KiB), oldest first.
    pub fn log_tail(&self, lines: usize) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tail(lines)
    }

    /// The `info` object of the adapter's `loaded` message, if it sent one.
    pub fn info(&self) -> Option<&Value> {
        self.info.as_ref()
    }

    /// The adapter's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Reads messages of one generation until it ends.
    async fn receive(
        &mut self,
        id: &str,
        t0: Instant,
        deadline: Instant,
        timeout: Duration,
        g: &mut Measured,
    ) -> Result<(), (ErrorKind, String)> {
        let bad = |message: String| (ErrorKind::BadSse, message);
        let mut last_content: Option<Instant> = None;
        let mut content_events: u64 = 0;
        loop {
            let (at, bytes, too_long) = match self.next_line(deadline).await {
                Next::Line {
                    at,
                    bytes,
                    too_long,
                } => (at, bytes, too_long),
                Next::Closed(kind, message) => return Err((kind, message)),
                Next::TimedOut => {
                    return Err((
                        ErrorKind::Timeout,
                        format!(
                            "no `done` within {:.1} s ({content_events} token events with text so far)",
                            timeout.as_secs_f64()
                        ),
                    ));
                }
            };
            let message = parse_line(&bytes, too_long).map_err(bad)?;
            match message {
                Incoming::Token { id: got, text } => {
                    if got != id {
                        if self.stale.contains(&got) {
                            continue;
                        }
                        return Err(bad(wrong_id("token", &got, id)));
                    }
                    if text.is_empty() {
                        continue;
                    }
                    match last_content {
                        None => g.ttft_ms = Some(ms(t0, at)),
                        Some(previous) => g.itl_ms.push(ms(previous, at)),
                    }
                    last_content = Some(at);
                    content_events += 1;
                    g.text.push_str(&text);
                }
                Incoming::Done {
                    id: got,
                    usage,
                    finish_reason,
                } => {
                    if got != id {
                        if self.stale.remove(&got) {
                            continue;
                        }
                        return Err(bad(wrong_id("done", &got, id)));
                    }
                    g.e2e_ms = Some(ms(t0, at));
                    g.finish_reason = finish_reason;
                    let (prompt, completion) = usage
                        .map(|u| (u.prompt_tokens, u.completion_tokens))
                        .unwrap_or_default();
                    g.prompt_tokens = prompt;
                    match completion {
                        Some(n) => {
                            g.output_tokens = Some(n);
                            g.token_source = Some(TokenSource::Usage);
                        }
                        None => {
                            g.output_tokens = Some(content_events);
                            g.token_source = Some(TokenSource::Estimate);
                        }
                    }
                    return Ok(());
                }
                Incoming::Error { id: got, message } => match got {
                    Some(other) if other != id => {
                        if self.stale.remove(&other) {
                            continue;
                        }
                        return Err(bad(wrong_id("error", &other, id)));
                    }
                    _ => {
                        return Err((
                            ErrorKind::ServerError,
                            message.unwrap_or_else(|| "(the error has no message)".to_owned()),
                        ));
                    }
                },
                other => {
                    return Err(bad(format!(
                        "unexpected `{}` message during a request",
                        other.type_name()
                    )));
                }
            }
        }
    }

    /// Handles lines that arrived since the last request: late events of
    /// stale requests are skipped, anything else fails the next request
    /// (which is then not sent).
    async fn drain_between_requests(&mut self) -> Result<(), (ErrorKind, String)> {
        loop {
            match self.lines.try_recv() {
                Ok(StdoutEvent::Line {
                    bytes, too_long, ..
                }) => {
                    let unexpected = |what: String| {
                        (
                            ErrorKind::BadSse,
                            format!(
                                "unexpected line between requests ({what}); the request was not sent"
                            ),
                        )
                    };
                    match parse_line(&bytes, too_long).map_err(unexpected)? {
                        Incoming::Token { id, .. } if self.stale.contains(&id) => {}
                        Incoming::Done { id, .. } | Incoming::Error { id: Some(id), .. }
                            if self.stale.remove(&id) => {}
                        other => {
                            return Err(unexpected(format!(
                                "a `{}` message: {}",
                                other.type_name(),
                                excerpt(&bytes)
                            )));
                        }
                    }
                }
                Ok(StdoutEvent::Closed(reason)) => {
                    return Err(self.closed(&closed_stdout(reason.as_deref())).await);
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    return Err(self.closed(&closed_stdout(None)).await);
                }
                Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
            }
        }
    }

    /// The next stdout line, or why there is none before `deadline`.
    async fn next_line(&mut self, deadline: Instant) -> Next {
        if let Some((kind, message)) = &self.dead {
            return Next::Closed(*kind, message.clone());
        }
        loop {
            if self.exited_at.is_none() && self.exit.borrow().is_some() {
                self.exited_at = Some(Instant::now());
            }
            let limit = match self.exited_at {
                Some(exited) => deadline.min(exited + EXIT_DRAIN),
                None => deadline,
            };
            let watch_exit = self.exited_at.is_none() && !self.exit_watch_closed;
            let event = tokio::select! {
                biased;
                event = self.lines.recv() => event,
                changed = self.exit.changed(), if watch_exit => {
                    if changed.is_err() {
                        self.exit_watch_closed = true;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(limit) => {
                    if limit < deadline {
                        // Exited, but something still holds stdout open.
                        let (kind, message) = self.closed("exited").await;
                        return Next::Closed(kind, message);
                    }
                    return Next::TimedOut;
                }
            };
            return match event {
                Some(StdoutEvent::Line {
                    at,
                    bytes,
                    too_long,
                }) => Next::Line {
                    at,
                    bytes,
                    too_long,
                },
                Some(StdoutEvent::Closed(reason)) => {
                    let (kind, message) = self.closed(&closed_stdout(reason.as_deref())).await;
                    Next::Closed(kind, message)
                }
                None => {
                    let (kind, message) = self.closed(&closed_stdout(None)).await;
                    Next::Closed(kind, message)
                }
            };
        }
    }

    /// The adapter's stdout is closed, its stdin is broken or it exited:
    /// waits briefly for its exit status and last stderr lines, marks it
    /// dead and says why. `what` completes "the adapter ...".
    async fn closed(&mut self, what: &str) -> (ErrorKind, String) {
        let status = self.wait_exit(EXIT_WAIT).await;
        if let Some(task) = self.stderr_task.as_mut()
            && tokio::time::timeout(STDERR_DRAIN, task).await.is_ok()
        {
            self.stderr_task = None;
        }
        let tail = self.tail_text();
        let failure = match status {
            Some(status) => (
                ErrorKind::ServerExited,
                format!("the adapter {status}; {tail}"),
            ),
            None => (
                ErrorKind::EarlyEof,
                format!("the adapter {what} but is still running; {tail}"),
            ),
        };
        self.dead = Some(failure.clone());
        failure
    }

    /// The exit description, waiting up to `limit` for it.
    async fn wait_exit(&mut self, limit: Duration) -> Option<String> {
        let waited = tokio::time::timeout(limit, self.exit.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|status| status.clone());
        waited.or_else(|| self.exit.borrow().clone())
    }

    /// Writes one message as a line and flushes it. `writing` stays set if
    /// this future is dropped before it finishes.
    async fn write_message(&mut self, message: &Outgoing<'_>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin is closed"))?;
        self.writing = true;
        let written = match stdin.write_all(&line).await {
            Ok(()) => stdin.flush().await,
            Err(err) => Err(err),
        };
        self.writing = false;
        written
    }

    /// A line was abandoned half written (its future was dropped or timed
    /// out): the adapter would read garbage, so it is not used any more.
    fn check_abandoned_write(&mut self) {
        if self.writing && self.dead.is_none() {
            self.dead = Some((
                ErrorKind::Timeout,
                "a line to the adapter was abandoned half written; it is not used any more"
                    .to_owned(),
            ));
        }
    }

    /// The next message while starting, with every failure turned into an
    /// [`AdapterError`].
    async fn next_start_message(
        &mut self,
        deadline: Instant,
        spec: &AdapterSpec,
        stage: &'static str,
    ) -> Result<(Instant, Incoming), AdapterError> {
        match self.next_line(deadline).await {
            Next::Line {
                at,
                bytes,
                too_long,
            } => match parse_line(&bytes, too_long) {
                Ok(message) => Ok((at, message)),
                Err(message) => Err(self.protocol_error(message)),
            },
            Next::Closed(_, message) => Err(AdapterError::Exited {
                program: self.program.clone(),
                message,
            }),
            Next::TimedOut => Err(self.load_timeout(spec, stage)),
        }
    }

    fn protocol_error(&self, message: String) -> AdapterError {
        AdapterError::Protocol {
            program: self.program.clone(),
            message,
            log_tail: self.tail_text(),
        }
    }

    fn load_failed(&self, message: Option<String>) -> AdapterError {
        AdapterError::LoadFailed {
            program: self.program.clone(),
            message: message.unwrap_or_else(|| "(the error has no message)".to_owned()),
            log_tail: self.tail_text(),
        }
    }

    fn load_timeout(&self, spec: &AdapterSpec, stage: &'static str) -> AdapterError {
        AdapterError::LoadTimeout {
            program: self.program.clone(),
            stage,
            timeout_s: spec.load_timeout.as_secs_f64(),
            log_tail: self.tail_text(),
        }
    }

    /// SIGKILLs the adapter's process group unless the adapter has been
    /// reaped (the waiter task then killed the group already, and the id
    /// may belong to someone else by now).
    fn kill_group(&self) {
        if self.exit.borrow().is_none() {
            self.group.kill();
        }
    }

    /// The last stderr lines, ready to go into an error message.
    fn tail_text(&self) -> String {
        let tail = self.log_tail(ERROR_LOG_LINES);
        if tail.is_empty() {
            "it wrote nothing to stderr".to_owned()
        } else {
            format!("last stderr lines:\n{}", tail.join("\n"))
        }
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        if !self.stopped {
            self.kill_group();
        }
    }
}

/// Reads stdout lines, stamps each on arrival and passes it on, until EOF,
/// a read error, or nobody listens any more.
async fn read_stdout<R: AsyncBufRead + Unpin>(
    mut reader: R,
    tx: mpsc::UnboundedSender<StdoutEvent>,
) {
    let mut buf = Vec::new();
    loop {
        let event = match read_capped_line(&mut reader, &mut buf, MAX_LINE_BYTES).await {
            Ok(Some(_)) if buf.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Some(too_long)) => StdoutEvent::Line {
                at: Instant::now(),
                bytes: std::mem::take(&mut buf),
                too_long,
            },
            Ok(None) => StdoutEvent::Closed(None),
            Err(err) => StdoutEvent::Closed(Some(err.to_string())),
        };
        let closed = matches!(event, StdoutEvent::Closed(_));
        if tx.send(event).is_err() || closed {
            return;
        }
    }
}

/// Reads stderr lines into the ring until EOF, so the adapter never blocks
/// on a full stderr pipe.
async fn read_stderr<R: AsyncBufRead + Unpin>(mut reader: R, log: Arc<Mutex<LogRing>>) {
    let mut buf = Vec::new();
    while let Ok(Some(_)) = read_capped_line(&mut reader, &mut buf, MAX_LOG_LINE_BYTES).await {
        let line = String::from_utf8_lossy(&buf).into_owned();
        log.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    }
}

/// Reads one line into `buf` without its `\n` (and a `\r` before it),
/// keeping at most `cap` bytes and discarding the rest of a longer line.
/// `Ok(None)` at EOF with nothing read, else `Ok(Some(cut))`.
async fn read_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut cut = false;
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            break;
        }
        read_any = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        let room = cap.saturating_sub(buf.len());
        if chunk.len() > room {
            cut = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = newline.map_or(available.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            break;
        }
    }
    if !read_any {
        return Ok(None);
    }
    if !cut && buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(cut))
}

/// Parses one stdout line into a message, or says what is wrong with it.
fn parse_line(bytes: &[u8], too_long: bool) -> Result<Incoming, String> {
    if too_long {
        return Err(format!(
            "a line longer than {MAX_LINE_BYTES} bytes: {}",
            excerpt(bytes)
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|err| format!("a line that is not JSON ({err}): {}", excerpt(bytes)))?;
    Incoming::deserialize(value)
        .map_err(|err| format!("not a valid protocol message ({err}): {}", excerpt(bytes)))
}

fn wrong_id(kind: &str, got: &str, expected: &str) -> String {
    format!("`{kind}` for request id {got:?} while {expected:?} was running")
}

fn closed_stdout(reason: Option<&str>) -> String {
    match reason {
        Some(reason) => format!("closed its stdout (read error: {reason})"),
        None => "closed its stdout".to_owned(),
    }
}

/// The start of a line, lossy UTF-8, for error messages.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Milliseconds from `since` to `at` (0 if `at` is earlier).
fn ms(since: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(since).as_secs_f64() * 1000.0
}

/// How dyno starts the adapter of a `command` endpoint: in the suite
/// file's directory, with the endpoint's weights and load parameters. The
/// weights path is made absolute, since the adapter runs elsewhere.
pub fn spec(endpoint: &crate::suite::Endpoint) -> AdapterSpec {
    AdapterSpec {
        command: endpoint.command.clone(),
        weights_path: endpoint.weights.as_ref().map(|w| {
            std::path::absolute(w)
                .unwrap_or_else(|_| w.clone())
                .display()
                .to_string()
        }),
        params: endpoint.params.clone().into_iter().collect(),
        load_timeout: Duration::from_secs(u64::from(endpoint.load_timeout_s)),
        env: Vec::new(),
        cwd: Some(endpoint.dir.clone()).filter(|d| !d.as_os_str().is_empty()),
    }
}

/// A `command` endpoint's adapter as a [`super::Provider`]: one process
/// per launch, timed from spawn to `loaded`, its process tree sampled.
pub struct Command {
    name: String,
    spec: AdapterSpec,
    adapter: Option<Adapter>,
    /// The last request found the adapter gone.
    exited: bool,
}

impl Command {
    pub fn new(name: &str, spec: AdapterSpec) -> Command {
        Command {
            name: name.to_string(),
            spec,
            adapter: None,
            exited: false,
        }
    }
}

impl super::Provider for Command {
    fn start<'a>(&'a mut self, _: Progress<'a>) -> BoxFuture<'a, Result<Started, String>> {
        async move {
            let (adapter, load) = Adapter::start(&self.spec)
                .await
                .map_err(|err| format!("adapter `{}`: {err}", self.name))?;
            let started = Started {
                load: Some(load),
                pid: Some(adapter.pid()),
                description: format!("adapter loaded in {:.0} ms", load.as_secs_f64() * 1000.0),
                version: adapter.info().map(|info| match info {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                ..Started::default()
            };
            self.adapter = Some(adapter);
            self.exited = false;
            Ok(started)
        }
        .boxed()
    }

    fn measure<'a>(&'a mut self, request: &'a Request) -> BoxFuture<'a, Measured> {
        async move {
            let Some(adapter) = self.adapter.as_mut() else {
                return Measured::failed(ErrorKind::ServerExited, "the adapter is not running");
            };
            let messages: Vec<Message> = request
                .messages
                .iter()
                .map(|m| Message {
                    role: m.role.as_str().to_string(),
                    content: m.content.clone(),
                })
                .collect();
            let params = GenerateParams {
                max_tokens: Some(request.max_tokens),
                temperature: Some(request.temperature),
                seed: Some(u64::from(request.seed)),
                extra: request
                    .top_p
                    .map(|p| ("top_p".to_string(), Value::from(p)))
                    .into_iter()
                    .collect(),
            };
            let measured = adapter
                .generate(&request.id.to_string(), &messages, &params, request.timeout)
                .await;
            self.exited = matches!(measured.error, Some((ErrorKind::ServerExited, _)));
            measured
        }
        .boxed()
    }

    fn died(&mut self) -> Option<String> {
        let adapter = self.adapter.as_ref().filter(|_| self.exited)?;
        Some(format!(
            "server exited during the request; last log lines:\n{}",
            adapter.log_tail(ERROR_LOG_LINES).join("\n")
        ))
    }

    fn stop(&mut self) -> BoxFuture<'_, super::Stopped> {
        async move {
            let Some(adapter) = self.adapter.take() else {
                return super::Stopped::default();
            };
            let stopped = adapter.stop().await;
            super::Stopped {
                exit: (!stopped.clean).then_some(stopped.status),
                ..super::Stopped::default()
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &[&str]) -> AdapterSpec {
        AdapterSpec {
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            weights_path: None,
            params: Map::new(),
            load_timeout: Duration::from_secs(10),
            env: Vec::new(),
            cwd: None,
        }
    }

    fn sh(script: &str) -> AdapterSpec {
        spec(&["sh", "-c", script])
    }

    fn user(content: &str) -> Vec<Message> {
        vec![Message {
            role: "user".into(),
            content: content.into(),
        }]
    }

    fn example_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/adapter")
    }

    fn echo_spec() -> AdapterSpec {
        let dir = example_dir();
        let mut s = spec(&["python3"]);
        s.command
            .push(dir.join("echo_adapter.py").display().to_string());
        s.weights_path = Some(dir.join("weights.txt").display().to_string());
        s
    }

    /// Prints `hello`, answers `load` with `loaded`, then runs `then` once
    /// the first `generate` line has been read.
    const PRELUDE: &str = r#"echo '{"type":"hello","protocol":1}'; read -r line; echo '{"type":"loaded"}'; read -r line; "#;

    fn scripted(then: &str) -> AdapterSpec {
        sh(&format!("{PRELUDE}{then}"))
    }

    fn params(max_tokens: u32) -> GenerateParams {
        GenerateParams {
            max_tokens: Some(max_tokens),
            temperature: Some(0.0),
            seed: Some(7),
            extra: Map::new(),
        }
    }

    async fn started(spec: &AdapterSpec) -> Adapter {
        match Adapter::start(spec).await {
            Ok((adapter, _)) => adapter,
            Err(err) => panic!("start failed: {err}"),
        }
    }

    fn kind(g: &Measured) -> Option<ErrorKind> {
        g.error.as_ref().map(|(kind, _)| *kind)
    }

    #[tokio::test]
    async fn python_example_end_to_end() {
        let (mut adapter, load) = match Adapter::start(&echo_spec()).await {
            Ok(started) => started,
            Err(err) => panic!("start failed: {err}"),
        };
        assert!(load > Duration::ZERO);
        let info = adapter.info().cloned().unwrap_or_default();
        assert_eq!(info["runtime"], "echo_adapter");

        let prompt = user("Tell me about the sea");
        let g = adapter
            .generate("r1", &prompt, &params(12), Duration::from_secs(10))
            .await;
        assert_eq!(g.error, None);
        assert!(!g.text.is_empty());
        let (ttft, e2e) = (g.ttft_ms.unwrap_or(-1.0), g.e2e_ms.unwrap_or(-1.0));
        assert!(ttft > 0.0 && ttft < e2e, "ttft {ttft} e2e {e2e}");
        let words = g.text.split_whitespace().count() as u64;
        assert!((1..=12).contains(&words));
        assert_eq!(g.output_tokens, Some(words));
        assert_eq!(g.token_source, Some(TokenSource::Usage));
        assert_eq!(g.itl_ms.len() as u64, words - 1);
        assert!(g.itl_ms.iter().all(|gap| *gap >= 0.0));
        assert_eq!(g.prompt_tokens, Some(5));
        assert!(g.finish_reason.is_some());

        // Same prompt and seed: same text.
        let again = adapter
            .generate("r2", &prompt, &params(12), Duration::from_secs(10))
            .await;
        assert_eq!(again.error, None);
        assert_eq!(again.text, g.text);

        let stopped = adapter.stop().await;
        assert!(stopped.clean, "{stopped:?}");
    }

    #[tokio::test]
    async fn late_events_of_a_timed_out_request_are_skipped() {
        let mut adapter = started(&echo_spec()).await;
        let mut slow = params(4);
        slow.extra.insert("token_delay_ms".into(), 250.into());
        let g = adapter
            .generate("slow", &user("hi"), &slow, Duration::from_millis(400))
            .await;
        assert_eq!(kind(&g), Some(ErrorKind::Timeout));
        assert!(g.ttft_ms.is_some(), "the first token was measured");
        assert!(!g.text.is_empty());
        assert_eq!(g.e2e_ms, None);

        let g = adapter
            .generate("fast", &user("hi"), &params(4), Duration::from_secs(10))
            .await;
        assert_eq!(g.error, None);
        assert!(g.output_tokens.is_some());
        adapter.stop().await;
    }

    #[tokio::test]
    async fn garbage_is_a_bad_message() {
        let mut adapter = started(&scripted("echo 'this is not json'; sleep 30")).await;
        let g = adapter
            .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
            .await;
        assert_eq!(kind(&g), Some(ErrorKind::BadSse));
        let message = g.error.map(|(_, m)| m).unwrap_or_default();
        assert!(message.contains("this is not json"), "{message}");
    }

    #[tokio::test]
    async fn unknown_type_and_wrong_id_are_bad_messages() {
        let mut adapter = started(&scripted(
            r#"echo '{"type":"progress","id":"r1"}'; sleep 30"#,
        ))
        .await;
        let g = adapter
            .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
            .await;
        assert_eq!(kind(&g), Some(ErrorKind::BadSse));

        let mut adapter = started(&scripted(
            r#"echo '{"type":"token","id":"other","text":"x"}'; sleep 30"#,
        ))
        .await;
        let g = adapter
            .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
            .await;
        assert_eq!(kind(&g), Some(ErrorKind::BadSse));
        let message = g.error.map(|(_, m)| m).unwrap_or_default();
        assert!(message.contains("other"), "{message}");
    }

    #[tokio::test]
    async fn exit_mid_generation_is_exited_with_stderr() {
        let mut adapter = started(&scripted(
            r#"echo '{"type":"token","id":"r1","text":"Hello"}'; echo 'boom: out of memory' >&2; exit 3"#,
        ))
        .await;
        let g = adapter
            .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
            .await;
        assert_eq!(kind(&g), Some(ErrorKind::ServerExited));
        let message = g.error.clone().map(|(_, m)| m).unwrap_or_default();
        assert!(message.contains("status 3"), "{message}");
        assert!(message.contains("boom: out of memory"), "{message}");
        assert_eq!(g.text, "Hello");
        assert!(g.ttft_ms.is_some());
        assert_eq!(g.output_tokens, None);

        // Once gone, it stays gone.
        let g = adapter
            .generate("r2", &user("hi"), &params(4), Duration::from_secs(5))
            .await;
        assert_eq!(kind(&g), Some(ErrorKind::ServerExited));
        let stopped = adapter.stop().await;
        assert_eq!(stopped.status, "exited with status 3");
    }

    #[tokio::test]
    async fn closed_stdout_while_running_is_early_eof() {
        let mut adapter = started(&scripted("exec >&-; sleep 30")).await;
        let g = adapter
            .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
            .await;
        assert_eq!(kind(&g), Some(ErrorKind::EarlyEof));
    }

    #[tokio::test]
    async fn silent_adapter_times_out_and_stop_kills_it() {
        let mut adapter = started(&scripted("sleep 30")).await;
        let started_at = Instant::now();
        let g = adapter
            .generate("r1", &user("hi"), &params(4), Duration::from_millis(300))
            .await;
        assert_eq!(kind(&g), Some(ErrorKind::Timeout));
        assert!(started_at.elapsed() < Duration::from_secs(2));
        assert_eq!(g.ttft_ms, None);

        let stop_at = Instant::now();
        let stopped = adapter.stop().await;
        assert!(!stopped.clean);
        assert!(stopped.status.contains("SIGKILL"), "{stopped:?}");
        assert!(stop_at.elapsed() < Duration::from_secs(5));
    }

    /// Waits up to 5 s for a stderr line starting with `prefix`.
    async fn wait_for_log(adapter: &Adapter, prefix: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !adapter
            .log_tail(LOG_RING_LINES)
            .iter()
            .any(|l| l.starts_with(prefix))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether `pid` is gone (or a zombie nobody reaped yet).
    fn gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn stop_takes_down_the_whole_group() {
        // One adapter leaves a child behind when it exits cleanly, the other
        // has to be killed; either way the child must not survive.
        for tail in ["read -r line", "sleep 30"] {
            let adapter = started(&sh(&format!(
                r#"sleep 300 & echo "child $!" >&2
                   echo '{{"type":"hello","protocol":1}}'; read -r line; echo '{{"type":"loaded"}}'; {tail}"#
            )))
            .await;
            wait_for_log(&adapter, "child ").await;
            let child = adapter
                .log_tail(1)
                .first()
                .and_then(|line| line.strip_prefix("child "))
                .map(str::to_owned)
                .unwrap_or_default();
            assert!(!child.is_empty() && !gone(&child));
            adapter.stop().await;
            let deadline = Instant::now() + Duration::from_secs(2);
            while !gone(&child) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(gone(&child), "child {child} survived ({tail})");
        }
    }

    #[tokio::test]
    async fn error_event_is_adapter_error() {
        let mut adapter = started(&scripted(
            r#"echo '{"type":"error","id":"r1","message":"CUDA out of memory"}'; read -r line"#,
        ))
        .await;
        let g = adapter
            .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
            .await;
        assert_eq!(
            g.error,
            Some((ErrorKind::ServerError, "CUDA out of memory".to_owned()))
        );
        let stopped = adapter.stop().await;
        assert!(stopped.clean, "{stopped:?}");
    }

    #[tokio::test]
    async fn chatty_stderr_does_not_block() {
        let script = r#"
import json, sys
def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n"); sys.stdout.flush()
noise = ("x" * 99 + "\n") * 10000  # 1 MB
sys.stderr.write(noise); sys.stderr.flush()
say({"type": "hello", "protocol": 1})
sys.stdin.readline()
say({"type": "loaded"})
req = json.loads(sys.stdin.readline())
sys.stderr.write(noise); sys.stderr.write("y" * 100000 + "\n"); sys.stderr.flush()
for word in ["a", "b", "c"]:
    say({"type": "token", "id": req["id"], "text": word})
say({"type": "done", "id": req["id"]})
sys.stderr.write("last line\n"); sys.stderr.flush()
sys.stdin.readline()
"#;
        let work = async {
            let mut adapter = started(&spec(&["python3", "-c", script])).await;
            let g = adapter
                .generate("r1", &user("hi"), &params(4), Duration::from_secs(20))
                .await;
            assert_eq!(g.error, None);
            assert_eq!(g.text, "abc");
            assert_eq!(g.output_tokens, Some(3));
            assert_eq!(g.token_source, Some(TokenSource::Estimate));
            let tail = adapter.log_tail(100);
            assert!(!tail.is_empty() && tail.len() <= LOG_RING_LINES);
            assert!(tail.iter().all(|line| line.len() <= MAX_LOG_LINE_BYTES));
            let stopped = adapter.stop().await;
            assert!(stopped.clean, "{stopped:?}");
        };
        if tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .is_err()
        {
            panic!("deadlocked");
        }
    }

    #[tokio::test]
    async fn log_ring_keeps_the_last_lines() {
        let mut adapter = started(&sh(
            r#"i=0; while [ $i -lt 120 ]; do echo "line $i" >&2; i=$((i+1)); done
               echo '{"type":"hello","protocol":1}'; read -r line; echo '{"type":"loaded"}'; read -r line; sleep 30"#,
        ))
        .await;
        // Stderr is read concurrently: give it a moment.
        wait_for_log(&adapter, "line 119").await;
        let tail = adapter.log_tail(100);
        assert_eq!(tail.len(), LOG_RING_LINES);
        assert_eq!(tail.last().map(String::as_str), Some("line 119"));
        assert_eq!(adapter.log_tail(2), vec!["line 118", "line 119"]);
        let g = adapter
            .generate("r1", &user("hi"), &params(4), Duration::from_millis(100))
            .await;
        assert_eq!(kind(&g), Some(ErrorKind::Timeout));
    }

    #[tokio::test]
    async fn start_failures() {
        let err = Adapter::start(&spec(&[])).await.err();
        assert!(matches!(err, Some(AdapterError::EmptyCommand)));

        let err = Adapter::start(&spec(&["/nonexistent/adapter"])).await.err();
        assert!(matches!(err, Some(AdapterError::Spawn { .. })), "{err:?}");

        let err = Adapter::start(&sh(r#"echo '{"type":"hello","protocol":2}'; sleep 30"#))
            .await
            .err();
        assert!(
            matches!(&err, Some(AdapterError::UnsupportedProtocol { version, .. }) if version == "2"),
            "{err:?}"
        );

        let err = Adapter::start(&sh(
            r#"echo '{"type":"hello","protocol":1}'; read -r line; echo 'no such file' >&2; echo '{"type":"error","message":"cannot open weights"}'; sleep 30"#,
        ))
        .await
        .err();
        let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            matches!(err, Some(AdapterError::LoadFailed { .. })),
            "{text}"
        );
        assert!(text.contains("cannot open weights"), "{text}");

        let err = Adapter::start(&sh("echo 'Loading model...'; sleep 30"))
            .await
            .err();
        assert!(
            matches!(err, Some(AdapterError::Protocol { .. })),
            "{err:?}"
        );

        let err = Adapter::start(&sh("echo 'bad weights' >&2; exit 2"))
            .await
            .err();
        let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(matches!(err, Some(AdapterError::Exited { .. })), "{text}");
        assert!(
            text.contains("status 2") && text.contains("bad weights"),
            "{text}"
        );

        let mut quick = sh("sleep 30");
        quick.load_timeout = Duration::from_millis(200);
        let err = Adapter::start(&quick).await.err();
        assert!(
            matches!(err, Some(AdapterError::LoadTimeout { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn params_leave_out_unset_fields_and_typed_fields_win() {
        let mut p = GenerateParams {
            max_tokens: Some(8),
            temperature: None,
            seed: None,
            extra: Map::new(),
        };
        p.extra.insert("max_tokens".into(), 99.into());
        p.extra.insert("top_k".into(), 40.into());
        let json = Value::Object(p.to_json()).to_string();
        assert_eq!(json, r#"{"max_tokens":8,"top_k":40}"#);
    }

    #[test]
    fn messages_serialize_as_documented() {
        let p = Map::new();
        let load = Outgoing::Load {
            protocol: 1,
            weights_path: None,
            params: &p,
        };
        assert_eq!(
            serde_json::to_string(&load).unwrap_or_default(),
            r#"{"type":"load","protocol":1,"weights_path":null,"params":{}}"#
        );
        assert_eq!(
            serde_json::to_string(&Outgoing::Shutdown).unwrap_or_default(),
            r#"{"type":"shutdown"}"#
        );
        assert_eq!(
            serde_json::to_string(&Outgoing::Cancel { id: "r1" }).unwrap_or_default(),
            r#"{"type":"cancel","id":"r1"}"#
        );
    }
}
