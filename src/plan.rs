//! The execution plan: a pure, documented function from a `Suite` to the
//! ordered list of requests to send. Never touches the network or the disk.
//!
//! Blocks: every model in suite order; for each, every variant of its
//! managed server or Foundry device (each its own launch or load, last
//! variant fastest); for each, every combination of matrix axes (axes in the
//! order `stream`, `temperature`, `max_tokens`, values in suite order, the
//! last axis varying fastest). A block is warmup rounds before measured
//! rounds, each round every prompt in suite order.
//!
//! Order (`order:` or `--order`): `model_major` (the default) sends block
//! after block, so one model's server is up at a time; `interleaved` sends
//! round after round, each round visiting every block in turn, so drift
//! during the run (another job, heat, frequency) is shared by every model
//! instead of landing on one.

use std::fmt::Write as _;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::results::Round;
use crate::suite::workload::{Point, Sweep, Workload};
use crate::suite::{Axis, Device, Model, Order, Params, ServedBy, Server, Suite};

/// One request of the plan: a cell (model × prompt × axis values) at one round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// 1-based position in execution order.
    pub index: usize,
    /// Stable key of the cell, the same in every round: `model/prompt`
    /// plus `[variant,axis=value,...]` when there is a variant or an axis
    /// (`smollm2/rag[threads=2,stream=false]`).
    pub key: String,
    pub model: String,
    pub prompt: String,
    /// Matrix axis values of this cell, in axis order, as `name=value`,
    /// then a load cell's point (`concurrency=4`, `sweep`); the variant is
    /// not an axis: see `variant`.
    pub axes: Vec<String>,
    /// The variant this cell runs under; each distinct variant is its own
    /// launch.
    pub variant: Variant,
    pub round: Round,
    /// Effective parameters: the model's, with this cell's axis values.
    pub params: Params,
    /// Seed sent with the request, derived from the suite seed and `key`;
    /// every round of a cell sends the same seed, so rounds repeat the same work.
    pub seed: u32,
    /// A load point (or a sweep of them) instead of one request; its
    /// prompt is `*`, the prompt set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadTarget>,
}

/// What a load cell drives.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadTarget {
    Point(Point),
    Sweep(Sweep),
}

/// The prompt of a load cell: every prompt of the suite, drawn in turn.
pub const ALL_PROMPTS: &str = "*";

/// What a model runs under; each distinct variant is its own launch (a
/// server started with these values, a Foundry model loaded for this device).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Nothing to choose: one launch.
    #[default]
    Default,
    /// A value for each declared variant of a managed server, in name order.
    Server(Vec<Setting>),
    /// A Foundry Local device.
    Device(Device),
}

/// One server variant's value, `threads=2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

impl Cell {
    /// `stream=false,max_tokens=64`: the axis values as one label, `None`
    /// without axes. Summary rows are per model, variant and this label.
    pub fn axes_label(&self) -> Option<String> {
        (!self.axes.is_empty()).then(|| self.axes.join(","))
    }
}

impl Variant {
    /// Every variant of `model`: each combination of its server's variant
    /// values (the last fastest), or each of its Foundry devices; one
    /// [`Variant::Default`] when there is nothing to choose.
    pub fn of_model(suite: &Suite, model: &Model) -> Vec<Variant> {
        match &model.served_by {
            ServedBy::Server(name) => suite
                .servers
                .get(name)
                .map_or_else(|| vec![Variant::Default], Variant::of_server),
            ServedBy::Endpoint(_) if !model.devices.is_empty() => {
                model.devices.iter().cloned().map(Variant::Device).collect()
            }
            ServedBy::Endpoint(_) => vec![Variant::Default],
        }
    }

    /// How many variants [`Variant::of_model`] gives, without building
    /// them (saturating).
    pub fn count_of_model(suite: &Suite, model: &Model) -> u64 {
        match &model.served_by {
            ServedBy::Server(name) => suite.servers.get(name).map_or(1, Variant::count_of_server),
            ServedBy::Endpoint(_) => (model.devices.len() as u64).max(1),
        }
    }

    /// How many variants [`Variant::of_server`] gives (saturating).
    pub fn count_of_server(server: &Server) -> u64 {
        server
            .variants
            .iter()
            .fold(1u64, |n, (_, values)| n.saturating_mul(values.len() as u64))
    }

