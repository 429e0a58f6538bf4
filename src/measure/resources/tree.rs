//! A process tree's memory and CPU, whatever the OS: the tree is the root
//! and every descendant found through parent pids, each process is read by
//! the platform's reader — Linux `/proc` (`proc`, the fastest: see `cargo
//! bench --bench sampler`) or the `sysinfo` crate elsewhere
//! (`measure::portable`: macOS, Windows) — and the figures are summed here.
//! Only observes; never signals or touches the processes it reads.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;

use super::usage::PidUsage;

/// Resource usage summed over a process tree at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TreeUsage {
    /// Sum of the resident memory over the tree, in bytes. Pages shared
    /// between processes (e.g. a model mmapped by two of them) count once
    /// per process.
    pub rss_bytes: u64,
    /// Sum of user + system CPU time of the live processes, in seconds.
    /// Children that exited are no longer counted, so this can go down.
    pub cpu_s: f64,
    /// Processes that were measured.
    pub processes: usize,
}

/// `(pid, parent)` of every process on the machine.
fn process_table() -> Vec<(u32, u32)> {
    #[cfg(target_os = "linux")]
    {
        super::proc::process_table()
    }
    #[cfg(not(target_os = "linux"))]
    {
        crate::measure::portable::process_table()
    }
}

/// When `pid` started, in a unit of the platform's (clock ticks since
/// boot on Linux, seconds since 1970 elsewhere); `None` when it is gone.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        super::proc::process_start(pid)
    }
    #[cfg(not(target_os = "linux"))]
    {
        crate::measure::portable::process_start(pid)
    }
}

/// Each of `pids`, read now; `None` for one that is gone.
fn read_pids(pids: &[u32]) -> Vec<Option<PidUsage>> {
    #[cfg(target_os = "linux")]
    {
        pids.iter()
            .map(|&pid| super::proc::pid_usage(pid))
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        crate::measure::portable::pid_usages(pids)
    }
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

/// `root` followed by all its descendants, from one scan of the process
/// table. Empty when `root` does not exist (or cannot be read).
pub fn tree_pids(root: u32) -> Vec<u32> {
    let table = process_table();
    if !table.iter().any(|&(pid, _)| pid == root) {
        return Vec::new();
    }
    let mut pids = vec![root];
    pids.extend(descendants(root, &table));
    pids
}

/// Measures `pids` (which must start with, or contain, `root`). Returns the
/// usage and whether every listed process was still there and still in the
/// tree; `None` when `root` itself is gone.
pub(super) fn usage_of(root: u32, pids: &[u32]) -> Option<(TreeUsage, bool)> {
    tally(root, pids, &read_pids(pids))
}

/// Sums `read` (one entry per pid of `pids`) into the tree's usage; see
/// [`usage_of`].
fn tally(root: u32, pids: &[u32], read: &[Option<PidUsage>]) -> Option<(TreeUsage, bool)> {
    let members: HashSet<u32> = pids.iter().copied().collect();
    let mut usage = TreeUsage {
        rss_bytes: 0,
        cpu_s: 0.0,
        processes: 0,
    };
    let mut complete = true;
    for (&pid, measured) in pids.iter().zip(read) {
        // A non-root pid whose parent is no longer in the tree was
        // reparented (its parent exited) or reused: it is not ours.
        let Some(process) = measured.filter(|p| pid == root || members.contains(&p.ppid)) else {
            if pid == root {
                return None;
            }
            complete = false;
            continue;
        };
        usage.rss_bytes = usage.rss_bytes.saturating_add(process.rss_bytes);
        usage.cpu_s += process.cpu_s;
        usage.processes += 1;
    }
    Some((usage, complete))
}

/// Memory and CPU of `root` and all its descendants, right now. Processes
/// that vanish during the scan are skipped; `None` when `root` is gone or
/// cannot be read.
pub fn tree_usage(root: u32) -> Option<TreeUsage> {
    let pids = tree_pids(root);
    if pids.is_empty() {
        return None;
    }
    usage_of(root, &pids).map(|(usage, _)| usage)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

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

    fn process(ppid: u32, rss_bytes: u64, cpu_s: f64) -> PidUsage {
        PidUsage {
            ppid,
            rss_bytes,
            cpu_s,
        }
    }

    #[test]
    fn tally_sums_members_and_drops_strangers() {
        let pids = [10, 20, 30];
        let all = [
            Some(process(1, 100, 1.0)),
            Some(process(10, 50, 0.5)),
            Some(process(20, 25, 0.25)),
        ];
        assert_eq!(
            tally(10, &pids, &all),
            Some((
                TreeUsage {
                    rss_bytes: 175,
                    cpu_s: 1.75,
                    processes: 3
                },
                true
            ))
        );
        // 30 was reparented (or its pid reused): not counted, not complete.
        let moved = [
            Some(process(1, 100, 1.0)),
            Some(process(10, 50, 0.5)),
            Some(process(1, 25, 0.25)),
        ];
        let (usage, complete) = tally(10, &pids, &moved).unwrap();
        assert_eq!(
            (usage.rss_bytes, usage.processes, complete),
            (150, 2, false)
        );
        // A child gone: the same.
        let gone = [
            Some(process(1, 100, 1.0)),
            None,
            Some(process(20, 25, 0.25)),
        ];
        assert!(!tally(10, &pids, &gone).unwrap().1);
        // The root gone: nothing.
        assert_eq!(
            tally(10, &pids, &[None, Some(process(10, 50, 0.5)), None]),
            None
        );
    }

    /// Kills and reaps a child on drop, so a failing test leaves nothing.
    pub(crate) struct Reaped(pub(crate) Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    pub(crate) fn spawn(program: &str, args: &[&str]) -> Reaped {
        Reaped(Command::new(program).args(args).spawn().unwrap())
    }

    /// Polls `tree_pids(root)` until it has at least `n` entries.
    pub(crate) fn wait_for_tree(root: u32, n: usize) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let pids = tree_pids(root);
            if pids.len() >= n || Instant::now() > deadline {
                return pids;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[cfg(unix)]
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

    #[cfg(unix)]
    #[test]
    fn live_vanished_process() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(tree_pids(pid).is_empty());
        assert_eq!(tree_usage(pid), None);
    }
}
