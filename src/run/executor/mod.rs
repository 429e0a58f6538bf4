//! The executor: sends a plan's cells, in order, through each model's
//! provider, one request at a time, and records every sample and how each
//! model (in each variant) fared. It watches what a provider started
//! (memory, CPU, energy), marks the first request after a launch cold, and
//! skips a model's remaining cells once what serves it has died. Never
//! formats reports; never stops the run for one model's failure; never
//! sees YAML or HTTP.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::filler;
use super::interrupt::Interrupt;
use super::journal::Journal;
use crate::measure::noise::Monitor;
use crate::measure::resources::{DEFAULT_PERIOD, Mark, Rapl, Sampler, Window, files};
use crate::plan::{Cell, Round, Variant};
use crate::provider::{Measured, Provider, Request, Source, Started, Thinking};
use crate::results::{
    EngineBuild, ErrorKind, Footprint, Launch, LoadStats, MB, ModelRun, Sample, Status, SweepResult,
};
use crate::suite::{Model, ReasoningControl, ServedBy, Suite};
use crate::text::first_line;

mod points;

/// The longest a request may take, whatever the suite says: a day.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_hours(24);

/// The longest wait before trying a request again.
const MAX_RETRY_WAIT: Duration = Duration::from_mins(1);

/// Failed requests printed per cell; the rest are counted.
const ERRORS_SHOWN_PER_CELL: usize = 3;

/// How the executor reports and records.
pub(crate) struct Options<'a> {
    /// No progress bar.
    pub quiet: bool,
    /// Where every sample is appended as it is measured.
    pub journal: Journal,
    /// What the rest of the machine does, read around every request.
    pub monitor: Option<&'a Monitor>,
    /// Stops the run between requests (and abandons the one in flight).
    pub interrupt: Interrupt,
}

/// What a run of the executor measured.
#[derive(Debug)]
pub(crate) struct Executed {
    /// Every request sent or skipped, in plan order.
    pub samples: Vec<Sample>,
    /// Each model (in each variant) the run reached.
    pub runs: Vec<ModelRun>,
    /// Why the run stopped before its last cell, if it did.
    pub interrupted: Option<String>,
    /// Why the journal could not be written, if it could not (the run then
    /// stopped).
    pub journal_failure: Option<String>,
    /// Every load point driven, and every sweep.
    pub load: Vec<LoadStats>,
    pub sweeps: Vec<SweepResult>,
}

/// The state shared by every request of a run.
struct Runner<'a> {
    suite: &'a Suite,
    progress: ProgressBar,
    journal: Journal,
    rapl: Option<Rapl>,
    monitor: Option<&'a Monitor>,
    interrupt: Interrupt,
    /// Set once the run is interrupted: nothing more is sent.
    interrupted: Option<String>,
    /// Failed requests per cell key, for printing a few of each.
    errors: std::collections::BTreeMap<String, usize>,
    samples: Vec<Sample>,
    load: Vec<LoadStats>,
    sweeps: Vec<SweepResult>,
}

/// What sending one cell came to.
enum Sent {
    Done,
    /// What serves the model died; why.
    Died(String),
    /// The run was interrupted while the request was in flight.
    Interrupted(String),
}

/// One model in one variant during a run: its provider, what is known of
/// it, and its current launch.
struct Slot<'a> {
    model: &'a Model,
    variant: &'a Variant,
    run: ModelRun,
    /// `None` when the provider could not even be made (the reason is in
    /// `failure`).
    provider: Option<Box<dyn Provider>>,
    launch: Option<Running>,
    /// Why the model failed; its later cells are skipped.
    failure: Option<String>,
    /// Plan index of the model's last cell among those this run executes
    /// (a shard's or a resumed run's cells are a part of the plan): the
    /// launch stops after it.
    last: usize,
}

