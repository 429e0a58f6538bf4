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
//!
//! Size: a plan is held whole (the order, shards, the plan hash and
//! `--resume` read all of it), so its requests and memory are estimated
//! first ([`footprint`]) and a plan past [`MAX_REQUESTS`] or
//! [`MAX_PLAN_BYTES`] is refused before a cell is made.

use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::results::Round;
use crate::results::VariantLabel;
use crate::suite::workload::{Point, Sweep, Workload};
use crate::suite::{Axis, Device, Model, Order, Params, ServedBy, Server, Suite};

/// One request of the plan: a cell (model × prompt × axis values) at one
/// round. A plan may hold millions, so a cell is lean: what every cell of
/// its block shares (model, axis values, variant, parameters, load target)
/// sits once behind an `Arc`, and its key and prompt are shared strings,
/// the same in every round. It is written (JSON, the plan hash) with every
/// field inline.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// 1-based position in execution order.
    pub index: usize,
    /// Stable key of the cell, the same in every round: `model/prompt`
    /// plus `[variant,axis=value,...]` when there is a variant or an axis
    /// (`smollm2/rag[threads=2,stream=false]`).
    pub key: Arc<str>,
    pub prompt: Arc<str>,
    pub round: Round,
    /// Seed sent with the request, derived from the suite seed and `key`;
    /// every round of a cell sends the same seed, so rounds repeat the same work.
    pub seed: u32,
    block: Arc<Block>,
}

/// What the cells of one block share: a model in one variant with one
/// combination of axis values (for a load cell, also its target).
#[derive(Debug, PartialEq)]
struct Block {
    model: Arc<str>,
    axes: Vec<String>,
    variant: Variant,
    params: Params,
    load: Option<LoadTarget>,
}

impl Serialize for Cell {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// A cell as it is written, its block's fields inline.
        #[derive(Serialize)]
        struct Written<'a> {
            index: usize,
            key: &'a str,
            model: &'a str,
            prompt: &'a str,
            axes: &'a [String],
            variant: &'a Variant,
            round: Round,
            params: &'a Params,
            seed: u32,
            #[serde(skip_serializing_if = "Option::is_none")]
            load: Option<&'a LoadTarget>,
        }
        let block = &*self.block;
        Written {
            index: self.index,
            key: &self.key,
            model: &block.model,
            prompt: &self.prompt,
            axes: &block.axes,
            variant: &block.variant,
            round: self.round,
            params: &block.params,
            seed: self.seed,
            load: block.load.as_ref(),
        }
        .serialize(serializer)
    }
}

/// What a load cell drives.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadTarget {
    Point(Point),
    Sweep(Sweep),
}

/// The prompt of a load cell: every prompt of the suite, drawn in turn.
pub(crate) const ALL_PROMPTS: &str = "*";

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
    pub fn model(&self) -> &str {
        &self.block.model
    }

    /// Matrix axis values of this cell, in axis order, as `name=value`,
    /// then a load cell's point (`concurrency=4`, `sweep`); the variant is
    /// not an axis: see [`Cell::variant`].
    pub fn axes(&self) -> &[String] {
        &self.block.axes
    }

    /// The variant this cell runs under; each distinct variant is its own
    /// launch.
    pub fn variant(&self) -> &Variant {
        &self.block.variant
    }

    /// Effective parameters: the model's, with this cell's axis values.
    pub fn params(&self) -> &Params {
        &self.block.params
    }

    /// A load point (or a sweep of them) instead of one request; its
    /// prompt is `*`, the prompt set.
    pub fn load(&self) -> Option<&LoadTarget> {
        self.block.load.as_ref()
    }

    /// `stream=false,max_tokens=64`: the axis values as one label, `None`
    /// without axes. Summary rows are per model, variant and this label.
    pub(crate) fn axes_label(&self) -> Option<String> {
        let axes = self.axes();
        (!axes.is_empty()).then(|| axes.join(","))
    }
}

