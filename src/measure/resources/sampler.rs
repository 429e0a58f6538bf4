//! The 20 Hz sampler: a background thread that reads a process tree's
//! memory and CPU, and windows over its history (one per request, one per
//! launch). Off the request path: the request loop only takes marks.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::tree::{TreeUsage, tree_pids, tree_usage, usage_of};
use crate::measure::stats;

/// Default sampling period: 50 ms, i.e. 20 Hz.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(50);

/// The background thread re-scans the process table for new descendants
/// every this many ticks (0.5 s at the default period); in between it
/// re-reads only the known pids, which keeps the sampler's own CPU cost
/// small. A pid that vanishes forces a re-scan on the next tick.
const RESCAN_EVERY: u32 = 10;

/// Shortest period the sampler accepts, so a zero period cannot spin.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// One sample of a process tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub at: Instant,
    pub rss_bytes: u64,
    pub cpu_s: f64,
}

/// Statistics over the samples of a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    /// Samples in the window (including the immediate ones taken by
    /// [`Sampler::mark`] and [`Sampler::window`]).
    pub samples: usize,
    /// Highest tree RSS seen, in bytes; `None` without samples.
    pub rss_peak_bytes: Option<u64>,
    /// Median tree RSS, in bytes ([`stats::percentile`] at 0.5: the midpoint
    /// of the middle two for an even count).
    pub rss_median_bytes: Option<f64>,
    /// CPU-seconds consumed during the window (all cores summed); `None`
    /// with fewer than two samples. Drops in the tree total (a child exited)
    /// are not subtracted: only increases between samples are summed.
    pub cpu_s: Option<f64>,
    /// Wall-clock length of the window in seconds.
    pub wall_s: f64,
}

/// A position in a sampler's history, from [`Sampler::mark`].
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    index: usize,
    at: Instant,
}

impl Mark {
    /// When the mark was taken.
    pub fn at(&self) -> Instant {
        self.at
    }
}

/// CPU consumed across a series of cumulative CPU totals: the sum of the
/// positive steps, so a total that drops (a child exited, taking its CPU
/// time with it) does not produce a negative or shrunken delta.
fn cpu_increase(totals: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut iter = totals.into_iter();
    let mut prev = iter.next()?;
    let mut sum = None;
    for cur in iter {
        *sum.get_or_insert(0.0) += (cur - prev).max(0.0);
        prev = cur;
    }
    sum
}

/// Statistics over `samples` (in time order). `wall_s` is the span from the
/// first to the last sample.
pub(crate) fn window_stats(samples: &[Point]) -> Window {
    let rss: Vec<f64> = samples.iter().map(|p| p.rss_bytes as f64).collect();
    let wall_s = match (samples.first(), samples.last()) {
        (Some(first), Some(last)) => last.at.saturating_duration_since(first.at).as_secs_f64(),
        _ => 0.0,
    };
    Window {
        samples: samples.len(),
        rss_peak_bytes: samples.iter().map(|p| p.rss_bytes).max(),
        rss_median_bytes: stats::percentile(&rss, 0.5),
        cpu_s: cpu_increase(samples.iter().map(|p| p.cpu_s)),
        wall_s,
    }
}

fn lock(points: &Mutex<Vec<Point>>) -> MutexGuard<'_, Vec<Point>> {
    points
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Appends a sample, timestamped under the lock so the history stays in
/// time order; returns its index and time.
fn push(points: &Mutex<Vec<Point>>, usage: &TreeUsage) -> (usize, Instant) {
    let mut guard = lock(points);
    let at = Instant::now();
    guard.push(Point {
        at,
        rss_bytes: usage.rss_bytes,
        cpu_s: usage.cpu_s,
    });
    (guard.len() - 1, at)
}