/// A launch under way.
struct Running {
    started: Started,
    sampler: Option<Sampler>,
    whole: Option<Mark>,
    idle: Option<Window>,
    round: Round,
    /// Requests sent in this launch (the first is cold when watched).
    sent: usize,
    /// Words of filler per token on this launch's server, once a cell
    /// with `context_tokens` asked.
    words_per_token: Option<f64>,
}

/// Runs `cells` (in order) with providers from `source` and returns every
/// sample and each model's fate. A model's launch starts before its first
/// cell (again before each round with `cold_start`) and stops after its
/// last, so model-major plans run one model at a time, and interleaved
/// plans keep every model up and rotate between them.
pub(crate) async fn execute(
    suite: &Suite,
    cells: &[Cell],
    options: Options<'_>,
    source: &mut dyn Source,
) -> Executed {
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
        progress,
        journal: options.journal,
        rapl: if suite.energy.ignore_rapl {
            None
        } else {
            Rapl::open()
        },
        monitor: options.monitor,
        interrupt: options.interrupt,
        interrupted: None,
        errors: std::collections::BTreeMap::new(),
        // Grown as samples come, so a large plan reserves nothing up front.
        samples: Vec::new(),
        load: Vec::new(),
        sweeps: Vec::new(),
    };
    let mut slots = slots(suite, cells, source);
    for chunk in cells.chunk_by(|a, b| a.model() == b.model() && a.variant() == b.variant()) {
        if runner.interrupted.is_some() {
            break;
        }
        let Some(first) = chunk.first() else {
            continue;
        };
        let Some(slot) = slots
            .iter_mut()
            .find(|s| s.model.id == first.model() && s.variant == first.variant())
        else {
            continue;
        };
        runner.chunk(slot, chunk).await;
    }
    for slot in &mut slots {
        runner.stop(slot).await;
    }
    runner.progress.finish_and_clear();
    runner.report_hidden_errors();
    let runs: Vec<ModelRun> = slots
        .into_iter()
        .map(|slot| {
            let mut run = slot.run;
            if let Some(reason) = slot.failure {
                run.status = Status::Error;
                run.failure = Some(reason);
            }
            run.load_ms = run.launches.first().map(|l| l.load_ms);
            run
        })
        .collect();
    for run in &runs {
        runner.journal.run(run);
    }
    let journal_failure = std::mem::replace(&mut runner.journal, Journal::none()).finish();
    Executed {
        samples: runner.samples,
        runs,
        interrupted: runner.interrupted,
        journal_failure,
        load: runner.load,
        sweeps: runner.sweeps,
    }
}

/// One slot per model and variant, in order of first appearance.
fn slots<'a>(suite: &'a Suite, cells: &'a [Cell], source: &mut dyn Source) -> Vec<Slot<'a>> {
    let mut slots: Vec<Slot<'a>> = Vec::new();
    for cell in cells {
        if let Some(slot) = slots
            .iter_mut()
            .find(|s| s.model.id == cell.model() && s.variant == cell.variant())
        {
            slot.last = cell.index;
            continue;
        }
        let Some(model) = suite.models.iter().find(|m| m.id == cell.model()) else {
            continue;
        };
        let (provider, failure) = match source.open(model, cell.variant()) {
            Ok(provider) => (Some(provider), None),
            Err(reason) => (None, Some(reason.to_string())),
        };
        slots.push(Slot {
            model,
            variant: cell.variant(),
            run: ModelRun {
                id: model.id.clone(),
                variant: cell.variant().label(),
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
            },
            provider,
            launch: None,
            failure,
            last: cell.index,
        });
    }
    slots
}

