//! Client benchmark: how faithfully and how cheaply dyno's own client path
//! (`provider::openai::chat` for sequential requests, `run::driver::drive`
//! with an `HttpSender` for concurrent streams, on one thread as `dyno
//! run` has it) times streamed responses, against the timetable fixture
//! (`benches/support/timetable.rs`), which records when it wrote each
//! chunk. Prints one table:
//!
//! - TTFT and ITL error (client-observed time − server send time) at 1
//!   stream and at 256 concurrent streams;
//! - client CPU per streamed chunk (user + system, this thread's
//!   `getrusage`) at 1 and 64 streams, and `curl -N`'s (each process's
//!   `wait4` usage) on the same streams; per chunk is the cost of long
//!   streams less that of one-token streams, over the extra chunks, so
//!   neither client's fixed cost per request (curl's process start) counts;
//! - client CPU per sequential request.
//!
//! Numbers, never assertions. `cargo bench --bench client` (Linux);
//! `cargo bench --bench client -- requests` runs only the sections whose
//! names (`fidelity`, `chunks`, `requests`) contain an argument.

#[path = "support/timetable.rs"]
mod timetable;

#[cfg(target_os = "linux")]
fn main() {
    bench::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the client benchmark reads per-thread CPU time, which it does on Linux only");
}

#[cfg(target_os = "linux")]
mod bench {
    use std::process::{Command, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use dyno::measure::stats::percentile;
    use dyno::provider::openai::{self, Target};
    use dyno::provider::{Concurrent, HttpSender, Measured, Request};
    use dyno::run::driver::{self, Drive, Point};
    use dyno::run::interrupt::Interrupt;
    use dyno::secrets::Secrets;
    use dyno::suite::{Message, Role};

    use super::timetable::{Fixture, Served, Timetable};

    fn thread_usage() -> libc::rusage {
        // SAFETY: getrusage writes one `rusage` into the zeroed struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) };
        usage
    }

    /// CPU seconds (user + system) of the calling thread.
    fn thread_cpu_s() -> f64 {
        seconds(thread_usage())
    }

    /// Times the calling thread was made to give up its core so far.
    fn preempted() -> i64 {
        thread_usage().ru_nivcsw
    }

    fn seconds(usage: libc::rusage) -> f64 {
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(usage.ru_utime) + t(usage.ru_stime)
    }

    fn request(timetable: Timetable, seed: u32) -> Request {
        Request {
            id: seed as usize,
            model: timetable.model(),
            messages: vec![Message {
                role: Role::User,
                content: "Count slowly.".into(),
            }],
            temperature: 0.0,
            top_p: None,
            max_tokens: timetable.tokens,
            seed,
            stream: true,
            ignore_eos: false,
            timeout: Duration::from_secs(120),
            response_format: None,
            thinking: None,
            cache: true,
        }
    }

    /// Hands out seeds no earlier request used, so the fixture's records
    /// match requests one to one.
    struct Seeds(u32);

    impl Seeds {
        fn take(&mut self, n: u32) -> u32 {
            let first = self.0;
            self.0 += n;
            first
        }
    }

    fn ms(from: Instant, to: Instant) -> f64 {
        if to >= from {
            to.duration_since(from).as_secs_f64() * 1000.0
        } else {
            -(from.duration_since(to).as_secs_f64() * 1000.0)
        }
    }

    /// TTFT errors and ITL errors (ms) of `measured`, each matched to
    /// what the fixture sent for its seed.
    fn errors(measured: &[(u32, Measured)], served: &[Served]) -> (Vec<f64>, Vec<f64>) {
        let by_seed: std::collections::HashMap<u64, &Served> =
            served.iter().map(|s| (s.seed, s)).collect();
        let (mut ttft, mut itl) = (Vec::new(), Vec::new());
        for (seed, m) in measured {
            assert!(m.error.is_none(), "request {seed} failed: {:?}", m.error);
            let s = by_seed[&u64::from(*seed)];
            let sent_at = m.sent_at.expect("chat records when it sent");
            let first = sent_at + Duration::from_secs_f64(m.ttft_ms.expect("ttft") / 1000.0);
            ttft.push(ms(s.content[0], first));
            assert_eq!(m.itl_ms.len() + 1, s.content.len(), "request {seed}");
            for (k, client_gap) in m.itl_ms.iter().enumerate() {
                let server_gap = ms(s.content[k], s.content[k + 1]);
                itl.push(client_gap - server_gap);
            }
        }
        (ttft, itl)
    }

    /// One row of the table.
    struct Row {
        what: String,
        cells: [String; 3],
        target: &'static str,
        met: Option<bool>,
    }

    fn print(rows: &[Row]) {
        println!(
            "| measure | dyno | reference | ratio / p99 | target | met |\n|---|--:|--:|--:|---|---|"
        );
        for r in rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            println!(
                "| {} | {} | {} | {} | {} | {met} |",
                r.what, r.cells[0], r.cells[1], r.cells[2], r.target
            );
        }
    }