/// Samples a process tree in a background thread.
///
/// Every sample is kept for the sampler's lifetime: 32 bytes each, about
/// 2.3 MB per hour at 20 Hz. Create one sampler per server launch.
///
/// The thread stops by itself once the root process is gone, and is stopped
/// and joined (within one period at most; usually at once) by
/// [`Sampler::stop`] or on drop.
#[derive(Debug)]
pub struct Sampler {
    root: u32,
    points: Arc<Mutex<Vec<Point>>>,
    stop_tx: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `root_pid` and its descendants every `period` (at
    /// least 1 ms; use [`DEFAULT_PERIOD`]). Should the thread fail to spawn,
    /// the sampler still works, with only the immediate samples of
    /// [`mark`](Self::mark) and [`window`](Self::window).
    pub fn start(root_pid: u32, period: Duration) -> Sampler {
        let period = period.max(MIN_PERIOD);
        let points = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let shared = Arc::clone(&points);
        let thread = std::thread::Builder::new()
            .name("dyno-sampler".into())
            .spawn(move || sample_loop(root_pid, period, &shared, &stop_rx))
            .ok();
        Sampler {
            root: root_pid,
            points,
            stop_tx: Some(stop_tx),
            thread,
        }
    }

    #[cfg(test)]
    /// The root pid being sampled.
    pub(crate) fn root_pid(&self) -> u32 {
        self.root
    }

    /// Takes one sample now and returns its position, to pass to
    /// [`window`](Self::window) later.
    pub fn mark(&self) -> Mark {
        match tree_usage(self.root) {
            Some(usage) => {
                let (index, at) = push(&self.points, &usage);
                Mark { index, at }
            }
            None => Mark {
                index: lock(&self.points).len(),
                at: Instant::now(),
            },
        }
    }

    /// Takes one sample now and returns statistics over every sample since
    /// `mark` (both ends included). `wall_s` is the time since the mark.
    pub fn window(&self, mark: &Mark) -> Window {
        if let Some(usage) = tree_usage(self.root) {
            push(&self.points, &usage);
        }
        let guard = lock(&self.points);
        let mut window = window_stats(guard.get(mark.index..).unwrap_or_default());
        window.wall_s = mark.at.elapsed().as_secs_f64();
        window
    }

    /// Stops the background thread and waits for it. Idempotent; samples
    /// already taken stay available to [`window`](Self::window).
    pub fn stop(&mut self) {
        // Dropping the sender wakes the thread's wait at once.
        self.stop_tx = None;
        if let Some(thread) = self.thread.take() {
            // A panic in the sampler thread only loses samples.
            let _ = thread.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sample_loop(root: u32, period: Duration, points: &Mutex<Vec<Point>>, stop: &mpsc::Receiver<()>) {
    let mut pids: Vec<u32> = Vec::new();
    let mut tick: u32 = 0;
    let mut next = Instant::now();
    loop {
        if pids.is_empty() || tick.is_multiple_of(RESCAN_EVERY) {
            pids = tree_pids(root);
            if pids.is_empty() {
                return; // root is gone
            }
        }
        tick = tick.wrapping_add(1);
        match usage_of(root, &pids) {
            Some((usage, complete)) => {
                push(points, &usage);
                if !complete {
                    pids.clear();
                }
            }
            None => return,
        }
        next += period;
        let now = Instant::now();
        if next < now {
            // Fell behind (slow /proc, suspended machine): skip, don't burst.
            next = now + period;
        }
        match stop.recv_timeout(next - now) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::tests::{spawn, wait_for_tree};
    use super::*;

    fn points(t0: Instant, data: &[(u64, u64, f64)]) -> Vec<Point> {
        data.iter()
            .map(|&(ms, rss, cpu)| Point {
                at: t0 + Duration::from_millis(ms),
                rss_bytes: rss,
                cpu_s: cpu,
            })
            .collect()
    }

    #[test]
    fn window_stats_empty_and_single() {
        let w = window_stats(&[]);
        assert_eq!(w.samples, 0);
        assert_eq!(w.rss_peak_bytes, None);
        assert_eq!(w.rss_median_bytes, None);
        assert_eq!(w.cpu_s, None);
        assert_eq!(w.wall_s, 0.0);

        let t0 = Instant::now();
        let w = window_stats(&points(t0, &[(0, 500, 1.0)]));
        assert_eq!(w.samples, 1);
        assert_eq!(w.rss_peak_bytes, Some(500));
        assert_eq!(w.rss_median_bytes, Some(500.0));
        assert_eq!(w.cpu_s, None);
    }

    #[test]
    fn window_stats_odd_and_even() {
        let t0 = Instant::now();
        let odd = points(t0, &[(0, 300, 1.0), (50, 100, 1.5), (100, 200, 2.25)]);
        let w = window_stats(&odd);
        assert_eq!(w.samples, 3);
        assert_eq!(w.rss_peak_bytes, Some(300));
        assert_eq!(w.rss_median_bytes, Some(200.0));
        assert_eq!(w.cpu_s, Some(1.25));
        assert!((w.wall_s - 0.1).abs() < 1e-9);

        let even = points(
            t0,
            &[
                (0, 400, 0.0),
                (50, 100, 0.0),
                (100, 301, 0.0),
                (150, 200, 0.0),
            ],
        );
        let w = window_stats(&even);
        assert_eq!(w.rss_peak_bytes, Some(400));
        assert_eq!(w.rss_median_bytes, Some(250.5));
        assert_eq!(w.cpu_s, Some(0.0));
    }

    #[test]
    fn window_cpu_ignores_drops_from_exited_children() {
        let t0 = Instant::now();
        // 2 s of parent + child, child exits taking 1.5 s away, parent goes on.
        let p = points(
            t0,
            &[(0, 1, 10.0), (50, 1, 12.0), (100, 1, 10.5), (150, 1, 11.0)],
        );
        assert_eq!(window_stats(&p).cpu_s, Some(2.5));
    }

    #[test]
    fn window_serializes() {
        let w = window_stats(&[]);
        let json = serde_json::to_value(w).unwrap();
        assert_eq!(json["samples"], 0);
        assert!(json["rss_peak_bytes"].is_null());
    }

    #[test]
    fn live_sampler_collects_and_stops() {
        let shell = spawn("sh", &["-c", "sleep 3 & sleep 3"]);
        let root = shell.0.id();
        wait_for_tree(root, 2);

        let mut sampler = Sampler::start(root, DEFAULT_PERIOD);
        assert_eq!(sampler.root_pid(), root);
        let mark = sampler.mark();
        std::thread::sleep(Duration::from_millis(300));
        let w = sampler.window(&mark);
        assert!(w.samples >= 5, "{w:?}");
        assert!(w.rss_peak_bytes.unwrap() > 0);
        assert!(w.rss_median_bytes.unwrap() > 0.0);
        assert!(w.cpu_s.unwrap() >= 0.0);
        assert!(w.wall_s >= 0.3);

        let t = Instant::now();
        sampler.stop();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "stop took {:?}",
            t.elapsed()
        );
        sampler.stop(); // idempotent
        let before = lock(&sampler.points).len();
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(lock(&sampler.points).len(), before, "thread still sampling");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_sampler_ends_with_its_root() {
        let mut shell = spawn("sleep", &["5"]);
        let sampler = Sampler::start(shell.0.id(), Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(50));
        shell.0.kill().unwrap();
        shell.0.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let n = lock(&sampler.points).len();
        assert!(n >= 1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(lock(&sampler.points).len(), n);
        let mark = sampler.mark();
        assert_eq!(sampler.window(&mark).samples, 0);
        drop(sampler); // joins a thread that has already returned
    }
}