    /// Every combination of `server`'s variant values, the last variant
    /// fastest; one [`Variant::Default`] when it declares none.
    pub fn of_server(server: &Server) -> Vec<Variant> {
        if server.variants.is_empty() {
            return vec![Variant::Default];
        }
        let mut combos: Vec<Vec<Setting>> = vec![Vec::new()];
        for (name, values) in &server.variants {
            combos = combos
                .iter()
                .flat_map(|combo| {
                    values.iter().map(move |value| {
                        let mut next = combo.clone();
                        next.push(Setting {
                            name: name.clone(),
                            value: value.clone(),
                        });
                        next
                    })
                })
                .collect();
        }
        combos.into_iter().map(Variant::Server).collect()
    }

    /// `threads=2,gpu_layers=99` or `device=cpu`; `None` for the default.
    pub fn label(&self) -> Option<String> {
        match self {
            Variant::Default => None,
            Variant::Server(settings) => Some(
                settings
                    .iter()
                    .map(|s| format!("{}={}", s.name, s.value))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Variant::Device(device) => Some(format!("device={device}")),
        }
    }

    /// `text` with each `{name}` of a server variant replaced by its value.
    pub fn fill(&self, text: &str) -> String {
        match self {
            Variant::Server(settings) => settings.iter().fold(text.to_string(), |acc, s| {
                acc.replace(&format!("{{{}}}", s.name), &s.value)
            }),
            _ => text.to_string(),
        }
    }

    /// The Foundry device, for a device variant.
    pub fn device(&self) -> Option<&Device> {
        match self {
            Variant::Device(device) => Some(device),
            _ => None,
        }
    }
}

/// Which models and prompts to keep (globs on ids; empty keeps all), and
/// the order when it is not the suite's.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub models: Vec<String>,
    pub prompts: Vec<String>,
    pub order: Option<Order>,
    /// Where `models` and `prompts` came from, named in errors.
    pub models_from: Origin,
    pub prompts_from: Origin,
}

/// Where a filter's globs came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag (`--models`, `--prompts`).
    #[default]
    Flag,
    /// The environment (`DYNO_MODELS`, `DYNO_PROMPTS`), as no flag was given.
    Env,
}

/// The variable that selects models when `--models` is absent, like the
/// workshop's `BENCH_MODELS` (`qwen2.5-0.5b,phi-4-mini`).
pub const MODELS_ENV: &str = "DYNO_MODELS";
/// The variable that selects prompts when `--prompts` is absent.
pub const PROMPTS_ENV: &str = "DYNO_PROMPTS";

impl Filter {
    /// The filter of the command line: each `--models` / `--prompts` value
    /// may be a comma list (`--models qwen2.5-0.5b,phi-4-mini`), repeated
    /// or not; without the flag, [`MODELS_ENV`] / [`PROMPTS_ENV`] give the
    /// list; without either, everything is kept.
    pub fn from_args(
        models: &[String],
        prompts: &[String],
        order: Option<Order>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Filter {
        let (models, models_from) = globs(models, MODELS_ENV, env);
        let (prompts, prompts_from) = globs(prompts, PROMPTS_ENV, env);
        Filter {
            models,
            prompts,
            order,
            models_from,
            prompts_from,
        }
    }
}

/// The globs of a flag's values, else of the variable `var`.
fn globs(
    values: &[String],
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<String>, Origin) {
    if values.is_empty() {
        let listed = env(var).map_or_else(Vec::new, |v| split_list(&v));
        (listed, Origin::Env)
    } else {
        (
            values.iter().flat_map(|v| split_list(v)).collect(),
            Origin::Flag,
        )
    }
}

/// The items of a comma list, trimmed, empty ones dropped; a comma inside
/// a glob's `{a,b}` alternation does not split.
fn split_list(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
        .into_iter()
        .map(|item| item.trim().to_string())
        .filter(|item| !item.is_empty())
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("invalid glob `{pattern}` in {origin}: {reason}")]
    BadGlob {
        /// `--models`, or `DYNO_MODELS` when the environment gave the globs.
        origin: String,
        pattern: String,
        reason: String,
    },
    /// `selection` is `--models a,b` or `DYNO_MODELS=a,b`.
    #[error("{selection} matches none of: {available}")]
    NothingSelected {
        selection: String,
        available: String,
    },
    #[error(
        "the plan has {requests} requests; dyno plans at most {MAX_REQUESTS} (fewer rounds, prompts or matrix values, or --models/--prompts to run a part)"
    )]
    TooLarge { requests: u64 },
}

