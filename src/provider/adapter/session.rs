//! A running adapter: its process group, the background tasks that drain
//! and timestamp its stdout and stderr the moment a line arrives, the
//! handshake, one generation at a time, and a stop that never leaves
//! anything behind.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::protocol::{
    GenerateParams, Incoming, MAX_LINE_BYTES, Message, Outgoing, PROTOCOL_VERSION, closed_stdout,
    excerpt, parse_line, wrong_id,
};
use crate::provider::Measured;
use crate::provider::process::{CLEAN_EXIT, Group, describe_exit, own_group};
use crate::results::{ErrorKind, TokenSource};

/// How many stderr lines are kept for [`Adapter::log_tail`].
pub(super) const LOG_RING_LINES: usize = 50;

/// Longer stderr lines are cut to this many bytes in the ring.
pub(super) const MAX_LOG_LINE_BYTES: usize = 4096;

/// How many stderr lines go into an error message.
pub(super) const ERROR_LOG_LINES: usize = 10;

/// After stdout closes, how long to wait for the process to exit (to tell
/// `Exited` from `EarlyEof`).
pub(super) const EXIT_WAIT: Duration = Duration::from_secs(1);

/// After the process exits, how long to keep reading stdout for lines it
/// wrote just before exiting (a child that inherited stdout may keep it open).
pub(super) const EXIT_DRAIN: Duration = Duration::from_millis(300);

/// After the process exits, how long to wait for the stderr reader to catch
/// up so the last lines are in error messages.
pub(super) const STDERR_DRAIN: Duration = Duration::from_millis(300);

/// How long writing a `cancel` or `shutdown` line may take.
pub(super) const CONTROL_WRITE: Duration = Duration::from_millis(200);

/// How long `stop` waits for the adapter to exit after `shutdown`.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long `stop` waits for the process to be reaped after SIGKILL.
pub(super) const KILL_WAIT: Duration = Duration::from_secs(2);

/// What to run and how to load it.
#[derive(Debug, Clone)]
pub(crate) struct AdapterSpec {
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

/// How an adapter ended after [`Adapter::stop`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stopped {
    /// It exited with status 0 on its own after `shutdown`.
    pub clean: bool,
    /// "exited with status 0", "killed by signal 9 (SIGKILL)", ...
    pub status: String,
}

/// Why an adapter could not be started. Every variant's message is meant
/// for the user; the ones after `Spawn` include the adapter's last stderr
/// lines. The process group is killed before any of them is returned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdapterError {
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
pub(crate) struct Adapter {
    program: String,
    pid: u32,
    /// The adapter leads its own process group.
    group: Group,
    /// On the list of groups an interrupt or a panic ends.
    _registered: crate::provider::children::Registration,
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
pub(super) enum StdoutEvent {
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
pub(super) enum Next {
    Line {
        at: Instant,
        bytes: Vec<u8>,
        too_long: bool,
    },
    /// Stdout closed or the process exited; `Adapter::dead` is now set.
    Closed(ErrorKind, String),
    TimedOut,
}

/// The last stderr lines.
#[derive(Debug, Default)]
pub(super) struct LogRing {
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
    pub(crate) async fn start(spec: &AdapterSpec) -> Result<(Adapter, Duration), AdapterError> {
        let started = Instant::now();
        let deadline = started + spec.load_timeout;
        let mut adapter = Adapter::spawn(spec)?;
        adapter.handshake(spec, deadline).await?;
        let loaded = adapter.load(spec, deadline).await?;
        Ok((adapter, loaded.saturating_duration_since(started)))
    }

