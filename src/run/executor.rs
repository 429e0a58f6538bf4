//! The executor: runs a plan in order against endpoints and managed
//! servers, one request at a time, and records every sample. Never formats
//! reports; never stops the run for one model's failure.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::measure::resources::files;
use crate::measure::resources::{self, Rapl, Sampler, Window};
use crate::plan::{self, Cell};
use crate::provider::adapter::{
    self, Adapter, AdapterSpec, AdapterTokenSource, GenerateParams, GenerationErrorKind,
};
use crate::provider::foundry::{self, CatalogEntry, Device, Foundry, SystemCli};
use crate::provider::openai::{self as client, ChatRequest, Target};
use crate::provider::server::{RunningServer, ServerSpec};
use crate::results::{
    ErrorKind, Footprint, FoundryVariant, Launch, MB, ModelRun, Sample, Status, TokenSource,
};
use crate::suite::{Endpoint, EndpointKind, Model, ServedBy, Server, Suite};

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub quiet: bool,
    /// Directory for server logs and the request journal.
    pub work_dir: PathBuf,
}

/// The state shared by every request of a run.
struct Runner<'a> {
    suite: &'a Suite,
    options: &'a ExecOptions,
    http: reqwest::Client,
    progress: ProgressBar,
    journal: Journal,
    rapl: Option<Rapl>,
    samples: Vec<Sample>,
    /// Foundry Local services by endpoint name.
    foundry: BTreeMap<String, Result<Foundry, String>>,
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
    let mut runner = Runner {
        suite,
        options,
        http,
        progress,
        journal: Journal::open(&options.work_dir.join("journal.jsonl")),
        rapl: if suite.energy.ignore_rapl {
            None
        } else {
            Rapl::open()
        },
        samples: Vec::with_capacity(cells.len()),
        foundry: BTreeMap::new(),
    };
    let mut runs = Vec::new();
    for group in cells.chunk_by(|a, b| a.model == b.model && a.variant == b.variant) {
        let Some(model) = group
            .first()
            .and_then(|c| suite.models.iter().find(|m| m.id == c.model))
        else {
            continue;
        };
        let variant = group.first().map_or(&[][..], |c| c.variant.as_slice());
        let mut run = ModelRun {
            id: model.id.clone(),
            variant: plan::variant_label(variant),
            api_model: model.api_model.clone(),
            license: model.license.clone(),
            capabilities: model.capabilities.clone(),
            load_ms: None,
            launches: Vec::new(),
            footprint: Footprint::from_sizes(files::file_bytes(&model.files))
                .or(model.size_mb.map(Footprint::declared)),
            gpu: None,
            server_version: None,
            foundry: None,
            status: Status::Ok,
            failure: None,
        };
        let failure = match &model.served_by {
            ServedBy::Endpoint(name) => match suite.endpoints.get(name) {
                Some(e) if e.kind == EndpointKind::Command => {
                    runner.adapter(model, name, e, group, &mut run).await
                }
                Some(e) if e.kind == EndpointKind::Foundry => {
                    runner
                        .foundry(model, name, e, variant, group, &mut run)
                        .await
                }
                Some(e) => {
                    let target = endpoint_target(e);
                    run.server_version = client::server_version(&runner.http, &target).await;
                    runner
                        .cells(
                            &model.api_model,
                            group,
                            &mut Backend::Http(&target, None),
                            None,
                        )
                        .await
                }
                None => Some(format!("endpoint `{name}` is not defined")),
            },
            ServedBy::Server(name) => match suite.servers.get(name) {
                Some(server) => {
                    runner
                        .launches(model, name, server, variant, group, &mut run)
                        .await
                }
                None => Some(format!("server `{name}` is not defined")),
            },
        };
        if let Some(reason) = failure {
            runner.progress.println(format!(
                "warning: model `{}` failed: {}",
                run.label(),
                first_line(&reason)
            ));
            run.status = Status::Error;
            run.failure = Some(reason);
        }
        run.load_ms = run.launches.first().map(|l| l.load_ms);
        runs.push(run);
    }
    runner.progress.finish_and_clear();
    (runner.samples, runs)
}