impl Variant {
    /// Every variant of `model`: each combination of its server's variant
    /// values (the last fastest), or each of its Foundry devices; one
    /// [`Variant::Default`] when there is nothing to choose.
    pub(crate) fn of_model(suite: &Suite, model: &Model) -> Vec<Variant> {
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
    pub(crate) fn count_of_model(suite: &Suite, model: &Model) -> u64 {
        match &model.served_by {
            ServedBy::Server(name) => suite.servers.get(name).map_or(1, Variant::count_of_server),
            ServedBy::Endpoint(_) => (model.devices.len() as u64).max(1),
        }
    }

    /// How many variants [`Variant::of_server`] gives (saturating).
    pub(crate) fn count_of_server(server: &Server) -> u64 {
        server
            .variants
            .iter()
            .fold(1u64, |n, (_, values)| n.saturating_mul(values.len() as u64))
    }

    /// Every combination of `server`'s variant values, the last variant
    /// fastest; one [`Variant::Default`] when it declares none.
    pub(crate) fn of_server(server: &Server) -> Vec<Variant> {
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
    pub fn label(&self) -> Option<VariantLabel> {
        match self {
            Variant::Default => None,
            Variant::Server(settings) => {
                VariantLabel::of(settings.iter().map(|s| (s.name.as_str(), s.value.as_str())))
            }
            Variant::Device(device) => VariantLabel::of([("device", device.to_string().as_str())]),
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
pub(crate) const MODELS_ENV: &str = "DYNO_MODELS";
/// The variable that selects prompts when `--prompts` is absent.
pub(crate) const PROMPTS_ENV: &str = "DYNO_PROMPTS";

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
    #[error(
        "the plan of {requests} requests would take about {} MiB of memory; dyno plans at most {} MiB (fewer matrix values, prompts or variants, shorter ids, or --models/--prompts to run a part)",
        .bytes.div_ceil(MIB),
        MAX_PLAN_BYTES / MIB
    )]
    TooMuchMemory { requests: u64, bytes: u64 },
}

/// The most requests one plan may hold: at 10 ms a request this is more
/// than a day.
pub const MAX_REQUESTS: u64 = 10_000_000;

/// The most memory one plan may take, as [`Footprint`] estimates it. A run
/// holds its plan whole (the executor, the interleaved order, shards, the
/// plan hash and `--resume` read all of it), so this leaves room for the
/// rest of `dyno run` within a 2 GiB address space.
pub const MAX_PLAN_BYTES: u64 = 1024 * MIB;

const MIB: u64 = 1024 * 1024;

/// A plan's size, known before it is built: its requests, and the bytes
/// its cells take in memory, estimated from above (every key as long as
/// the longest, every block's labels as long as the longest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub requests: u64,
    pub bytes: u64,
}

impl Footprint {
    /// The footprint, or why dyno refuses to build such a plan.
    pub fn check(self) -> Result<Footprint, PlanError> {
        if self.requests > MAX_REQUESTS {
            return Err(PlanError::TooLarge {
                requests: self.requests,
            });
        }
        if self.bytes > MAX_PLAN_BYTES {
            return Err(PlanError::TooMuchMemory {
                requests: self.requests,
                bytes: self.bytes,
            });
        }
        Ok(self)
    }
}

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
    Ok(footprint(suite, filter)?.requests)
}

/// Bytes an `Arc` keeps before its value (its two counts).
const ARC_COUNTS: u64 = 16;

/// The most the allocator adds to one allocation: its header, and its size
/// rounded up to 16 bytes.
const ALLOC_OVERHEAD: u64 = 24;