/// The most requests one plan may hold: a plan is built in memory, a few
/// hundred bytes a request, and at 10 ms a request this is more than a day.
pub const MAX_REQUESTS: u64 = 10_000_000;

/// One list of globs of a filter and where it came from.
struct Selector<'f> {
    flag: &'static str,
    var: &'static str,
    origin: Origin,
    patterns: &'f [String],
}

impl Selector<'_> {
    /// `--models` or `DYNO_MODELS`.
    fn origin(&self) -> String {
        match self.origin {
            Origin::Flag => format!("--{}", self.flag),
            Origin::Env => self.var.to_string(),
        }
    }

    fn glob_set(&self) -> Result<Option<GlobSet>, PlanError> {
        if self.patterns.is_empty() {
            return Ok(None);
        }
        let bad = |pattern: String, e: &globset::Error| PlanError::BadGlob {
            origin: self.origin(),
            pattern,
            reason: e.kind().to_string(),
        };
        let mut builder = GlobSetBuilder::new();
        for pattern in self.patterns {
            builder.add(Glob::new(pattern).map_err(|e| bad(pattern.clone(), &e))?);
        }
        builder
            .build()
            .map(Some)
            .map_err(|e| bad(self.patterns.join(","), &e))
    }

    /// Keeps the ids that the globs match; an error names the ids there were.
    fn select<'a>(
        &self,
        ids: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<Vec<&'a str>, PlanError> {
        let set = self.glob_set()?;
        let kept: Vec<&str> = ids
            .clone()
            .filter(|id| set.as_ref().is_none_or(|s| s.is_match(id)))
            .collect();
        if kept.is_empty() {
            let patterns = self.patterns.join(",");
            return Err(PlanError::NothingSelected {
                selection: match self.origin {
                    Origin::Flag => format!("--{} {patterns}", self.flag),
                    Origin::Env => format!("{}={patterns}", self.var),
                },
                available: ids.collect::<Vec<_>>().join(", "),
            });
        }
        Ok(kept)
    }
}

/// The ids of the models and prompts `filter` keeps, in suite order.
fn selection<'a>(
    suite: &'a Suite,
    filter: &Filter,
) -> Result<(Vec<&'a str>, Vec<&'a str>), PlanError> {
    let models = Selector {
        flag: "models",
        var: MODELS_ENV,
        origin: filter.models_from,
        patterns: &filter.models,
    }
    .select(suite.models.iter().map(|m| m.id.as_str()))?;
    let prompts = Selector {
        flag: "prompts",
        var: PROMPTS_ENV,
        origin: filter.prompts_from,
        patterns: &filter.prompts,
    }
    .select(suite.prompts.iter().map(|p| p.id.as_str()))?;
    Ok((models, prompts))
}

/// How many cells [`plan`] would hold, without building it (saturating at
/// `u64::MAX`): per selected model, its variants × matrix combinations ×
/// (warmup + measured rounds) × selected prompts, or, for a model under
/// load, × (its load points, and the sweep).
pub fn count(suite: &Suite, filter: &Filter) -> Result<u64, PlanError> {
    let (models, prompts) = selection(suite, filter)?;
    let combos = suite
        .matrix
        .iter()
        .map(|axis| match axis {
            Axis::Stream(v) => v.len(),
            Axis::Temperature(v) => v.len(),
            Axis::MaxTokens(v) => v.len(),
        })
        .fold(1u64, |n, len| n.saturating_mul(len as u64));
    let per_round = combos.saturating_mul(prompts.len() as u64);
    Ok(suite
        .models
        .iter()
        .filter(|m| models.contains(&m.id.as_str()))
        .map(|model| {
            // Under load: one cell per load point, and one for the sweep.
            let per_variant = if let Some(workload) = &model.load {
                let targets = workload.points.len() as u64 + u64::from(workload.sweep.is_some());
                combos.saturating_mul(targets)
            } else {
                let rounds = u64::from(model.params.warmup) + u64::from(model.params.rounds);
                per_round.saturating_mul(rounds)
            };
            Variant::count_of_model(suite, model).saturating_mul(per_variant)
        })
        .fold(0u64, u64::saturating_add))
}

