//! Package energy from RAPL (powercap sysfs), read around each request;
//! `None` wherever the counters are absent or unreadable.

use std::path::{Path, PathBuf};

/// Energy consumed between two readings of a counter that wraps to zero
/// after `max_range`: `after - before`, or, when the counter went down,
/// the distance to the wrap plus `after`. Assumes at most one wrap in
/// between (RAPL package counters take tens of minutes to wrap).
pub(crate) fn energy_delta_uj(before: u64, after: u64, max_range: u64) -> u64 {
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
    pub(crate) const DEFAULT_DIR: &'static str = "/sys/class/powercap";

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
    pub(crate) fn open_at(dir: &Path) -> Option<Rapl> {
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

    #[cfg(test)]
    /// Number of package domains (sockets).
    pub(crate) fn domain_count(&self) -> usize {
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
    pub(crate) fn read_domains(&self) -> Option<Vec<u64>> {
        self.domains
            .iter()
            .map(|d| read_u64(&d.energy_path))
            .collect()
    }

    /// Energy in µJ between two [`read_domains`](Self::read_domains)
    /// readings, wrap-around handled per domain. `None` if the readings do
    /// not match this machine's domain count.
    pub(crate) fn delta_uj(&self, before: &[u64], after: &[u64]) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
