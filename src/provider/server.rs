//! Managed servers: start a local server process on a free port, wait until
//! it is ready, watch it, stop its whole process group; never sends
//! benchmark requests.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Child;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::openai::{self, Target};
use super::process::{Group, crashed, describe_exit, own_group};
use super::{Measured, Progress, Request, Started, Stopped};
use crate::measure::resources::gpu_snapshot;
use crate::plan::Variant;
use crate::results::ErrorKind;
use crate::secrets::Secrets;
use crate::suite::Server;

/// How often readiness, exits and group membership are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// One readiness request may take at most this long.
const READY_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `stop` waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long to wait for the process to be reaped after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How many log lines go into an error.
const ERROR_LOG_LINES: usize = 10;
/// `log_tail` reads at most this many bytes from the end of the log.
const TAIL_BYTES: u64 = 64 * 1024;
/// How much of a launch's log is read for the engine's build lines.
const LOG_HEAD_BYTES: u64 = 256 * 1024;

/// What to run and how to tell that it is ready.
#[derive(Debug, Clone)]
pub(crate) struct ServerSpec {
    /// The server's name in the suite, used in every message.
    pub name: String,
    /// Program and arguments; every `{port}` is replaced by the chosen port.
    pub command: Vec<String>,
    /// Path polled with `GET` until it answers 200, e.g. `/health`.
    pub ready_path: String,
    /// How long the server may take to become ready.
    pub startup_timeout: Duration,
    /// Extra environment variables for the server (`{port}` is replaced in
    /// the values too).
    pub env: BTreeMap<String, String>,
    /// Where stdout and stderr are appended; parent directories are created.
    pub log_path: PathBuf,
    /// Values the log's command line shows as `<redacted>`.
    pub secrets: Secrets,
}

/// Why a managed server could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServerError {
    #[error(
        "server `{name}`: could not start `{program}`: {source} \
         (run `make engine` to install the local engine, or check the program path in the server's command)"
    )]
    Spawn {
        name: String,
        program: String,
        source: std::io::Error,
    },
    #[error(
        "server `{name}` {status} before it was ready{engine}; last log lines (full log: {}):\n{log_tail}",
        log_path.display()
    )]
    ExitedEarly {
        name: String,
        status: String,
        /// The engine's build and, for a crash of dyno's own engine, what
        /// to do (` (engine b11434 …); …`); empty when nothing is known.
        engine: String,
        log_tail: String,
        log_path: PathBuf,
    },
    #[error(
        "server `{name}` was not ready after {timeout_s:.1} s (GET {url} never answered 200) and was killed; \
         last log lines (full log: {}):\n{log_tail}",
        log_path.display()
    )]
    NotReady {
        name: String,
        timeout_s: f64,
        url: String,
        log_tail: String,
        log_path: PathBuf,
    },
    #[error("server `{name}`: cannot open log file {}: {source}", path.display())]
    Log {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("server `{name}`: cannot find a free port on 127.0.0.1: {source}")]
    Port {
        name: String,
        source: std::io::Error,
    },
    #[error("server `{name}`: for the readiness check, {source}")]
    Client {
        name: String,
        source: super::http::ClientError,
    },
}

/// A started server. Dropping it without `stop` SIGKILLs its process group.
#[derive(Debug)]
pub(crate) struct RunningServer {
    name: String,
    child: Child,
    pid: u32,
    /// The server leads its own process group.
    group: Group,
    /// On the list of groups an interrupt or a panic ends.
    _registered: super::children::Registration,
    port: u16,
    log_path: PathBuf,
    /// Where this run's output starts in the (appended) log file.
    log_start: u64,
    load_ms: f64,
    /// The program the command runs (the engine).
    program: String,
    /// The exit, once it has been seen (the child is then reaped).
    exited: Option<String>,
    /// The exit was a crash (SIGSEGV, SIGILL, SIGBUS).
    crashed: bool,
    /// Set once the group has been signalled for good; `Drop` then does nothing.
    stopped: bool,
}