/// The cells of `suite` in execution order; a plan of more than
/// [`MAX_REQUESTS`] is refused before anything is built.
pub fn plan(suite: &Suite, filter: &Filter) -> Result<Vec<Cell>, PlanError> {
    let requests = count(suite, filter)?;
    if requests > MAX_REQUESTS {
        return Err(PlanError::TooLarge { requests });
    }
    let (models, prompts) = selection(suite, filter)?;
    let combos = axis_combinations(&suite.matrix);
    // One block per model × variant × axis values: its cells, round by round.
    let mut blocks: Vec<Vec<(Round, Vec<Cell>)>> = Vec::new();
    for model in suite
        .models
        .iter()
        .filter(|m| models.contains(&m.id.as_str()))
    {
        let variants = Variant::of_model(suite, model);
        for (variant, combo) in variants
            .iter()
            .flat_map(|v| combos.iter().map(move |c| (v, c)))
        {
            let mut params = model.params;
            let axes: Vec<String> = combo
                .iter()
                .map(|setting| setting.apply(&mut params))
                .collect();
            let labels: Vec<String> = variant.label().into_iter().chain(axes.clone()).collect();
            if let Some(workload) = &model.load {
                blocks.push(load_block(model, variant, workload, &axes, &labels, params));
                continue;
            }
            let rounds = (1..=params.warmup)
                .map(Round::Warmup)
                .chain((1..=params.rounds).map(Round::Measured));
            let block = rounds
                .map(|round| {
                    let cells = prompts
                        .iter()
                        .map(|prompt| {
                            let key = cell_key(&model.id, prompt, &labels);
                            Cell {
                                index: 0,
                                seed: derive_seed(params.seed, &key),
                                key,
                                model: model.id.clone(),
                                prompt: (*prompt).to_string(),
                                axes: axes.clone(),
                                variant: variant.clone(),
                                round,
                                params,
                                load: None,
                            }
                        })
                        .collect();
                    (round, cells)
                })
                .collect();
            blocks.push(block);
        }
    }
    let mut cells: Vec<Cell> = match filter.order.unwrap_or(suite.order) {
        Order::ModelMajor => blocks
            .into_iter()
            .flat_map(|block| block.into_iter().flat_map(|(_, cells)| cells))
            .collect(),
        Order::Interleaved => interleave(blocks),
    };
    for (i, cell) in cells.iter_mut().enumerate() {
        cell.index = i + 1;
    }
    Ok(cells)
}

/// A model's load cells: every point, then the sweep, each one cell of
/// the prompt set `*` whose key carries the point.
fn load_block(
    model: &Model,
    variant: &Variant,
    workload: &Workload,
    axes: &[String],
    labels: &[String],
    params: Params,
) -> Vec<(Round, Vec<Cell>)> {
    let targets = workload
        .points
        .iter()
        .map(|p| (p.drive.label(), LoadTarget::Point(p.clone())))
        .chain(
            workload
                .sweep
                .map(|s| ("sweep".to_string(), LoadTarget::Sweep(s))),
        );
    let cells = targets
        .map(|(label, target)| {
            let mut labels = labels.to_vec();
            labels.push(label.clone());
            let mut axes = axes.to_vec();
            axes.push(label);
            let key = cell_key(&model.id, ALL_PROMPTS, &labels);
            Cell {
                index: 0,
                seed: derive_seed(params.seed, &key),
                key,
                model: model.id.clone(),
                prompt: ALL_PROMPTS.to_string(),
                axes,
                variant: variant.clone(),
                round: Round::Measured(1),
                params,
                load: Some(target),
            }
        })
        .collect();
    vec![(Round::Measured(1), cells)]
}

