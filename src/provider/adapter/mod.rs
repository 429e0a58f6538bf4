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

mod protocol;
mod session;
#[cfg(test)]
mod tests;

use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use serde_json::Value;

pub(crate) use protocol::{GenerateParams, Message};
pub(crate) use session::{Adapter, AdapterSpec};

use super::{Measured, Progress, Request, Started};
use crate::results::ErrorKind;
use session::ERROR_LOG_LINES;

/// How dyno starts the adapter of a `command` endpoint: in the suite
/// file's directory, with the endpoint's weights and load parameters. The
/// weights path is made absolute, since the adapter runs elsewhere.
pub(crate) fn spec(endpoint: &crate::suite::Endpoint) -> AdapterSpec {
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
pub(crate) struct Command {
    name: String,
    spec: AdapterSpec,
    adapter: Option<Adapter>,
    /// The last request found the adapter gone.
    exited: bool,
}

impl Command {
    pub(crate) fn new(name: &str, spec: AdapterSpec) -> Command {
        Command {
            name: name.to_string(),
            spec,
            adapter: None,
            exited: false,
        }
    }
}

impl super::Provider for Command {
    fn start<'a>(
        &'a mut self,
        _: Progress<'a>,
    ) -> BoxFuture<'a, Result<Started, super::ProviderError>> {
        async move {
            let (adapter, load) = Adapter::start(&self.spec).await.map_err(|err| {
                super::ProviderError::Start(format!("adapter `{}`: {err}", self.name))
            })?;
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

    fn died(&mut self) -> Option<super::ProviderError> {
        let adapter = self.adapter.as_ref().filter(|_| self.exited)?;
        Some(super::ProviderError::Died(format!(
            "server exited during the request; last log lines:\n{}",
            adapter.log_tail(ERROR_LOG_LINES).join("\n")
        )))
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