impl Runner<'_> {
    /// Runs a model's cells on its managed server: one launch for all of
    /// them, or one per round with `cold_start`. Returns why the model failed.
    async fn launches(
        &mut self,
        model: &Model,
        name: &str,
        server: &Server,
        variant: &[(String, String)],
        group: &[Cell],
        run: &mut ModelRun,
    ) -> Option<String> {
        let segments: Vec<&[Cell]> = if model.cold_start {
            group.chunk_by(|a, b| a.round == b.round).collect()
        } else {
            vec![group]
        };
        let label = run.label();
        for (i, segment) in segments.iter().enumerate() {
            self.progress
                .set_message(format!("{label}: starting server `{name}`"));
            let spec = server_spec(name, server, variant, &self.options.work_dir);
            let mut running = match RunningServer::start(&spec).await {
                Ok(running) => running,
                Err(err) => {
                    let reason = err.to_string();
                    let rest: Vec<&Cell> = segments[i..].iter().flat_map(|s| s.iter()).collect();
                    for cell in rest {
                        self.record(skipped(cell, &reason));
                    }
                    return Some(reason);
                }
            };
            let sampler = Sampler::start(running.pid(), resources::DEFAULT_PERIOD);
            let whole = sampler.mark();
            let idle = sampler.window(&whole);
            if i == 0 {
                run.gpu = resources::gpu_snapshot();
            }
            let target = Target {
                base_url: running.base_url(),
                api_key: None,
                headers: BTreeMap::new(),
            };
            if run.server_version.is_none() {
                run.server_version = client::server_version(&self.http, &target).await;
            }
            let failure = self
                .cells(
                    &model.api_model,
                    segment,
                    &mut Backend::Http(&target, Some(&mut running)),
                    Some(&sampler),
                )
                .await;
            run.launches.push(launch_measured(
                running.load_ms(),
                &idle,
                &sampler.window(&whole),
                running.exit_status(),
            ));
            drop(sampler);
            running.stop().await;
            if let Some(reason) = failure {
                let rest: Vec<&Cell> = segments[i + 1..].iter().flat_map(|s| s.iter()).collect();
                for cell in rest {
                    self.record(skipped(cell, &reason));
                }
                return Some(reason);
            }
        }
        None
    }

    /// The Foundry Local service behind endpoint `name`, discovered and
    /// connected once per run.
    async fn foundry_service(
        &mut self,
        name: &str,
        endpoint: &Endpoint,
    ) -> Result<Foundry, String> {
        if let Some(known) = self.foundry.get(name) {
            return known.clone();
        }
        let env = |key: &str| std::env::var(key).ok();
        let connected = match foundry::discover(
            endpoint.base_url.as_deref(),
            &env,
            &SystemCli::default(),
        )
        .await
        {
            Ok(found) => Foundry::connect(&found).await.map(|f| {
                f.with_load_timeout(Duration::from_secs(u64::from(endpoint.load_timeout_s)))
            }),
            Err(err) => Err(err),
        }
        .map_err(|e| format!("endpoint `{name}`: {e}"));
        self.foundry.insert(name.to_string(), connected.clone());
        connected
    }

    /// Runs a model's cells on Foundry Local: resolves the alias to the
    /// variant for the device, downloads it if asked, loads it (timed, after
    /// unloading a warm copy so the load is cold), and unloads it after.
    async fn foundry(
        &mut self,
        model: &Model,
        name: &str,
        endpoint: &Endpoint,
        variant: &[(String, String)],
        group: &[Cell],
        run: &mut ModelRun,
    ) -> Option<String> {
        let prepared = self
            .foundry_prepare(model, name, endpoint, variant, run)
            .await;
        let (service, entry) = match prepared {
            Ok(ready) => ready,
            Err(reason) => {
                for cell in group {
                    self.record(skipped(cell, &reason));
                }
                return Some(reason);
            }
        };
        let target = Target {
            base_url: service.chat_base_url(),
            ..endpoint_target(endpoint)
        };
        let first = self.samples.len();
        let failure = self
            .cells(&entry.id, group, &mut Backend::Http(&target, None), None)
            .await;
        // Releases without streamed usage: the service's token-count route
        // comes before counting stream events.
        for sample in &mut self.samples[first..] {
            if sample.status == Status::Ok
                && matches!(sample.token_source, None | Some(TokenSource::Estimate))
                && let Some(tokens) = service.token_count(&entry.id, &sample.text).await
            {
                sample.output_tokens = Some(tokens);
                sample.token_source = Some(TokenSource::Tokenize);
                sample.derive_rates();
            }
        }
        if let Err(err) = service.unload(&entry.id).await {
            self.progress
                .println(format!("warning: {}: {err}", run.label()));
        }
        failure
    }

    async fn foundry_prepare(
        &mut self,
        model: &Model,
        name: &str,
        endpoint: &Endpoint,
        variant: &[(String, String)],
        run: &mut ModelRun,
    ) -> Result<(Foundry, CatalogEntry), String> {
        let service = self.foundry_service(name, endpoint).await?;
        let catalog = service.catalog().await.map_err(|e| e.to_string())?;
        let device = variant
            .iter()
            .find(|(k, _)| k == "device")
            .map(|(_, d)| Device::parse(d));
        let entry = foundry::resolve(&catalog, &model.api_model, device.as_ref())
            .map_err(|e| e.to_string())?;
        run.api_model = entry.id.clone();
        run.foundry = Some(FoundryVariant {
            variant_id: entry.id.clone(),
            alias: entry.alias.clone(),
            device: entry.device.to_string(),
            execution_provider: entry.execution_provider.clone(),
            file_size_mb: entry.file_size_mb,
            license: entry.license.clone(),
            generation: service.generation().to_string(),
        });
        if run.license.is_none() {
            run.license = entry.license.clone();
        }
        if run.footprint.is_none()
            && let Some(mb) = entry.file_size_mb
        {
            run.footprint = Some(Footprint::declared(mb));
        }
        let cached = service.cached().await;
        if let Ok(cached) = &cached
            && !cached.iter().any(|c| foundry::same_variant(c, &entry.id))
        {
            if !model.download {
                return Err(format!(
                    "model `{}` (variant `{}`) is not cached; run `foundry model download {}` or set `download: true`",
                    model.id, entry.id, entry.id
                ));
            }
            let bar = self.progress.clone();
            let label = run.label();
            let mut report =
                move |pct: f64| bar.set_message(format!("{label}: downloading {pct:.0}%"));
            service
                .download(&entry.id, &mut report)
                .await
                .map_err(|e| e.to_string())?;
        }
        if service.is_loaded(&entry.id).await.unwrap_or(false) {
            // Unload a warm copy, so the timed load is a cold one.
            service.unload(&entry.id).await.map_err(|e| e.to_string())?;
        }
        self.progress
            .set_message(format!("{}: loading `{}`", run.label(), entry.id));
        let load = service.load(&entry.id).await.map_err(|e| e.to_string())?;
        run.launches.push(Launch {
            load_ms: load.as_secs_f64() * 1000.0,
            rss_idle_mb: None,
            rss_peak_mb: None,
            rss_median_mb: None,
            rss_samples: 0,
            cpu_s: None,
            exit: None,
        });
        Ok((service, entry))
    }

    /// Runs a model's cells through a `command` adapter: one launch, timed
    /// from spawn to `loaded`, its process tree sampled like a server's.
    async fn adapter(
        &mut self,
        model: &Model,
        name: &str,
        endpoint: &Endpoint,
        group: &[Cell],
        run: &mut ModelRun,
    ) -> Option<String> {
        self.progress
            .set_message(format!("{}: starting adapter `{name}`", model.id));
        let (mut adapter, load) = match Adapter::start(&adapter_spec(endpoint)).await {
            Ok(started) => started,
            Err(err) => {
                let reason = format!("adapter `{name}`: {err}");
                for cell in group {
                    self.record(skipped(cell, &reason));
                }
                return Some(reason);
            }
        };
        let load_ms = load.as_secs_f64() * 1000.0;
        run.server_version = adapter.info().map(|info| match info {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let sampler = Sampler::start(adapter.pid(), resources::DEFAULT_PERIOD);
        let whole = sampler.mark();
        let idle = sampler.window(&whole);
        let failure = self
            .cells(
                &model.api_model,
                group,
                &mut Backend::Adapter(&mut adapter),
                Some(&sampler),
            )
            .await;
        let total = sampler.window(&whole);
        drop(sampler);
        let stopped = adapter.stop().await;
        run.launches.push(launch_measured(
            load_ms,
            &idle,
            &total,
            (!stopped.clean).then_some(stopped.status),
        ));
        failure
    }

    /// Sends `cells` in order through `backend`. With a process to watch
    /// (managed server or adapter), measures its memory and CPU around each
    /// request, marks the first request cold, and once the process has died
    /// skips the rest. Returns why the model failed.
    async fn cells(
        &mut self,
        api_model: &str,
        cells: &[Cell],
        backend: &mut Backend<'_>,
        sampler: Option<&Sampler>,
    ) -> Option<String> {
        let mut failure: Option<String> = None;
        for (i, cell) in cells.iter().enumerate() {
            if let Some(reason) = &failure {
                self.record(skipped(cell, reason));
                continue;
            }
            self.progress
                .set_message(format!("{} · {} · {}", cell.model, cell.prompt, cell.round));
            let mark = sampler.map(Sampler::mark);
            let energy_before = self.rapl.as_ref().and_then(Rapl::read_domains);
            let mut sample = match backend {
                Backend::Http(target, _) => {
                    measure(&self.http, target, self.suite, api_model, cell).await
                }
                Backend::Adapter(adapter) => measure_adapter(adapter, self.suite, cell).await,
            };
            if let (Some(rapl), Some(before)) = (&self.rapl, energy_before)
                && let Some(after) = rapl.read_domains()
            {
                sample.energy_j = rapl.delta_uj(&before, &after).map(|uj| uj as f64 / 1e6);
            }
            if let (Some(sampler), Some(mark)) = (sampler, &mark) {
                sample.cold = i == 0;
                let window = sampler.window(mark);
                sample.rss_peak_mb = window.rss_peak_bytes.map(|b| b as f64 / MB);
                sample.rss_median_mb = window.rss_median_bytes.map(|b| b / MB);
                sample.cpu_ms = window.cpu_s.map(|s| s * 1000.0);
            }
            if sample.status == Status::Error {
                let exit = match backend {
                    Backend::Http(_, Some(running)) => running
                        .exit_status()
                        .map(|status| (status, running.log_tail(10))),
                    Backend::Http(_, None) => None,
                    Backend::Adapter(adapter) => (sample.error_kind
                        == Some(ErrorKind::ServerExited))
                    .then(|| ("exited".to_string(), adapter.log_tail(10).join("\n"))),
                };
                if let Some((status, log)) = exit {
                    let message =
                        format!("server {status} during the request; last log lines:\n{log}");
                    sample.error_kind = Some(ErrorKind::ServerExited);
                    sample.error = Some(message.clone());
                    failure = Some(message);
                }
            }
            if let Some(tps) = sample.decode_tps {
                self.progress.set_message(format!(
                    "{} · {} · {:.1} tok/s",
                    cell.model, cell.prompt, tps
                ));
            }
            self.record(sample);
        }
        failure
    }

    fn record(&mut self, sample: Sample) {
        self.journal.append(&sample);
        self.samples.push(sample);
        self.progress.inc(1);
    }
}

/// A launch as the sampler saw it: idle right after ready, and over its whole life.
fn launch_measured(load_ms: f64, idle: &Window, total: &Window, exit: Option<String>) -> Launch {
    Launch {
        load_ms,
        rss_idle_mb: idle.rss_peak_bytes.map(|b| b as f64 / MB),
        rss_peak_mb: total.rss_peak_bytes.map(|b| b as f64 / MB),
        rss_median_mb: total.rss_median_bytes.map(|b| b / MB),
        rss_samples: total.samples,
        cpu_s: total.cpu_s,
        exit,
    }
}

/// A model's HTTP target outside the timed run (for the judge and probes):
/// its endpoint, or its managed server started in its first variant. The
/// server, if any, must be stopped by the caller.
pub async fn connect(
    suite: &Suite,
    model: &Model,
    work_dir: &Path,
) -> Result<(Target, Option<RunningServer>), String> {
    match &model.served_by {
        ServedBy::Endpoint(name) => {
            let e = suite
                .endpoints
                .get(name)
                .ok_or_else(|| format!("endpoint `{name}` is not defined"))?;
            if e.kind == EndpointKind::Command {
                return Err(format!(
                    "model `{}` is served by the command adapter `{name}`; only HTTP models can do this",
                    model.id
                ));
            }
            Ok((endpoint_target(e), None))
        }
        ServedBy::Server(name) => {
            let server = suite
                .servers
                .get(name)
                .ok_or_else(|| format!("server `{name}` is not defined"))?;
            let variant = server
                .variant_combinations()
                .into_iter()
                .next()
                .unwrap_or_default();
            let spec = server_spec(name, server, &variant, work_dir);
            let running = RunningServer::start(&spec)
                .await
                .map_err(|e| e.to_string())?;
            let target = Target {
                base_url: running.base_url(),
                api_key: None,
                headers: BTreeMap::new(),
            };
            Ok((target, Some(running)))
        }
    }
}

/// How dyno starts the adapter of a `command` endpoint: in the suite
/// file's directory, with the endpoint's weights and load parameters. The
/// weights path is made absolute, since the adapter runs elsewhere.
pub fn adapter_spec(endpoint: &Endpoint) -> AdapterSpec {
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

/// Where an HTTP endpoint's requests go, its API key read from the
/// variable `api_key_env` names.
pub fn endpoint_target(e: &Endpoint) -> Target {
    Target {
        base_url: e.base_url.clone().unwrap_or_default(),
        api_key: e.api_key_env.as_ref().and_then(|v| std::env::var(v).ok()),
        headers: e.headers.clone(),
    }
}

/// How dyno starts `server` in `variant`; its log goes under `work_dir/logs`.
fn server_spec(
    name: &str,
    server: &Server,
    variant: &[(String, String)],
    work_dir: &Path,
) -> ServerSpec {
    let log_name = match plan::variant_label(variant) {
        Some(v) => format!("{name}[{v}].log"),
        None => format!("{name}.log"),
    };
    ServerSpec {
        name: name.to_string(),
        command: server
            .command
            .iter()
            .map(|a| Server::substitute(a, variant))
            .collect(),
        ready_path: server.ready.clone(),
        startup_timeout: Duration::from_secs(u64::from(server.startup_timeout_s)),
        env: server
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Server::substitute(v, variant)))
            .collect(),
        log_path: work_dir.join("logs").join(log_name),
    }
}

