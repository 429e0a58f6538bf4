//! Readings through the `sysinfo` crate, for systems without Linux `/proc`
//! (macOS, Windows): each process of a tree (for `resources::tree`), the
//! machine's CPU use (for `noise`) and its description (for `machine`).
//! Linux reads `/proc` itself, which is faster and tells more; there this
//! module is compiled only for its tests, which hold it to `/proc`'s
//! figures.
//!
//! What the operating systems give through it: resident memory (macOS
//! RSS; Windows the working set) and user + system CPU time per process,
//! and parent pids, so the same process trees as on Linux; the machine's
//! CPU use as a percentage between two updates at least 200 ms apart
//! (summed here into busy CPU-seconds), the load average where the OS
//! keeps one (macOS; sysinfo estimates one on Windows) and the CPU
//! frequency. Not available: steal
//! time and pressure stall information (Linux only), RAPL energy (Linux
//! powercap).
//!
//! Observes only and never fails: what cannot be read is `None` or empty.

use std::cell::RefCell;
use std::time::Instant;

use sysinfo::{CpuRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use super::resources::usage::PidUsage;

thread_local! {
    /// One `System` per thread (the sampler's, the caller's): refreshing
    /// reuses what it learnt of each process.
    static SYSTEM: RefCell<Option<System>> = const { RefCell::new(None) };
}

/// `f` on this thread's `System`; `None` when sysinfo cannot read this OS.
fn with_system<T>(f: impl FnOnce(&mut System) -> T) -> Option<T> {
    SYSTEM.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = System::new().ok();
        }
        slot.as_mut().map(f)
    })
}

/// `(pid, parent)` of every process (parent 0 when it has none).
pub(crate) fn process_table() -> Vec<(u32, u32)> {
    with_system(|system| {
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing(),
        );
        system
            .processes()
            .values()
            .map(|p| (p.pid().as_u32(), p.parent().map_or(0, Pid::as_u32)))
            .collect()
    })
    .unwrap_or_default()
}

/// When `pid` started, in seconds since 1970; `None` when it is gone.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    with_system(|system| {
        let pid = Pid::from_u32(pid);
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing(),
        );
        system.process(pid).map(sysinfo::Process::start_time)
    })
    .flatten()
}

/// The parent, resident memory and CPU time of each of `pids`; `None` for
/// one that is gone.
pub(crate) fn pid_usages(pids: &[u32]) -> Vec<Option<PidUsage>> {
    with_system(|system| {
        let wanted: Vec<Pid> = pids.iter().map(|&pid| Pid::from_u32(pid)).collect();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&wanted),
            true,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        wanted
            .iter()
            .map(|&pid| {
                let process = system.process(pid)?;
                Some(PidUsage {
                    ppid: process.parent().map_or(0, Pid::as_u32),
                    rss_bytes: process.memory(),
                    cpu_s: process.accumulated_cpu_time() as f64 / 1000.0,
                })
            })
            .collect()
    })
    .unwrap_or_else(|| vec![None; pids.len()])
}

/// The machine's CPU over time, for the noise monitor. sysinfo tells the
/// CPU use between two of its updates, at most one per
/// `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` (200 ms): busy CPU-seconds are
/// summed at each update, and a reading in between carries the last use
/// forward from there.
#[derive(Debug)]
pub(crate) struct MachineCpu {
    system: System,
    cores: f64,
    /// When the CPU use was last updated, and the busy CPU-seconds of the
    /// whole machine (all cores summed) from the start until then.
    updated: Instant,
    busy_s: f64,
    /// The share of all cores busy over the last update's interval (0–1).
    usage: f64,
}

/// One reading of a [`MachineCpu`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuReading {
    pub(crate) at: Instant,
    /// Busy CPU-seconds of the whole machine, all cores summed, since the
    /// start.
    pub(crate) busy_s: f64,
    pub(crate) load1: Option<f64>,
    /// Mean CPU frequency, MHz.
    pub(crate) freq_mhz: Option<f64>,
}

impl MachineCpu {
    /// Starts measuring; `None` when sysinfo cannot read this OS.
    pub(crate) fn start() -> Option<MachineCpu> {
        let mut system = System::new().ok()?;
        system.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage().with_frequency());
        let cores = system.cpus().len().max(1) as f64;
        Some(MachineCpu {
            system,
            cores,
            updated: Instant::now(),
            busy_s: 0.0,
            usage: 0.0,
        })
    }

    /// A reading now.
    pub(crate) fn read(&mut self) -> CpuReading {
        if self.updated.elapsed() >= sysinfo::MINIMUM_CPU_UPDATE_INTERVAL {
            self.system
                .refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage().with_frequency());
            let now = Instant::now();
            self.usage = f64::from(self.system.global_cpu_usage()).clamp(0.0, 100.0) / 100.0;
            self.busy_s += self.usage * self.cores * now.duration_since(self.updated).as_secs_f64();
            self.updated = now;
        }
        let at = Instant::now();
        let since_update = at.saturating_duration_since(self.updated).as_secs_f64();
        let mhz: Vec<f64> = self
            .system
            .cpus()
            .iter()
            .map(|cpu| cpu.frequency() as f64)
            .filter(|&mhz| mhz > 0.0)
            .collect();
        CpuReading {
            at,
            busy_s: self.busy_s + self.usage * self.cores * since_update,
            load1: System::load_average()
                .ok()
                .map(|load| load.one)
                .filter(|&one| one > 0.0),
            freq_mhz: (!mhz.is_empty()).then(|| mhz.iter().sum::<f64>() / mhz.len() as f64),
        }
    }
}