    fn at(values: &[f64], q: f64) -> f64 {
        percentile(values, q).unwrap_or(f64::NAN)
    }

    fn abs(values: &[f64]) -> Vec<f64> {
        values.iter().map(|v| v.abs()).collect()
    }

    /// Involuntary context switches of the fixture's thread so far.
    fn fixture_preempted() -> i64 {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return 0;
        };
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.starts_with("timetable-fixt") {
                let status =
                    std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
                return status
                    .lines()
                    .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
            }
        }
        0
    }

    /// Involuntary context switches of the client's and the fixture's
    /// threads while `work` ran: how often the rest of the machine took
    /// their cores (each one can delay a chunk by a scheduler slice).
    fn preemptions<T>(work: impl FnOnce() -> T) -> (T, i64, i64) {
        let (client, fixture) = (preempted(), fixture_preempted());
        let out = work();
        (out, preempted() - client, fixture_preempted() - fixture)
    }

    /// Error rows: median and p90 of the error, p99 and the most of its
    /// size, and how often the client and fixture threads were preempted.
    fn error_rows(
        label: &str,
        (ttft, itl): (&[f64], &[f64]),
        (client, fixture): (i64, i64),
        limit_ms: f64,
        target: &'static str,
    ) -> [Row; 2] {
        let row = |what: &str, values: &[f64]| {
            let size = abs(values);
            let p99 = at(&size, 0.99);
            Row {
                what: format!("{what}, {label} (n = {})", values.len()),
                cells: [
                    format!(
                        "median {:.3} ms, p90 {:.3} ms",
                        at(values, 0.5),
                        at(values, 0.9)
                    ),
                    format!(
                        "max {:.2} ms; preempted: client {client}×, fixture {fixture}×",
                        at(&size, 1.0)
                    ),
                    format!("p99 {p99:.3} ms"),
                ],
                target,
                met: Some(p99 <= limit_ms),
            }
        };
        [row("TTFT error", ttft), row("ITL error", itl)]
    }

    async fn sequential(
        client: &reqwest::Client,
        target: &Target,
        timetable: Timetable,
        seeds: &mut Seeds,
        n: u32,
    ) -> Vec<(u32, Measured)> {
        let first = seeds.take(n);
        let mut out = Vec::new();
        for seed in first..first + n {
            let r = request(timetable, seed);
            out.push((seed, openai::chat(client, target, &r.model, &r).await));
        }
        out
    }

    async fn concurrent(
        sender: &Arc<dyn Concurrent>,
        timetable: Timetable,
        seeds: &mut Seeds,
        streams: u32,
        requests: u32,
    ) -> Vec<(u32, Measured)> {
        // Streams still running when the counted requests are out send one
        // more each (the cool-down).
        let first = seeds.take(requests + streams);
        let point = Point {
            drive: Drive::Concurrency(streams),
            seed: 1,
            max_in_flight: streams,
            warmup: Duration::ZERO,
            duration: None,
            requests: Some(u64::from(requests)),
            cooldown: Duration::ZERO,
        };
        let make = move |n: u64| (0, request(timetable, first + n as u32));
        let run = driver::drive(&point, Arc::clone(sender), &make, Interrupt::never()).await;
        run.sent
            .into_iter()
            .map(|s| (first + s.n as u32, s.measured))
            .collect()
    }

    /// CPU seconds `curl -N` used streaming `timetable`, `streams` at once.
    fn curl(fixture: &Fixture, timetable: Timetable, seeds: &mut Seeds, streams: u32) -> f64 {
        let first = seeds.take(streams);
        let children: Vec<_> = (first..first + streams)
            .map(|seed| {
                let r = request(timetable, seed);
                let body = openai::body(&r.model, &r).to_string();
                Command::new("curl")
                    .args([
                        "-N",
                        "-s",
                        "-o",
                        "/dev/null",
                        "-H",
                        "content-type: application/json",
                    ])
                    .args(["--data-binary", &body, &fixture.chat_url()])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("curl runs")
            })
            .collect();
        let mut cpu = 0.0;
        for child in children {
            let pid = child.id() as libc::pid_t;
            let mut status = 0;
            // SAFETY: wait4 reaps our own child and fills the zeroed rusage.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            let reaped = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
            assert_eq!(reaped, pid, "curl ended");
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "curl failed: {status}"
            );
            cpu += seconds(usage);
        }
        cpu
    }

    /// dyno's CPU seconds streaming `timetable`, `streams` at once, one
    /// request per stream.
    async fn dyno_cpu(
        client: &reqwest::Client,
        sender: &Arc<dyn Concurrent>,
        target: &Target,
        timetable: Timetable,
        seeds: &mut Seeds,
        streams: u32,
    ) -> f64 {
        let before = thread_cpu_s();
        let measured = if streams == 1 {
            sequential(client, target, timetable, seeds, 1).await
        } else {
            concurrent(sender, timetable, seeds, streams, streams).await
        };
        let used = thread_cpu_s() - before;
        assert!(
            measured.iter().all(|(_, m)| m.error.is_none()),
            "{measured:?}"
        );
        used
    }

    /// Whether the section `name` runs: every one without arguments, else
    /// those an argument names part of (`cargo bench` passes `--bench`).
    fn wanted(name: &str) -> bool {
        let filters: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
    }

    pub(super) fn main() {
        let fixture = Fixture::start();
        let target = Target::local(fixture.base_url.clone(), &Secrets::default());
        let kept = dyno::provider::local_timing_client(true).expect("client");
        let mut bench = Bench {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            fresh: dyno::provider::local_timing_client(false).expect("client"),
            sender: Arc::new(HttpSender::new(kept.clone(), target.clone(), None)),
            kept,
            target,
            fixture,
            seeds: Seeds(1),
            rows: Vec::new(),
        };
        if wanted("fidelity") {
            bench.fidelity();
        }
        if wanted("chunks") {
            bench.chunks();
        }
        if wanted("requests") {
            bench.requests();
        }
        bench.fixture.take();
        println!(
            "dyno client against the timetable fixture (127.0.0.1; one client thread, as `dyno run`; {} connections accepted)\n",
            bench.fixture.connections()
        );
        print(&bench.rows);
    }

    /// What every section measures with, and the table it fills.
    struct Bench {
        /// One thread, as `dyno run` has it.
        runtime: tokio::runtime::Runtime,
        fixture: Fixture,
        target: Target,
        /// A new connection per request (sequential runs' default).
        fresh: reqwest::Client,
        /// Connections kept alive (`reuse_connections`).
        kept: reqwest::Client,
        /// What load points send through (connections kept alive).
        sender: Arc<dyn Concurrent>,
        seeds: Seeds,
        rows: Vec<Row>,
    }

    impl Bench {
        /// TTFT and ITL error at 1 and 256 streams.
        fn fidelity(&mut self) {
            // One stream: a run's requests, one at a time.
            let one = Timetable::new(150.0, 1.0, 200);
            let (measured, client, server) = preemptions(|| {
                self.runtime.block_on(sequential(
                    &self.fresh,
                    &self.target,
                    one,
                    &mut self.seeds,
                    50,
                ))
            });
            let (ttft, itl) = errors(&measured, &self.fixture.take());
            self.rows.extend(error_rows(
                &format!("1 stream, {} × 50", one.model()),
                (&ttft, &itl),
                (client, server),
                1.0,
                "p99 ≤ 1 ms",
            ));

            // 256 streams: a load point's closed loop.
            let many = Timetable::new(150.0, 20.0, 50);
            let (measured, client, server) = preemptions(|| {
                self.runtime
                    .block_on(concurrent(&self.sender, many, &mut self.seeds, 256, 768))
            });
            let (ttft, itl) = errors(&measured, &self.fixture.take());
            self.rows.extend(error_rows(
                &format!(
                    "256 streams, {} × 768, {:.0} chunks/s",
                    many.model(),
                    256.0 * 1000.0 / many.every_ms
                ),
                (&ttft, &itl),
                (client, server),
                2.0,
                "p99 ≤ 2 ms",
            ));
        }

        /// CPU per streamed chunk, dyno against curl on the same streams.
        fn chunks(&mut self) {
            let curl_runs = have_curl();
            for (streams, every_ms, tokens) in [(1u32, 1.0, 2000u32), (64, 10.0, 300)] {
                let long = Timetable::new(0.0, every_ms, tokens);
                let short = Timetable::new(0.0, every_ms, 1);
                let (mut d, mut c) = (Vec::new(), Vec::new());
                for _ in 0..5 {
                    let mut cpu = |timetable| {
                        let (client, sender) = (&self.fresh, &self.sender);
                        let seeds = &mut self.seeds;
                        let cpu = dyno_cpu(client, sender, &self.target, timetable, seeds, streams);
                        self.runtime.block_on(cpu)
                    };
                    d.push(cpu(long) - cpu(short));
                    if curl_runs {
                        let cl = curl(&self.fixture, long, &mut self.seeds, streams);
                        c.push(cl - curl(&self.fixture, short, &mut self.seeds, streams));
                    }
                }
                self.fixture.take();
                let chunks = f64::from(streams * (tokens - 1));
                let d = at(&d, 0.5) * 1e6 / chunks;
                let c = (!c.is_empty()).then(|| at(&c, 0.5) * 1e6 / chunks);
                self.rows.push(Row {
                    what: format!(
                        "CPU per chunk, {streams} stream(s), {} (median of 5)",
                        long.model()
                    ),
                    cells: [
                        format!("{d:.1} µs"),
                        c.map_or_else(|| "no curl here".into(), |c| format!("curl {c:.1} µs")),
                        c.map_or_else(String::new, |c| format!("{:.2}×", d / c)),
                    ],
                    target: "≤ 1.3× curl",
                    met: c.map(|c| d <= 1.3 * c),
                });
            }
        }

        /// CPU per request, sequential, on new and on kept-alive connections.
        fn requests(&mut self) {
            let tiny = Timetable::new(0.0, 0.0, 1);
            let Bench {
                runtime,
                target,
                fresh,
                kept,
                seeds,
                rows,
                ..
            } = self;
            for (label, client) in [("new connection each", &*fresh), ("kept alive", &*kept)] {
                let n = 500;
                runtime.block_on(sequential(client, target, tiny, seeds, 20));
                let before = thread_cpu_s();
                let measured = runtime.block_on(sequential(client, target, tiny, seeds, n));
                let per = (thread_cpu_s() - before) * 1000.0 / f64::from(n);
                assert!(
                    measured.iter().all(|(_, m)| m.error.is_none()),
                    "{measured:?}"
                );
                let new = measured.iter().filter(|(_, m)| m.new_connection).count();
                rows.push(Row {
                    what: format!(
                        "CPU per request, sequential, {label} ({} × {n}, {new} new connections)",
                        tiny.model()
                    ),
                    cells: [format!("{per:.3} ms"), String::new(), String::new()],
                    target: "≤ 0.2 ms",
                    met: Some(per <= 0.2),
                });
            }
        }
    }

    /// Whether `curl` runs here.
    fn have_curl() -> bool {
        Command::new("curl")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}