impl RunningServer {
    /// Picks a free 127.0.0.1 port (bind port 0, read it, drop), replaces
    /// every `{port}` in the command args, spawns the program in its own
    /// process group, stdout+stderr appended to `log_path` (parent dirs are
    /// created), stdin null, `kill_on_drop`; polls
    /// `GET http://127.0.0.1:{port}{ready_path}` every 50 ms until it returns
    /// 200 (llama-server answers 503 while loading), measuring load time from
    /// just before spawn to the first 200. A process that exits before it is
    /// ready fails at once; one that is not ready in time is killed (whole
    /// group) before the error is returned.
    pub(crate) async fn start(spec: &ServerSpec) -> Result<RunningServer, ServerError> {
        let name = spec.name.clone();
        let port = free_port().map_err(|source| ServerError::Port {
            name: name.clone(),
            source,
        })?;
        let port_text = port.to_string();
        let command: Vec<String> = spec
            .command
            .iter()
            .map(|arg| arg.replace("{port}", &port_text))
            .collect();
        let Some((program, args)) = command.split_first() else {
            return Err(ServerError::Spawn {
                name,
                program: String::new(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the server's command is empty",
                ),
            });
        };
        let client = super::http::client(super::http::Purpose::Local, None).map_err(|source| {
            ServerError::Client {
                name: name.clone(),
                source,
            }
        })?;

        let log_error = |source| ServerError::Log {
            name: name.clone(),
            path: spec.log_path.clone(),
            source,
        };
        let shown = spec.secrets.redact(&command.join(" "));
        let (log, log_start) = open_log(&spec.log_path, &name, &shown).map_err(log_error)?;
        // With secrets to keep, the server's output passes through dyno and
        // is redacted line by line; otherwise it goes straight to the log.
        let redacting = !spec.secrets.is_empty();
        let (stdout, stderr) = if redacting {
            (Stdio::piped(), Stdio::piped())
        } else {
            let stderr = log.try_clone().map_err(log_error)?;
            (
                Stdio::from(log.try_clone().map_err(log_error)?),
                Stdio::from(stderr),
            )
        };

        let mut std_command = std::process::Command::new(program);
        std_command
            .args(args)
            .envs(
                spec.env
                    .iter()
                    .map(|(key, value)| (key, value.replace("{port}", &port_text))),
            )
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        own_group(&mut std_command);
        let mut tokio_command = tokio::process::Command::from(std_command);
        tokio_command.kill_on_drop(true);

        let started = Instant::now();
        let spawn_error = |source| ServerError::Spawn {
            name: name.clone(),
            program: program.clone(),
            source,
        };
        let mut child = tokio_command.spawn().map_err(spawn_error)?;
        if redacting {
            if let Some(out) = child.stdout.take() {
                let log = log.try_clone().map_err(log_error)?;
                copy_redacted(out, log, spec.secrets.clone());
            }
            if let Some(err) = child.stderr.take() {
                copy_redacted(err, log, spec.secrets.clone());
            }
        }
        let (pid, group) = Group::of(&child).map_err(spawn_error)?;
        let registered = group.register();
        if let Some(dir) = spec.log_path.parent() {
            super::orphans::started(dir, pid, &name, &shown);
        }
        // From here on, dropping `server` (an error below, or the caller
        // dropping this future) kills the whole group.
        let server = RunningServer {
            name,
            child,
            pid,
            group,
            _registered: registered,
            port,
            log_path: spec.log_path.clone(),
            log_start,
            load_ms: 0.0,
            program: program.clone(),
            exited: None,
            crashed: false,
            stopped: false,
        };

        server.wait_ready(spec, &client, started).await
    }