/// What the machine is, for `Environment`: CPU brand, total memory in
/// MiB and the OS's name and version; `None` for what cannot be read.
pub(crate) fn describe() -> (Option<String>, Option<u64>, Option<String>) {
    let Ok(mut system) = System::new() else {
        return (None, None, None);
    };
    system.refresh_cpu_specifics(CpuRefreshKind::nothing());
    system.refresh_memory();
    let cpu = system
        .cpus()
        .first()
        .map(|cpu| cpu.brand().trim().to_string())
        .filter(|brand| !brand.is_empty());
    let total = system.total_memory();
    let ram_mb = (total > 0).then_some(total / (1024 * 1024));
    let os = System::long_os_version()
        .ok()
        .filter(|name| !name.trim().is_empty());
    (cpu, ram_mb, os)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use crate::measure::resources::proc;

    #[test]
    fn a_process_start_is_known_and_stays_the_same() {
        let me = std::process::id();
        let first = process_start(me);
        assert!(first.is_some_and(|t| t > 0), "{first:?}");
        assert_eq!(process_start(me), first);
        assert_eq!(process_start(u32::MAX - 1), None);
    }

    #[test]
    fn the_process_table_has_us_and_our_parent() {
        let me = std::process::id();
        let table = process_table();
        let parent = table.iter().find(|(pid, _)| *pid == me).map(|(_, p)| *p);
        #[cfg(unix)]
        assert_eq!(parent, Some(std::os::unix::process::parent_id()));
        #[cfg(not(unix))]
        assert!(parent.is_some());
    }

    /// On Linux, sysinfo reads `/proc` too: the two readers must agree.
    #[cfg(target_os = "linux")]
    #[test]
    fn pid_usages_agree_with_proc() {
        let me = std::process::id();
        let [Some(portable)] = pid_usages(&[me])[..] else {
            panic!("sysinfo cannot read this process");
        };
        let from_proc = proc::pid_usage(me).unwrap();
        assert_eq!(portable.ppid, from_proc.ppid);
        let ratio = portable.rss_bytes as f64 / from_proc.rss_bytes as f64;
        assert!(
            (0.8..1.25).contains(&ratio),
            "{portable:?} vs {from_proc:?}"
        );
        // CPU time only grows; 0.5 s of slack for the time between reads.
        assert!(
            (portable.cpu_s - from_proc.cpu_s).abs() < 0.5,
            "{portable:?} vs {from_proc:?}"
        );
        assert_eq!(pid_usages(&[u32::MAX]), vec![None]);
    }

    /// The same tree, found and read through sysinfo as through `/proc`.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_live_tree_reads_the_same() {
        use crate::measure::resources::tree::descendants;
        use crate::measure::resources::tree::tests::{spawn, wait_for_tree};
        let shell = spawn("sh", &["-c", "sleep 2 & sleep 2"]);
        let root = shell.0.id();
        let mut from_proc = wait_for_tree(root, 2);
        let mut found = vec![root];
        found.extend(descendants(root, &process_table()));
        from_proc.sort_unstable();
        found.sort_unstable();
        assert_eq!(found, from_proc);
        for (pid, usage) in from_proc.iter().zip(pid_usages(&from_proc)) {
            let usage = usage.unwrap();
            assert_eq!(usage.ppid, proc::pid_usage(*pid).unwrap().ppid);
            assert!(usage.rss_bytes > 0, "{pid}: {usage:?}");
        }
    }

    #[test]
    fn machine_cpu_counts_busy_time_at_least_ours() {
        use crate::measure::resources::own::own_cpu_s;
        let mut machine = MachineCpu::start().unwrap();
        let first = machine.read();
        let own_before = own_cpu_s().unwrap();
        // Use 0.4 CPU-seconds, however long a busy machine makes that take.
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let mut last = first;
        let mut own = 0.0;
        while own < 0.4 && Instant::now() < deadline {
            let until = Instant::now() + std::time::Duration::from_millis(50);
            let mut spins = 0_u64;
            while Instant::now() < until {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
            last = machine.read();
            own = own_cpu_s().unwrap() - own_before;
        }
        assert!(own >= 0.4, "{own} s of our own; {first:?} {last:?}");
        // The machine was busy at least while we were (the last 200 ms
        // are carried forward, hence the slack).
        assert!(
            last.busy_s - first.busy_s > 0.5 * own,
            "{own} s of our own; {first:?} {last:?}"
        );
        assert!(last.at > first.at);
    }

    #[test]
    fn the_machine_is_described() {
        let (cpu, ram_mb, os) = describe();
        assert!(cpu.is_some_and(|c| !c.is_empty()));
        assert!(ram_mb.is_some_and(|mb| mb > 0));
        assert!(os.is_some());
    }
}
