//! The executor: runs a plan in order against endpoints and managed
//! servers, one request at a time, and records every sample. Never formats
//! reports; never stops the run for one model's failure.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::client::{self, ChatRequest, Target};
use crate::plan::Cell;
use crate::results::{ErrorKind, Sample, Status};
use crate::server::{RunningServer, ServerSpec};
use crate::suite::{ServedBy, Suite};

/// How one model fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRun {
    pub id: String,
    pub api_model: String,
    pub license: Option<String>,
    pub capabilities: Vec<String>,
    /// Managed server: spawn → ready, in milliseconds.
    pub load_ms: Option<f64>,
    /// What the server reports as its version (llama.cpp `build_info`).
    pub server_version: Option<String>,
    pub status: Status,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub quiet: bool,
    /// Directory for server logs and the request journal.
    pub work_dir: PathBuf,
}

/// Runs `cells` (in order) and returns every sample and each model's fate.
pub async fn execute(
    suite: &Suite,
    cells: &[Cell],
    options: &ExecOptions,
) -> (Vec<Sample>, Vec<ModelRun>) {
    // One fresh connection per request: a pooled connection that the server
    // closed while idle fails the next request on send (a client artifact,
    // not a server fault); connect time on loopback is tens of microseconds.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    let progress = if options.quiet {
        ProgressBar::with_draw_target(Some(cells.len() as u64), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(cells.len() as u64)
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut journal = Journal::open(&options.work_dir.join("journal.jsonl"));
    let mut samples = Vec::with_capacity(cells.len());
    let mut runs = Vec::new();
    for group in cells.chunk_by(|a, b| a.model == b.model) {
        let Some(model) = group
            .first()
            .and_then(|c| suite.models.iter().find(|m| m.id == c.model))
        else {
            continue;
        };
        let mut run = ModelRun {
            id: model.id.clone(),
            api_model: model.api_model.clone(),
            license: model.license.clone(),
            capabilities: model.capabilities.clone(),
            load_ms: None,
            server_version: None,
            status: Status::Ok,
            failure: None,
        };
        let mut server: Option<RunningServer> = None;
        let target = match &model.served_by {
            ServedBy::Endpoint(name) => suite
                .endpoints
                .get(name)
                .map(|e| Target {
                    base_url: e.base_url.clone().unwrap_or_default(),
                    api_key: e.api_key_env.as_ref().and_then(|v| std::env::var(v).ok()),
                    headers: e.headers.clone(),
                })
                .ok_or_else(|| format!("endpoint `{name}` is not defined")),
            ServedBy::Server(name) => match suite.servers.get(name) {
                None => Err(format!("server `{name}` is not defined")),
                Some(spec) => {
                    progress.set_message(format!("{}: starting server `{name}`", model.id));
                    let spec = ServerSpec {
                        name: name.clone(),
                        command: spec.command.clone(),
                        ready_path: spec.ready.clone(),
                        startup_timeout: Duration::from_secs(u64::from(spec.startup_timeout_s)),
                        env: spec.env.clone(),
                        log_path: options.work_dir.join("logs").join(format!("{name}.log")),
                    };
                    match RunningServer::start(&spec).await {
                        Ok(running) => {
                            run.load_ms = Some(running.load_ms());
                            let target = Target {
                                base_url: running.base_url(),
                                api_key: None,
                                headers: BTreeMap::new(),
                            };
                            server = Some(running);
                            Ok(target)
                        }
                        Err(err) => Err(err.to_string()),
                    }
                }
            },
        };
        let mut failure: Option<String> = target.as_ref().err().cloned();
        if let Ok(target) = &target {
            run.server_version = client::server_version(&http, target).await;
        }
        for cell in group {
            let sample = match (&target, &failure) {
                (Ok(target), None) => {
                    progress
                        .set_message(format!("{} · {} · {}", cell.model, cell.prompt, cell.round));
                    let mut sample =
                        measure(&http, target, suite, model.api_model.as_str(), cell).await;
                    if sample.status == Status::Error
                        && let Some(running) = server.as_mut()
                        && let Some(status) = running.exit_status()
                    {
                        let message = format!(
                            "server {status} during the request; last log lines:\n{}",
                            running.log_tail(10)
                        );
                        sample.error_kind = Some(ErrorKind::ServerExited);
                        sample.error = Some(message.clone());
                        failure = Some(message);
                    }
                    if let Some(tps) = sample.decode_tps {
                        progress.set_message(format!(
                            "{} · {} · {:.1} tok/s",
                            cell.model, cell.prompt, tps
                        ));
                    }
                    sample
                }
                (_, Some(reason)) | (Err(reason), None) => skipped(cell, reason),
            };
            journal.append(&sample);
            samples.push(sample);
            progress.inc(1);
        }
        if let Some(reason) = failure {
            progress.println(format!(
                "warning: model `{}` failed: {}",
                model.id,
                first_line(&reason)
            ));
            run.status = Status::Error;
            run.failure = Some(reason);
        }
        if let Some(running) = server {
            running.stop().await;
        }
        runs.push(run);
    }
    progress.finish_and_clear();
    (samples, runs)
}

async fn measure(
    http: &reqwest::Client,
    target: &Target,
    suite: &Suite,
    api_model: &str,
    cell: &Cell,
) -> Sample {
    let messages = suite
        .prompts
        .iter()
        .find(|p| p.id == cell.prompt)
        .map(|p| p.messages.clone())
        .unwrap_or_default();
    let request = ChatRequest {
        model: api_model.to_string(),
        messages,
        temperature: cell.params.temperature,
        top_p: cell.params.top_p,
        max_tokens: cell.params.max_tokens,
        seed: cell.seed,
        stream: cell.params.stream,
        timeout: Duration::from_secs_f64(cell.params.timeout_s),
    };
    let m = client::chat(http, target, &request).await;
    let mut sample = blank(cell);
    sample.status = if m.error.is_some() {
        Status::Error
    } else {
        Status::Ok
    };
    if let Some((kind, message)) = m.error {
        sample.error_kind = Some(kind);
        sample.error = Some(message);
    }
    sample.ttft_ms = m.ttft_ms;
    sample.ttfo_reasoning_ms = m.ttfo_reasoning_ms;
    sample.e2e_ms = m.e2e_ms;
    sample.itl_ms = m.itl_ms;
    sample.output_tokens = m.output_tokens;
    sample.prompt_tokens = m.prompt_tokens;
    sample.token_source = m.token_source;
    sample.finish_reason = m.finish_reason;
    sample.text = m.text;
    sample.server_timings = m.server_timings;
    if sample.status == Status::Ok {
        sample.derive_rates();
    }
    sample
}

fn blank(cell: &Cell) -> Sample {
    Sample {
        index: cell.index,
        key: cell.key.clone(),
        model: cell.model.clone(),
        prompt: cell.prompt.clone(),
        round: cell.round,
        warmup: cell.round.is_warmup(),
        seed: cell.seed,
        stream: cell.params.stream,
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
        token_source: None,
        decode_tps: None,
        finish_reason: None,
        text: String::new(),
        server_timings: None,
    }
}

fn skipped(cell: &Cell, reason: &str) -> Sample {
    let mut sample = blank(cell);
    sample.error_kind = Some(ErrorKind::Skipped);
    sample.error = Some(format!("not sent: {}", first_line(reason)));
    sample
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Appends one JSON line per sample as the run goes, so an interrupted run
/// keeps what it measured. A journal that cannot be written only warns.
struct Journal {
    file: Option<std::fs::File>,
}

impl Journal {
    fn open(path: &Path) -> Journal {
        let file = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(path));
        match file {
            Ok(file) => Journal { file: Some(file) },
            Err(err) => {
                eprintln!(
                    "warning: cannot write the journal {}: {err}",
                    path.display()
                );
                Journal { file: None }
            }
        }
    }

    fn append(&mut self, sample: &Sample) {
        if let Some(file) = self.file.as_mut()
            && let Ok(line) = serde_json::to_string(sample)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}
