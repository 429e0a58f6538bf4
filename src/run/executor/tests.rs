//! The executor against an in-memory provider with programmed timings.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::*;
use crate::plan::{self, Filter};
use crate::provider::{Progress, ProviderError, Stopped};
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
    /// Every request is turned away (429, Retry-After 1 ms) this many
    /// times before it is answered.
    turned_away: usize,
    /// The request with this (0-based) number never answers.
    hangs_at: Option<usize>,
}

/// An in-memory provider with programmed timings: TTFT 10 ms, then 10
/// tokens 2 ms apart; it logs every call.
struct Mock {
    model: String,
    script: Script,
    log: Arc<Mutex<Vec<String>>>,
    sent: usize,
    dead: bool,
    /// Attempts of the current request so far.
    tries: usize,
}

/// Many requests side by side, batched: 10 ms alone, 5 ms more for each
/// other request in flight (more throughput, more latency under load).
struct Crowded {
    in_flight: std::sync::atomic::AtomicUsize,
}

impl crate::provider::Concurrent for Crowded {
    fn send<'a>(&'a self, _: &'a Request) -> BoxFuture<'a, Measured> {
        async move {
            use std::sync::atomic::Ordering;
            let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            let ms = 10 + 5 * (n as u64 - 1);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Measured {
                ttft_ms: Some(ms as f64 / 2.0),
                e2e_ms: Some(ms as f64),
                output_tokens: Some(8),
                prompt_tokens: Some(4),
                itl_ms: vec![1.0; 7],
                ..Measured::default()
            }
        }
        .boxed()
    }
}

impl Provider for Mock {
    fn sender(&self) -> Option<Arc<dyn crate::provider::Concurrent>> {
        Some(Arc::new(Crowded {
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        }))
    }

