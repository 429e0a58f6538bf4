//! Load points: many requests side by side against one model. Closed loop
//! (`concurrency`: N streams, each sending its next request when the last
//! finishes) or open loop (`rate`: requests start on a seeded schedule,
//! Poisson or constant, whether or not earlier ones finished, with
//! `max_in_flight` as a guard). Each request records when it was scheduled
//! and how late it went out; the client's own CPU and the event loop's lag
//! are measured so a point the client could not keep up with says so.
//!
//! Requests started in the warm-up window or after the counted window
//! (cool-down) are recorded but not counted. Never decides what a point is
//! (the plan does) or writes anything (the executor records).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::interrupt::Interrupt;
use crate::measure::resources::own::own_cpu_s;
use crate::measure::stats;
use crate::provider::{Concurrent, Measured, Request};
pub use crate::suite::workload::{Arrival, Drive, Point};

/// Where in a point a request started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Warmup,
    Counted,
    Cooldown,
}

/// One request of a point, measured.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Position in the order requests were scheduled (0-based).
    pub n: u64,
    pub phase: Phase,
    /// When it was due, from the point's start, in milliseconds.
    pub scheduled_ms: f64,
    /// How late it went out after it was due, in milliseconds.
    pub lag_ms: f64,
    /// When it finished, from the point's start, in milliseconds.
    pub finished_ms: f64,
    pub prompt: usize,
    pub measured: Measured,
}

/// What driving a point measured.
#[derive(Debug)]
pub struct PointRun {
    /// Every request, in the order they were scheduled.
    pub sent: Vec<Sent>,
    /// From the first counted request's send to the last counted
    /// request's end, in seconds.
    pub window_s: f64,
    /// The whole point, warm-up and cool-down included, in seconds.
    pub wall_s: f64,
    /// dyno's own CPU seconds over the whole point.
    pub client_cpu_s: Option<f64>,
    /// How late the event loop woke for a 5 ms tick, p99, in milliseconds.
    pub loop_lag_p99_ms: Option<f64>,
    /// Why the point stopped early, if it did.
    pub interrupted: Option<String>,
}

/// Makes the request numbered `n`, and says which prompt it carries.
pub type Requests<'a> = &'a (dyn Fn(u64) -> (usize, Request) + Sync);

/// The state the request tasks share.
struct Shared {
    start: Instant,
    window_start: Instant,
    point: Point,
    /// Counted requests started so far.
    counted: AtomicU64,
    /// When sending stops: the window's end plus the cool-down, once known.
    stop_at: Mutex<Option<Instant>>,
    sent: Mutex<Vec<Sent>>,
}

impl Shared {
    /// The phase of a request starting now; counts it when it is counted.
    fn phase(&self, now: Instant) -> Phase {
        if now < self.window_start {
            return Phase::Warmup;
        }
        let in_time = self
            .point
            .duration
            .is_none_or(|d| now < self.window_start + d);
        let in_number = match self.point.requests {
            None => true,
            Some(limit) => self
                .counted
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                    (c < limit).then_some(c + 1)
                })
                .is_ok(),
        };
        if in_time && in_number {
            if self.point.requests.is_none() {
                self.counted.fetch_add(1, Ordering::SeqCst);
            }
            Phase::Counted
        } else {
            let mut stop = self
                .stop_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            stop.get_or_insert(now + self.point.cooldown);
            Phase::Cooldown
        }
    }

    /// Whether sending is over at `now`.
    fn over(&self, now: Instant) -> bool {
        if let Some(d) = self.point.duration
            && now >= self.window_start + d + self.point.cooldown
        {
            return true;
        }
        self.stop_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|stop| now >= stop)
    }

    fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64() * 1000.0
    }

    fn record(&self, sent: Sent) {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(sent);
    }
}

/// Sends one request due at `due` and records it.
async fn one(
    shared: &Shared,
    sender: &dyn Concurrent,
    requests: Requests<'_>,
    n: u64,
    due: Instant,
) {
    let (prompt, request) = requests(n);
    let now = Instant::now();
    let phase = shared.phase(now);
    let measured = sender.send(&request).await;
    let finished = Instant::now();
    shared.record(Sent {
        n,
        phase,
        scheduled_ms: shared.ms(due),
        lag_ms: now.saturating_duration_since(due).as_secs_f64() * 1000.0,
        finished_ms: shared.ms(finished),
        prompt,
        measured,
    });
}

