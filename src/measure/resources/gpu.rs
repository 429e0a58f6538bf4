//! GPU memory and utilisation from `nvidia-smi`; `None` on machines without
//! an NVIDIA GPU.

use std::io::Read as _;
use std::time::{Duration, Instant};

use serde::Serialize;

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
pub(crate) fn parse_nvidia_smi(text: &str) -> Option<GpuSnapshot> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