    /// Polls the ready path until it answers 200 (the load time counted
    /// from `started`), the server exits, or the startup timeout passes
    /// (the group is then killed).
    async fn wait_ready(
        mut self,
        spec: &ServerSpec,
        client: &reqwest::Client,
        started: Instant,
    ) -> Result<RunningServer, ServerError> {
        let path = if spec.ready_path.starts_with('/') {
            spec.ready_path.clone()
        } else {
            format!("/{}", spec.ready_path)
        };
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let deadline = started + spec.startup_timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(self.fail_exited(status).await);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = remaining.clamp(POLL_INTERVAL, READY_REQUEST_TIMEOUT);
            let ready = matches!(
                client.get(&url).timeout(attempt).send().await,
                Ok(response) if response.status() == reqwest::StatusCode::OK
            );
            if ready {
                let load = started.elapsed();
                // A 200 from whatever else took the port does not count.
                if let Some(status) = self.exit_status() {
                    return Err(self.fail_exited(status).await);
                }
                self.load_ms = load.as_secs_f64() * 1000.0;
                return Ok(self);
            }
            if Instant::now() >= deadline {
                self.kill_now().await;
                return Err(ServerError::NotReady {
                    name: self.name.clone(),
                    timeout_s: spec.startup_timeout.as_secs_f64(),
                    url,
                    log_tail: self.log_tail(ERROR_LOG_LINES),
                    log_path: self.log_path.clone(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL.min(remaining)).await;
        }
    }

    /// The OpenAI-compatible base URL: `http://127.0.0.1:{port}/v1`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Milliseconds from just before spawn to the first 200 on the ready path.
    pub(crate) fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// The server's pid (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some("exited with status 1")`, `Some("killed by signal 9 (SIGKILL)")`
    /// and the like once the process has exited; `None` while it runs.
    /// Never blocks.
    pub(crate) fn exit_status(&mut self) -> Option<String> {
        if self.exited.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exited = Some(describe_exit(status));
            self.crashed = crashed(status);
        }
        self.exited.clone()
    }

    /// The last `n` lines this run wrote to the log (lossy UTF-8), for error
    /// messages; a note saying so when it wrote nothing.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        match tail_lines(&self.log_path, self.log_start, n) {
            Ok(tail) if tail.is_empty() => {
                format!("(no output in {})", self.log_path.display())
            }
            Ok(tail) => tail,
            Err(err) => format!("(cannot read {}: {err})", self.log_path.display()),
        }
    }

    /// SIGTERM to the whole process group, wait up to 5 s for the server
    /// and everything it started to exit, then SIGKILL the group; reaps the
    /// child. Never panics.
    pub(crate) async fn stop(mut self) {
        if self.stopped {
            return;
        }
        self.group.terminate();
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            if self.exit_status().is_some() && !self.group.alive() {
                self.stopped = true;
                self.ended();
                return;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        self.kill_now().await;
    }

    /// SIGKILL the group, reap the child, and give the kernel a moment to
    /// take the rest of the group down.
    async fn kill_now(&mut self) {
        self.group.kill();
        self.stopped = true;
        self.ended();
        if self.exited.is_none()
            && let Ok(Ok(status)) = tokio::time::timeout(KILL_WAIT, self.child.wait()).await
        {
            self.exited = Some(describe_exit(status));
        }
        let deadline = Instant::now() + KILL_WAIT;
        while self.group.alive() && Instant::now() < deadline {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The leader exited before it was ready: kill what it left behind and
    /// say why, naming the engine's build; a crash of the engine dyno's
    /// setup built gets what to do about it.
    async fn fail_exited(&mut self, status: String) -> ServerError {
        self.kill_now().await;
        let identified = super::engine::identify(&self.program, &self.log_text(), None);
        let mut engine = identified
            .as_ref()
            .map_or_else(String::new, |e| format!(" (engine {})", e.describe()));
        if self.crashed && identified.is_some_and(|e| e.setup.is_some()) {
            engine.push_str(
                "; this engine was built by dyno's setup for this machine and crashes here: \
                 run `make engine` again (it smoke-tests the cached build and rebuilds one that fails), \
                 or set DYNO_ENGINE_PORTABLE=1 to build a portable engine",
            );
        }
        ServerError::ExitedEarly {
            name: self.name.clone(),
            status,
            engine,
            log_tail: self.log_tail(ERROR_LOG_LINES),
            log_path: self.log_path.clone(),
        }
    }

    /// Writes down that the group ended: a later run has nothing to end.
    fn ended(&self) {
        if let Some(dir) = self.log_path.parent() {
            super::orphans::stopped(dir, self.pid);
        }
    }

    /// What this run wrote to the log, its first `LOG_HEAD_BYTES` (lossy
    /// UTF-8): where an engine says what it is.
    fn log_text(&self) -> String {
        let read = || -> std::io::Result<String> {
            let mut file = File::open(&self.log_path)?;
            file.seek(SeekFrom::Start(self.log_start))?;
            let mut bytes = Vec::new();
            file.take(LOG_HEAD_BYTES).read_to_end(&mut bytes)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        read().unwrap_or_default()
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if !self.stopped {
            self.group.kill();
            self.ended();
        }
    }
}

/// The longest piece of a server's output redacted at once: a longer line
/// is redacted in pieces of this size.
const MAX_LOG_LINE: u64 = 64 * 1024;

/// Appends what `output` (a server's stdout or stderr) prints to `log`,
/// line by line, each with `secrets` redacted; ends when the server closes
/// it (exits). A log that cannot be written loses those lines, not the run.
fn copy_redacted(
    output: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    mut log: File,
    secrets: Secrets,
) {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(output);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader)
                .take(MAX_LOG_LINE)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = secrets.redact(&String::from_utf8_lossy(&line));
                    let _ = log.write_all(text.as_bytes());
                }
            }
        }
    });
}

