//! The noise monitor: what the rest of the machine does while dyno
//! measures. A background thread reads, at the same 20 Hz as the resource
//! sampler, the CPU time of the whole machine (`/proc/stat`), dyno's own
//! (`/proc/self/stat`), steal time, the load average, pressure stall
//! information (`/proc/pressure/*`) and the CPU frequency where readable.
//! A window over a request tells how many cores other processes kept busy
//! meanwhile (`host_busy_cores`): the machine's busy time minus dyno's and
//! minus the measured server tree's.
//!
//! On macOS and Windows the machine is read through the `sysinfo` crate
//! (`super::portable`): busy time integrated from the CPU use between
//! readings, the load average and the frequency where the OS tells them,
//! and dyno's own CPU time from `resources::own`; steal time and pressure
//! stall information are Linux only and stay `None` there.
//!
//! Observes only; never fails a run: what cannot be read is `None`.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::resources::proc::clk_tck;
use super::stats;

/// A request measured while other processes kept more than this many cores
/// busy is marked noisy (the default of `compare.noisy_cores`).
pub(crate) const DEFAULT_NOISY_CORES: f64 = 0.5;

/// One reading of the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub at: Instant,
    /// CPU seconds the whole machine spent busy (user, nice, system, irq,
    /// softirq), all cores summed.
    pub busy_s: f64,
    /// CPU seconds stolen by the hypervisor, all cores summed (Linux only).
    pub steal_s: Option<f64>,
    /// CPU seconds dyno itself used (every thread).
    pub own_s: f64,
    /// One-minute load average.
    pub load1: Option<f64>,
    /// `/proc/pressure/cpu` and `/proc/pressure/memory`: `some avg10`, percent.
    pub cpu_pressure: Option<f64>,
    pub memory_pressure: Option<f64>,
    /// Mean current frequency over the CPUs, MHz.
    pub freq_mhz: Option<f64>,
}

/// What other processes did during one window (a request).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Busy {
    /// Mean cores kept busy by processes other than dyno and the measured
    /// tree; never negative.
    pub host_busy_cores: f64,
    /// Mean cores stolen by the hypervisor (Linux only).
    pub steal_cores: Option<f64>,
}

/// What the machine did over a whole run, for `results.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NoiseSummary {
    /// Readings taken.
    pub readings: usize,
    /// Cores kept busy by other processes (than dyno and its measured
    /// trees) per request: median, p95 and max over the requests.
    pub host_busy_cores_p50: Option<f64>,
    pub host_busy_cores_p95: Option<f64>,
    pub host_busy_cores_max: Option<f64>,
    /// Requests measured while others kept more than `noisy_cores` busy.
    pub noisy_requests: usize,
    pub noisy_cores: f64,
    /// Mean cores stolen by the hypervisor over the run.
    pub steal_cores: Option<f64>,
    /// One-minute load average: highest reading.
    pub load1_max: Option<f64>,
    /// Pressure stall (`some avg10`, percent): highest reading.
    pub cpu_pressure_max: Option<f64>,
    pub memory_pressure_max: Option<f64>,
    /// Mean CPU frequency: lowest and highest reading, MHz.
    pub freq_mhz_min: Option<f64>,
    pub freq_mhz_max: Option<f64>,
}

/// A position in the monitor's history, from [`Monitor::mark`].
#[derive(Debug, Clone, Copy)]
pub struct Mark(usize);

/// Where readings come from: `/proc` on Linux, the `sysinfo` crate
/// elsewhere (and in Linux tests, which check it).
#[derive(Debug)]
enum Machine {
    #[cfg(target_os = "linux")]
    Proc,
    #[cfg(any(not(target_os = "linux"), test))]
    Portable(Box<super::portable::MachineCpu>),
}

impl Machine {
    /// A reading now; `None` when `/proc` cannot be read (sysinfo always
    /// answers, with what it has).
    #[cfg_attr(not(target_os = "linux"), allow(clippy::unnecessary_wraps))]
    fn read(&mut self) -> Option<Reading> {
        match self {
            #[cfg(target_os = "linux")]
            Machine::Proc => read_proc(),
            #[cfg(any(not(target_os = "linux"), test))]
            Machine::Portable(machine) => {
                let cpu = machine.read();
                Some(Reading {
                    at: cpu.at,
                    busy_s: cpu.busy_s,
                    steal_s: None,
                    own_s: super::resources::own::own_cpu_s().unwrap_or(0.0),
                    load1: cpu.load1,
                    cpu_pressure: None,
                    memory_pressure: None,
                    freq_mhz: cpu.freq_mhz,
                })
            }
        }
    }
}

