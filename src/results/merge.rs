//! Putting results back together: the shards of one run (`dyno run --shard
//! I/N` on several machines or jobs) into the run they split, exactly and
//! in plan order; or runs of one suite on several machines into a fleet,
//! the machine an axis of every row. Pure: results in, results out; the
//! same inputs in any order give the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    CellStats, EnergySettings, Environment, Highlight, LoadStats, MachineLabel, ModelRun, Results,
    Sample, SweepResult, VariantLabel, aggregate, highlights, summarize_models,
};
use crate::measure::noise::{self, NoiseSummary};

/// Which part of a sharded run a results document holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    pub count: usize,
    /// The cell keys of every shard (shard `i` at `i − 1`), in plan order,
    /// so a merge can name what a missing shard held.
    pub keys: Vec<Vec<String>>,
}

/// Runs of one suite on several machines merged side by side (`dyno merge
/// --fleet`): each machine's environment, rows and highlights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Fleet {
    /// In label order.
    pub machines: Vec<FleetMachine>,
}

/// One machine of a fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FleetMachine {
    /// Its label: `--machine NAME`, else its CPU and cores.
    pub name: String,
    pub environment: Environment,
    /// Its rows of `summaries`, in their order.
    pub rows: Vec<FleetRow>,
    /// Best model per metric on this machine alone.
    pub highlights: Vec<Highlight>,
}

/// A summary row of one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FleetRow {
    /// The row's `label` in `summaries` (with the machine).
    pub label: String,
    /// The model and variant without the machine: the same on every machine.
    pub model: String,
}

/// Why results cannot be merged. Every message names the inputs.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error(
        "{0} holds no shard (it was not run with --shard I/N); merge --fleet puts whole runs side by side"
    )]
    NotAShard(String),
    #[error(
        "{first} and {other} are results of different suites (suite hash {first_hash} against {other_hash})"
    )]
    OtherSuite {
        first: String,
        other: String,
        first_hash: String,
        other_hash: String,
    },
    #[error(
        "{first} and {other} followed different plans (another --models/--prompts/--order, or shard count)"
    )]
    OtherPlan { first: String, other: String },
    #[error("shard {index} of {count} is given twice: {first} and {second}")]
    Duplicate {
        index: usize,
        count: usize,
        first: String,
        second: String,
    },
    #[error("shards {} of {count} are missing; their cells: {}", .shards.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "), .cells.join(", "))]
    Missing {
        shards: Vec<usize>,
        count: usize,
        cells: Vec<String>,
    },
    #[error("{0} is partial (interrupted); finish it with `dyno run --resume` first")]
    Partial(String),
}