/// Binds 127.0.0.1:0, reads the port the kernel chose and frees it again.
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Opens the log for appending (creating its directory), writes a marker
/// line for this run with the command as shown (secrets redacted), and
/// returns the file and the offset after the marker.
fn open_log(path: &Path, name: &str, command: &str) -> std::io::Result<(File, u64)> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "--- dyno: starting server `{name}`: {command} ---")?;
    let start = file.metadata()?.len();
    Ok((file, start))
}

/// The last `n` lines of `path` from byte `start` on, reading at most
/// `TAIL_BYTES` from the end.
fn tail_lines(path: &Path, start: u64, n: usize) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let from = start.max(len.saturating_sub(TAIL_BYTES));
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if from > start && !lines.is_empty() {
        // The first line was cut by the byte limit.
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..].join("\n"))
}

/// How dyno starts `server` in `variant`; its log goes under
/// `work_dir/logs`, named after the server and variant with every
/// character that could leave that directory replaced.
pub(crate) fn spec(
    name: &str,
    server: &Server,
    variant: &Variant,
    work_dir: &Path,
    secrets: &Secrets,
) -> ServerSpec {
    let log_name = match variant.label() {
        Some(v) => log_file_name(&format!("{name}[{v}]")),
        None => log_file_name(name),
    };
    ServerSpec {
        name: name.to_string(),
        command: server.command.iter().map(|a| variant.fill(a)).collect(),
        ready_path: server.ready.clone(),
        startup_timeout: Duration::from_secs(u64::from(server.startup_timeout_s)),
        env: server
            .env
            .iter()
            .map(|(k, v)| (k.clone(), variant.fill(v)))
            .collect(),
        log_path: work_dir.join("logs").join(log_name),
        secrets: secrets.clone(),
    }
}

/// The longest log file stem, in bytes (file systems allow 255).
const MAX_LOG_STEM: usize = 200;

/// `<stem>.log` as one plain file name: characters other than letters,
/// digits and `_ - . , = [ ]` become `_`, a leading `.` (hidden files, `..`)
/// becomes `_`, and a long stem is cut.
fn log_file_name(stem: &str) -> String {
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "_-.,=[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with('.') || name.is_empty() {
        name.insert(0, '_');
    }
    let mut end = name.len().min(MAX_LOG_STEM);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    format!("{name}.log")
}

/// A managed server as a [`super::Provider`]: one process per launch,
/// requests over OpenAI-compatible HTTP, its process tree sampled.
pub(crate) struct Managed {
    spec: ServerSpec,
    http: super::Timed,
    running: Option<(RunningServer, Target)>,
    /// The first launch has happened (the GPU is read once).
    launched: bool,
}

impl Managed {
    pub(crate) fn new(spec: ServerSpec, http: super::Timed) -> Managed {
        Managed {
            spec,
            http,
            running: None,
            launched: false,
        }
    }
}