impl Runner<'_> {
    /// Runs consecutive cells of one model: starts its launch if none runs
    /// (a new one per round with `cold_start`), sends each cell, and stops
    /// the launch after the model's last cell. Once the model has failed,
    /// its cells are skipped.
    async fn chunk(&mut self, slot: &mut Slot<'_>, chunk: &[Cell]) {
        for (i, cell) in chunk.iter().enumerate() {
            if self.interrupted.is_some() {
                return;
            }
            if let Some(reason) = &slot.failure {
                let reason = reason.clone();
                self.skip(chunk[i..].iter(), &reason);
                break;
            }
            let new_round = slot
                .launch
                .as_ref()
                .is_some_and(|l| slot.model.cold_start && l.round != cell.round);
            if new_round {
                self.stop(slot).await;
            }
            if slot.launch.is_none() {
                match self.start(slot, cell.round).await {
                    Ok(()) => {}
                    Err(StartError::Failed(reason)) => {
                        self.skip(chunk[i..].iter(), &reason);
                        self.fail(slot, reason);
                        break;
                    }
                    Err(StartError::Interrupted(reason)) => {
                        self.interrupted = Some(reason);
                        return;
                    }
                }
            }
            let outcome = if cell.load().is_some() {
                self.load_cell(slot, cell).await
            } else {
                self.send(slot, cell).await
            };
            match outcome {
                Sent::Done => {}
                Sent::Died(reason) => self.fail(slot, reason),
                Sent::Interrupted(reason) => {
                    self.interrupted = Some(reason);
                    return;
                }
            }
        }
        if chunk.last().is_some_and(|c| c.index == slot.last) {
            self.stop(slot).await;
        }
    }

    /// Starts a launch of `slot`'s provider. An interrupt while it starts
    /// (a server loading its model, a readiness wait) drops the start,
    /// which ends what it had spawned.
    async fn start(&mut self, slot: &mut Slot<'_>, round: Round) -> Result<(), StartError> {
        let Some(provider) = slot.provider.as_mut() else {
            return Err(StartError::Failed(slot.failure.clone().unwrap_or_default()));
        };
        let label = slot.run.label();
        self.progress.set_message(format!("{label}: starting"));
        let bar = self.progress.clone();
        let report = move |message: String| bar.set_message(format!("{label}: {message}"));
        let mut interrupt = self.interrupt.clone();
        let started = tokio::select! {
            started = provider.start(&report) => started.map_err(|e| StartError::Failed(e.to_string()))?,
            reason = interrupt.wait() => return Err(StartError::Interrupted(reason)),
        };
        record_start(&mut slot.run, &started);
        let sampler = started.pid.map(|pid| Sampler::start(pid, DEFAULT_PERIOD));
        let whole = sampler.as_ref().map(Sampler::mark);
        let idle = sampler
            .as_ref()
            .zip(whole.as_ref())
            .map(|(s, m)| s.window(m));
        slot.launch = Some(Running {
            started,
            sampler,
            whole,
            idle,
            round,
            sent: 0,
            words_per_token: None,
        });
        Ok(())
    }

    /// Stops `slot`'s launch, if one runs, and records it.
    async fn stop(&mut self, slot: &mut Slot<'_>) {
        let Some(running) = slot.launch.take() else {
            return;
        };
        let total = running
            .sampler
            .as_ref()
            .zip(running.whole.as_ref())
            .map(|(s, m)| s.window(m));
        drop(running.sampler);
        let Some(provider) = slot.provider.as_mut() else {
            return;
        };
        let stopped = provider.stop().await;
        if let Some(warning) = stopped.warning {
            self.progress
                .println(format!("warning: {}: {warning}", slot.run.label()));
        }
        if let Some(load) = running.started.load {
            slot.run.launches.push(launch(
                load,
                running.idle,
                total,
                stopped.exit,
                running.started.engine,
            ));
        }
    }

    /// Records why `slot`'s model failed (once) and warns.
    fn fail(&mut self, slot: &mut Slot<'_>, reason: String) {
        self.progress.println(format!(
            "warning: model `{}` failed: {}",
            slot.run.label(),
            first_line(&reason)
        ));
        slot.failure = Some(reason);
    }

    /// Sends one cell through `slot`'s running launch, again while the
    /// server turns it away for now (its retry settings). With a process
    /// to watch, measures its memory and CPU around the (last) attempt;
    /// the first request after a launch is cold. Says whether what serves
    /// the model died, or the run was interrupted meanwhile.
    async fn send(&mut self, slot: &mut Slot<'_>, cell: &Cell) -> Sent {
        let (Some(provider), Some(running)) = (slot.provider.as_mut(), slot.launch.as_mut()) else {
            return Sent::Done;
        };
        self.progress.set_message(format!(
            "{} · {} · {}",
            cell.model(),
            cell.prompt,
            cell.round
        ));
        let mut request = request(self.suite, cell);
        let depth = cell.params().context_tokens;
        if depth > 0 {
            let words_per_token = match running.words_per_token {
                Some(known) => known,
                None => match provider.sender() {
                    Some(sender) => filler::words_per_token(sender.as_ref()).await,
                    None => 1.0,
                },
            };
            running.words_per_token = Some(words_per_token);
            let seed = u64::from(cell.seed) ^ filler::mix(cell.index as u64);
            filler::with_context(&mut request, depth, words_per_token, seed);
        }
        let retry = cell.params().retry;
        let sampler = running.sampler.as_ref();
        let mut interrupt = self.interrupt.clone();
        let mut attempts = 0;
        let (measured, mark, noise, energy_before) = loop {
            attempts += 1;
            let mark = sampler.map(Sampler::mark);
            let noise = self.monitor.map(Monitor::mark);
            let energy_before = self.rapl.as_ref().and_then(Rapl::read_domains);
            let measured = tokio::select! {
                measured = provider.measure(&request) => measured,
                reason = interrupt.wait() => return Sent::Interrupted(reason),
            };
            let turned_away = measured.http_status.is_some_and(|s| retry.on.contains(s));
            if !turned_away || attempts > retry.max {
                break (measured, mark, noise, energy_before);
            }
            let backoff = Duration::from_millis(u64::from(retry.backoff_ms))
                .saturating_mul(1 << (attempts - 1).min(16));
            let wait = measured.retry_after.unwrap_or(backoff).min(MAX_RETRY_WAIT);
            self.progress.set_message(format!(
                "{} · {} · turned away ({}), again in {:.1} s",
                cell.model(),
                cell.prompt,
                measured.http_status.unwrap_or(0),
                wait.as_secs_f64()
            ));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                reason = interrupt.wait() => return Sent::Interrupted(reason),
            }
        };
        let mut sample = sample(cell, measured);
        sample.attempts = attempts;
        sample.cold = running.sent == 0 && running.started.load.is_some();
        if let (Some(rapl), Some(before)) = (&self.rapl, energy_before)
            && let Some(after) = rapl.read_domains()
        {
            sample.energy_j = rapl.delta_uj(&before, &after).map(|uj| uj as f64 / 1e6);
        }
        if let (Some(sampler), Some(mark)) = (sampler, &mark) {
            let window = sampler.window(mark);
            sample.rss_peak_mb = window.rss_peak_bytes.map(|b| b as f64 / MB);
            sample.rss_median_mb = window.rss_median_bytes.map(|b| b / MB);
            sample.cpu_ms = window.cpu_s.map(|s| s * 1000.0);
        }
        if let (Some(monitor), Some(mark)) = (self.monitor, noise) {
            sample.host_busy_cores = monitor
                .window(mark, sample.cpu_ms.map(|ms| ms / 1000.0))
                .map(|busy| busy.host_busy_cores);
        }
        running.sent += 1;
        let died = (sample.status == Status::Error)
            .then(|| provider.died())
            .flatten()
            .map(|e| e.to_string());
        if let Some(message) = &died {
            sample.error_kind = Some(ErrorKind::ServerExited);
            sample.error = Some(message.clone());
        }
        if let Some(tps) = sample.decode_tps {
            self.progress.set_message(format!(
                "{} · {} · {:.1} tok/s",
                cell.model(),
                cell.prompt,
                tps
            ));
        }
        self.show_error(&sample);
        self.record(sample);
        died.map_or(Sent::Done, Sent::Died)
    }

    /// Prints a failed request's kind and first line, a few per cell.
    fn show_error(&mut self, sample: &Sample) {
        let (Some(kind), Some(message)) = (sample.error_kind, &sample.error) else {
            return;
        };
        let seen = self.errors.entry(sample.key.clone()).or_default();
        *seen += 1;
        if *seen <= ERRORS_SHOWN_PER_CELL {
            self.progress.println(format!(
                "error: {} ({}): {}: {}",
                sample.key,
                sample.round,
                kind.name(),
                crate::text::printable(first_line(message))
            ));
        }
    }

    /// Says how many failed requests went unprinted.
    fn report_hidden_errors(&self) {
        let hidden: usize = self
            .errors
            .values()
            .map(|n| n.saturating_sub(ERRORS_SHOWN_PER_CELL))
            .sum();
        if hidden > 0 {
            eprintln!(
                "… and {hidden} more failed requests not shown (every one is in results.json and the report's failures)"
            );
        }
    }

    /// Records `cells` as not sent, because of `reason`.
    fn skip<'c>(&mut self, cells: impl Iterator<Item = &'c Cell>, reason: &str) {
        for cell in cells {
            let mut sample = blank(cell);
            sample.error_kind = Some(ErrorKind::Skipped);
            sample.error = Some(format!("not sent: {}", first_line(reason)));
            self.record(sample);
        }
    }

    /// Keeps `sample` and journals it; once the journal cannot be written,
    /// the run stops (what it measures next could not be resumed).
    fn record(&mut self, sample: Sample) {
        self.journal.sample(&sample);
        self.samples.push(sample);
        self.progress.inc(1);
        if self.interrupted.is_none()
            && let Some(failure) = self.journal.failure()
        {
            self.interrupted = Some(format!("stopped: {failure}"));
        }
    }
}

