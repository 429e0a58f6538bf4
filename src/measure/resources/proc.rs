//! A process tree's memory and CPU, read from Linux `/proc`: the parsers
//! (pure, tested everywhere) and the live readers (`None` off Linux). Only
//! observes; never signals or touches the processes it reads.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use serde::Serialize;

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
pub(crate) fn clk_tck() -> Option<f64> {
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
pub(super) fn usage_of(root: u32, pids: &[u32]) -> Option<(TreeUsage, bool)> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

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
}