impl super::Provider for Managed {
    fn start<'a>(
        &'a mut self,
        _: Progress<'a>,
    ) -> BoxFuture<'a, Result<Started, super::ProviderError>> {
        async move {
            let running = RunningServer::start(&self.spec)
                .await
                .map_err(|e| super::ProviderError::Start(e.to_string()))?;
            let target = Target::local(running.base_url(), &self.spec.secrets);
            let first = !self.launched;
            self.launched = true;
            let version = openai::server_version(&self.http.one, &target).await;
            let engine =
                super::engine::identify(&running.program, &running.log_text(), version.as_deref());
            let started = Started {
                load: Some(Duration::from_secs_f64(running.load_ms() / 1000.0)),
                pid: Some(running.pid()),
                description: format!(
                    "ready in {:.0} ms at {}",
                    running.load_ms(),
                    running.base_url()
                ),
                version,
                gpu: if first { gpu_snapshot() } else { None },
                resolved: None,
                engine,
            };
            self.running = Some((running, target));
            Ok(started)
        }
        .boxed()
    }

    fn measure<'a>(&'a mut self, request: &'a Request) -> BoxFuture<'a, Measured> {
        async move {
            match &self.running {
                Some((_, target)) => {
                    openai::chat(&self.http.one, target, &request.model, request).await
                }
                None => Measured::failed(ErrorKind::ServerExited, "the server is not running"),
            }
        }
        .boxed()
    }

    fn died(&mut self) -> Option<super::ProviderError> {
        let (running, _) = self.running.as_mut()?;
        let status = running.exit_status()?;
        Some(super::ProviderError::Died(format!(
            "server {status} during the request; last log lines:\n{}",
            running.log_tail(ERROR_LOG_LINES)
        )))
    }

    fn sender(&self) -> Option<std::sync::Arc<dyn super::Concurrent>> {
        let (_, target) = self.running.as_ref()?;
        Some(std::sync::Arc::new(super::HttpSender::new(
            self.http.kept.clone(),
            target.clone(),
            None,
        )))
    }

    fn stop(&mut self) -> BoxFuture<'_, Stopped> {
        async move {
            let Some((mut running, _)) = self.running.take() else {
                return Stopped::default();
            };
            let exit = running.exit_status();
            running.stop().await;
            Stopped {
                exit,
                ..Stopped::default()
            }
        }
        .boxed()
    }
}