/// The plan's requests and memory, without building it; the bytes count
/// the cells, one stencil cell and one shared key per distinct key, the
/// blocks with their labels, and the matrix's combinations.
pub fn footprint(suite: &Suite, filter: &Filter) -> Result<Footprint, PlanError> {
    let (models, prompts) = selection(suite, filter)?;
    let matrix = Matrix::of(&suite.matrix);
    let longest_prompt = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    let combos_bytes = matrix.combos.saturating_mul(
        size_of::<Vec<AxisValue>>() as u64 + matrix.axes * size_of::<AxisValue>() as u64,
    );
    let mut total = Footprint {
        requests: 0,
        bytes: combos_bytes,
    };
    for model in suite
        .models
        .iter()
        .filter(|m| models.contains(&m.id.as_str()))
    {
        let load = model.load.as_ref().map(|workload| {
            let labels = workload.points.iter().map(|p| p.drive.label().len());
            let sweep = workload.sweep.map(|_| "sweep".len());
            (labels.chain(sweep).collect::<Vec<_>>(), ALL_PROMPTS.len())
        });
        let shape = Shape {
            targets: load.as_ref().map_or(prompts.len(), |(t, _)| t.len()) as u64,
            rounds: if load.is_some() {
                1
            } else {
                u64::from(model.params.warmup) + u64::from(model.params.rounds)
            },
            prompt_len: load.as_ref().map_or(longest_prompt, |(_, len)| *len),
            target_label: load
                .as_ref()
                .map(|(t, _)| t.iter().copied().max().unwrap_or(0)),
        };
        let size = shape.footprint(suite, model, &matrix);
        total.requests = total.requests.saturating_add(size.requests);
        total.bytes = total.bytes.saturating_add(size.bytes);
    }
    Ok(total)
}

/// The matrix's size: its combinations, its axes, and the longest label of
/// each axis, summed.
struct Matrix {
    combos: u64,
    axes: u64,
    label_bytes: u64,
}

impl Matrix {
    fn of(axes: &[Axis]) -> Matrix {
        let values: Vec<Vec<AxisValue>> = axes.iter().map(axis_values).collect();
        Matrix {
            combos: values
                .iter()
                .fold(1u64, |n, v| n.saturating_mul(v.len() as u64)),
            axes: values.len() as u64,
            label_bytes: values
                .iter()
                .map(|v| v.iter().map(|x| x.label().len()).max().unwrap_or(0) as u64)
                .sum(),
        }
    }
}

/// What one model's blocks look like: cells per round (prompts, or load
/// targets: one block each), rounds, and the longest of what makes a key.
struct Shape {
    targets: u64,
    rounds: u64,
    prompt_len: usize,
    /// The longest load target label, for a model under load.
    target_label: Option<usize>,
}

impl Shape {
    fn footprint(&self, suite: &Suite, model: &Model, matrix: &Matrix) -> Footprint {
        let variants = Variant::count_of_model(suite, model);
        let variant_label = Variant::of_model(suite, model)
            .iter()
            .filter_map(Variant::label)
            .map(|l| l.len() as u64)
            .max();
        let settings = match &model.served_by {
            ServedBy::Server(name) => suite.servers.get(name).map_or(0, |s| s.variants.len()),
            ServedBy::Endpoint(_) => 0,
        } as u64;
        let target_label = self.target_label.map(|l| l as u64);
        let labels =
            u64::from(variant_label.is_some()) + matrix.axes + u64::from(target_label.is_some());
        let label_bytes =
            variant_label.unwrap_or(0) + matrix.label_bytes + target_label.unwrap_or(0);
        let key_len = (model.id.len() + 1 + self.prompt_len) as u64
            + if labels > 0 {
                2 + label_bytes + labels - 1
            } else {
                0
            };
        let keys = variants
            .saturating_mul(matrix.combos)
            .saturating_mul(self.targets);
        let blocks = if target_label.is_some() {
            keys
        } else {
            variants.saturating_mul(matrix.combos)
        };
        let cell = size_of::<Cell>() as u64;
        let strings = matrix.axes + u64::from(target_label.is_some());
        // The block, its stencil and axes lists, its labels, its settings.
        let allocations = 3 + strings + if settings > 0 { 1 + 2 * settings } else { 0 };
        let block = ARC_COUNTS
            + size_of::<Block>() as u64
            + strings * size_of::<String>() as u64
            + settings * size_of::<Setting>() as u64
            + label_bytes
            + allocations * ALLOC_OVERHEAD;
        let requests = keys.saturating_mul(self.rounds);
        let bytes = requests
            .saturating_mul(cell)
            .saturating_add(keys.saturating_mul(cell + ARC_COUNTS + ALLOC_OVERHEAD + key_len))
            .saturating_add(blocks.saturating_mul(block));
        Footprint { requests, bytes }
    }
}

