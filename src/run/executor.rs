//! The executor: sends a plan's cells, in order, through each model's
//! provider, one request at a time, and records every sample and how each
//! model (in each variant) fared. It watches what a provider started
//! (memory, CPU, energy), marks the first request after a launch cold, and
//! skips a model's remaining cells once what serves it has died. Never
//! formats reports; never stops the run for one model's failure; never
//! sees YAML or HTTP.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::journal::Journal;
use crate::measure::noise::Monitor;
use crate::measure::resources::{DEFAULT_PERIOD, Mark, Rapl, Sampler, Window, files};
use crate::plan::{Cell, Round, Variant};
use crate::provider::{Measured, Provider, Request, Source, Started};
use crate::results::{ErrorKind, Footprint, Launch, MB, ModelRun, Sample, Status};
use crate::suite::{Model, Suite};
use crate::text::first_line;

/// The longest a request may take, whatever the suite says: a day.
pub const MAX_TIMEOUT: Duration = Duration::from_hours(24);

/// How the executor reports and records.
pub struct Options<'a> {
    /// No progress bar.
    pub quiet: bool,
    /// Where every sample is appended as it is measured.
    pub journal: Journal,
    /// What the rest of the machine does, read around every request.
    pub monitor: Option<&'a Monitor>,
}

/// The state shared by every request of a run.
struct Runner<'a> {
    suite: &'a Suite,
    progress: ProgressBar,
    journal: Journal,
    rapl: Option<Rapl>,
    monitor: Option<&'a Monitor>,
    samples: Vec<Sample>,
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
    /// Plan position of the model's last cell: the launch stops after it.
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
}

/// Runs `cells` (in order) with providers from `source` and returns every
/// sample and each model's fate. A model's launch starts before its first
/// cell (again before each round with `cold_start`) and stops after its
/// last, so model-major plans run one model at a time, and interleaved
/// plans keep every model up and rotate between them.
pub async fn execute(
    suite: &Suite,
    cells: &[Cell],
    options: Options<'_>,
    source: &mut dyn Source,
) -> (Vec<Sample>, Vec<ModelRun>) {
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
        samples: Vec::with_capacity(cells.len()),
    };
    let mut slots = slots(suite, cells, source);
    for chunk in cells.chunk_by(|a, b| a.model == b.model && a.variant == b.variant) {
        let Some(first) = chunk.first() else {
            continue;
        };
        let Some(slot) = slots
            .iter_mut()
            .find(|s| s.model.id == first.model && *s.variant == first.variant)
        else {
            continue;
        };
        runner.chunk(slot, chunk).await;
    }
    for slot in &mut slots {
        runner.stop(slot).await;
    }
    runner.progress.finish_and_clear();
    let runs = slots
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
    (runner.samples, runs)
}