/// Round by round (every warmup round first, then every measured round),
/// each round visiting the blocks in order; a block without that round is
/// passed over.
fn interleave(blocks: Vec<Vec<(Round, Vec<Cell>)>>) -> Vec<Cell> {
    let mut rounds: Vec<Round> = blocks
        .iter()
        .flat_map(|block| block.iter().map(|(round, _)| *round))
        .collect();
    rounds.sort_by_key(|round| match round {
        Round::Warmup(n) => (0, *n),
        Round::Measured(n) => (1, *n),
    });
    rounds.dedup();
    let mut blocks: Vec<std::collections::VecDeque<(Round, Vec<Cell>)>> =
        blocks.into_iter().map(Into::into).collect();
    let mut cells = Vec::new();
    for round in rounds {
        for block in &mut blocks {
            if block.front().is_some_and(|(r, _)| *r == round)
                && let Some((_, round_cells)) = block.pop_front()
            {
                cells.extend(round_cells);
            }
        }
    }
    cells
}

fn cell_key(model: &str, prompt: &str, labels: &[String]) -> String {
    if labels.is_empty() {
        format!("{model}/{prompt}")
    } else {
        format!("{model}/{prompt}[{}]", labels.join(","))
    }
}

/// One axis value.
#[derive(Debug, Clone, Copy)]
enum AxisValue {
    Stream(bool),
    Temperature(f64),
    MaxTokens(u32),
}

impl AxisValue {
    /// Applies the value and returns its label (`stream=true`).
    fn apply(self, params: &mut Params) -> String {
        match self {
            AxisValue::Stream(v) => {
                params.stream = v;
                format!("stream={v}")
            }
            AxisValue::Temperature(v) => {
                params.temperature = v;
                format!("temperature={v}")
            }
            AxisValue::MaxTokens(v) => {
                params.max_tokens = v;
                format!("max_tokens={v}")
            }
        }
    }
}

/// The cartesian product of the axes, last axis fastest; one empty
/// combination when there are no axes.
fn axis_combinations(axes: &[Axis]) -> Vec<Vec<AxisValue>> {
    let mut combos: Vec<Vec<AxisValue>> = vec![Vec::new()];
    for axis in axes {
        let values: Vec<AxisValue> = match axis {
            Axis::Stream(v) => v.iter().copied().map(AxisValue::Stream).collect(),
            Axis::Temperature(v) => v.iter().copied().map(AxisValue::Temperature).collect(),
            Axis::MaxTokens(v) => v.iter().copied().map(AxisValue::MaxTokens).collect(),
        };
        combos = combos
            .iter()
            .flat_map(|combo| {
                values.iter().map(move |v| {
                    let mut next = combo.clone();
                    next.push(*v);
                    next
                })
            })
            .collect();
    }
    combos
}

/// One of `count` parts of a plan (`--shard 2/3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// 1-based.
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for ShardSpec {
    type Err = String;
    fn from_str(text: &str) -> Result<ShardSpec, String> {
        let bad = || format!("`{text}` is not a shard: give I/N with 1 ≤ I ≤ N, e.g. 2/3");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(ShardSpec { index, count })
    }
}

/// Cuts a plan into `spec.count` parts along launches (a model in one
/// variant: its server starts once per shard and its rounds stay
/// together), balancing the requests: the largest launch first, each to
/// the part with the fewest so far (the lowest part on a tie). Returns the
/// cells of part `spec.index`, with their plan positions, and the cell keys
/// of every part. Pure: the same plan always cuts the same way.
pub fn shard(cells: &[Cell], spec: ShardSpec) -> (Vec<Cell>, Vec<Vec<String>>) {
    let mut units: Vec<((&str, &Variant), Vec<&Cell>)> = Vec::new();
    for cell in cells {
        let unit = (cell.model.as_str(), &cell.variant);
        match units.iter_mut().find(|(u, _)| *u == unit) {
            Some((_, members)) => members.push(cell),
            None => units.push((unit, vec![cell])),
        }
    }
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by_key(|&u| std::cmp::Reverse(units[u].1.len()));
    let mut load = vec![0usize; spec.count.max(1)];
    let mut part_of = vec![0usize; units.len()];
    for u in order {
        let lightest = (0..load.len()).min_by_key(|&p| (load[p], p)).unwrap_or(0);
        load[lightest] += units[u].1.len();
        part_of[u] = lightest;
    }
    let mut keys: Vec<Vec<String>> = vec![Vec::new(); load.len()];
    let mut seen = std::collections::HashSet::new();
    let mut mine = Vec::new();
    for cell in cells {
        let unit = (cell.model.as_str(), &cell.variant);
        let Some(u) = units.iter().position(|(x, _)| *x == unit) else {
            continue;
        };
        let part = part_of[u];
        if seen.insert(cell.key.as_str()) {
            keys[part].push(cell.key.clone());
        }
        if part + 1 == spec.index {
            mine.push(cell.clone());
        }
    }
    (mine, keys)
}

