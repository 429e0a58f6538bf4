//! The machine a run happens on: CPU, cores, memory and OS, as recorded in
//! every results document. Read from `/proc` and `/etc/os-release` on
//! Linux, through the `sysinfo` crate on macOS and Windows.

use serde::{Deserialize, Serialize};

/// Where and on what a run happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Environment {
    pub cpu: String,
    pub cores: usize,
    pub ram_mb: u64,
    pub os: String,
    /// The machine's name in a fleet (`dyno run --machine NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// What the rest of the machine did during the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<super::noise::NoiseSummary>,
}

impl Environment {
    /// Whether both runs ran on the same kind of machine.
    pub(crate) fn same_machine(&self, other: &Environment) -> bool {
        (&self.cpu, self.cores, self.ram_mb, &self.os)
            == (&other.cpu, other.cores, other.ram_mb, &other.os)
    }

    /// Reads the machine's description; `unknown` (or 0 MB) for what
    /// cannot be read.
    pub(crate) fn detect() -> Environment {
        #[cfg(target_os = "linux")]
        let (cpu, ram_mb, os) = linux();
        #[cfg(not(target_os = "linux"))]
        let (cpu, ram_mb, os) = {
            let (cpu, ram_mb, os) = super::portable::describe();
            (
                cpu.unwrap_or_else(|| "unknown".to_string()),
                ram_mb.unwrap_or(0),
                os.unwrap_or_else(|| std::env::consts::OS.to_string()),
            )
        };
        Environment {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            ram_mb,
            os,
            machine: None,
            noise: None,
        }
    }
}

/// CPU model, memory in MiB and OS name from `/proc/cpuinfo`,
/// `/proc/meminfo` and `/etc/os-release`.
#[cfg(target_os = "linux")]
fn linux() -> (String, u64, String) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map_or_else(|| "unknown".to_string(), |s| s.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_mb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024);
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    (cpu, ram_mb, os)
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn utc_now() -> String {
    utc(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()))
}

/// `secs` seconds after 1970-01-01T00:00:00Z, as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// This machine's default name in a fleet: its host name and CPU.
pub(crate) fn name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host} ({})", Environment::detect().cpu)
}