/// The cells of `suite` in execution order; a plan of more than
/// [`MAX_REQUESTS`], or estimated to take more than [`MAX_PLAN_BYTES`], is
/// refused before anything is built. Cells are made in their order, into a
/// list of the plan's exact length, with nothing built twice.
pub fn plan(suite: &Suite, filter: &Filter) -> Result<Vec<Cell>, PlanError> {
    let size = footprint(suite, filter)?.check()?;
    let (models, prompts) = selection(suite, filter)?;
    let prompts: Vec<Arc<str>> = prompts.into_iter().map(Arc::from).collect();
    let combos = axis_combinations(&suite.matrix);
    // One stencil per model × variant × axis values (per load target under load).
    let mut stencils: Vec<Stencil> = Vec::new();
    for model in suite
        .models
        .iter()
        .filter(|m| models.contains(&m.id.as_str()))
    {
        let id: Arc<str> = Arc::from(model.id.as_str());
        for variant in Variant::of_model(suite, model) {
            for combo in &combos {
                let mut params = model.params;
                let axes: Vec<String> = combo.iter().map(|v| v.apply(&mut params)).collect();
                let labels: Vec<String> = variant
                    .label()
                    .map(|v| v.to_string())
                    .into_iter()
                    .chain(axes.iter().cloned())
                    .collect();
                if let Some(workload) = &model.load {
                    stencils.extend(load_stencils(
                        &id, &variant, workload, &axes, &labels, params,
                    ));
                    continue;
                }
                let block = Arc::new(Block {
                    model: Arc::clone(&id),
                    axes,
                    variant: variant.clone(),
                    params,
                    load: None,
                });
                stencils.push(Stencil {
                    warmup: params.warmup,
                    measured: params.rounds,
                    cells: prompts
                        .iter()
                        .map(|prompt| stencil_cell(&block, prompt, &labels))
                        .collect(),
                });
            }
        }
    }
    let mut cells = Vec::with_capacity(usize::try_from(size.requests).unwrap_or(0));
    match filter.order.unwrap_or(suite.order) {
        Order::ModelMajor => {
            for stencil in &stencils {
                for round in stencil.rounds() {
                    stencil.lay(round, &mut cells);
                }
            }
        }
        Order::Interleaved => {
            // Round by round (every warmup round first), each visiting the
            // blocks in order; a block without that round is passed over.
            let warmup = stencils.iter().map(|s| s.warmup).max().unwrap_or(0);
            let measured = stencils.iter().map(|s| s.measured).max().unwrap_or(0);
            for round in rounds(warmup, measured) {
                for stencil in stencils.iter().filter(|s| s.has(round)) {
                    stencil.lay(round, &mut cells);
                }
            }
        }
    }
    Ok(cells)
}

/// A block's cells of one round, before each gets its round and its
/// position: one per prompt, or a load target's one cell.
struct Stencil {
    warmup: u32,
    measured: u32,
    cells: Vec<Cell>,
}

impl Stencil {
    fn rounds(&self) -> impl Iterator<Item = Round> {
        rounds(self.warmup, self.measured)
    }

    fn has(&self, round: Round) -> bool {
        match round {
            Round::Warmup(n) => n <= self.warmup,
            Round::Measured(n) => n <= self.measured,
        }
    }