/// Drives `point` against `sender` until its budget is spent or the run is
/// interrupted (requests in flight then are abandoned and not recorded).
pub async fn drive(
    point: &Point,
    sender: Arc<dyn Concurrent>,
    requests: Requests<'_>,
    interrupt: Interrupt,
) -> PointRun {
    let start = Instant::now();
    let cpu_before = own_cpu_s();
    let shared = Shared {
        start,
        window_start: start + point.warmup,
        point: point.clone(),
        counted: AtomicU64::new(0),
        stop_at: Mutex::new(None),
        sent: Mutex::new(Vec::new()),
    };
    let ticks = Arc::new(Mutex::new(Vec::new()));
    let ticker = tokio::spawn(tick(Arc::clone(&ticks)));
    let mut interrupt = interrupt;
    let interrupted = tokio::select! {
        () = schedule(&shared, sender.as_ref(), requests) => None,
        reason = interrupt.wait() => Some(reason),
    };
    ticker.abort();
    let wall_s = start.elapsed().as_secs_f64();
    let mut sent = shared
        .sent
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sent.sort_by_key(|s| s.n);
    // From the first counted request's send (not the warm-up's end: a
    // warm-up request still in flight then would count as idle time) to
    // the last counted request's end.
    let counted = || sent.iter().filter(|s| s.phase == Phase::Counted);
    let first_send = counted()
        .map(|s| s.scheduled_ms + s.lag_ms)
        .reduce(f64::min);
    let last_end = counted().map(|s| s.finished_ms).reduce(f64::max);
    let window_s = first_send
        .zip(last_end)
        .map_or(0.0, |(start, end)| (end - start).max(0.0) / 1000.0);
    let lags = ticks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    PointRun {
        sent,
        window_s,
        wall_s,
        client_cpu_s: cpu_before.zip(own_cpu_s()).map(|(a, b)| b - a),
        loop_lag_p99_ms: stats::percentile(&lags, 0.99),
        interrupted,
    }
}

/// Sends every request of the point, as its drive says.
async fn schedule(shared: &Shared, sender: &dyn Concurrent, requests: Requests<'_>) {
    let next = AtomicU64::new(0);
    match shared.point.drive {
        Drive::Concurrency(streams) => {
            let stream = || async {
                loop {
                    let now = Instant::now();
                    if shared.over(now) {
                        return;
                    }
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    one(shared, sender, requests, n, now).await;
                }
            };
            futures_util::future::join_all((0..streams.max(1)).map(|_| stream())).await;
        }
        Drive::Rate { per_s, arrival } => {
            let gaps = Gaps::new(per_s, arrival, shared.point.seed);
            let guard = Semaphore::new(shared.point.max_in_flight.max(1) as usize);
            let mut due = shared.start;
            let mut in_flight = futures_util::stream::FuturesUnordered::new();
            for gap in gaps {
                due += gap;
                if shared.over(due) {
                    break;
                }
                // Wait for the due time while finishing what is in flight.
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => break,
                        Some(()) = futures_util::StreamExt::next(&mut in_flight) => {}
                    }
                }
                let n = next.fetch_add(1, Ordering::SeqCst);
                let (guard, at) = (&guard, due);
                in_flight.push(async move {
                    let _permit = guard.acquire().await;
                    one(shared, sender, requests, n, at).await;
                });
            }
            while futures_util::StreamExt::next(&mut in_flight)
                .await
                .is_some()
            {}
        }
    }
}

/// The gaps between arrivals at `per_s` requests per second: exponential
/// (seeded) or equal.
pub(crate) struct Gaps {
    mean_s: f64,
    arrival: Arrival,
    state: u64,
}

impl Gaps {
    pub(crate) fn new(per_s: f64, arrival: Arrival, seed: u64) -> Gaps {
        Gaps {
            mean_s: if per_s > 0.0 { 1.0 / per_s } else { f64::MAX },
            arrival,
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
        }
    }
}

