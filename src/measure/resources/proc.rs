//! Processes read from Linux `/proc`: the parsers (pure, tested
//! everywhere) and the live readers behind `tree` on Linux
//! (`None` or empty elsewhere). Only observes; never signals or touches the
//! processes it reads.

#[cfg(target_os = "linux")]
use std::path::Path;

#[cfg(target_os = "linux")]
use super::usage::PidUsage;

/// The fields of `/proc/<pid>/stat` this module uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcStat {
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
    /// When the process started, in clock ticks since boot (field 22).
    pub starttime: Option<u64>,
    /// The process state (field 3): `R`, `S`, `Z` for a zombie, …
    pub state: char,
}

/// Parses the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain
/// spaces and `)`, so the remaining fields are taken after the *last* `)`.
/// Returns `None` when the text is malformed or truncated before `stime`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
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
        starttime: field(22).and_then(|s| s.parse().ok()),
        state: field(3).and_then(|s| s.chars().next()).unwrap_or('?'),
    })
}

/// Reads the `VmRSS:` line of `/proc/<pid>/status`, in kB (kibibytes, as
/// the kernel writes it). `None` when absent — zombies and kernel threads
/// have no `VmRSS` line.
pub(crate) fn parse_status_rss_kb(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------------
// Live readers (Linux)
// ---------------------------------------------------------------------------

#[cfg(target_os = "linux")]
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
#[cfg(target_os = "linux")]
fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions and touches no memory of ours.
        let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(v).ok().filter(|&v| v > 0).unwrap_or(4096)
    })
}

#[cfg(target_os = "linux")]
fn read_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(Path::new(PROC).join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&text)
}

/// Resident bytes of one process; `None` when the process is gone.
#[cfg(target_os = "linux")]
fn read_rss_bytes(stat: &ProcStat) -> Option<u64> {
    let path = Path::new(PROC).join(stat.pid.to_string()).join("status");
    let text = std::fs::read_to_string(path).ok()?;
    Some(match parse_status_rss_kb(&text) {
        Some(kb) => kb.saturating_mul(1024),
        None => stat.rss_pages.unwrap_or(0).saturating_mul(page_size()),
    })
}

/// `(pid, parent)` of every process, from one pass over `/proc/*/stat`;
/// unreadable entries are skipped.
#[cfg(target_os = "linux")]
pub(super) fn process_table() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir(PROC) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_stat)
        .map(|s| (s.pid, s.ppid))
        .collect()
}

/// When `pid` started (clock ticks since boot): with the pid, what tells
/// this process from a later one that reused its pid. `None` once it has
/// exited (a zombie waiting to be reaped included).
#[cfg(target_os = "linux")]
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = read_stat(pid)?;
    if matches!(stat.state, 'Z' | 'X' | 'x') {
        return None;
    }
    stat.starttime
}

/// The parent, resident memory and CPU time of `pid` (`utime + stime` of
/// the live process, not `cutime`/`cstime`); `None` when it is gone.
#[cfg(target_os = "linux")]
pub(crate) fn pid_usage(pid: u32) -> Option<PidUsage> {
    let tck = clk_tck()?;
    let stat = read_stat(pid)?;
    let rss_bytes = read_rss_bytes(&stat)?;
    Some(PidUsage {
        ppid: stat.ppid,
        rss_bytes,
        cpu_s: stat.utime.saturating_add(stat.stime) as f64 / tck,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