    fn start<'a>(&'a mut self, _: Progress<'a>) -> BoxFuture<'a, Result<Started, ProviderError>> {
        self.log
            .lock()
            .unwrap()
            .push(format!("start {}", self.model));
        let result = match &self.script.start_error {
            Some(reason) => Err(ProviderError::Start(reason.clone())),
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
        if self.tries < self.script.turned_away {
            self.tries += 1;
            let mut busy = Measured::failed(ErrorKind::HttpStatus, "HTTP 429: slow down");
            busy.http_status = Some(429);
            busy.retry_after = Some(Duration::from_millis(1));
            return async move { busy }.boxed();
        }
        self.tries = 0;
        self.sent += 1;
        if self.script.hangs_at == Some(n) {
            return std::future::pending().boxed();
        }
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

    fn died(&mut self) -> Option<ProviderError> {
        self.dead
            .then(|| ProviderError::Died("server exited with status 1 during the request".into()))
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
    fn open(&mut self, model: &Model, _: &Variant) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(Box::new(Mock {
            model: model.id.clone(),
            script: self.scripts.get(&model.id).cloned().unwrap_or_default(),
            log: Arc::clone(&self.log),
            sent: 0,
            dead: false,
            tries: 0,
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
        interrupt: Interrupt::never(),
    };
    let executed = execute(suite, &cells, options, source).await;
    (executed.samples, executed.runs)
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
async fn a_part_of_the_plan_stops_each_launch_after_its_own_last_cell() {
    // A shard or a resumed run executes a part of the plan: cells 4..=12
    // (a's last two, then b's six). a stops before b starts.
    let (suite, _dir) = suite("");
    let cells = plan::plan(&suite, &Filter::default()).unwrap();
    let part = &cells[3..];
    let mut source = MockSource::default();
    let options = Options {
        quiet: true,
        journal: Journal::none(),
        monitor: None,
        interrupt: Interrupt::never(),
    };
    execute(&suite, part, options, &mut source).await;
    let log = source.log.lock().unwrap().clone();
    let stop_a = log.iter().position(|l| l == "stop a");
    let start_b = log.iter().position(|l| l == "start b");
    assert!(
        stop_a.is_some() && stop_a < start_b,
        "a must stop before b starts: {log:?}"
    );
    assert_eq!(log.last().map(String::as_str), Some("stop b"), "{log:?}");
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
    // The first request after each load is cold; only a's process is
    // watched, so only a's requests have memory figures.
    assert_eq!(cold, [("a", 1), ("b", 7)], "{samples:?}");
    assert!(samples[0].rss_peak_mb.is_some(), "{:?}", samples[0]);
    assert!(samples[6].rss_peak_mb.is_none(), "{:?}", samples[6]);
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
    let header = super::super::journal::Header {
        suite_hash: suite.hash(),
        plan_hash: String::new(),
        shard: None,
        started_at: String::new(),
    };
    let (samples, runs) = run(&suite, &mut source, Journal::create(&journal_path, &header)).await;
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
    // The journal holds every sample, in order, as it was recorded,
    // and how each model fared.
    let journaled = super::super::journal::read(&journal_path).unwrap();
    assert_eq!(journaled.samples, samples);
    assert_eq!(journaled.runs, runs);
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
        interrupt: Interrupt::never(),
    };
    let executed = execute(&suite, &cells, options, &mut source).await;
    let (samples, runs) = (executed.samples, executed.runs);
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
    // Only each model's very first request is cold: their servers
    // stayed up between rounds.
    let cold: Vec<usize> = samples.iter().filter(|s| s.cold).map(|s| s.index).collect();
    assert_eq!(cold, [1, 3], "{samples:?}");
    assert_eq!(runs[0].launches.len(), 1);
}

#[tokio::test]
async fn an_interrupt_stops_sending_and_stops_what_runs() {
    let (suite, _dir) = suite("");
    let mut source = MockSource::default();
    source.scripts.insert(
        "a".into(),
        Script {
            hangs_at: Some(2),
            ..Script::default()
        },
    );
    let cells = plan::plan(&suite, &Filter::default()).unwrap();
    let (tx, options) = interruptible();
    let run = execute(&suite, &cells, options, &mut source);
    let trigger = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(Some("interrupted by test".into())).unwrap();
    };
    let (executed, ()) = tokio::join!(run, trigger);
    assert_eq!(executed.interrupted.as_deref(), Some("interrupted by test"));
    let sent: Vec<usize> = executed.samples.iter().map(|s| s.index).collect();
    assert_eq!(sent, [1, 2], "the request in flight is not recorded");
    let log = source.log.lock().unwrap().clone();
    assert_eq!(log.last().map(String::as_str), Some("stop a"), "{log:?}");
    assert!(
        !log.iter().any(|l| l.ends_with(" b")),
        "b never started: {log:?}"
    );
    assert_eq!(executed.runs.len(), 2, "{:?}", executed.runs);
}

#[tokio::test]
async fn a_request_turned_away_is_tried_again() {
    let (suite, _dir) = suite("");
    let mut source = MockSource::default();
    source.scripts.insert(
        "a".into(),
        Script {
            turned_away: 2,
            ..Script::default()
        },
    );
    let (samples, _) = run(&suite, &mut source, Journal::none()).await;
    let a: Vec<(Status, u32)> = samples
        .iter()
        .filter(|s| s.model == "a")
        .map(|s| (s.status, s.attempts))
        .collect();
    assert!(
        a.iter()
            .all(|&(status, attempts)| status == Status::Ok && attempts == 3),
        "{a:?}"
    );
    // Each of a's cells counts its requests sent again (warmup included);
    // b's none.
    let retried: Vec<(String, usize)> = crate::results::aggregate(&samples)
        .into_iter()
        .map(|c| (c.key, c.retried))
        .collect();
    assert_eq!(
        retried,
        [
            ("a/p".into(), 3),
            ("a/q".into(), 3),
            ("b/p".into(), 0),
            ("b/q".into(), 0)
        ],
        "{retried:?}"
    );
    // More refusals than the default 3 retries allow: recorded as failed.
    let mut source = MockSource::default();
    source.scripts.insert(
        "a".into(),
        Script {
            turned_away: 9,
            ..Script::default()
        },
    );
    let (samples, _) = run(&suite, &mut source, Journal::none()).await;
    let first = &samples[0];
    assert_eq!(
        (first.status, first.attempts, first.error_kind),
        (Status::Error, 4, Some(ErrorKind::HttpStatus)),
        "{first:?}"
    );
}

/// Quiet options without a journal, and the trigger of their interrupt.
fn interruptible() -> (tokio::sync::watch::Sender<Option<String>>, Options<'static>) {
    let (tx, interrupt) = Interrupt::manual();
    let options = Options {
        quiet: true,
        journal: Journal::none(),
        monitor: None,
        interrupt,
    };
    (tx, options)
}

/// A one-model suite driven at load points.
fn load_suite(load: &str) -> (Suite, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(
            &file,
            format!(
                "name: load\nendpoints:\n  e: {{ base_url: http://127.0.0.1:9 }}\nmodels:\n  - {{ id: a, endpoint: e }}\nprompts:\n  - {{ id: p, text: one }}\n  - {{ id: q, text: two }}\nload: {load}\n"
            ),
        )
        .unwrap();
    (crate::suite::load(&file, &|_| None).unwrap(), dir)
}

async fn run_load(suite: &Suite) -> Executed {
    let cells = plan::plan(suite, &Filter::default()).unwrap();
    let options = Options {
        quiet: true,
        journal: Journal::none(),
        monitor: None,
        interrupt: Interrupt::never(),
    };
    execute(suite, &cells, options, &mut MockSource::default()).await
}

#[tokio::test(start_paused = true)]
async fn load_points_record_every_request_and_their_throughput() {
    let (suite, _dir) = load_suite("{ concurrency: [1, 4], requests: 40 }");
    let executed = run_load(&suite).await;
    let keys: Vec<&str> = executed.load.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["a/*[concurrency=1]", "a/*[concurrency=4]"]);
    for stats in &executed.load {
        assert_eq!(stats.counted, 40, "{stats:?}");
        assert_eq!(stats.errors, 0);
    }
    let (one, four) = (&executed.load[0], &executed.load[1]);
    // One stream: 10 ms a request, 100/s. Four: 25 ms each, 4 at a
    // time: 160/s, at 2.5 times the latency.
    assert!((95.0..105.0).contains(&one.request_throughput), "{one:?}");
    assert!(
        (150.0..170.0).contains(&four.request_throughput),
        "{four:?}"
    );
    assert!((760.0..840.0).contains(&one.output_tps), "{one:?}");
    let e2e = |l: &crate::results::LoadStats| l.e2e_ms.as_ref().unwrap().summary.p50;
    assert!(e2e(four) > 2.2 * e2e(one), "{} vs {}", e2e(four), e2e(one));
    let prompts: std::collections::BTreeSet<&str> =
        executed.samples.iter().map(|s| s.prompt.as_str()).collect();
    assert_eq!(
        prompts.into_iter().collect::<Vec<_>>(),
        ["p", "q"],
        "both prompts drawn"
    );
    assert!(executed.samples.iter().all(|s| s.schedule_lag_ms.is_some()));
}

#[tokio::test(start_paused = true)]
async fn a_sweep_finds_the_highest_rate_that_meets_the_slo() {
    // Latency is 10 ms + 5 ms per other request in flight: E2E ≤ 35 ms
    // holds up to 6 in flight; 8 streams (45 ms, 178/s) break it, 4
    // (25 ms, 160/s) meet it.
    let (suite, _dir) = load_suite(
        "{ sweep: { max_concurrency: 16, refine: 3 }, duration_s: 2, slo: { e2e_ms: 35 } }",
    );
    let executed = run_load(&suite).await;
    let sweep = executed
        .sweeps
        .first()
        .unwrap_or_else(|| panic!("{executed:?}"));
    assert!(sweep.points.len() >= 4, "{sweep:?}");
    let max = sweep
        .max_rate_meeting_slo
        .unwrap_or_else(|| panic!("{sweep:?}"));
    assert!((100.0..180.0).contains(&max), "{sweep:?}");
    let goodput: Vec<Option<f64>> = executed.load.iter().map(|l| l.goodput).collect();
    assert!(goodput.iter().all(Option::is_some), "{goodput:?}");
}

#[test]
fn huge_timeouts_are_capped_not_a_panic() {
    assert_eq!(timeout(1e20), MAX_TIMEOUT);
    assert_eq!(timeout(f64::NAN), MAX_TIMEOUT);
    assert_eq!(timeout(1.5), Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn issue_23_an_interrupted_load_point_keeps_figures_for_what_it_did() {
    let (suite, _dir) = load_suite("{ concurrency: [1], requests: 2000 }");
    let cells = plan::plan(&suite, &Filter::default()).unwrap();
    let (tx, options) = interruptible();
    let mut source = MockSource::default();
    let run = execute(&suite, &cells, options, &mut source);
    let trigger = async {
        // One stream at 10 ms a request: about 20 requests done by then.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send(Some("interrupted by test".into())).unwrap();
    };
    let (executed, ()) = tokio::join!(run, trigger);
    assert_eq!(executed.interrupted.as_deref(), Some("interrupted by test"));
    let point = executed
        .load
        .first()
        .unwrap_or_else(|| panic!("no figures for the point: {executed:?}"));
    assert_eq!(
        point.interrupted.as_deref(),
        Some("interrupted by test"),
        "{point:?}"
    );
    assert!(
        (5..2000).contains(&point.sent) && point.sent == executed.samples.len(),
        "{point:?}"
    );
}