    /// Spawns the adapter in its own group, with the tasks that drain its
    /// stdout and stderr and the one that reaps it.
    fn spawn(spec: &AdapterSpec) -> Result<Adapter, AdapterError> {
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

        let spawn_error = |source| AdapterError::Spawn {
            program: program.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        // Until `adapter` exists, dropping `child` kills the leader
        // (kill_on_drop); nothing else can be running yet.
        let (pid, group) = Group::of(&child).map_err(spawn_error)?;
        let registered = group.register();
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
        let leftovers = group.clone();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(err) => format!("could not be waited for ({err})"),
            };
            // Take down whatever the adapter left in its group now: once
            // the leader is reaped and the group is empty, the group id may
            // be reused, so later signals are only sent while the leader
            // has not been reaped (see `Adapter::kill_group`).
            leftovers.kill();
            // Nobody listening any more is fine.
            let _ = exit_tx.send(Some(status));
        });

        // From here on, dropping `adapter` (an error below, or the caller
        // dropping this future) kills the whole group.
        Ok(Adapter {
            program: program.clone(),
            pid,
            group,
            _registered: registered,
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
        })
    }

    /// Waits for `hello` and checks the protocol version.
    async fn handshake(
        &mut self,
        spec: &AdapterSpec,
        deadline: Instant,
    ) -> Result<(), AdapterError> {
        // 1. hello
        let hello = self
            .next_start_message(deadline, spec, "send `hello`")
            .await?;
        match hello {
            (_, Incoming::Hello { protocol }) => {
                if protocol.as_u64() != Some(PROTOCOL_VERSION) {
                    return Err(AdapterError::UnsupportedProtocol {
                        program: self.program.clone(),
                        version: protocol.to_string(),
                    });
                }
            }
            (_, Incoming::Error { message, .. }) => return Err(self.load_failed(message)),
            (_, other) => {
                return Err(self.protocol_error(format!(
                    "the first line must be `hello`, got `{}`",
                    other.type_name()
                )));
            }
        }
        Ok(())
    }

    /// Sends `load` and waits for `loaded`; returns when it arrived.
    async fn load(
        &mut self,
        spec: &AdapterSpec,
        deadline: Instant,
    ) -> Result<Instant, AdapterError> {
        // 2. load → loaded
        let load = Outgoing::Load {
            protocol: PROTOCOL_VERSION,
            weights_path: spec.weights_path.as_deref(),
            params: &spec.params,
        };
        match tokio::time::timeout_at(deadline, self.write_message(&load)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                let (_, message) = self
                    .closed(&format!("stopped reading its stdin ({err})"))
                    .await;
                return Err(AdapterError::Exited {
                    program: self.program.clone(),
                    message,
                });
            }
            Err(_) => return Err(self.load_timeout(spec, "read `load`")),
        }
        match self
            .next_start_message(deadline, spec, "send `loaded`")
            .await?
        {
            (at, Incoming::Loaded { info }) => {
                self.info = info;
                Ok(at)
            }
            (_, Incoming::Error { message, .. }) => Err(self.load_failed(message)),
            (_, other) => Err(self.protocol_error(format!(
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
    pub(crate) async fn generate(
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
    /// the adapter exits, anything it left in its group is `SIGKILLed` at
    /// once. Never panics.
    pub(crate) async fn stop(mut self) -> Stopped {
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
    pub(crate) fn log_tail(&self, lines: usize) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tail(lines)
    }

    /// The `info` object of the adapter's `loaded` message, if it sent one.
    pub(crate) fn info(&self) -> Option<&Value> {
        self.info.as_ref()
    }

    /// The adapter's pid (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
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
                    if let Some(n) = completion {
                        g.output_tokens = Some(n);
                        g.token_source = Some(TokenSource::Usage);
                    } else {
                        g.output_tokens = Some(content_events);
                        g.token_source = Some(TokenSource::Estimate);
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
pub(super) async fn read_stdout<R: AsyncBufRead + Unpin>(
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
pub(super) async fn read_stderr<R: AsyncBufRead + Unpin>(mut reader: R, log: Arc<Mutex<LogRing>>) {
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
pub(super) async fn read_capped_line<R: AsyncBufRead + Unpin>(
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

/// Milliseconds from `since` to `at` (0 if `at` is earlier).
pub(super) fn ms(since: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(since).as_secs_f64() * 1000.0
}