/// The shards of one run, merged into the run they split: samples in plan
/// order, every model's record, aggregates computed anew. Also says when
/// shards ran on different machines.
pub fn merge_shards(parts: Vec<(String, Results)>) -> Result<(Results, Vec<String>), MergeError> {
    let mut parts: Vec<(String, Results, Shard)> = parts
        .into_iter()
        .map(|(name, doc)| match doc.shard.clone() {
            Some(shard) => Ok((name, doc, shard)),
            None => Err(MergeError::NotAShard(name)),
        })
        .collect::<Result<_, _>>()?;
    parts.sort_by(|a, b| (a.2.index, &a.0).cmp(&(b.2.index, &b.0)));
    let (first_name, first, first_shard) = parts.first().ok_or(MergeError::Empty)?;
    let count = first_shard.count;
    let mut seen: BTreeMap<usize, &str> = BTreeMap::new();
    for (name, doc, shard) in &parts {
        same_run(first_name, first, name, doc)?;
        if shard.count != count || doc.plan_hash != first.plan_hash {
            return Err(MergeError::OtherPlan {
                first: first_name.clone(),
                other: name.clone(),
            });
        }
        if let Some(previous) = seen.insert(shard.index, name) {
            return Err(MergeError::Duplicate {
                index: shard.index,
                count,
                first: previous.to_string(),
                second: name.clone(),
            });
        }
    }
    let missing: Vec<usize> = (1..=count).filter(|i| !seen.contains_key(i)).collect();
    if !missing.is_empty() {
        let cells = missing
            .iter()
            .flat_map(|i| first_shard.keys.get(i - 1).cloned().unwrap_or_default())
            .collect();
        return Err(MergeError::Missing {
            shards: missing,
            count,
            cells,
        });
    }
    let mut warnings = Vec::new();
    let machines: BTreeSet<MachineLabel> = parts.iter().map(|(_, d, _)| machine(d)).collect();
    if machines.len() > 1 {
        warnings.push(format!(
            "the shards ran on different machines ({}): their figures are comparable only as far as the machines are; to put machines side by side, merge whole runs with `dyno merge --fleet`",
            machines
                .iter()
                .map(MachineLabel::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let noise: Vec<NoiseSummary> = parts
        .iter()
        .filter_map(|(_, doc, _)| doc.environment.noise.clone())
        .collect();
    let mut docs = parts.into_iter().map(|(_, doc, _)| doc);
    let first = docs.next().ok_or(MergeError::Empty)?;
    let mut merged = combine(first, docs, false);
    // The machine during the whole run, not during the first shard.
    let busy: Vec<f64> = merged
        .samples
        .iter()
        .filter_map(|s| s.host_busy_cores)
        .collect();
    merged.environment.noise = noise::merge(&noise, &busy);
    Ok((merged, warnings))
}

/// Runs of one suite on several machines, side by side: every key and
/// variant gains `machine=<label>`, so each model has a row per machine.
pub fn merge_fleet(parts: Vec<(String, Results)>) -> Result<(Results, Vec<String>), MergeError> {
    let mut parts = parts;
    parts.sort_by(|a, b| (machine(&a.1), &a.0).cmp(&(machine(&b.1), &b.0)));
    let (first_name, first) = parts.first().ok_or(MergeError::Empty)?;
    for (name, doc) in &parts {
        same_run(first_name, first, name, doc)?;
    }
    let mut labels = BTreeSet::new();
    let mut warnings = Vec::new();
    let mut docs = Vec::new();
    let mut machines = Vec::new();
    for (name, mut doc) in parts {
        let label = machine(&doc);
        if !labels.insert(label.clone()) {
            warnings.push(format!(
                "{name} has the same machine label as another input (`{label}`); give each machine its own with `dyno run --machine NAME`"
            ));
        }
        on_machine(&mut doc, &label);
        machines.push((label, doc.environment.clone()));
        docs.push(doc);
    }
    let mut docs = docs.into_iter();
    let first = docs.next().ok_or(MergeError::Empty)?;
    let mut merged = combine(first, docs, true);
    let machines = machines
        .into_iter()
        .map(|(name, environment)| fleet_machine(&merged, &name, environment))
        .collect();
    merged.fleet = Some(Fleet { machines });
    Ok((merged, warnings))
}

/// `name`'s rows of the merged `doc` and its highlights among them.
fn fleet_machine(doc: &Results, name: &MachineLabel, environment: Environment) -> FleetMachine {
    let own: Vec<_> = doc
        .summaries
        .iter()
        .filter(|m| m.variant.as_ref().is_some_and(|v| v.is_on(name)))
        .cloned()
        .collect();
    let rows = own
        .iter()
        .map(|m| FleetRow {
            label: m.label.clone(),
            model: super::label(
                &m.model,
                m.variant
                    .as_ref()
                    .and_then(VariantLabel::without_machine)
                    .as_deref(),
            ),
        })
        .collect();
    FleetMachine {
        highlights: highlights(&own, &doc.samples),
        name: name.to_string(),
        environment,
        rows,
    }
}

/// The same suite, and whole (not interrupted).
fn same_run(
    first_name: &str,
    first: &Results,
    name: &str,
    doc: &Results,
) -> Result<(), MergeError> {
    if doc.partial.is_some() {
        return Err(MergeError::Partial(name.to_string()));
    }
    if doc.suite.hash != first.suite.hash {
        return Err(MergeError::OtherSuite {
            first: first_name.to_string(),
            other: name.to_string(),
            first_hash: first.suite.hash.clone(),
            other_hash: doc.suite.hash.clone(),
        });
    }
    Ok(())
}

/// A run's machine: its `--machine` label, else its CPU and cores.
pub fn machine(doc: &Results) -> MachineLabel {
    let env = &doc.environment;
    MachineLabel::of(env.machine.as_deref(), &env.cpu, env.cores)
}

/// `key` with `label` added to its bracket of axis values.
fn with_label(key: &str, label: &str) -> String {
    match key.strip_suffix(']') {
        Some(head) => format!("{head},{label}]"),
        None => format!("{key}[{label}]"),
    }
}

/// Marks every row of `doc` as measured on `machine`.
fn on_machine(doc: &mut Results, machine: &MachineLabel) {
    let label = machine.part();
    let variant = |v: &mut Option<VariantLabel>| {
        *v = Some(VariantLabel::on_machine(v.as_ref(), machine));
    };
    for s in &mut doc.samples {
        s.key = with_label(&s.key, &label);
        variant(&mut s.variant);
    }
    for run in &mut doc.models {
        variant(&mut run.variant);
    }
    for l in &mut doc.load {
        l.key = with_label(&l.key, &label);
    }
    for s in &mut doc.sweeps {
        s.key = with_label(&s.key, &label);
        for point in &mut s.points {
            *point = with_label(point, &label);
        }
    }
}

/// One document from `merged` and the `rest` (in order): samples in plan
/// order (shards), or renumbered in input order (`renumber`, a fleet);
/// records and load points concatenated; aggregates computed anew.
fn combine(mut merged: Results, rest: impl Iterator<Item = Results>, renumber: bool) -> Results {
    let energy: EnergySettings = merged
        .suite
        .resolved
        .get("energy")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    let mut samples: Vec<Sample> = std::mem::take(&mut merged.samples);
    let mut models: Vec<ModelRun> = std::mem::take(&mut merged.models);
    let mut load: Vec<LoadStats> = std::mem::take(&mut merged.load);
    let mut sweeps: Vec<SweepResult> = std::mem::take(&mut merged.sweeps);
    for doc in rest {
        if doc.started_at < merged.started_at {
            merged.started_at.clone_from(&doc.started_at);
        }
        samples.extend(doc.samples);
        models.extend(doc.models);
        load.extend(doc.load);
        sweeps.extend(doc.sweeps);
    }
    if renumber {
        for (i, s) in samples.iter_mut().enumerate() {
            s.index = i + 1;
        }
    } else {
        // Shards: plan positions are unique; their order is the run's.
        samples.sort_by_key(|s| s.index);
        let first_index = |run: &ModelRun| {
            samples
                .iter()
                .find(|s| s.model == run.id && s.variant == run.variant)
                .map_or(usize::MAX, |s| s.index)
        };
        models.sort_by_key(first_index);
    }
    let cells: Vec<CellStats> = aggregate(&samples);
    merged.summaries = summarize_models(&models, &samples, &energy);
    merged.highlights = highlights(&merged.summaries, &samples);
    merged.cells = cells;
    merged.models = models;
    merged.load = load;
    merged.sweeps = sweeps;
    merged.samples = samples;
    merged.shard = None;
    merged.fleet = None;
    merged
}