/// The readings so far and the reader that takes the next.
#[derive(Debug)]
struct State {
    readings: Vec<Reading>,
    machine: Machine,
}

impl State {
    /// Takes a reading (when the machine can be read) and keeps it.
    fn take(&mut self) {
        if let Some(reading) = self.machine.read() {
            self.readings.push(reading);
        }
    }
}

/// Reads the machine in a background thread until dropped.
#[derive(Debug)]
pub(crate) struct Monitor {
    state: Arc<Mutex<State>>,
    stop_tx: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Monitor {
    /// Starts reading every `period`; `None` where the machine cannot be
    /// read.
    pub(crate) fn start(period: Duration) -> Option<Monitor> {
        #[cfg(target_os = "linux")]
        let machine = Machine::Proc;
        #[cfg(not(target_os = "linux"))]
        let machine = Machine::Portable(Box::new(super::portable::MachineCpu::start()?));
        Monitor::start_with(machine, period)
    }

    fn start_with(mut machine: Machine, period: Duration) -> Option<Monitor> {
        let first = machine.read()?;
        let state = Arc::new(Mutex::new(State {
            readings: vec![first],
            machine,
        }));
        let (stop_tx, stop_rx) = mpsc::channel();
        let shared = Arc::clone(&state);
        let period = period.max(Duration::from_millis(1));
        let handle = std::thread::Builder::new()
            .name("dyno-noise".into())
            .spawn(move || {
                loop {
                    match stop_rx.recv_timeout(period) {
                        Err(RecvTimeoutError::Timeout) => lock(&shared).take(),
                        _ => return,
                    }
                }
            })
            .ok()?;
        Some(Monitor {
            state,
            stop_tx: Some(stop_tx),
            handle: Some(handle),
        })
    }

    /// Takes a reading now and returns its position.
    pub(crate) fn mark(&self) -> Mark {
        let mut state = lock(&self.state);
        state.take();
        Mark(state.readings.len().saturating_sub(1))
    }

    /// From `mark` to now (a reading is taken): the cores other processes
    /// kept busy, not counting dyno and `tree_cpu_s`, the CPU seconds of
    /// the measured process tree over the same window.
    pub(crate) fn window(&self, mark: Mark, tree_cpu_s: Option<f64>) -> Option<Busy> {
        let end = self.mark();
        let state = lock(&self.state);
        busy(
            state.readings.get(mark.0)?,
            state.readings.get(end.0)?,
            tree_cpu_s,
        )
    }

    /// The run's summary, given the per-request figures.
    pub(crate) fn summary(&self, per_request: &[f64], noisy_cores: f64) -> NoiseSummary {
        let state = lock(&self.state);
        summarize(&state.readings, per_request, noisy_cores)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        drop(self.stop_tx.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Others' busy cores between two readings.
pub fn busy(from: &Reading, to: &Reading, tree_cpu_s: Option<f64>) -> Option<Busy> {
    let wall = to.at.saturating_duration_since(from.at).as_secs_f64();
    if wall <= 0.0 {
        return None;
    }
    let others = (to.busy_s - from.busy_s) - (to.own_s - from.own_s) - tree_cpu_s.unwrap_or(0.0);
    Some(Busy {
        host_busy_cores: (others / wall).max(0.0),
        steal_cores: to
            .steal_s
            .zip(from.steal_s)
            .map(|(to, from)| ((to - from) / wall).max(0.0)),
    })
}

/// The run's summary from its readings and per-request busy cores.
pub fn summarize(readings: &[Reading], per_request: &[f64], noisy_cores: f64) -> NoiseSummary {
    let steal_cores = match (readings.first(), readings.last()) {
        (Some(a), Some(b)) => busy(a, b, None).and_then(|w| w.steal_cores),
        _ => None,
    };
    NoiseSummary {
        readings: readings.len(),
        host_busy_cores_p50: stats::percentile(per_request, 0.5),
        host_busy_cores_p95: stats::percentile(per_request, 0.95),
        host_busy_cores_max: per_request.iter().copied().reduce(f64::max),
        noisy_requests: per_request.iter().filter(|b| **b > noisy_cores).count(),
        noisy_cores,
        steal_cores,
        load1_max: highest(readings, |r| r.load1),
        cpu_pressure_max: highest(readings, |r| r.cpu_pressure),
        memory_pressure_max: highest(readings, |r| r.memory_pressure),
        freq_mhz_min: lowest(readings, |r| r.freq_mhz),
        freq_mhz_max: highest(readings, |r| r.freq_mhz),
    }
}

/// The largest of `f` over `items` that have it.
fn highest<T>(items: &[T], f: impl Fn(&T) -> Option<f64>) -> Option<f64> {
    items.iter().filter_map(f).reduce(f64::max)
}

/// The smallest of `f` over `items` that have it.
fn lowest<T>(items: &[T], f: impl Fn(&T) -> Option<f64>) -> Option<f64> {
    items.iter().filter_map(f).reduce(f64::min)
}

/// The summaries of several parts of one run (shards) as one: the
/// per-request figures from `per_request` (every part's requests), the
/// readings counted together, maxima and minima over the parts, steal
/// weighted by each part's readings. `None` when no part has a summary.
pub fn merge(parts: &[NoiseSummary], per_request: &[f64]) -> Option<NoiseSummary> {
    let first = parts.first()?;
    let stolen: Vec<(f64, usize)> = parts
        .iter()
        .filter_map(|p| Some((p.steal_cores?, p.readings)))
        .collect();
    let weight: usize = stolen.iter().map(|(_, n)| n).sum();
    let steal_cores = (!stolen.is_empty())
        .then(|| stolen.iter().map(|(c, n)| c * *n as f64).sum::<f64>() / weight.max(1) as f64);
    let per_request_summary = summarize(&[], per_request, first.noisy_cores);
    Some(NoiseSummary {
        readings: parts.iter().map(|p| p.readings).sum(),
        steal_cores,
        load1_max: highest(parts, |p| p.load1_max),
        cpu_pressure_max: highest(parts, |p| p.cpu_pressure_max),
        memory_pressure_max: highest(parts, |p| p.memory_pressure_max),
        freq_mhz_min: lowest(parts, |p| p.freq_mhz_min),
        freq_mhz_max: highest(parts, |p| p.freq_mhz_max),
        ..per_request_summary
    })
}

/// One reading of the machine from `/proc`; `None` without `/proc/stat`.
#[cfg(target_os = "linux")]
fn read_proc() -> Option<Reading> {
    let at = Instant::now();
    let (busy_s, steal_s) = parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let own_s = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| own_cpu_ticks(&t))
        .and_then(|ticks| Some(ticks / clk_tck()?))
        .unwrap_or(0.0);
    Some(Reading {
        at,
        busy_s,
        steal_s: Some(steal_s),
        own_s,
        load1: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse().ok()),
        cpu_pressure: pressure("/proc/pressure/cpu"),
        memory_pressure: pressure("/proc/pressure/memory"),
        freq_mhz: mean_frequency_mhz(),
    })
}

/// Busy and steal CPU seconds from the aggregate `cpu` line of `/proc/stat`
/// (`user nice system idle iowait irq softirq steal …`, in clock ticks).
pub(crate) fn parse_proc_stat(text: &str) -> Option<(f64, f64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<Vec<f64>>>()?;
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0.0);
    let hz = clk_tck()?;
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    Some((busy / hz, at(7) / hz))
}

/// utime + stime of `/proc/self/stat`, in clock ticks.
#[cfg(target_os = "linux")]
fn own_cpu_ticks(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm)": state is field 3, utime field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `some avg10` of a pressure file, in percent.
#[cfg(target_os = "linux")]
fn pressure(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_pressure(&text)
}

/// `some avg10=1.23 …` → 1.23.
pub(crate) fn parse_pressure(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))?
        .parse()
        .ok()
}