/// How requests reach a model.
enum Backend<'a> {
    /// OpenAI-compatible HTTP, with the managed server behind it if any.
    Http(&'a Target, Option<&'a mut RunningServer>),
    /// A `command` adapter over stdin/stdout.
    Adapter(&'a mut Adapter),
}

/// The messages of a cell's prompt.
fn prompt_messages(suite: &Suite, cell: &Cell) -> Vec<crate::suite::Message> {
    suite
        .prompts
        .iter()
        .find(|p| p.id == cell.prompt)
        .map(|p| p.messages.clone())
        .unwrap_or_default()
}

async fn measure_adapter(adapter: &mut Adapter, suite: &Suite, cell: &Cell) -> Sample {
    let messages: Vec<adapter::Message> = prompt_messages(suite, cell)
        .into_iter()
        .map(|m| adapter::Message {
            role: m.role.as_str().to_string(),
            content: m.content,
        })
        .collect();
    let params = GenerateParams {
        max_tokens: Some(cell.params.max_tokens),
        temperature: Some(cell.params.temperature),
        seed: Some(u64::from(cell.seed)),
        extra: cell
            .params
            .top_p
            .map(|p| ("top_p".to_string(), serde_json::Value::from(p)))
            .into_iter()
            .collect(),
    };
    let g = adapter
        .generate(
            &cell.index.to_string(),
            &messages,
            &params,
            Duration::from_secs_f64(cell.params.timeout_s),
        )
        .await;
    let mut sample = blank(cell);
    sample.status = if g.error.is_some() {
        Status::Error
    } else {
        Status::Ok
    };
    if let Some((kind, message)) = g.error {
        sample.error_kind = Some(match kind {
            GenerationErrorKind::Timeout => ErrorKind::Timeout,
            GenerationErrorKind::BadMessage => ErrorKind::BadSse,
            GenerationErrorKind::EarlyEof => ErrorKind::EarlyEof,
            GenerationErrorKind::AdapterError => ErrorKind::ServerError,
            GenerationErrorKind::Exited => ErrorKind::ServerExited,
        });
        sample.error = Some(message);
    }
    sample.ttft_ms = g.ttft_ms;
    sample.e2e_ms = g.e2e_ms;
    sample.itl_ms = g.itl_ms;
    sample.output_tokens = g.output_tokens;
    sample.prompt_tokens = g.prompt_tokens;
    sample.token_source = g.token_source.map(|s| match s {
        AdapterTokenSource::Usage => TokenSource::Usage,
        AdapterTokenSource::Events => TokenSource::Estimate,
    });
    sample.finish_reason = g.finish_reason;
    sample.text = g.text;
    if sample.status == Status::Ok {
        sample.derive_rates();
    }
    sample
}

async fn measure(
    http: &reqwest::Client,
    target: &Target,
    suite: &Suite,
    api_model: &str,
    cell: &Cell,
) -> Sample {
    let messages = prompt_messages(suite, cell);
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
        variant: plan::variant_label(&cell.variant),
        cold: false,
        rss_peak_mb: None,
        rss_median_mb: None,
        cpu_ms: None,
        energy_j: None,
        checks: Vec::new(),
        judge: None,
        human_score: None,
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
