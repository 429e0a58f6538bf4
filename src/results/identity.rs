//! The identities results carry: which server variant a row was measured
//! in, which load point, on which machine. Each is a value with its own
//! `Display`, built once where it is known (the plan, the load driver, the
//! fleet merge) and compared as a value downstream, never re-parsed out of
//! a key. On disk each is the plain string it displays as, so the results
//! format is unchanged.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The part a fleet merge adds to a variant: `machine=NAME`.
const MACHINE: &str = "machine";

/// A server variant as results record it: its settings as `name=value`
/// parts joined by commas (`threads=2,gpu_layers=99`, `device=cpu`), in
/// the order the suite declares them, with `machine=NAME` appended when a
/// fleet merge puts several machines side by side.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct VariantLabel(String);

impl VariantLabel {
    /// The variant of `parts` (`(name, value)` in declaration order); `None`
    /// when there are none, which is the default variant.
    pub fn of<'a>(parts: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<VariantLabel> {
        let text = parts
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(",");
        (!text.is_empty()).then_some(VariantLabel(text))
    }

    /// `variant` (or the default) measured on `machine`.
    pub(crate) fn on_machine(
        variant: Option<&VariantLabel>,
        machine: &MachineLabel,
    ) -> VariantLabel {
        let part = machine.part();
        VariantLabel(match variant {
            Some(v) => format!("{},{part}", v.0),
            None => part,
        })
    }

    /// The `name=value` parts, in order.
    fn parts(&self) -> impl Iterator<Item = &str> {
        self.0.split(',')
    }

    /// Whether this variant was measured on `machine` (a fleet row).
    pub(crate) fn is_on(&self, machine: &MachineLabel) -> bool {
        let part = machine.part();
        self.parts().any(|p| p == part)
    }

    /// The variant without its machine part; `None` when nothing is left.
    pub(crate) fn without_machine(&self) -> Option<VariantLabel> {
        let prefix = format!("{MACHINE}=");
        VariantLabel::of(
            self.parts()
                .filter(|p| !p.starts_with(&prefix))
                .filter_map(|p| p.split_once('=')),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Read as text for labels and templates; compared as a value.
impl std::ops::Deref for VariantLabel {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VariantLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A load point as results name it: its drive (`concurrency=4`,
/// `rate=8`), or `sweep-` and the drive for a point a sweep chose.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct PointLabel(String);

impl PointLabel {
    /// A declared point driven at `drive` (`concurrency=4`).
    pub fn point(drive: &str) -> PointLabel {
        PointLabel(drive.to_string())
    }

    /// A point a sweep drove at `drive`.
    pub(crate) fn in_sweep(drive: &str) -> PointLabel {
        PointLabel(format!("sweep-{drive}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PointLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The machine a run was measured on: its `dyno run --machine` name, else
/// its CPU and core count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MachineLabel(String);

impl MachineLabel {
    /// A run's machine label from its `--machine` name, or else its CPU.
    pub fn of(name: Option<&str>, cpu: &str, cores: usize) -> MachineLabel {
        MachineLabel(name.map_or_else(|| format!("{cpu} ({cores} cores)"), str::to_string))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `machine=NAME`: what a fleet merge adds to a variant and a key.
    pub(crate) fn part(&self) -> String {
        format!("{MACHINE}={}", self.0)
    }
}

impl fmt::Display for MachineLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_gains_and_loses_its_machine() {
        let box1 = MachineLabel::of(Some("box1"), "EPYC", 2);
        let v = VariantLabel::of([("threads", "2"), ("gpu_layers", "99")]);
        assert_eq!(
            v.as_ref().map(VariantLabel::as_str),
            Some("threads=2,gpu_layers=99")
        );
        let on = VariantLabel::on_machine(v.as_ref(), &box1);
        assert_eq!(on.to_string(), "threads=2,gpu_layers=99,machine=box1");
        assert!(on.is_on(&box1), "{on}");
        assert!(!on.is_on(&MachineLabel::of(Some("box"), "EPYC", 2)), "{on}");
        assert_eq!(on.without_machine(), v);
        let bare = VariantLabel::on_machine(None, &box1);
        assert_eq!(bare.to_string(), "machine=box1");
        assert_eq!(bare.without_machine(), None);
        assert_eq!(VariantLabel::of([]), None);
    }

    #[test]
    fn identities_are_plain_strings_on_disk() {
        let v = VariantLabel::of([("device", "cpu")]);
        assert_eq!(
            serde_json::to_string(&v).ok(),
            Some("\"device=cpu\"".to_string())
        );
        let p: Result<PointLabel, _> = serde_json::from_str("\"sweep-rate=8\"");
        assert_eq!(p.ok(), Some(PointLabel::in_sweep("rate=8")));
        assert_eq!(
            MachineLabel::of(None, "EPYC 7B13", 2).to_string(),
            "EPYC 7B13 (2 cores)"
        );
    }
}
