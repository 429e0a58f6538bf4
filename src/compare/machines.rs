//! What differs between the machines of two runs: the CPU model and the
//! core count (for every model), and each model's engine (its build,
//! commit, CPU features and how dyno's setup built it). A shift across such
//! a difference belongs to the machine, not to the commit. Pure: two
//! results documents in, the differences out.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::results::{EngineBuild, Results};

/// The differences between the machines of a base and a new run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Machines {
    /// `CPU AMD EPYC (2 cores) → Intel Xeon (2 cores)`, when the CPU model
    /// or the core count differ: every model ran elsewhere.
    pub host: Option<String>,
    /// Model id → `engine b11434 … → b11500 …`, for each model whose
    /// engine differs (both runs recorded one).
    pub engines: BTreeMap<String, String>,
}

impl Machines {
    pub fn of(base: &Results, new: &Results) -> Machines {
        let (b, n) = (&base.environment, &new.environment);
        let host = ((&b.cpu, b.cores) != (&n.cpu, n.cores)).then(|| {
            format!(
                "CPU {} ({} cores) → {} ({} cores)",
                b.cpu, b.cores, n.cpu, n.cores
            )
        });
        let models: BTreeSet<&str> = base.models.iter().map(|m| m.id.as_str()).collect();
        let engines = models
            .into_iter()
            .filter_map(|model| {
                let (before, after) = (engines_of(base, model), engines_of(new, model));
                let differ =
                    !before.is_empty() && !after.is_empty() && before.keys().ne(after.keys());
                differ.then(|| {
                    let shown = |e: &BTreeMap<String, &EngineBuild>| {
                        e.values()
                            .map(|b| b.describe())
                            .collect::<Vec<_>>()
                            .join("; ")
                    };
                    (
                        model.to_string(),
                        format!("engine {} → {}", shown(&before), shown(&after)),
                    )
                })
            })
            .collect();
        Machines { host, engines }
    }

    /// Whether `model` ran on another machine or engine in the new run.
    pub(crate) fn differ_for(&self, model: &str) -> bool {
        self.host.is_some() || self.engines.contains_key(model)
    }

    /// What differs, in one line; `None` when nothing does.
    pub(crate) fn describe(&self) -> Option<String> {
        let mut parts: Vec<String> = self.host.iter().cloned().collect();
        parts.extend(
            self.engines
                .iter()
                .map(|(model, change)| format!("`{model}`'s {change}")),
        );
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The comparison's warning: what differs, and what became of the
    /// rows (`set_aside` of them are MACHINE).
    pub fn warning(&self, across_machines: bool, set_aside: usize) -> Option<String> {
        let what = self.describe()?;
        Some(if across_machines {
            format!(
                "the runs come from different machines ({what}); compared across machines as asked (--across-machines): their shifts are verdicts and can fail the comparison"
            )
        } else {
            format!(
                "the runs come from different machines ({what}): {set_aside} rows whose shift may be the machine's are MACHINE, not REGRESSED or IMPROVED, and do not fail the comparison; \
                 to put machines side by side use `dyno merge --fleet BASE NEW --out DIR`, or pass --across-machines to gate on them anyway"
            )
        })
    }
}

/// Every engine `model`'s launches ran in `doc`, by identity.
fn engines_of<'a>(doc: &'a Results, model: &str) -> BTreeMap<String, &'a EngineBuild> {
    doc.models
        .iter()
        .filter(|m| m.id == model)
        .flat_map(|m| &m.launches)
        .filter_map(|l| l.engine.as_ref())
        .map(|e| (e.describe(), e))
        .collect()
}