impl Iterator for Gaps {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let seconds = match self.arrival {
            Arrival::Constant => self.mean_s,
            Arrival::Poisson => {
                // splitmix64; a uniform in (0, 1] from its top 53 bits.
                self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = self.state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                -u.ln() * self.mean_s
            }
        };
        Duration::try_from_secs_f64(seconds).ok()
    }
}

/// Records how late a 5 ms tick wakes, in milliseconds, until aborted.
async fn tick(lags: Arc<Mutex<Vec<f64>>>) {
    let period = Duration::from_millis(5);
    let mut due = Instant::now() + period;
    loop {
        tokio::time::sleep_until(due).await;
        let late = Instant::now().saturating_duration_since(due).as_secs_f64() * 1000.0;
        lags.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(late);
        due += period;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use futures_util::FutureExt as _;
    use futures_util::future::BoxFuture;

    use super::*;
    use crate::suite::{Message, Role};

    /// A server with a programmed answer time; counts requests in flight.
    struct Timed {
        answer: Duration,
        in_flight: AtomicUsize,
        most: AtomicUsize,
    }

    impl Timed {
        fn new(answer_ms: u64) -> Arc<Timed> {
            Arc::new(Timed {
                answer: Duration::from_millis(answer_ms),
                in_flight: AtomicUsize::new(0),
                most: AtomicUsize::new(0),
            })
        }
    }

    impl Concurrent for Timed {
        fn send<'a>(&'a self, _: &'a Request) -> BoxFuture<'a, Measured> {
            async move {
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(self.answer).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                Measured {
                    ttft_ms: Some(1.0),
                    e2e_ms: Some(self.answer.as_secs_f64() * 1000.0),
                    output_tokens: Some(4),
                    ..Measured::default()
                }
            }
            .boxed()
        }
    }

    fn request(_: u64) -> (usize, Request) {
        (
            0,
            Request {
                id: 0,
                model: "m".into(),
                messages: vec![Message {
                    role: Role::User,
                    content: "hi".into(),
                }],
                temperature: 0.0,
                top_p: None,
                max_tokens: 4,
                seed: 1,
                stream: true,
                ignore_eos: false,
                timeout: Duration::from_secs(5),
                response_format: None,
                thinking: None,
                cache: true,
            },
        )
    }

    fn point(drive: Drive) -> Point {
        Point {
            drive,
            seed: 7,
            max_in_flight: 1000,
            warmup: Duration::ZERO,
            duration: None,
            requests: None,
            cooldown: Duration::ZERO,
        }
    }

    fn phases(run: &PointRun, phase: Phase) -> usize {
        run.sent.iter().filter(|s| s.phase == phase).count()
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_loop_keeps_n_streams_busy() {
        let server = Timed::new(20);
        let point = Point {
            requests: Some(40),
            ..point(Drive::Concurrency(4))
        };
        let run = drive(&point, server.clone(), &request, Interrupt::never()).await;
        assert_eq!(phases(&run, Phase::Counted), 40, "{:?}", run.sent.len());
        assert_eq!(server.most.load(Ordering::SeqCst), 4);
        // 40 requests of 20 ms on 4 streams: 200 ms.
        assert!((0.19..0.25).contains(&run.window_s), "{}", run.window_s);
        assert!(
            run.sent.iter().all(|s| s.lag_ms < 1.0),
            "closed loops are never late"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn poisson_arrivals_at_20_per_s_for_10_s() {
        let server = Timed::new(30);
        let point = Point {
            duration: Some(Duration::from_secs(10)),
            ..point(Drive::Rate {
                per_s: 20.0,
                arrival: Arrival::Poisson,
            })
        };
        let run = drive(&point, server, &request, Interrupt::never()).await;
        let started = phases(&run, Phase::Counted);
        // Poisson(200): 99.9% of counts lie within 200 ± 3.3·√200.
        assert!(
            (153..=247).contains(&started),
            "{started} requests started in 10 s"
        );
        // Kolmogorov–Smirnov against the exponential with mean 50 ms.
        let mut gaps: Vec<f64> = run
            .sent
            .windows(2)
            .map(|w| w[1].scheduled_ms - w[0].scheduled_ms)
            .collect();
        gaps.sort_by(f64::total_cmp);
        let n = gaps.len() as f64;
        let d = gaps
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let cdf = 1.0 - (-g / 50.0).exp();
                (cdf - i as f64 / n)
                    .abs()
                    .max(((i + 1) as f64 / n - cdf).abs())
            })
            .fold(0.0, f64::max);
        let critical = 1.36 / n.sqrt();
        eprintln!(
            "poisson at 20/s for 10 s: {started} started; KS D = {d:.4} (5% critical {critical:.4})"
        );
        assert!(
            d < critical,
            "KS D = {d:.4}, 5% critical value {critical:.4}, n = {n}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn warm_up_and_cool_down_are_recorded_not_counted() {
        let server = Timed::new(5);
        let point = Point {
            warmup: Duration::from_millis(100),
            duration: Some(Duration::from_millis(200)),
            cooldown: Duration::from_millis(100),
            ..point(Drive::Rate {
                per_s: 100.0,
                arrival: Arrival::Constant,
            })
        };
        let run = drive(&point, server, &request, Interrupt::never()).await;
        let counts = (
            phases(&run, Phase::Warmup),
            phases(&run, Phase::Counted),
            phases(&run, Phase::Cooldown),
        );
        // One request every 10 ms: 10 warm-up (0–90), 20 counted, 9–10
        // in the cool-down (sending stops at 400 ms).
        assert!(counts.0 == 9 || counts.0 == 10, "{counts:?}");
        assert_eq!(counts.1, 20, "{counts:?}");
        assert!((9..=11).contains(&counts.2), "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_starts_at_the_first_counted_send_not_the_warm_up_end() {
        // One stream, 30 ms a request, 100 ms of warm-up: the warm-up
        // request sent at 90 ms ends at 120 ms, when the first counted one
        // goes out; 10 counted requests take 300 ms (not 320 ms from 100).
        let server = Timed::new(30);
        let point = Point {
            warmup: Duration::from_millis(100),
            requests: Some(10),
            ..point(Drive::Concurrency(1))
        };
        let run = drive(&point, server, &request, Interrupt::never()).await;
        assert_eq!(phases(&run, Phase::Counted), 10, "{:?}", run.sent.len());
        assert!(
            (run.window_s - 0.3).abs() < 0.002,
            "window {} s",
            run.window_s
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_in_flight_holds_back_an_open_loop_and_the_lag_shows() {
        let server = Timed::new(100);
        let point = Point {
            max_in_flight: 2,
            requests: Some(10),
            ..point(Drive::Rate {
                per_s: 100.0,
                arrival: Arrival::Constant,
            })
        };
        let run = drive(&point, server.clone(), &request, Interrupt::never()).await;
        assert_eq!(server.most.load(Ordering::SeqCst), 2);
        let worst = run.sent.iter().map(|s| s.lag_ms).fold(0.0, f64::max);
        assert!(worst > 100.0, "requests waited for a free slot: {worst} ms");
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupt_stops_the_point() {
        let server = Timed::new(50);
        let point = Point {
            duration: Some(Duration::from_secs(60)),
            ..point(Drive::Concurrency(2))
        };
        let (tx, interrupt) = Interrupt::manual();
        let stop = async {
            tokio::time::sleep(Duration::from_millis(275)).await;
            tx.send(Some("stop".into())).unwrap();
        };
        let (run, ()) = tokio::join!(drive(&point, server, &request, interrupt), stop);
        assert_eq!(run.interrupted.as_deref(), Some("stop"));
        // 2 streams × 5 finished requests of 50 ms each by 275 ms.
        assert_eq!(run.sent.len(), 10, "{:?}", run.sent.len());
    }

    #[test]
    fn constant_gaps_are_equal_and_poisson_gaps_average_the_mean() {
        let constant: Vec<Duration> = Gaps::new(4.0, Arrival::Constant, 1).take(3).collect();
        assert_eq!(constant, vec![Duration::from_millis(250); 3]);
        let mean = Gaps::new(10.0, Arrival::Poisson, 3)
            .take(20_000)
            .map(|g| g.as_secs_f64())
            .sum::<f64>()
            / 20_000.0;
        assert!((mean - 0.1).abs() < 0.003, "{mean}");
    }
}