// The tests start shell scripts and signal them.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::provider::process::proc_state;

    /// `kill(2)` for the tests' own checks; true if delivered.
    fn send_signal(pid: libc::pid_t, signal: libc::c_int) -> bool {
        // SAFETY: kill(2) takes two integers and touches no memory.
        unsafe { libc::kill(pid, signal) == 0 }
    }

    fn log_path(test: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("dyno-server-test-{}-{test}", std::process::id()))
            .join("server.log")
    }

    fn spec(test: &str, command: &[&str], ready_path: &str, timeout: Duration) -> ServerSpec {
        ServerSpec {
            name: format!("test-{test}"),
            command: command
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            ready_path: ready_path.to_string(),
            startup_timeout: timeout,
            env: BTreeMap::new(),
            log_path: log_path(test),
            secrets: Secrets::default(),
        }
    }

    #[test]
    fn names_with_dot_dot_cannot_put_a_log_outside_the_logs_dir() {
        let server = Server {
            command: vec!["x".into(), "{port}".into(), "{v}".into()],
            ready: "/health".into(),
            startup_timeout_s: 1,
            env: BTreeMap::new(),
            variants: vec![("v".into(), vec!["../../../etc/x".into()])],
            cold_start: false,
        };
        let variant = Variant::of_server(&server).remove(0);
        let work = Path::new("/work/out");
        for (name, variant) in [
            ("../../escape", &variant),
            ("..", &Variant::Default),
            ("a/b\\c\0d", &Variant::Default),
        ] {
            let spec = super::spec(name, &server, variant, work, &Secrets::default());
            assert_eq!(
                spec.log_path.parent(),
                Some(work.join("logs").as_path()),
                "{name}: {}",
                spec.log_path.display()
            );
            let file = spec
                .log_path
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or("");
            assert!(
                !file.starts_with('.') && spec.log_path.extension().is_some_and(|e| e == "log"),
                "{file}"
            );
        }
        let spec = super::spec("../../escape", &server, &variant, work, &Secrets::default());
        assert_eq!(
            spec.log_path,
            work.join("logs/_.._.._escape[v=.._.._.._etc_x].log")
        );
        assert_eq!(log_file_name(&"é".repeat(150)).len(), 200 + 4);
    }

    /// Removes the test's log directory.
    fn cleanup(spec: &ServerSpec) {
        if let Some(dir) = spec.log_path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Gone, or a zombie nobody has reaped yet.
    fn process_gone(pid: libc::pid_t) -> bool {
        !send_signal(pid, 0) || proc_state(pid).is_none_or(|(state, _)| matches!(state, 'Z' | 'X'))
    }

    /// Waits (up to 5 s) until `path` has a line `key=PID` and returns PID.
    async fn pid_from_log(path: &Path, key: &str) -> libc::pid_t {
        let prefix = format!("{key}=");
        for _ in 0..100 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if let Some(pid) = text
                .lines()
                .find_map(|line| line.strip_prefix(&prefix))
                .and_then(|pid| pid.trim().parse().ok())
            {
                return pid;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        panic!("no `{key}=` line in {}", path.display());
    }

    const PYTHON_SERVER: &[&str] = &[
        "python3",
        "-m",
        "http.server",
        "{port}",
        "--bind",
        "127.0.0.1",
    ];

    #[tokio::test]
    async fn python_server_becomes_ready_on_the_chosen_port() {
        let spec = spec("ready", PYTHON_SERVER, "/", Duration::from_secs(30));
        let mut server = RunningServer::start(&spec).await.expect("server starts");
        let port = server.port;
        assert_ne!(port, 0);
        assert_eq!(server.base_url(), format!("http://127.0.0.1:{port}/v1"));
        assert!(server.load_ms() > 0.0, "load_ms = {}", server.load_ms());
        assert!(server.exit_status().is_none());
        // `{port}` was substituted: the server really listens there.
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(spec.log_path.exists());
        let pid = libc::pid_t::try_from(server.pid()).unwrap();
        server.stop().await;
        assert!(process_gone(pid));
        cleanup(&spec);
    }

    #[tokio::test]
    async fn env_and_ready_path_without_slash() {
        let mut spec = spec(
            "env",
            &[
                "sh",
                "-c",
                "echo \"got=$DYNO_TEST_PORT\"; exec python3 -m http.server \"$0\" --bind 127.0.0.1",
                "{port}",
            ],
            "",
            Duration::from_secs(30),
        );
        spec.env.insert("DYNO_TEST_PORT".into(), "p{port}".into());
        let server = RunningServer::start(&spec).await.expect("server starts");
        let log = std::fs::read_to_string(&spec.log_path).unwrap();
        assert!(log.contains(&format!("got=p{}", server.port)), "log: {log}");
        server.stop().await;
        cleanup(&spec);
    }

    #[tokio::test]
    async fn immediate_exit_is_exited_early_with_the_log() {
        let spec = spec(
            "exits",
            &["sh", "-c", "echo boom >&2; exit 3", "{port}"],
            "/health",
            Duration::from_secs(30),
        );
        let started = Instant::now();
        let err = RunningServer::start(&spec).await.expect_err("must fail");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not wait for the timeout"
        );
        assert!(
            matches!(&err, ServerError::ExitedEarly { status, .. } if status == "exited with status 3"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("boom"), "{message}");
        assert!(message.contains("exited with status 3"), "{message}");
        assert!(message.contains("test-exits"), "{message}");
        cleanup(&spec);
    }

    /// A crash at model load, as an engine built for another CPU crashes:
    /// the error names the signal and the engine's build and, for the
    /// engine dyno's setup built (its marker beside `bin/`), what to do.
    #[tokio::test]
    async fn issue_22_a_crash_before_ready_names_the_engine_and_what_to_do() {
        let engine = tempfile::tempdir().unwrap();
        let bin = engine.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let program = bin.join("llama-server");
        std::fs::write(
            &program,
            "#!/bin/sh\necho 'common_init: build 11434 (0a1b2c3) with cc for x86_64' >&2\n\
             echo 'system_info: n_threads = 2 / 2 | CPU : AVX2 = 1 | AMX_INT8 = 1 |' >&2\n\
             kill -SEGV $$\n",
        )
        .unwrap();
        std::fs::set_permissions(
            &program,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let program = program.to_str().unwrap();
        let run = |test: &'static str| {
            let spec = spec(
                test,
                &[program, "{port}"],
                "/health",
                Duration::from_secs(30),
            );
            async move {
                let err = RunningServer::start(&spec).await.expect_err("must fail");
                cleanup(&spec);
                err.to_string()
            }
        };
        // Someone else's engine: the signal and the build, no advice.
        let message = run("segv-foreign").await;
        assert!(
            message.contains("killed by signal 11 (SIGSEGV)"),
            "{message}"
        );
        assert!(
            message.contains("before it was ready (engine b11434 0a1b2c3: AVX2 AMX_INT8)"),
            "{message}"
        );
        assert!(!message.contains("DYNO_ENGINE_PORTABLE"), "{message}");
        // dyno's own engine: the build kind and what to do.
        std::fs::write(
            engine.path().join("build.json"),
            r#"{"written_by": "dyno scripts/setup-engine.sh", "kind": "native",
                "cmake_flags": ["-DGGML_NATIVE=ON"], "smoke_test": "passed"}"#,
        )
        .unwrap();
        let message = run("segv-own").await;
        assert!(
            message.contains(
                "(engine b11434 0a1b2c3 (native build: -DGGML_NATIVE=ON): AVX2 AMX_INT8)"
            ),
            "{message}"
        );
        assert!(message.contains("run `make engine` again"), "{message}");
        assert!(message.contains("DYNO_ENGINE_PORTABLE=1"), "{message}");
    }

    /// A server that prints its arguments and environment: its log holds
    /// neither secret, line by line, as every other output of dyno.
    #[tokio::test]
    async fn issue_23_a_server_that_prints_its_secrets_leaves_none_in_its_log() {
        let mut spec = spec(
            "prints-secrets",
            &[
                "sh",
                "-c",
                "echo \"args: $*\"; echo \"key: $MY_API_KEY\" >&2; \
                 exec python3 -m http.server \"$1\" --bind 127.0.0.1",
                "sh",
                "{port}",
                "--api-key",
                "SECRETVALUE123",
            ],
            "/",
            Duration::from_secs(30),
        );
        spec.env
            .insert("MY_API_KEY".into(), "env-secret-value".into());
        spec.secrets.add("SECRETVALUE123");
        spec.secrets.add("env-secret-value");
        let server = RunningServer::start(&spec).await.expect("server starts");
        server.stop().await;
        // The copy ends when the server closes its output.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut log = String::new();
        while !(log.contains("key: <redacted>") && log.contains("args: "))
            && Instant::now() < deadline
        {
            tokio::time::sleep(POLL_INTERVAL).await;
            log = std::fs::read_to_string(&spec.log_path).unwrap();
        }
        assert!(log.contains("key: <redacted>"), "{log}");
        assert!(log.contains("--api-key <redacted>"), "{log}");
        assert!(!log.contains("SECRETVALUE123"), "{log}");
        assert!(!log.contains("env-secret-value"), "{log}");
        cleanup(&spec);
    }

    #[tokio::test]
    async fn never_ready_times_out_and_kills_the_group() {
        let spec = spec(
            "never-ready",
            &[
                "sh",
                "-c",
                "echo pid=$$; sleep 30 & echo bg=$!; sleep 30",
                "{port}",
            ],
            "/health",
            Duration::from_secs(1),
        );
        let started = Instant::now();
        let err = RunningServer::start(&spec)
            .await
            .expect_err("must time out");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(1), "{waited:?}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        assert!(
            matches!(&err, ServerError::NotReady { timeout_s, .. } if *timeout_s == 1.0),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("test-never-ready"), "{message}");
        assert!(message.contains("pid="), "{message}");
        let pid = pid_from_log(&spec.log_path, "pid").await;
        let bg = pid_from_log(&spec.log_path, "bg").await;
        // The leader was reaped by us: kill(2) fails outright.
        assert!(!send_signal(pid, 0), "leader {pid} still exists");
        assert!(process_gone(bg), "background child {bg} still runs");
        assert!(
            !Group::of_pgid(pid).alive(),
            "group {pid} still has live members"
        );
        cleanup(&spec);
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let spec = spec(
            "missing",
            &["/nonexistent/dyno-no-such-server", "--port", "{port}"],
            "/health",
            Duration::from_secs(5),
        );
        let err = RunningServer::start(&spec).await.expect_err("must fail");
        assert!(
            matches!(&err, ServerError::Spawn { program, .. } if program == "/nonexistent/dyno-no-such-server"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("test-missing"), "{message}");
        assert!(message.contains("make engine"), "{message}");
        cleanup(&spec);
    }

    #[tokio::test]
    async fn empty_command_is_a_spawn_error() {
        let spec = spec("empty", &[], "/health", Duration::from_secs(5));
        let err = RunningServer::start(&spec).await.expect_err("must fail");
        assert!(matches!(err, ServerError::Spawn { .. }), "{err:?}");
        cleanup(&spec);
    }

    /// A ready server (python's http.server) whose shell leaves a background
    /// `sleep` behind and logs its pid as `bg=PID`.
    fn server_with_grandchild(name: &str) -> ServerSpec {
        spec(
            name,
            &[
                "sh",
                "-c",
                "sleep 60 & echo bg=$!; exec python3 -m http.server \"$0\" --bind 127.0.0.1",
                "{port}",
            ],
            "/",
            Duration::from_secs(30),
        )
    }

    #[tokio::test]
    async fn stop_kills_the_whole_group_including_grandchildren() {
        let spec = server_with_grandchild("grandchild");
        let server = RunningServer::start(&spec).await.expect("server starts");
        let pid = libc::pid_t::try_from(server.pid()).unwrap();
        let bg = pid_from_log(&spec.log_path, "bg").await;
        assert!(!process_gone(bg), "grandchild should run before stop");
        let stopping = Instant::now();
        server.stop().await;
        // SIGTERM was enough: no wait for the 5 s grace period.
        assert!(stopping.elapsed() < STOP_GRACE, "{:?}", stopping.elapsed());
        assert!(!send_signal(pid, 0), "leader {pid} still exists");
        assert!(process_gone(bg), "grandchild {bg} still runs");
        assert!(!Group::of_pgid(pid).alive());
        cleanup(&spec);
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill_when_sigterm_is_ignored() {
        let spec = spec(
            "ignores-term",
            &[
                "sh",
                "-c",
                "trap '' TERM; exec python3 -m http.server \"$0\" --bind 127.0.0.1",
                "{port}",
            ],
            "/",
            Duration::from_secs(30),
        );
        let server = RunningServer::start(&spec).await.expect("server starts");
        let pid = libc::pid_t::try_from(server.pid()).unwrap();
        let stopping = Instant::now();
        server.stop().await;
        assert!(stopping.elapsed() >= STOP_GRACE, "{:?}", stopping.elapsed());
        assert!(!send_signal(pid, 0), "server {pid} survived SIGKILL");
        cleanup(&spec);
    }

    #[tokio::test]
    async fn exit_status_reports_a_server_killed_from_outside() {
        let spec = spec("killed", PYTHON_SERVER, "/", Duration::from_secs(30));
        let mut server = RunningServer::start(&spec).await.expect("server starts");
        assert_eq!(server.exit_status(), None);
        let pid = libc::pid_t::try_from(server.pid()).unwrap();
        assert!(send_signal(pid, libc::SIGKILL));
        let mut status = None;
        for _ in 0..100 {
            status = server.exit_status();
            if status.is_some() {
                break;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let status = status.expect("exit is seen");
        assert!(status.starts_with("killed by signal 9"), "{status}");
        // Stable once seen, and stop() after an exit is harmless.
        assert_eq!(server.exit_status(), Some(status));
        server.stop().await;
        cleanup(&spec);
    }

    #[tokio::test]
    async fn dropping_a_running_server_kills_its_group() {
        let spec = server_with_grandchild("dropped");
        let server = RunningServer::start(&spec).await.expect("server starts");
        let bg = pid_from_log(&spec.log_path, "bg").await;
        drop(server);
        let mut gone = false;
        for _ in 0..100 {
            gone = process_gone(bg);
            if gone {
                break;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        assert!(gone, "grandchild {bg} survived the drop");
        cleanup(&spec);
    }

    #[test]
    fn log_tail_reads_only_this_runs_last_lines() {
        let path = log_path("tail");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let (mut file, start) = open_log(&path, "tail", "x").unwrap();
        for i in 0..30 {
            writeln!(file, "line {i}").unwrap();
        }
        assert_eq!(
            tail_lines(&path, start, 3).unwrap(),
            "line 27\nline 28\nline 29"
        );
        assert_eq!(tail_lines(&path, start, 100).unwrap().lines().count(), 30);
        // A second run appends; its tail starts after its own marker.
        let (mut file, start) = open_log(&path, "tail", "x").unwrap();
        assert_eq!(tail_lines(&path, start, 10).unwrap(), "");
        writeln!(file, "second \u{fffd} {}", String::from_utf8_lossy(&[0xff])).unwrap();
        assert_eq!(tail_lines(&path, start, 10).unwrap().lines().count(), 1);
        // Longer than the byte limit: the cut first line is dropped.
        let long = "y".repeat(1000);
        for _ in 0..200 {
            writeln!(file, "{long}").unwrap();
        }
        let tail = tail_lines(&path, start, 1000).unwrap();
        assert!(tail.lines().all(|line| line == long));
        assert!(tail.lines().count() < 200);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
