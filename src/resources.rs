//! Resource measurement of a server process tree: memory and CPU from
//! `/proc`, package energy from RAPL (powercap sysfs), GPU memory and
//! utilisation from `nvidia-smi`, and the on-disk size of model files.
//!
//! This module only observes. It never signals, kills or otherwise touches
//! the processes it measures, never writes to `/proc` or `/sys`, and never
//! fails a run: anything that cannot be read (a vanished process, a
//! permission-denied RAPL counter, a missing `nvidia-smi`) becomes `None` or
//! an empty result. Off Linux, the live readers return `None` / empty; the
//! pure parsers and arithmetic work everywhere.
//!
//! Units: memory in bytes (except GPU memory, in MiB as `nvidia-smi`
//! reports it), CPU time in seconds summed over all cores (so 2.0 CPU-seconds
//! per wall second means two busy cores), energy in microjoules.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

// ---------------------------------------------------------------------------
// /proc parsing
// ---------------------------------------------------------------------------

/// The fields of `/proc/<pid>/stat` this module uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// Command name as the kernel reports it (field 2, without parentheses).
    pub comm: String,
    pub ppid: u32,
    /// User-mode CPU time of the whole thread group, in clock ticks.
    pub utime: u64,
    /// Kernel-mode CPU time of the whole thread group, in clock ticks.
    pub stime: u64,
    /// Resident set size in pages (field 24), when present and non-negative.
    pub rss_pages: Option<u64>,
}

/// Parses the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain
/// spaces and `)`, so the remaining fields are taken after the *last* `)`.
/// Returns `None` when the text is malformed or truncated before `stime`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_string();
    // Index 0 is field 3 (state), so field n is at index n - 3.
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    let ppid = field(4)?.parse().ok()?;
    let utime = field(14)?.parse().ok()?;
    let stime = field(15)?.parse().ok()?;
    let rss_pages = field(24)
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|v| u64::try_from(v).ok());
    Some(ProcStat {
        pid,
        comm,
        ppid,
        utime,
        stime,
        rss_pages,
    })
}

