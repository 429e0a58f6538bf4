//! dyno's own CPU time (every thread), for the client's cost in load
//! modes: `getrusage(RUSAGE_SELF)` on Unix, microsecond resolution where
//! the OS keeps it; the process's user and kernel time through sysinfo on
//! Windows (millisecond resolution).

/// CPU seconds dyno has used so far, user and system, all threads.
pub(crate) fn own_cpu_s() -> Option<f64> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage writes one `rusage` into the zeroed struct we
        // own and reads nothing else.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) } == 0;
        // `tv_usec` is an i64 on Linux and an i32 on macOS.
        #[allow(clippy::cast_lossless)]
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        ok.then(|| seconds(usage.ru_utime) + seconds(usage.ru_stime))
    }
    #[cfg(not(unix))]
    {
        let [own] = crate::measure::portable::pid_usages(&[std::process::id()])[..] else {
            return None;
        };
        own.map(|process| process.cpu_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_work_shows_as_cpu_time() {
        let before = own_cpu_s().unwrap();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(100) {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let used = own_cpu_s().unwrap() - before;
        assert!(used > 0.02, "{used} s of CPU for 100 ms of spinning");
    }
}