/// The mean `scaling_cur_freq` over the CPUs that expose one, in MHz.
#[cfg(target_os = "linux")]
fn mean_frequency_mhz() -> Option<f64> {
    let entries = std::fs::read_dir("/sys/devices/system/cpu").ok()?;
    let khz: Vec<f64> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("cpu"))
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty())
        })
        .filter_map(|e| {
            std::fs::read_to_string(e.path().join("cpufreq/scaling_cur_freq"))
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    (!khz.is_empty()).then(|| khz.iter().sum::<f64>() / khz.len() as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_busy_and_steal() {
        let text = "cpu  100 20 30 1000 50 5 5 40 0 0\ncpu0 50 10 15 500 25 2 3 20 0 0\n";
        let hz = clk_tck().unwrap();
        let (busy, steal) = parse_proc_stat(text).unwrap();
        assert!((busy - 160.0 / hz).abs() < 1e-9, "{busy}");
        assert!((steal - 40.0 / hz).abs() < 1e-9, "{steal}");
        assert_eq!(parse_proc_stat("nothing"), None);
    }

    #[test]
    fn pressure_reads_some_avg10() {
        let text = "some avg10=2.50 avg60=1.00 avg300=0.10 total=123\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_pressure(text), Some(2.5));
        assert_eq!(parse_pressure("full avg10=1"), None);
    }

    fn reading(at: Instant, busy_s: f64, own_s: f64) -> Reading {
        Reading {
            at,
            busy_s,
            steal_s: Some(0.0),
            own_s,
            load1: Some(1.0),
            cpu_pressure: None,
            memory_pressure: None,
            freq_mhz: None,
        }
    }

    #[test]
    fn others_are_the_machine_minus_dyno_minus_the_tree() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        // 3 CPU-seconds busy over 2 s; dyno 0.5, the server tree 1.5.
        let w = busy(&reading(t0, 10.0, 1.0), &reading(t1, 13.0, 1.5), Some(1.5)).unwrap();
        assert!((w.host_busy_cores - 0.5).abs() < 1e-9, "{w:?}");
        // Never negative (tick rounding).
        let w = busy(&reading(t0, 10.0, 1.0), &reading(t1, 10.1, 1.5), Some(1.5)).unwrap();
        assert_eq!(w.host_busy_cores, 0.0);
        assert_eq!(
            busy(&reading(t0, 1.0, 0.0), &reading(t0, 2.0, 0.0), None),
            None
        );
    }

    #[test]
    fn summary_counts_noisy_requests() {
        let t0 = Instant::now();
        let readings = [
            reading(t0, 0.0, 0.0),
            reading(t0 + Duration::from_secs(1), 1.0, 0.0),
        ];
        let s = summarize(&readings, &[0.1, 0.2, 1.8, 0.0], 0.5);
        assert_eq!(s.noisy_requests, 1);
        assert_eq!(s.host_busy_cores_max, Some(1.8));
        assert_eq!(s.readings, 2);
        assert_eq!(s.load1_max, Some(1.0));
    }

    #[test]
    fn shards_merge_into_the_whole_runs_machine() {
        let t0 = Instant::now();
        let quiet = summarize(
            &[
                reading(t0, 0.0, 0.0),
                reading(t0 + Duration::from_secs(1), 0.5, 0.0),
            ],
            &[0.1, 0.2],
            0.5,
        );
        let mut busy = summarize(
            &[
                reading(t0, 0.0, 0.0),
                reading(t0 + Duration::from_secs(1), 3.0, 0.0),
                reading(t0 + Duration::from_secs(2), 5.0, 0.0),
            ],
            &[1.8, 1.6],
            0.5,
        );
        busy.load1_max = Some(3.0);
        let whole = merge(&[quiet, busy], &[0.1, 0.2, 1.8, 1.6]);
        let whole = whole.unwrap_or_else(|| panic!("two summaries merge into one"));
        assert_eq!(whole.readings, 5, "{whole:?}");
        assert_eq!(whole.noisy_requests, 2, "{whole:?}");
        assert_eq!(whole.host_busy_cores_max, Some(1.8), "{whole:?}");
        assert_eq!(whole.load1_max, Some(3.0), "{whole:?}");
        assert!(merge(&[], &[1.0]).is_none());
    }

    /// A busy loop in another process, seen by `machine`.
    #[cfg(unix)]
    fn busy_loop_seen_by(machine: Machine) {
        let Some(monitor) = Monitor::start_with(machine, Duration::from_millis(20)) else {
            panic!("the machine cannot be read");
        };
        let mark = monitor.mark();
        let mut hog = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let w = monitor.window(mark, None).unwrap();
        let _ = hog.kill();
        let _ = hog.wait();
        // One busy loop is one core; on a shared machine others add to it,
        // and scheduling may give the loop less than a whole core.
        assert!(w.host_busy_cores > 0.4, "{w:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_busy_thread_in_another_process_is_seen() {
        busy_loop_seen_by(Machine::Proc);
    }

    #[cfg(unix)]
    #[test]
    fn a_busy_thread_in_another_process_is_seen_through_sysinfo() {
        let machine = super::super::portable::MachineCpu::start().unwrap();
        busy_loop_seen_by(Machine::Portable(Box::new(machine)));
    }
}