    /// Appends the block's cells of `round`, numbered after `cells`.
    fn lay(&self, round: Round, cells: &mut Vec<Cell>) {
        let start = cells.len();
        cells.extend(self.cells.iter().enumerate().map(|(i, cell)| Cell {
            index: start + i + 1,
            round,
            ..cell.clone()
        }));
    }
}

/// Warmup rounds `1..=warmup`, then measured rounds `1..=measured`.
fn rounds(warmup: u32, measured: u32) -> impl Iterator<Item = Round> {
    (1..=warmup)
        .map(Round::Warmup)
        .chain((1..=measured).map(Round::Measured))
}

/// The cell of `prompt` in `block`, not yet placed.
fn stencil_cell(block: &Arc<Block>, prompt: &Arc<str>, labels: &[String]) -> Cell {
    let key: Arc<str> = Arc::from(cell_key(&block.model, prompt, labels));
    Cell {
        index: 0,
        seed: derive_seed(block.params.seed, &key),
        key,
        prompt: Arc::clone(prompt),
        round: Round::Measured(1),
        block: Arc::clone(block),
    }
}

/// A model's load cells: every point, then the sweep, each one cell of
/// the prompt set `*` whose key carries the point, in one measured round.
fn load_stencils(
    model: &Arc<str>,
    variant: &Variant,
    workload: &Workload,
    axes: &[String],
    labels: &[String],
    params: Params,
) -> Vec<Stencil> {
    let all: Arc<str> = Arc::from(ALL_PROMPTS);
    let targets = workload
        .points
        .iter()
        .map(|p| (p.drive.label(), LoadTarget::Point(p.clone())))
        .chain(
            workload
                .sweep
                .map(|s| ("sweep".to_string(), LoadTarget::Sweep(s))),
        );
    targets
        .map(|(label, target)| {
            let mut labels = labels.to_vec();
            labels.push(label.clone());
            let mut axes = axes.to_vec();
            axes.push(label);
            let block = Arc::new(Block {
                model: Arc::clone(model),
                axes,
                variant: variant.clone(),
                params,
                load: Some(target),
            });
            Stencil {
                warmup: 0,
                measured: 1,
                cells: vec![stencil_cell(&block, &all, &labels)],
            }
        })
        .collect()
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
    ReasoningEffort(crate::suite::ReasoningEffort),
    ResponseFormat(crate::suite::FormatChoice),
    ContextTokens(u32),
    Cache(bool),
}

impl AxisValue {
    /// `stream=true`.
    fn label(self) -> String {
        match self {
            AxisValue::Stream(v) => format!("stream={v}"),
            AxisValue::Temperature(v) => format!("temperature={v}"),
            AxisValue::MaxTokens(v) => format!("max_tokens={v}"),
            AxisValue::ReasoningEffort(v) => format!("reasoning_effort={}", v.name()),
            AxisValue::ResponseFormat(v) => format!(
                "response_format={}",
                match v {
                    crate::suite::FormatChoice::None => "none",
                    crate::suite::FormatChoice::JsonSchema => "json_schema",
                }
            ),
            AxisValue::ContextTokens(v) => format!("context_tokens={v}"),
            AxisValue::Cache(v) => format!("cache={v}"),
        }
    }

    /// Applies the value and returns its label.
    fn apply(self, params: &mut Params) -> String {
        match self {
            AxisValue::Stream(v) => params.stream = v,
            AxisValue::Temperature(v) => params.temperature = v,
            AxisValue::MaxTokens(v) => params.max_tokens = v,
            AxisValue::ReasoningEffort(v) => params.reasoning_effort = Some(v),
            AxisValue::ResponseFormat(v) => params.response_format = Some(v),
            AxisValue::ContextTokens(v) => params.context_tokens = v,
            AxisValue::Cache(v) => params.cache = v,
        }
        self.label()
    }
}