/// Reads the `VmRSS:` line of `/proc/<pid>/status`, in kB (kibibytes, as
/// the kernel writes it). `None` when absent — zombies and kernel threads
/// have no `VmRSS` line.
pub fn parse_status_rss_kb(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// All descendants of `root` (children, grandchildren, …) given a process
/// table of `(pid, ppid)` pairs, in breadth-first order. `root` itself is not
/// included. Self-parented entries and cycles are tolerated.
pub fn descendants(root: u32, table: &[(u32, u32)]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(pid, ppid) in table {
        if pid != ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut seen = HashSet::from([root]);
    let mut queue = VecDeque::from([root]);
    let mut out = Vec::new();
    while let Some(parent) = queue.pop_front() {
        for &child in children.get(&parent).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(child) {
                out.push(child);
                queue.push_back(child);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Live process-tree readers (Linux)
// ---------------------------------------------------------------------------

const PROC: &str = "/proc";

/// Kernel clock ticks per second (`sysconf(_SC_CLK_TCK)`), cached.
fn clk_tck() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        static TCK: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
        *TCK.get_or_init(|| {
            // SAFETY: sysconf has no preconditions and touches no memory of ours.
            let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
            (v > 0).then_some(v as f64)
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Memory page size in bytes, cached; only used when `VmRSS` is missing.
fn page_size() -> u64 {
    #[cfg(target_os = "linux")]
    {
        static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        *PAGE.get_or_init(|| {
            // SAFETY: sysconf has no preconditions and touches no memory of ours.
            let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            u64::try_from(v).ok().filter(|&v| v > 0).unwrap_or(4096)
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        4096
    }
}

fn read_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(Path::new(PROC).join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&text)
}

/// Resident bytes of one process; `None` when the process is gone.
fn read_rss_bytes(stat: &ProcStat) -> Option<u64> {
    let path = Path::new(PROC).join(stat.pid.to_string()).join("status");
    let text = std::fs::read_to_string(path).ok()?;
    Some(match parse_status_rss_kb(&text) {
        Some(kb) => kb.saturating_mul(1024),
        None => stat.rss_pages.unwrap_or(0).saturating_mul(page_size()),
    })
}

/// One pass over `/proc/*/stat`; unreadable entries are skipped.
fn scan_proc() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir(PROC) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_stat)
        .map(|s| (s.pid, s.ppid))
        .collect()
}

/// `root` followed by all its descendants, from one scan of `/proc`.
/// Empty when `root` does not exist (or off Linux).
pub fn tree_pids(root: u32) -> Vec<u32> {
    if !cfg!(target_os = "linux") {
        return Vec::new();
    }
    let table = scan_proc();
    if !table.iter().any(|&(pid, _)| pid == root) {
        return Vec::new();
    }
    let mut pids = vec![root];
    pids.extend(descendants(root, &table));
    pids
}

/// Resource usage summed over a process tree at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TreeUsage {
    /// Sum of `VmRSS` over the tree, in bytes. Pages shared between
    /// processes (e.g. a model mmapped by two of them) count once per process.
    pub rss_bytes: u64,
    /// Sum of user + system CPU time of the live processes, in seconds.
    /// Children that exited are no longer counted, so this can go down.
    pub cpu_s: f64,
    /// Processes that were measured.
    pub processes: usize,
}

/// Measures `pids` (which must start with, or contain, `root`). Returns the
/// usage and whether every listed process was still there and still in the
/// tree; `None` when `root` itself is gone.
fn usage_of(root: u32, pids: &[u32]) -> Option<(TreeUsage, bool)> {
    let tck = clk_tck()?;
    let members: HashSet<u32> = pids.iter().copied().collect();
    let mut usage = TreeUsage {
        rss_bytes: 0,
        cpu_s: 0.0,
        processes: 0,
    };
    let mut complete = true;
    for &pid in pids {
        // A non-root pid whose parent is no longer in the tree was
        // reparented (its parent exited) or reused: it is not ours.
        let measured = read_stat(pid)
            .filter(|s| pid == root || members.contains(&s.ppid))
            .and_then(|s| read_rss_bytes(&s).map(|rss| (s, rss)));
        let Some((stat, rss)) = measured else {
            if pid == root {
                return None;
            }
            complete = false;
            continue;
        };
        usage.rss_bytes = usage.rss_bytes.saturating_add(rss);
        usage.cpu_s += stat.utime.saturating_add(stat.stime) as f64 / tck;
        usage.processes += 1;
    }
    Some((usage, complete))
}

/// Memory and CPU of `root` and all its descendants, right now. Processes
/// that vanish during the scan are skipped; `None` when `root` is gone or
/// off Linux.
///
/// CPU is `utime + stime` of live processes only (not `cutime`/`cstime`).
pub fn tree_usage(root: u32) -> Option<TreeUsage> {
    let pids = tree_pids(root);
    if pids.is_empty() {
        return None;
    }
    usage_of(root, &pids).map(|(usage, _)| usage)
}

// ---------------------------------------------------------------------------
// Sampler
// ---------------------------------------------------------------------------

/// Default sampling period: 50 ms, i.e. 20 Hz.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(50);

/// The background thread re-scans `/proc` for new descendants every this
/// many ticks (0.5 s at the default period); in between it re-reads only the
/// known pids, which keeps the sampler's own CPU cost small. A pid that
/// vanishes forces a re-scan on the next tick.
const RESCAN_EVERY: u32 = 10;

/// Shortest period the sampler accepts, so a zero period cannot spin.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// One sample of a process tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
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
    /// Median tree RSS, in bytes (mean of the middle two for an even count).
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

/// Median of `values` (sorted in place); linear interpolation between the
/// middle two for an even count. `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
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
pub fn window_stats(samples: &[Point]) -> Window {
    let mut rss: Vec<f64> = samples.iter().map(|p| p.rss_bytes as f64).collect();
    let wall_s = match (samples.first(), samples.last()) {
        (Some(first), Some(last)) => last.at.saturating_duration_since(first.at).as_secs_f64(),
        _ => 0.0,
    };
    Window {
        samples: samples.len(),
        rss_peak_bytes: samples.iter().map(|p| p.rss_bytes).max(),
        rss_median_bytes: median(&mut rss),
        cpu_s: cpu_increase(samples.iter().map(|p| p.cpu_s)),
        wall_s,
    }
}

fn lock(points: &Mutex<Vec<Point>>) -> MutexGuard<'_, Vec<Point>> {
    points
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

    /// The root pid being sampled.
    pub fn root_pid(&self) -> u32 {
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

// ---------------------------------------------------------------------------
// Energy (RAPL)
// ---------------------------------------------------------------------------

/// Energy consumed between two readings of a counter that wraps to zero
/// after `max_range`: `after - before`, or, when the counter went down,
/// the distance to the wrap plus `after`. Assumes at most one wrap in
/// between (RAPL package counters take tens of minutes to wrap).
pub fn energy_delta_uj(before: u64, after: u64, max_range: u64) -> u64 {
    if after >= before {
        after - before
    } else {
        max_range.saturating_sub(before).saturating_add(after)
    }
}

#[derive(Debug, Clone)]
struct RaplDomain {
    index: u32,
    energy_path: PathBuf,
    max_range_uj: u64,
}

/// The RAPL package-energy counters of the machine (one per CPU socket).
#[derive(Debug, Clone)]
pub struct Rapl {
    domains: Vec<RaplDomain>,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Rapl {
    /// Where the kernel exposes powercap zones.
    pub const DEFAULT_DIR: &'static str = "/sys/class/powercap";

    /// Opens the package domains under [`DEFAULT_DIR`](Self::DEFAULT_DIR);
    /// `None` off Linux, without RAPL, or when the counters are not readable
    /// (they are root-only on most current kernels).
    pub fn open() -> Option<Rapl> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        Rapl::open_at(Path::new(Self::DEFAULT_DIR))
    }

    /// Opens the package domains under `dir`: top-level zones named
    /// `intel-rapl:N` (sub-zones `intel-rapl:N:M` — core, uncore, dram — are
    /// parts of a package and are skipped, as are zones whose `name` file
    /// does not start with `package`, such as `psys`, which would double
    /// count). `None` when there is none or any of them cannot be read.
    pub fn open_at(dir: &Path) -> Option<Rapl> {
        let mut domains = Vec::new();
        for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(index) = name
                .to_str()
                .and_then(|n| n.strip_prefix("intel-rapl:"))
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let zone = entry.path();
            if let Ok(kind) = std::fs::read_to_string(zone.join("name"))
                && !kind.trim().starts_with("package")
            {
                continue;
            }
            let energy_path = zone.join("energy_uj");
            read_u64(&energy_path)?;
            let max_range_uj = read_u64(&zone.join("max_energy_range_uj"))?;
            domains.push(RaplDomain {
                index,
                energy_path,
                max_range_uj,
            });
        }
        if domains.is_empty() {
            return None;
        }
        domains.sort_by_key(|d| d.index);
        Some(Rapl { domains })
    }

    /// Number of package domains (sockets).
    pub fn domain_count(&self) -> usize {
        self.domains.len()
    }

    /// Sum of the package counters, in µJ. Differences of two totals are
    /// only wrap-safe through [`energy_delta_uj`] when there is a single
    /// domain; with several, prefer [`read_domains`](Self::read_domains) and
    /// [`delta_uj`](Self::delta_uj).
    pub fn read(&self) -> Option<u64> {
        self.read_domains()
            .map(|v| v.iter().fold(0u64, |acc, &x| acc.saturating_add(x)))
    }

    /// Each package counter, in µJ, in domain order.
    pub fn read_domains(&self) -> Option<Vec<u64>> {
        self.domains
            .iter()
            .map(|d| read_u64(&d.energy_path))
            .collect()
    }

    /// Energy in µJ between two [`read_domains`](Self::read_domains)
    /// readings, wrap-around handled per domain. `None` if the readings do
    /// not match this machine's domain count.
    pub fn delta_uj(&self, before: &[u64], after: &[u64]) -> Option<u64> {
        if before.len() != self.domains.len() || after.len() != self.domains.len() {
            return None;
        }
        Some(
            self.domains
                .iter()
                .zip(before.iter().zip(after))
                .map(|(d, (&b, &a))| energy_delta_uj(b, a, d.max_range_uj))
                .fold(0u64, u64::saturating_add),
        )
    }
}

// ---------------------------------------------------------------------------
// GPU (nvidia-smi)
// ---------------------------------------------------------------------------

/// GPU usage at one instant, over all NVIDIA GPUs.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct GpuSnapshot {
    /// The GPU name, or the distinct names joined with `" + "`.
    pub name: String,
    /// GPUs reported.
    pub gpus: usize,
    /// Memory used, summed over the GPUs that report it, in MiB.
    /// `None` when no GPU reports it (`[N/A]`).
    pub memory_used_mb: Option<f64>,
    /// Utilisation averaged over the GPUs that report it, in percent.
    /// `None` when no GPU reports it.
    pub utilization_pct: Option<f64>,
}

/// How long `nvidia-smi` may take before it is given up on.
const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(5);

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses `nvidia-smi --query-gpu=name,memory.used,utilization.gpu
/// --format=csv,noheader,nounits`: one `name, MiB, percent` line per GPU.
/// Values like `[N/A]` are left out of the sum / average; lines that do not
/// have three fields are ignored. `None` when no GPU line is found.
pub fn parse_nvidia_smi(text: &str) -> Option<GpuSnapshot> {
    let mut names: Vec<&str> = Vec::new();
    let mut gpus = 0;
    let mut memory: Option<f64> = None;
    let mut util_sum = 0.0;
    let mut util_n = 0usize;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // Split from the right: the two numbers never contain commas.
        let mut fields = line.rsplitn(3, ',');
        let (Some(util), Some(mem), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let name = name.trim();
        gpus += 1;
        if !names.contains(&name) {
            names.push(name);
        }
        if let Some(mb) = parse_number(mem) {
            *memory.get_or_insert(0.0) += mb;
        }
        if let Some(pct) = parse_number(util) {
            util_sum += pct;
            util_n += 1;
        }
    }
    (gpus > 0).then(|| GpuSnapshot {
        name: names.join(" + "),
        gpus,
        memory_used_mb: memory,
        utilization_pct: (util_n > 0).then(|| util_sum / util_n as f64),
    })
}

/// Asks `nvidia-smi` for current GPU memory and utilisation. `None` when the
/// binary is absent, fails, times out (5 s) or reports no GPU.
pub fn gpu_snapshot() -> Option<GpuSnapshot> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let mut child = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.used,utilization.gpu",
            "--format=csv,noheader,nounits",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + NVIDIA_SMI_TIMEOUT;
    // The output (one short line per GPU) fits in the pipe buffer, so it is
    // safe to wait for exit before reading.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    if !status.success() {
        return None;
    }
    let mut text = String::new();
    child.stdout.take()?.read_to_string(&mut text).ok()?;
    parse_nvidia_smi(&text)
}

// ---------------------------------------------------------------------------
// Footprint
// ---------------------------------------------------------------------------

/// Size in bytes of each path (symlinks followed); `None` for paths that are
/// missing, unreadable or not regular files.
pub fn file_bytes(paths: &[PathBuf]) -> Vec<(PathBuf, Option<u64>)> {
    paths
        .iter()
        .map(|p| {
            let size = std::fs::metadata(p)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            (p.clone(), size)
        })
        .collect()
}

/// The model paths in a llama-server command line: the values of `-m PATH`,
/// `--model PATH`, `--model=PATH` and `-m=PATH`, in order. Other files
/// (`--mmproj`, `--lora`, draft models) are not models for this purpose.
/// A flag with no value after it is ignored.
pub fn model_files_in_command(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-m" | "--model" => {
                if let Some(value) = iter.next() {
                    out.push(value.clone());
                }
            }
            other => {
                if let Some(value) = other
                    .strip_prefix("--model=")
                    .or_else(|| other.strip_prefix("-m="))
                    .filter(|v| !v.is_empty())
                {
                    out.push(value.to_string());
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    // --- /proc parsing ---

    #[test]
    fn parse_stat_plain() {
        let text = "1234 (llama-server) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 8 0 12345 1000000 4096 18446744073709551615";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.pid, 1234);
        assert_eq!(s.comm, "llama-server");
        assert_eq!(s.ppid, 1);
        assert_eq!(s.utime, 250);
        assert_eq!(s.stime, 75);
        assert_eq!(s.rss_pages, Some(4096));
    }

    #[test]
    fn parse_stat_comm_with_spaces_and_parens() {
        let text = "42 (evil) name (x) y) R 7 42 42 0 -1 0 0 0 0 0 11 22 0 0 20 0 1 0 1 2 33\n";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.pid, 42);
        assert_eq!(s.comm, "evil) name (x) y");
        assert_eq!(s.ppid, 7);
        assert_eq!((s.utime, s.stime), (11, 22));
        assert_eq!(s.rss_pages, Some(33));
    }

    #[test]
    fn parse_stat_without_rss_and_malformed() {
        // Truncated after stime: rss unknown, still usable.
        let s = parse_stat("5 (a) S 2 0 0 0 0 0 0 0 0 0 3 4").unwrap();
        assert_eq!((s.utime, s.stime, s.rss_pages), (3, 4, None));
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("5 (a S 2"), None);
        assert_eq!(parse_stat("5 (a) S 2 0 0"), None);
        assert_eq!(parse_stat("x (a) S 2 0 0 0 0 0 0 0 0 0 3 4"), None);
        assert_eq!(parse_stat("5 )a( S 2 0 0 0 0 0 0 0 0 0 3 4"), None);
    }

    #[test]
    fn parse_status_rss() {
        let text = "Name:\tllama-server\nVmPeak:\t  999 kB\nVmRSS:\t  123456 kB\nThreads:\t8\n";
        assert_eq!(parse_status_rss_kb(text), Some(123_456));
        assert_eq!(parse_status_rss_kb("Name:\tzombie\nState:\tZ\n"), None);
        assert_eq!(parse_status_rss_kb("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn descendants_of_a_tree() {
        // 1 ─ 10 ─ 20 ─ 30
        //   │    └ 21
        //   └ 11
        // 99 is unrelated; 0 is self-parented; 50 and 51 form a cycle.
        let table = [
            (1, 0),
            (10, 1),
            (11, 1),
            (20, 10),
            (21, 10),
            (30, 20),
            (99, 98),
            (0, 0),
            (50, 51),
            (51, 50),
        ];
        assert_eq!(descendants(10, &table), vec![20, 21, 30]);
        assert_eq!(descendants(1, &table), vec![10, 11, 20, 21, 30]);
        assert_eq!(descendants(30, &table), Vec::<u32>::new());
        assert_eq!(descendants(12345, &table), Vec::<u32>::new());
        assert_eq!(descendants(50, &table), vec![51]);
    }

    // --- window arithmetic ---

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

    // --- energy ---

    #[test]
    fn energy_delta_wraps() {
        assert_eq!(energy_delta_uj(100, 350, 1000), 250);
        assert_eq!(energy_delta_uj(900, 100, 1000), 200);
        assert_eq!(energy_delta_uj(5, 5, 1000), 0);
        // Inconsistent input does not panic.
        assert_eq!(energy_delta_uj(2000, 100, 1000), 100);
        assert_eq!(energy_delta_uj(u64::MAX, 0, u64::MAX), 0);
    }

    fn zone(dir: &Path, name: &str, kind: Option<&str>, energy: &str, max: &str) {
        let z = dir.join(name);
        std::fs::create_dir(&z).unwrap();
        std::fs::write(z.join("energy_uj"), energy).unwrap();
        std::fs::write(z.join("max_energy_range_uj"), max).unwrap();
        if let Some(kind) = kind {
            std::fs::write(z.join("name"), format!("{kind}\n")).unwrap();
        }
    }

    #[test]
    fn rapl_fake_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir(d.join("intel-rapl")).unwrap(); // control type, not a zone
        zone(d, "intel-rapl:0", Some("package-0"), "1000\n", "10000\n");
        zone(d, "intel-rapl:0:0", Some("core"), "999999\n", "10000\n");
        zone(d, "intel-rapl:1", Some("psys"), "777777\n", "10000\n");
        zone(d, "intel-rapl:2", None, "2500\n", "5000\n");
        zone(
            d,
            "intel-rapl-mmio:0",
            Some("package-0"),
            "888888\n",
            "10000\n",
        );

        let rapl = Rapl::open_at(d).unwrap();
        assert_eq!(rapl.domain_count(), 2);
        assert_eq!(rapl.read(), Some(3500));
        let before = rapl.read_domains().unwrap();
        assert_eq!(before, vec![1000, 2500]);

        // Domain 2 wraps: 2500 → 5000 (max) → 100.
        std::fs::write(d.join("intel-rapl:0/energy_uj"), "1600\n").unwrap();
        std::fs::write(d.join("intel-rapl:2/energy_uj"), "100\n").unwrap();
        let after = rapl.read_domains().unwrap();
        assert_eq!(rapl.delta_uj(&before, &after), Some(600 + 2600));
        assert_eq!(rapl.delta_uj(&before, &after[..1]), None);

        // A counter that becomes unreadable gives None, not an error.
        std::fs::remove_file(d.join("intel-rapl:2/energy_uj")).unwrap();
        assert_eq!(rapl.read(), None);
        assert_eq!(rapl.read_domains(), None);
    }

    #[test]
    fn rapl_unreadable_or_absent() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert!(Rapl::open_at(&d.join("missing")).is_none());
        assert!(Rapl::open_at(d).is_none()); // no zones
        zone(d, "intel-rapl:0", Some("package-0"), "garbage", "10000");
        assert!(Rapl::open_at(d).is_none());

        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        zone(d, "intel-rapl:0", Some("package-0"), "1", "10000");
        std::fs::remove_file(d.join("intel-rapl:0/max_energy_range_uj")).unwrap();
        assert!(Rapl::open_at(d).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn rapl_permission_denied() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        zone(d, "intel-rapl:0", Some("package-0"), "1", "10000");
        let energy = d.join("intel-rapl:0/energy_uj");
        std::fs::set_permissions(&energy, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::read(&energy).is_ok() {
            return; // running as root: permissions are not enforced
        }
        assert!(Rapl::open_at(d).is_none());
    }

    #[test]
    fn rapl_open_does_not_panic() {
        // Whatever this machine has (often nothing, or root-only counters).
        if let Some(rapl) = Rapl::open() {
            assert!(rapl.domain_count() >= 1);
        }
    }

    // --- GPU ---

    #[test]
    fn nvidia_smi_single_and_multi() {
        let one = parse_nvidia_smi("NVIDIA GeForce RTX 4090, 20480, 97\n").unwrap();
        assert_eq!(
            one,
            GpuSnapshot {
                name: "NVIDIA GeForce RTX 4090".into(),
                gpus: 1,
                memory_used_mb: Some(20480.0),
                utilization_pct: Some(97.0),
            }
        );

        let two = "NVIDIA A100-SXM4-80GB, 1000, 10\nNVIDIA A100-SXM4-80GB, 3000, 30\n";
        let s = parse_nvidia_smi(two).unwrap();
        assert_eq!(s.name, "NVIDIA A100-SXM4-80GB");
        assert_eq!(s.gpus, 2);
        assert_eq!(s.memory_used_mb, Some(4000.0));
        assert_eq!(s.utilization_pct, Some(20.0));

        let mixed = "Tesla T4, 100, 0\nNVIDIA L4, 200, 50\n";
        assert_eq!(
            parse_nvidia_smi(mixed).unwrap().name,
            "Tesla T4 + NVIDIA L4"
        );
    }

    #[test]
    fn nvidia_smi_not_available_values() {
        let text = "NVIDIA GH200, [N/A], 40\nNVIDIA GH200, 5000, [N/A]\n";
        let s = parse_nvidia_smi(text).unwrap();
        assert_eq!(s.gpus, 2);
        assert_eq!(s.memory_used_mb, Some(5000.0));
        assert_eq!(s.utilization_pct, Some(40.0));

        let s = parse_nvidia_smi("Some GPU, [N/A], [N/A]\n").unwrap();
        assert_eq!(s.memory_used_mb, None);
        assert_eq!(s.utilization_pct, None);
    }

    #[test]
    fn nvidia_smi_empty_or_garbage() {
        assert_eq!(parse_nvidia_smi(""), None);
        assert_eq!(parse_nvidia_smi("\n  \n"), None);
        assert_eq!(parse_nvidia_smi("No devices were found\n"), None);
    }

    #[test]
    fn gpu_snapshot_does_not_panic() {
        // None here unless the machine has nvidia-smi and a GPU.
        if let Some(s) = gpu_snapshot() {
            assert!(s.gpus >= 1);
        }
    }

    // --- footprint ---

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn model_flags() {
        let args = strings(&[
            "llama-server",
            "-m",
            "/models/a.gguf",
            "--mmproj",
            "/models/proj.gguf",
            "--lora",
            "/models/lora.gguf",
            "--model",
            "b.gguf",
            "--model=c.gguf",
            "-m=d.gguf",
            "--model-draft",
            "draft.gguf",
            "--port",
            "8080",
            "--model=",
            "-m",
        ]);
        assert_eq!(
            model_files_in_command(&args),
            vec!["/models/a.gguf", "b.gguf", "c.gguf", "d.gguf"]
        );
        assert!(model_files_in_command(&[]).is_empty());
        assert!(model_files_in_command(&strings(&["-hf", "org/repo"])).is_empty());
    }

    #[test]
    fn file_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("m.gguf");
        std::fs::write(&file, vec![0u8; 1234]).unwrap();
        let missing = tmp.path().join("nope.gguf");
        let dir = tmp.path().to_path_buf();
        let got = file_bytes(&[file.clone(), missing.clone(), dir.clone()]);
        assert_eq!(got, vec![(file, Some(1234)), (missing, None), (dir, None)]);
    }

    // --- live processes (Linux only) ---

    /// Kills and reaps a child on drop, so a failing test leaves nothing.
    struct Reaped(Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn spawn(program: &str, args: &[&str]) -> Reaped {
        Reaped(Command::new(program).args(args).spawn().unwrap())
    }

    /// Polls `tree_pids(root)` until it has at least `n` entries.
    fn wait_for_tree(root: u32, n: usize) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let pids = tree_pids(root);
            if pids.len() >= n || Instant::now() > deadline {
                return pids;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_tree_includes_child_and_grandchild() {
        let me = std::process::id();
        let child = spawn("sleep", &["2"]);
        let shell = spawn("sh", &["-c", "sleep 2 & sleep 2"]);
        let shell_pid = shell.0.id();

        let sub = wait_for_tree(shell_pid, 2);
        assert!(sub.len() >= 2, "shell tree {sub:?}");
        assert_eq!(sub[0], shell_pid);

        let mine = tree_pids(me);
        assert_eq!(mine[0], me);
        assert!(mine.contains(&child.0.id()), "{mine:?}");
        for pid in &sub {
            assert!(mine.contains(pid), "{pid} not in {mine:?}");
        }

        let usage = tree_usage(shell_pid).unwrap();
        assert!(usage.rss_bytes > 0);
        assert!(usage.processes >= 2);
        assert!(usage.cpu_s >= 0.0);

        let own = tree_usage(me).unwrap();
        assert!(own.processes >= 4);
        assert!(own.rss_bytes > usage.rss_bytes);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_vanished_process() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(tree_pids(pid).is_empty());
        assert_eq!(tree_usage(pid), None);
    }

    #[cfg(target_os = "linux")]
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