/// Why a launch did not start.
enum StartError {
    /// The provider could not start; its model fails.
    Failed(String),
    /// The run was interrupted while it started.
    Interrupted(String),
}

/// What a start tells about the model: the server's version, the GPU, and
/// for Foundry the variant an alias resolved to (its id is what is sent).
fn record_start(run: &mut ModelRun, started: &Started) {
    if run.server_version.is_none() {
        run.server_version.clone_from(&started.version);
    }
    if run.gpu.is_none() {
        run.gpu.clone_from(&started.gpu);
    }
    if let Some(variant) = &started.resolved {
        run.api_model.clone_from(&variant.variant_id);
        if run.license.is_none() {
            run.license.clone_from(&variant.license);
        }
        if run.footprint.is_none() {
            run.footprint = variant.file_size_mb.map(Footprint::declared);
        }
        run.foundry = Some(variant.clone());
    }
}

/// One launch: its load time, memory right after it was ready (idle) and
/// over its whole life, and how it ended when it died under dyno.
fn launch(
    load: Duration,
    idle: Option<Window>,
    total: Option<Window>,
    exit: Option<String>,
    engine: Option<EngineBuild>,
) -> Launch {
    Launch {
        load_ms: load.as_secs_f64() * 1000.0,
        rss_idle_mb: idle.and_then(|w| w.rss_peak_bytes).map(|b| b as f64 / MB),
        rss_peak_mb: total.and_then(|w| w.rss_peak_bytes).map(|b| b as f64 / MB),
        rss_median_mb: total.and_then(|w| w.rss_median_bytes).map(|b| b / MB),
        rss_samples: total.map_or(0, |w| w.samples),
        cpu_s: total.and_then(|w| w.cpu_s),
        exit,
        engine,
    }
}