/// The values of one axis, in suite order.
fn axis_values(axis: &Axis) -> Vec<AxisValue> {
    match axis {
        Axis::Stream(v) => v.iter().copied().map(AxisValue::Stream).collect(),
        Axis::Temperature(v) => v.iter().copied().map(AxisValue::Temperature).collect(),
        Axis::MaxTokens(v) => v.iter().copied().map(AxisValue::MaxTokens).collect(),
        Axis::ReasoningEffort(v) => v.iter().copied().map(AxisValue::ReasoningEffort).collect(),
        Axis::ResponseFormat(v) => v.iter().copied().map(AxisValue::ResponseFormat).collect(),
        Axis::ContextTokens(v) => v.iter().copied().map(AxisValue::ContextTokens).collect(),
        Axis::Cache(v) => v.iter().copied().map(AxisValue::Cache).collect(),
    }
}

/// The cartesian product of the axes, last axis fastest; one empty
/// combination when there are no axes.
fn axis_combinations(axes: &[Axis]) -> Vec<Vec<AxisValue>> {
    let mut combos: Vec<Vec<AxisValue>> = vec![Vec::new()];
    for axis in axes {
        let values = axis_values(axis);
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
/// of every part. Pure: the same plan always cuts the same way. The part
/// is what is left of `cells`, so a large plan is never held twice.
pub fn shard(mut cells: Vec<Cell>, spec: ShardSpec) -> (Vec<Cell>, Vec<Vec<String>>) {
    let mut units: Vec<(Arc<Block>, usize)> = Vec::new();
    let unit_of = |units: &[(Arc<Block>, usize)], cell: &Cell| {
        units
            .iter()
            .position(|(u, _)| u.model == cell.block.model && u.variant == cell.block.variant)
    };
    for cell in &cells {
        match unit_of(&units, cell) {
            Some(u) => units[u].1 += 1,
            None => units.push((Arc::clone(&cell.block), 1)),
        }
    }
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by_key(|&u| std::cmp::Reverse(units[u].1));
    let mut load = vec![0usize; spec.count.max(1)];
    let mut part_of = vec![0usize; units.len()];
    for u in order {
        let lightest = (0..load.len()).min_by_key(|&p| (load[p], p)).unwrap_or(0);
        load[lightest] += units[u].1;
        part_of[u] = lightest;
    }
    let part = |cell: &Cell| unit_of(&units, cell).map(|u| part_of[u]);
    let mut keys: Vec<Vec<String>> = vec![Vec::new(); load.len()];
    let mut seen = std::collections::HashSet::new();
    for cell in &cells {
        if let Some(p) = part(cell)
            && seen.insert(Arc::clone(&cell.key))
        {
            keys[p].push(cell.key.to_string());
        }
    }
    cells.retain(|cell| part(cell).is_some_and(|p| p + 1 == spec.index));
    (cells, keys)
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

/// The plan as an aligned text table, one line per cell, written to `out`
/// as it goes.
pub(crate) fn write_text(cells: &[Cell], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let width = |f: &dyn Fn(&Cell) -> usize| cells.iter().map(f).max().unwrap_or(0);
    let w_index = width(&|c| c.index.to_string().len()).max(1);
    let w_key = width(&|c| c.key.len()).max(4);
    let w_round = width(&|c| c.round.to_string().len()).max(5);
    writeln!(
        out,
        "{:>w_index$}  {:<w_key$}  {:<w_round$}  seed",
        "#", "cell", "round"
    )?;
    for c in cells {
        writeln!(
            out,
            "{:>w_index$}  {:<w_key$}  {:<w_round$}  {}",
            c.index,
            &*c.key,
            c.round.to_string(),
            c.seed
        )?;
    }
    Ok(())
}

/// The plan as an aligned text table ([`write_text`]), in one string.
pub fn render_text(cells: &[Cell]) -> String {
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = write_text(cells, &mut out);
    String::from_utf8_lossy(&out).into_owned()
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
            let (part, keys) = shard(cells.clone(), ShardSpec { index, count: 3 });
            assert_eq!(keys.len(), 3);
            // Every launch (model × variant) lies in one part.
            for cell in &part {
                assert!(keys[index - 1].contains(&cell.key.to_string()), "{cell:?}");
            }
            sizes.push(part.len());
            seen.extend(part.iter().map(|c| c.index));
            assert_eq!(
                part,
                shard(cells.clone(), ShardSpec { index, count: 3 }).0,
                "pure"
            );
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

    /// The bytes `cells` hold: the list, and every key and block once
    /// (the prompts and model ids, one each, are left out).
    fn held(cells: &Vec<Cell>) -> (usize, usize) {
        let mut keys = std::collections::HashSet::new();
        let mut blocks = std::collections::HashSet::new();
        let mut heap = 0;
        for cell in cells {
            if keys.insert(Arc::as_ptr(&cell.key).cast::<u8>()) {
                heap += 16 + cell.key.len();
            }
            if blocks.insert(Arc::as_ptr(&cell.block)) {
                let settings = match &cell.block.variant {
                    Variant::Server(settings) => settings
                        .iter()
                        .map(|s| size_of::<Setting>() + s.name.len() + s.value.len())
                        .sum(),
                    _ => 0,
                };
                let axes: usize = cell
                    .block
                    .axes
                    .iter()
                    .map(|a| size_of::<String>() + a.len())
                    .sum();
                heap += 16 + size_of::<Block>() + axes + settings;
            }
        }
        (cells.capacity() * size_of::<Cell>(), heap)
    }

    #[test]
    fn issue_23_a_cell_is_lean_and_the_estimate_bounds_what_the_plan_holds() {
        let cell = size_of::<Cell>();
        assert!(cell <= 64, "size_of::<Cell>() is {cell} bytes");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        let values: Vec<String> = (1..=500).map(|n| n.to_string()).collect();
        std::fs::write(
            &file,
            format!(
                "name: s\nservers:\n  srv: {{ command: [x, \"{{port}}\", \"{{threads}}\"], variants: {{ threads: [1, 2] }} }}\nmodels:\n  - {{ id: smollm2-135m, server: srv }}\n  - {{ id: gemma3-270m, server: srv }}\nprompts:\n  - {{ id: rag, text: one }}\n  - {{ id: privacy, text: two }}\n  - {{ id: size-latency, text: three }}\n  - {{ id: slm-vs-llm, text: four }}\ndefaults: {{ rounds: 5, warmup: 1 }}\nmatrix: {{ max_tokens: [{}] }}\n",
                values.join(", ")
            ),
        )
        .unwrap();
        let suite = crate::suite::load(&file, &|_| None).unwrap();
        let estimate = footprint(&suite, &Filter::default()).unwrap();
        let cells = plan(&suite, &Filter::default()).unwrap();
        let (list, heap) = held(&cells);
        // The stencils (one cell per key) are held while the plan is made.
        let keys = cells.len() / 6;
        let peak = (list + heap + keys * cell) as u64;
        println!(
            "{} cells: size_of::<Cell>() {cell} B, list {list} B, shared keys and blocks {heap} B ({} B a cell), stencils {} B; estimate {} B",
            cells.len(),
            heap / cells.len(),
            keys * cell,
            estimate.bytes
        );
        assert_eq!(estimate.requests, cells.len() as u64, "{estimate:?}");
        assert_eq!(cells.len(), cells.capacity(), "the list is made to measure");
        assert!(
            estimate.bytes >= peak && estimate.bytes <= peak * 3 / 2,
            "estimate {} B for {peak} B held",
            estimate.bytes
        );
        assert!(
            heap / cells.len() <= 32,
            "{heap} B shared over {} cells",
            cells.len()
        );
    }
}