/// One slot per model and variant, in order of first appearance.
fn slots<'a>(suite: &'a Suite, cells: &'a [Cell], source: &mut dyn Source) -> Vec<Slot<'a>> {
    let mut slots: Vec<Slot<'a>> = Vec::new();
    for (position, cell) in cells.iter().enumerate() {
        if let Some(slot) = slots
            .iter_mut()
            .find(|s| s.model.id == cell.model && *s.variant == cell.variant)
        {
            slot.last = position;
            continue;
        }
        let Some(model) = suite.models.iter().find(|m| m.id == cell.model) else {
            continue;
        };
        let (provider, failure) = match source.open(model, &cell.variant) {
            Ok(provider) => (Some(provider), None),
            Err(reason) => (None, Some(reason)),
        };
        slots.push(Slot {
            model,
            variant: &cell.variant,
            run: ModelRun {
                id: model.id.clone(),
                variant: cell.variant.label(),
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
            last: position,
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
            if slot.launch.is_none()
                && let Err(reason) = self.start(slot, cell.round).await
            {
                self.skip(chunk[i..].iter(), &reason);
                self.fail(slot, reason);
                break;
            }
            if let Some(reason) = self.send(slot, cell).await {
                self.fail(slot, reason);
            }
        }
        if chunk.last().is_some_and(|c| c.index == slot.last + 1) {
            self.stop(slot).await;
        }
    }

    /// Starts a launch of `slot`'s provider.
    async fn start(&mut self, slot: &mut Slot<'_>, round: Round) -> Result<(), String> {
        let Some(provider) = slot.provider.as_mut() else {
            return Err(slot.failure.clone().unwrap_or_default());
        };
        let label = slot.run.label();
        self.progress.set_message(format!("{label}: starting"));
        let bar = self.progress.clone();
        let report = move |message: String| bar.set_message(format!("{label}: {message}"));
        let started = provider.start(&report).await?;
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
            slot.run
                .launches
                .push(launch(load, running.idle, total, stopped.exit));
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

    /// Sends one cell through `slot`'s running launch. With a process to
    /// watch, measures its memory and CPU around the request and marks the
    /// launch's first request cold. Returns why the model failed when what
    /// serves it has died.
    async fn send(&mut self, slot: &mut Slot<'_>, cell: &Cell) -> Option<String> {
        let (Some(provider), Some(running)) = (slot.provider.as_mut(), slot.launch.as_mut()) else {
            return None;
        };
        self.progress
            .set_message(format!("{} · {} · {}", cell.model, cell.prompt, cell.round));
        let sampler = running.sampler.as_ref();
        let mark = sampler.map(Sampler::mark);
        let noise = self.monitor.map(Monitor::mark);
        let energy_before = self.rapl.as_ref().and_then(Rapl::read_domains);
        let measured = provider.measure(&request(self.suite, cell)).await;
        let mut sample = sample(cell, measured);
        if let (Some(rapl), Some(before)) = (&self.rapl, energy_before)
            && let Some(after) = rapl.read_domains()
        {
            sample.energy_j = rapl.delta_uj(&before, &after).map(|uj| uj as f64 / 1e6);
        }
        if let (Some(sampler), Some(mark)) = (sampler, &mark) {
            sample.cold = running.sent == 0;
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
            .flatten();
        if let Some(message) = &died {
            sample.error_kind = Some(ErrorKind::ServerExited);
            sample.error = Some(message.clone());
        }
        if let Some(tps) = sample.decode_tps {
            self.progress.set_message(format!(
                "{} · {} · {:.1} tok/s",
                cell.model, cell.prompt, tps
            ));
        }
        self.record(sample);
        died
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

    fn record(&mut self, sample: Sample) {
        self.journal.append(&sample);
        self.samples.push(sample);
        self.progress.inc(1);
    }
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
) -> Launch {
    Launch {
        load_ms: load.as_secs_f64() * 1000.0,
        rss_idle_mb: idle.and_then(|w| w.rss_peak_bytes).map(|b| b as f64 / MB),
        rss_peak_mb: total.and_then(|w| w.rss_peak_bytes).map(|b| b as f64 / MB),
        rss_median_mb: total.and_then(|w| w.rss_median_bytes).map(|b| b / MB),
        rss_samples: total.map_or(0, |w| w.samples),
        cpu_s: total.and_then(|w| w.cpu_s),
        exit,
    }
}

/// The request of `cell`: its prompt's messages with the cell's parameters.
pub fn request(suite: &Suite, cell: &Cell) -> Request {
    Request {
        id: cell.index,
        model: suite
            .models
            .iter()
            .find(|m| m.id == cell.model)
            .map(|m| m.api_model.clone())
            .unwrap_or_default(),
        messages: suite
            .prompts
            .iter()
            .find(|p| p.id == cell.prompt)
            .map(|p| p.messages.clone())
            .unwrap_or_default(),
        temperature: cell.params.temperature,
        top_p: cell.params.top_p,
        max_tokens: cell.params.max_tokens,
        seed: cell.seed,
        stream: cell.params.stream,
        timeout: timeout(cell.params.timeout_s),
        response_format: None,
    }
}

/// `seconds` as a timeout, at most [`MAX_TIMEOUT`].
pub fn timeout(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).map_or(MAX_TIMEOUT, |d| d.min(MAX_TIMEOUT))
}

/// The sample of `cell` from what its request measured: the one place a
/// measurement becomes a sample.
pub fn sample(cell: &Cell, measured: Measured) -> Sample {
    let Measured {
        error,
        ttft_ms,
        ttfo_reasoning_ms,
        e2e_ms,
        itl_ms,
        output_tokens,
        prompt_tokens,
        token_source,
        finish_reason,
        text,
        server_timings,
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
    sample.ttft_ms = ttft_ms;
    sample.ttfo_reasoning_ms = ttfo_reasoning_ms;
    sample.e2e_ms = e2e_ms;
    sample.itl_ms = itl_ms;
    sample.output_tokens = output_tokens;
    sample.prompt_tokens = prompt_tokens;
    sample.token_source = token_source;
    sample.finish_reason = finish_reason;
    sample.text = text;
    sample.server_timings = server_timings;
    if sample.status == Status::Ok {
        sample.derive_rates();
    }
    sample
}

/// A sample of `cell` with nothing measured yet.
fn blank(cell: &Cell) -> Sample {
    let mut sample = Sample::new(cell.key.clone(), &cell.model, &cell.prompt, cell.round);
    sample.index = cell.index;
    sample.seed = cell.seed;
    sample.stream = cell.params.stream;
    sample.variant = cell.variant.label();
    sample.axes = cell.axes_label();
    sample
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use futures_util::FutureExt as _;
    use futures_util::future::BoxFuture;

    use super::*;
    use crate::plan::{self, Filter};
    use crate::provider::{Progress, Stopped};
    use crate::results::TokenSource;

    /// What a mock model does: its programmed timings, and when it dies.
    #[derive(Clone, Default)]
    struct Script {
        /// The start fails with this reason.
        start_error: Option<String>,
        /// The request with this (0-based) number fails and the process is
        /// then gone.
        dies_at: Option<usize>,
        /// A process to watch (so requests are sampled and the first is cold).
        watched: bool,
    }

    /// An in-memory provider with programmed timings: TTFT 10 ms, then 10
    /// tokens 2 ms apart; it logs every call.
    struct Mock {
        model: String,
        script: Script,
        log: Arc<Mutex<Vec<String>>>,
        sent: usize,
        dead: bool,
    }

    impl Provider for Mock {
        fn start<'a>(&'a mut self, _: Progress<'a>) -> BoxFuture<'a, Result<Started, String>> {
            self.log
                .lock()
                .unwrap()
                .push(format!("start {}", self.model));
            let result = match &self.script.start_error {
                Some(reason) => Err(reason.clone()),
                None => Ok(Started {
                    load: Some(Duration::from_millis(250)),
                    pid: self.script.watched.then(std::process::id),
                    ..Started::default()
                }),
            };
            async move { result }.boxed()
        }

        fn measure<'a>(&'a mut self, request: &'a Request) -> BoxFuture<'a, Measured> {
            self.log
                .lock()
                .unwrap()
                .push(format!("measure {} {}", self.model, request.id));
            let n = self.sent;
            self.sent += 1;
            let measured = if self.script.dies_at == Some(n) {
                self.dead = true;
                Measured::failed(ErrorKind::EarlyEof, "connection closed")
            } else {
                Measured {
                    ttft_ms: Some(10.0),
                    e2e_ms: Some(28.0),
                    itl_ms: vec![2.0; 9],
                    output_tokens: Some(10),
                    token_source: Some(TokenSource::Usage),
                    text: format!("reply to {}", request.id),
                    ..Measured::default()
                }
            };
            async move { measured }.boxed()
        }

        fn died(&mut self) -> Option<String> {
            self.dead
                .then(|| "server exited with status 1 during the request".to_string())
        }

        fn stop(&mut self) -> BoxFuture<'_, Stopped> {
            self.log
                .lock()
                .unwrap()
                .push(format!("stop {}", self.model));
            async { Stopped::default() }.boxed()
        }
    }

    /// A source whose model `a` runs a watched process.
    fn watched_a() -> MockSource {
        let mut source = MockSource::default();
        source.scripts.insert(
            "a".into(),
            Script {
                watched: true,
                ..Script::default()
            },
        );
        source
    }

    #[derive(Default)]
    struct MockSource {
        scripts: BTreeMap<String, Script>,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Source for MockSource {
        fn open(&mut self, model: &Model, _: &Variant) -> Result<Box<dyn Provider>, String> {
            Ok(Box::new(Mock {
                model: model.id.clone(),
                script: self.scripts.get(&model.id).cloned().unwrap_or_default(),
                log: Arc::clone(&self.log),
                sent: 0,
                dead: false,
            }))
        }
    }

    fn suite(extra: &str) -> (Suite, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(
            &file,
            format!(
                "name: mock\nendpoints:\n  e: {{ base_url: http://127.0.0.1:9 }}\nmodels:\n  - {{ id: a, endpoint: e{extra} }}\n  - {{ id: b, endpoint: e }}\nprompts:\n  - {{ id: p, text: one }}\n  - {{ id: q, text: two }}\ndefaults: {{ rounds: 2, warmup: 1 }}\n"
            ),
        )
        .unwrap();
        let suite = crate::suite::load(&file, &|_| None).unwrap();
        (suite, dir)
    }

    async fn run(
        suite: &Suite,
        source: &mut MockSource,
        journal: Journal,
    ) -> (Vec<Sample>, Vec<ModelRun>) {
        let cells = plan::plan(suite, &Filter::default()).unwrap();
        let options = Options {
            quiet: true,
            journal,
            monitor: None,
        };
        execute(suite, &cells, options, source).await
    }

    #[tokio::test]
    async fn cells_go_in_plan_order_one_launch_per_model() {
        let (suite, _dir) = suite("");
        let mut source = MockSource::default();
        let (samples, runs) = run(&suite, &mut source, Journal::none()).await;
        let indices: Vec<usize> = samples.iter().map(|s| s.index).collect();
        assert_eq!(indices, (1..=12).collect::<Vec<_>>(), "{samples:?}");
        let log = source.log.lock().unwrap().clone();
        assert_eq!(log.first().map(String::as_str), Some("start a"), "{log:?}");
        assert_eq!(log[7], "stop a", "{log:?}");
        assert_eq!(log[8], "start b", "{log:?}");
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|r| r.status == Status::Ok), "{runs:?}");
        // Programmed timings go through unchanged: TPOT (28 − 10) / 9 = 2 ms.
        let first = &samples[0];
        assert_eq!(first.tpot_ms, Some(2.0), "{first:?}");
        let tps = first.decode_tps.unwrap();
        assert!((tps - 500.0).abs() < 1e-9, "{first:?}");
        assert_eq!(runs[0].launches.len(), 1);
        assert_eq!(runs[0].load_ms, Some(250.0));
    }

    #[tokio::test]
    async fn the_first_request_of_a_watched_launch_is_cold() {
        let (suite, _dir) = suite("");
        let mut source = watched_a();
        let (samples, runs) = run(&suite, &mut source, Journal::none()).await;
        let cold: Vec<(&str, usize)> = samples
            .iter()
            .filter(|s| s.cold)
            .map(|s| (s.model.as_str(), s.index))
            .collect();
        // Model a is watched: its first request is cold; b is not watched.
        assert_eq!(cold, [("a", 1)], "{samples:?}");
        assert!(samples[0].rss_peak_mb.is_some(), "{:?}", samples[0]);
        assert!(
            runs[0].launches[0].rss_samples > 0,
            "{:?}",
            runs[0].launches
        );
    }

    #[tokio::test]
    async fn cold_start_gives_each_round_its_own_launch() {
        let (suite, _dir) = suite(", cold_start: true");
        let mut source = watched_a();
        let (samples, runs) = run(&suite, &mut source, Journal::none()).await;
        let starts = source
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| *l == "start a")
            .count();
        assert_eq!(starts, 3, "1 warmup + 2 rounds");
        assert_eq!(runs[0].launches.len(), 3, "{:?}", runs[0].launches);
        let cold = samples.iter().filter(|s| s.model == "a" && s.cold).count();
        assert_eq!(cold, 3, "{samples:?}");
    }

    #[tokio::test]
    async fn after_a_death_the_rest_of_the_model_is_skipped_and_the_next_runs() {
        let (suite, dir) = suite("");
        let mut source = MockSource::default();
        source.scripts.insert(
            "a".into(),
            Script {
                dies_at: Some(1),
                ..Script::default()
            },
        );
        let journal_path = dir.path().join("journal.jsonl");
        let (samples, runs) = run(&suite, &mut source, Journal::create(&journal_path)).await;
        let a: Vec<(usize, Option<ErrorKind>)> = samples
            .iter()
            .filter(|s| s.model == "a")
            .map(|s| (s.index, s.error_kind))
            .collect();
        assert_eq!(
            a,
            [
                (1, None),
                (2, Some(ErrorKind::ServerExited)),
                (3, Some(ErrorKind::Skipped)),
                (4, Some(ErrorKind::Skipped)),
                (5, Some(ErrorKind::Skipped)),
                (6, Some(ErrorKind::Skipped)),
            ],
            "{samples:?}"
        );
        assert_eq!(
            samples[2].error.as_deref(),
            Some("not sent: server exited with status 1 during the request")
        );
        assert_eq!(runs[0].status, Status::Error, "{:?}", runs[0]);
        assert_eq!(runs[1].status, Status::Ok, "{:?}", runs[1]);
        let b_ok = samples
            .iter()
            .filter(|s| s.model == "b" && s.status == Status::Ok)
            .count();
        assert_eq!(b_ok, 6, "{samples:?}");
        // The journal holds every sample, in order, as it was recorded.
        let journal = std::fs::read_to_string(&journal_path).unwrap();
        let journaled: Vec<Sample> = journal
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(journaled, samples);
    }

    #[tokio::test]
    async fn a_start_that_fails_skips_every_cell_of_the_model() {
        let (suite, _dir) = suite("");
        let mut source = MockSource::default();
        source.scripts.insert(
            "a".into(),
            Script {
                start_error: Some("server `s` exited with status 3 before it was ready".into()),
                ..Script::default()
            },
        );
        let (samples, runs) = run(&suite, &mut source, Journal::none()).await;
        let skipped = samples
            .iter()
            .filter(|s| s.model == "a" && s.error_kind == Some(ErrorKind::Skipped))
            .count();
        assert_eq!(skipped, 6, "{samples:?}");
        assert!(
            runs[0]
                .failure
                .as_deref()
                .is_some_and(|f| f.contains("before it was ready")),
            "{:?}",
            runs[0]
        );
        assert!(runs[0].launches.is_empty());
        let log = source.log.lock().unwrap().clone();
        assert!(!log.contains(&"measure a 1".to_string()), "{log:?}");
    }

    #[tokio::test]
    async fn interleaved_keeps_every_model_up_and_rotates_within_a_round() {
        let (suite, _dir) = suite("");
        let mut source = watched_a();
        let cells = plan::plan(
            &suite,
            &Filter {
                order: Some(crate::suite::Order::Interleaved),
                ..Filter::default()
            },
        )
        .unwrap();
        let options = Options {
            quiet: true,
            journal: Journal::none(),
            monitor: None,
        };
        let (samples, runs) = execute(&suite, &cells, options, &mut source).await;
        let order: Vec<(&str, &str)> = samples
            .iter()
            .map(|s| (s.model.as_str(), s.prompt.as_str()))
            .collect();
        assert_eq!(
            order[..6],
            [
                ("a", "p"),
                ("a", "q"),
                ("b", "p"),
                ("b", "q"),
                ("a", "p"),
                ("a", "q")
            ],
            "{order:?}"
        );
        let log = source.log.lock().unwrap().clone();
        let starts: Vec<&String> = log.iter().filter(|l| l.starts_with("start")).collect();
        assert_eq!(starts, ["start a", "start b"], "one launch each: {log:?}");
        for model in ["a", "b"] {
            let stop = log
                .iter()
                .position(|l| *l == format!("stop {model}"))
                .unwrap();
            let last = log
                .iter()
                .rposition(|l| l.starts_with(&format!("measure {model} ")))
                .unwrap();
            assert!(
                stop > last,
                "{model} stopped before its last request: {log:?}"
            );
        }
        // Only a's very first request is cold: b is not watched, and a's
        // server stayed up between its rounds.
        let cold: Vec<usize> = samples.iter().filter(|s| s.cold).map(|s| s.index).collect();
        assert_eq!(cold, [1], "{samples:?}");
        assert_eq!(runs[0].launches.len(), 1);
    }

    #[test]
    fn huge_timeouts_are_capped_not_a_panic() {
        assert_eq!(timeout(1e20), MAX_TIMEOUT);
        assert_eq!(timeout(f64::NAN), MAX_TIMEOUT);
        assert_eq!(timeout(1.5), Duration::from_millis(1500));
    }
}