/// The request of `cell`: its prompt's messages with the cell's parameters.
pub(crate) fn request(suite: &Suite, cell: &Cell) -> Request {
    let prompt = suite.prompts.iter().find(|p| *p.id == *cell.prompt);
    Request {
        id: cell.index,
        model: suite
            .models
            .iter()
            .find(|m| m.id == cell.model())
            .map(|m| m.api_model.clone())
            .unwrap_or_default(),
        messages: prompt.map(|p| p.messages.clone()).unwrap_or_default(),
        temperature: cell.params().temperature,
        top_p: cell.params().top_p,
        max_tokens: cell.params().max_tokens,
        seed: cell.seed,
        stream: cell.params().stream,
        ignore_eos: false,
        timeout: timeout(cell.params().timeout_s),
        response_format: prompt
            .and_then(|p| p.format(cell.params().response_format))
            .map(|f| f.body()),
        thinking: cell
            .params()
            .reasoning_effort
            .map(|effort| Thinking::of(effort, reasoning_control(suite, cell.model()))),
        cache: cell.params().cache,
    }
}

/// How the endpoint behind `model` takes a reasoning effort: as its suite
/// entry says, else `enable_thinking` for a managed server (llama-server)
/// and `reasoning_effort` for an endpoint.
fn reasoning_control(suite: &Suite, model: &str) -> ReasoningControl {
    let served = suite
        .models
        .iter()
        .find(|m| m.id == model)
        .map(|m| &m.served_by);
    match served {
        Some(ServedBy::Server(_)) => ReasoningControl::EnableThinking,
        Some(ServedBy::Endpoint(name)) => suite
            .endpoints
            .get(name)
            .and_then(|e| e.reasoning_control)
            .unwrap_or(ReasoningControl::ReasoningEffort),
        None => ReasoningControl::ReasoningEffort,
    }
}