/// SHA-256 over the cells (position, key, round, seed and parameters), so
/// results and journals can say which plan they followed.
pub fn hash(cells: &[Cell]) -> String {
    let mut digest = Sha256::new();
    for cell in cells {
        // Serializing plain data cannot fail.
        let line = serde_json::to_string(cell).unwrap_or_default();
        digest.update(line.as_bytes());
        digest.update(b"\n");
    }
    crate::text::hex(&digest.finalize())
}

/// A seed in `0..2^31` from the suite seed and the cell key (SHA-256), so it
/// fits every server's integer seed and never depends on the clock.
pub fn derive_seed(suite_seed: u32, key: &str) -> u32 {
    let digest = Sha256::new()
        .chain_update(suite_seed.to_le_bytes())
        .chain_update(key.as_bytes())
        .finalize();
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff
}

/// The plan as an aligned text table, one line per cell.
pub fn render_text(cells: &[Cell]) -> String {
    let width = |f: &dyn Fn(&Cell) -> usize| cells.iter().map(f).max().unwrap_or(0);
    let w_index = width(&|c| c.index.to_string().len()).max(1);
    let w_key = width(&|c| c.key.len()).max(4);
    let w_round = width(&|c| c.round.to_string().len()).max(5);
    let mut out = format!(
        "{:>w_index$}  {:<w_key$}  {:<w_round$}  seed\n",
        "#", "cell", "round"
    );
    for c in cells {
        let _ = writeln!(
            out,
            "{:>w_index$}  {:<w_key$}  {:<w_round$}  {}",
            c.index,
            c.key,
            c.round.to_string(),
            c.seed
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite() -> (Suite, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(
            &file,
            "name: s\nservers:\n  srv: { command: [x, \"{port}\", \"{threads}\"], variants: { threads: [1, 2, 4] } }\nendpoints:\n  e: { base_url: http://127.0.0.1:9 }\nmodels:\n  - { id: a, server: srv }\n  - { id: b, endpoint: e }\n  - { id: c, endpoint: e, params: { rounds: 9 } }\nprompts:\n  - { id: p, text: one }\n  - { id: q, text: two }\ndefaults: { rounds: 3, warmup: 1 }\n",
        )
        .unwrap();
        (crate::suite::load(&file, &|_| None).unwrap(), dir)
    }

    #[test]
    fn shards_cover_the_plan_once_along_launches_and_balance_it() {
        let (suite, _dir) = suite();
        let cells = plan(&suite, &Filter::default()).unwrap();
        let mut seen: Vec<usize> = Vec::new();
        let mut sizes = Vec::new();
        for index in 1..=3 {
            let (part, keys) = shard(&cells, ShardSpec { index, count: 3 });
            assert_eq!(keys.len(), 3);
            // Every launch (model × variant) lies in one part.
            for cell in &part {
                assert!(keys[index - 1].contains(&cell.key), "{cell:?}");
            }
            sizes.push(part.len());
            seen.extend(part.iter().map(|c| c.index));
            assert_eq!(part, shard(&cells, ShardSpec { index, count: 3 }).0, "pure");
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=cells.len()).collect::<Vec<_>>());
        // Launches of 8, 8, 8, 8 and 20 cells into three parts: 16, 16, 20.
        sizes.sort_unstable();
        assert_eq!(sizes, [16, 16, 20], "{sizes:?}");
        assert_eq!(
            "2/3".parse::<ShardSpec>(),
            Ok(ShardSpec { index: 2, count: 3 })
        );
        assert!("0/3".parse::<ShardSpec>().is_err() && "4/3".parse::<ShardSpec>().is_err());
    }
}