/// `seconds` as a timeout, at most [`MAX_TIMEOUT`].
pub(crate) fn timeout(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).map_or(MAX_TIMEOUT, |d| d.min(MAX_TIMEOUT))
}

/// The sample of `cell` from what its request measured: the one place a
/// measurement becomes a sample.
pub(crate) fn sample(cell: &Cell, measured: Measured) -> Sample {
    let Measured {
        error,
        ttft_ms,
        ttfo_reasoning_ms,
        e2e_ms,
        itl_ms,
        output_tokens,
        prompt_tokens,
        cached_tokens,
        token_source,
        finish_reason,
        text,
        reasoning,
        server_timings,
        http_status: _,
        retry_after: _,
        sent_at: _,
        new_connection,
    } = measured;
    let mut sample = blank(cell);
    sample.status = if error.is_some() {
        Status::Error
    } else {
        Status::Ok
    };
    if let Some((kind, message)) = error {
        sample.error_kind = Some(kind);
        sample.error = Some(message);
    }
    sample.ttft_ms = ttft_ms.map(crate::results::to_microsecond);
    sample.ttfo_reasoning_ms = ttfo_reasoning_ms.map(crate::results::to_microsecond);
    sample.e2e_ms = e2e_ms.map(crate::results::to_microsecond);
    sample.itl_ms = itl_ms
        .into_iter()
        .map(crate::results::to_microsecond)
        .collect();
    sample.output_tokens = output_tokens;
    sample.prompt_tokens = prompt_tokens;
    sample.cached_tokens = cached_tokens;
    sample.token_source = token_source;
    sample.finish_reason = finish_reason;
    sample.text = text;
    sample.server_timings = server_timings;
    sample.new_connection = new_connection;
    sample.reasoning = reasoning.finish(
        sample.ttft_ms,
        sample.ttfo_reasoning_ms,
        output_tokens,
        token_source,
    );
    if sample.status == Status::Ok {
        sample.derive_rates();
    }
    sample
}

/// A sample of `cell` with nothing measured yet.
fn blank(cell: &Cell) -> Sample {
    let mut sample = Sample::new(cell.key.to_string(), cell.model(), &cell.prompt, cell.round);
    sample.index = cell.index;
    sample.seed = cell.seed;
    sample.stream = cell.params().stream;
    sample.variant = cell.variant().label();
    sample.axes = cell.axes_label();
    sample
}

#[cfg(test)]
mod tests;
