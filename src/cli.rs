//! The command line: clap types and the commands' glue. Parses arguments,
//! calls the library stages, prints; owns the exit codes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::plan::{self, Filter};
use crate::suite::{self, SuiteError, raw};

/// dyno: a dynamometer for language models.
#[derive(Debug, Parser)]
#[command(name = "dyno", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check suites: YAML, schema, references, bounds and outputs (the
    /// results directory can be written, templates exist and compile);
    /// errors point at <file:line:col>.
    Validate {
        /// Suite files or globs (`suites/**/*.yaml`).
        #[arg(required = true)]
        suites: Vec<String>,
        /// Templates of your own, as `dyno run --templates DIR` will use them.
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
    },
    /// Print the cells of a suite in execution order, without sending anything.
    Plan {
        suite: PathBuf,
        #[command(flatten)]
        select: Selection,
        /// Only the cells of one part (`2/3`), as `dyno run --shard` would run them.
        #[arg(long, value_name = "I/N")]
        shard: Option<crate::plan::ShardSpec>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What an endpoint serves (a URL, with or without /v1), or every
    /// endpoint and managed-server model file of a suite (no server started).
    /// Exit 1 when some source could not be listed, 2 when none could.
    Models {
        /// A URL (`http://127.0.0.1:8080/v1`) or a suite file.
        target: String,
        /// The service behind a URL: openai (`GET /v1/models`) or foundry
        /// (the Foundry Local catalog with device, size, licence and state).
        /// Without it, a URL that turns out to be Foundry Local (its
        /// `/v1/models` fails, is empty or lists Microsoft's models, and its
        /// status route answers) is listed as foundry.
        #[arg(long, value_name = "KIND")]
        kind: Option<crate::probe::UrlKind>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The validation checklist: the suite loads, endpoints answer, models
    /// are listed, managed servers start, one 1-token chat per model.
    /// Exit 0 when every check passes, 1 when one fails, 2 on config errors.
    Check {
        suite: PathBuf,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Validate, plan, execute, record and render one or more suites.
    Run {
        /// Suite files or globs.
        #[arg(required = true)]
        suites: Vec<String>,
        #[command(flatten)]
        select: Selection,
        /// Write results here instead of the suite's `outputs.dir`.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        /// Use templates from this directory (`report.md.j2`, ...) over the built-in ones.
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
        /// Also keep a timestamped copy of every output under `<dir>/archive/`.
        #[arg(long)]
        archive: bool,
        /// Go on with an interrupted run: send only what its journal (in
        /// the output directory) does not hold, then write the whole.
        #[arg(long)]
        resume: bool,
        /// Run one part of the plan, cut along launches (`2/3`); `dyno
        /// merge` puts the parts back together.
        #[arg(long, value_name = "I/N")]
        shard: Option<crate::plan::ShardSpec>,
        /// This machine's name in a fleet (default: host name and CPU).
        #[arg(long, value_name = "NAME")]
        machine: Option<String>,
    },
    /// Merge the results of a sharded run (or, with --fleet, runs of one
    /// suite on several machines) into one results.json and its reports.
    /// The same inputs in any order give the same bytes. Exit 2 when they
    /// are of different suites or plans, or a shard is missing or doubled.
    Merge {
        /// Results files or the directories holding them.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Where the merged results and reports go.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Whole runs from several machines, the machine an axis of every row.
        #[arg(long)]
        fleet: bool,
        /// Use templates from this directory over the built-in ones.
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
    },
    /// Write (or extend) `annotations.csv` beside a results file: one row per
    /// model × prompt × distinct output, with empty `score` and `note`
    /// columns to fill in; `dyno report` merges the ratings.
    Annotate {
        /// A results.json file, or the directory that holds it.
        results: PathBuf,
    },
    /// Re-render the reports of stored results, without running anything.
    Report {
        /// A results.json file, or the directory that holds it.
        results: PathBuf,
        /// Use templates from this directory (`report.md.j2`, ...) over the built-in ones.
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
    },
    /// Compare two results: files, directories, or a git revision and a path.
    /// Exit 1 when a model (pooled over its prompts) REGRESSED after
    /// Benjamini–Hochberg, or its quality regressed; else 0.
    Compare {
        /// BASE (a results file or directory, or a git revision), or NEW alone
        /// to compare against its last committed version.
        first: String,
        /// NEW (a results file or directory).
        second: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write the comparison as Markdown (for a pull-request comment).
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
        /// Also write the comparison as one self-contained HTML page: a
        /// forest plot of every model and metric, the cells behind a toggle.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Runs from different machines (CPU model, core count, a model's
        /// engine build or CPU features) are compared like any others: their
        /// shifts are verdicts and fail the comparison (otherwise MACHINE).
        #[arg(long)]
        across_machines: bool,
    },
    /// A metric across the git history of a results file, with the commits
    /// that introduced a step.
    History {
        /// A results.json file (or its directory) tracked in git.
        results: PathBuf,
        /// `ttft_ms`, `e2e_ms`, `tpot_ms` or `decode_tps`.
        #[arg(long, default_value = "e2e_ms")]
        metric: crate::compare::Metric,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write the trend as an SVG chart.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Print the suite JSON schema (or write it with --out).
    Schema {
        /// The schema of an included prompt file instead of a suite.
        #[arg(long, conflicts_with = "results")]
        prompts: bool,
        /// The schema of a results file (`results.json`) instead of a suite.
        #[arg(long)]
        results: bool,
        /// Write the schema to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Exit codes are API: 0 fine, 1 regression or failure, 2 usage, config or
/// input error, 3 a run's output could not be written (a full disk).
pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_FAILED: u8 = 1;
pub(crate) const EXIT_ERROR: u8 = 2;
pub(crate) const EXIT_WRITE: u8 = 3;

/// Exit status of a run that was interrupted (and wrote what it measured).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// Which part of a suite `dyno plan` and `dyno run` take, and in what order.
#[derive(Debug, clap::Args)]
pub struct Selection {
    /// Keep only models whose id matches one of these globs (a comma
    /// list, repeatable); without it, `DYNO_MODELS` gives the list.
    #[arg(long = "models", value_name = "GLOB,...")]
    models: Vec<String>,
    /// Keep only prompts whose id matches one of these globs (a comma
    /// list, repeatable); without it, `DYNO_PROMPTS` gives the list.
    #[arg(long = "prompts", value_name = "GLOB,...")]
    prompts: Vec<String>,
    /// `model_major` or interleaved, instead of the suite's `order`.
    #[arg(long, value_name = "ORDER")]
    order: Option<crate::suite::Order>,
}

impl Selection {
    /// The plan filter these arguments (and `DYNO_MODELS`, `DYNO_PROMPTS`) give.
    fn filter(&self) -> Filter {
        Filter::from_args(
            &self.models,
            &self.prompts,
            self.order,
            &crate::suite::process_env,
        )
    }
}

/// Runs one command; errors are rendered here, at the edge.
pub fn run(cli: Cli) -> ExitCode {
    crate::provider::children::kill_on_panic();
    let outcome = match cli.command {
        Command::Validate { suites, templates } => validate(&suites, templates.as_deref()),
        Command::Plan {
            suite,
            select,
            shard,
            json,
        } => plan_cmd(&suite, &select.filter(), shard, json),
        Command::Models { target, kind, json } => models_cmd(&target, kind, json),
        Command::Check { suite, json } => check_cmd(&suite, json),
        Command::Run {
            suites,
            select,
            out,
            quiet,
            templates,
            archive,
            resume,
            shard,
            machine,
        } => run_cmd(
            &suites,
            &select.filter(),
            &crate::run::RunOptions {
                out,
                quiet,
                templates,
                archive,
                resume,
                interrupt: crate::run::interrupt::Interrupt::never(),
                shard,
                machine,
            },
        ),
        Command::Merge {
            results,
            out,
            fleet,
            templates,
        } => merge_cmd(&results, &out, fleet, templates.as_deref()),
        Command::Annotate { results } => crate::run::annotate(&results)
            .map_err(anyhow::Error::from)
            .and_then(|path| {
                eprintln!("fill in the `score` column, then run `dyno report`");
                print_stdout(&format!("{}\n", path.display()))
            }),
        Command::Report { results, templates } => {
            crate::run::rerender(&results, templates.as_deref())
                .map_err(anyhow::Error::from)
                .and_then(|files| {
                    print_stdout(
                        &files
                            .iter()
                            .map(|f| format!("{}\n", f.display()))
                            .collect::<String>(),
                    )
                })
        }
        Command::Compare {
            first,
            second,
            json,
            markdown,
            html,
            across_machines,
        } => compare_cmd(
            &first,
            second.as_deref(),
            json,
            [markdown.as_deref(), html.as_deref()],
            across_machines,
        ),
        Command::History {
            results,
            metric,
            json,
            svg,
        } => history_cmd(&results, metric, json, svg.as_deref()),
        Command::Schema {
            prompts,
            results,
            out,
        } => schema(SchemaKind::of(prompts, results), out.as_deref()),
    };
    ExitCode::from(outcome.unwrap_or_else(|err| {
        report(&err);
        exit_code_of(&err)
    }))
}

/// 3 when output could not be written, else 2.
fn exit_code_of(err: &anyhow::Error) -> u8 {
    let write_failure = err
        .chain()
        .filter_map(|e| e.downcast_ref::<crate::run::RunError>())
        .any(crate::run::RunError::is_write_failure);
    if write_failure {
        EXIT_WRITE
    } else {
        EXIT_ERROR
    }
}

/// Prints an error for the terminal: a suite's diagnostics with their
/// source lines and carets, anything else as `error: …` with its causes.
pub fn report(err: &anyhow::Error) {
    let text = match err.chain().find_map(|e| e.downcast_ref::<SuiteError>()) {
        Some(load) => load.render(),
        None => format!("error: {}\n", crate::text::error_chain(err.as_ref())),
    };
    eprint!("{}", crate::text::printable(&text));
}

fn validate(args: &[String], templates: Option<&Path>) -> anyhow::Result<u8> {
    let files = suite::files::expand_args(args)?;
    let check = |name: &str| Ok(crate::report::check(name, templates)?);
    let mut code = EXIT_OK;
    for file in &files {
        match suite::load_checked(file, &suite::process_env, &check) {
            // The same check `dyno plan` and `dyno run` make before building.
            Ok(s) => match plan::footprint(&s, &Filter::default()).and_then(plan::Footprint::check)
            {
                Ok(size) => println!(
                    "ok: {} ({} models, {} prompts, {} requests, a plan of about {} MiB)",
                    file.display(),
                    s.models.len(),
                    s.prompts.len(),
                    size.requests,
                    size.bytes.div_ceil(1024 * 1024)
                ),
                Err(err) => {
                    eprintln!("error: {}: {err}", file.display());
                    code = EXIT_ERROR;
                }
            },
            Err(err) => {
                eprint!("{}", err.render());
                eprintln!(
                    "{}: {} error{}",
                    file.display(),
                    err.diagnostics.len(),
                    if err.diagnostics.len() == 1 { "" } else { "s" }
                );
                code = EXIT_ERROR;
            }
        }
    }
    Ok(code)
}

fn plan_cmd(
    file: &Path,
    filter: &Filter,
    shard: Option<plan::ShardSpec>,
    json: bool,
) -> anyhow::Result<u8> {
    let s = suite::load(file, &suite::process_env)?;
    let mut cells = plan::plan(&s, filter)?;
    if let Some(spec) = shard {
        cells = plan::shard(cells, spec).0;
    }
    // Written as it is formatted: a large plan is never held twice.
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let written = if json {
        serde_json::to_writer_pretty(&mut stdout, &cells)
            .map_err(std::io::Error::from)
            .and_then(|()| stdout.write_all(b"\n"))
    } else {
        plan::write_text(&cells, &mut stdout)
    };
    stdout_written(written.and_then(|()| stdout.flush()))
}

/// Which committed schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// `schemas/suite.schema.json`
    Suite,
    /// `schemas/prompts.schema.json`
    Prompts,
    /// `schemas/results.schema.json`
    Results,
}

impl SchemaKind {
    fn of(prompts: bool, results: bool) -> SchemaKind {
        match (prompts, results) {
            (true, _) => SchemaKind::Prompts,
            (_, true) => SchemaKind::Results,
            _ => SchemaKind::Suite,
        }
    }
}

/// The schema text exactly as committed under `schemas/`.
pub fn schema_text(kind: SchemaKind) -> String {
    let schema = match kind {
        SchemaKind::Suite => raw::suite_schema(),
        SchemaKind::Prompts => raw::prompt_file_schema(),
        SchemaKind::Results => crate::results::results_schema(),
    };
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

fn schema(kind: SchemaKind, out: Option<&Path>) -> anyhow::Result<u8> {
    let text = schema_text(kind);
    match out {
        Some(path) => {
            crate::fsutil::write_atomic(path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(EXIT_OK)
        }
        None => print_stdout(&text),
    }
}

fn print_stdout(text: &str) -> anyhow::Result<u8> {
    let mut stdout = std::io::stdout().lock();
    stdout_written(
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush()),
    )
}

/// What writing to standard output came to.
fn stdout_written(written: std::io::Result<()>) -> anyhow::Result<u8> {
    match written {
        // A closed pipe (`dyno plan | head`) is not an error worth a message.
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::from(err).context("cannot write to standard output"))
        }
        _ => Ok(EXIT_OK),
    }
}

/// The async runtime of the commands that talk to servers.
///
/// One thread: every connection, the measuring loop and the scheduler of
/// load points run on it, so a streamed chunk never crosses threads on its
/// way to the clock (each crossing costs wake-ups that become latency under
/// load). Samplers and the journal writer have threads of their own.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// What the probes see: the process environment and the real `foundry` CLI.
fn probe_context() -> crate::probe::Context<'static> {
    static FOUNDRY_CLI: std::sync::LazyLock<crate::provider::foundry::SystemCli> =
        std::sync::LazyLock::new(crate::provider::foundry::SystemCli::default);
    crate::probe::Context {
        env: &suite::process_env,
        foundry_cli: &*FOUNDRY_CLI,
    }
}

fn models_cmd(target: &str, kind: Option<crate::probe::UrlKind>, json: bool) -> anyhow::Result<u8> {
    use crate::probe::{self, Source};
    let source = probe::classify(target, kind)?;
    let inventory = runtime()?.block_on(async {
        match source {
            Source::Url { url, kind } => Ok(probe::list_url(&url, kind, &probe_context()).await),
            Source::Suite(file) => probe::list_suite(&file, &probe_context()).await,
        }
    })?;
    eprint!("{}", probe::render_unlisted(&inventory.errors));
    let text = if json {
        probe::render_models_json(&inventory)
    } else {
        probe::render_models_text(&inventory.models)
    };
    print_stdout(&text)?;
    Ok(if inventory.errors.is_empty() {
        EXIT_OK
    } else if inventory.models.is_empty() {
        EXIT_ERROR
    } else {
        EXIT_FAILED
    })
}

fn check_cmd(file: &Path, json: bool) -> anyhow::Result<u8> {
    use crate::probe;
    let lines = runtime()?.block_on(async { probe::check(file, &probe_context()).await })?;
    let text = if json {
        probe::render_check_json(&lines)
    } else {
        probe::render_check_text(&lines)
    };
    eprint!("{}", probe::render_check_summary(&lines));
    print_stdout(&text)?;
    Ok(if probe::all_passed(&lines) {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

fn run_cmd(
    args: &[String],
    filter: &Filter,
    options: &crate::run::RunOptions,
) -> anyhow::Result<u8> {
    let files = suite::files::expand_args(args)?;
    let runtime = runtime()?;
    let mut code = EXIT_OK;
    for file in &files {
        let outcome = runtime.block_on(async {
            let options = crate::run::RunOptions {
                interrupt: crate::run::interrupt::Interrupt::listen(),
                ..options.clone()
            };
            crate::run::run_suite_with(file, filter, &options).await
        });
        match outcome {
            Ok(summary) if summary.partial.is_some() => {
                println!("{summary}");
                return Ok(EXIT_INTERRUPTED);
            }
            Ok(summary) => {
                println!("{summary}");
                if summary.failed_requests > 0 {
                    code = code.max(EXIT_FAILED);
                }
            }
            Err(err) => {
                let err = err.into();
                report(&err);
                code = code.max(exit_code_of(&err));
            }
        }
    }
    Ok(code)
}

fn merge_cmd(
    inputs: &[PathBuf],
    out: &Path,
    fleet: bool,
    templates: Option<&Path>,
) -> anyhow::Result<u8> {
    let mut parts = Vec::new();
    for input in inputs {
        let (doc, file) = crate::results::read(input)?;
        parts.push((file.display().to_string(), doc));
    }
    let (merged, warnings) = if fleet {
        crate::results::merge_fleet(parts)?
    } else {
        crate::results::merge_shards(parts)?
    };
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let names: Vec<String> = merged
        .suite
        .resolved
        .pointer("/outputs/templates")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_else(|| vec!["report.md".into(), "results.csv".into()]);
    let files = crate::run::write_outputs(&merged, out, &names, templates)?;
    print_stdout(
        &files
            .iter()
            .map(|f| format!("{}\n", f.display()))
            .collect::<String>(),
    )
}

fn compare_cmd(
    first: &str,
    second: Option<&str>,
    json: bool,
    [markdown, html]: [Option<&Path>; 2],
    across_machines: bool,
) -> anyhow::Result<u8> {
    let [(base, base_label), (new, new_label)] = crate::compare::read_sides(first, second)?;
    let comparison =
        crate::compare::compare_across(&base, &new, &base_label, &new_label, across_machines);
    let mut pages = Vec::new();
    if let Some(path) = markdown {
        pages.push((path, crate::compare::render_markdown(&comparison, None)?));
    }
    if let Some(path) = html {
        let settings = crate::compare::settings_of(&new);
        pages.push((
            path,
            crate::compare::render_html(&comparison, &settings, None)?,
        ));
    }
    for (path, text) in pages {
        crate::fsutil::write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let text = if json {
        serde_json::to_string_pretty(&comparison)? + "\n"
    } else {
        crate::compare::render_text(&comparison)
    };
    print_stdout(&text)?;
    // The process ends here: freeing two large documents sample by sample
    // would only delay the exit.
    std::mem::forget((base, new));
    Ok(if comparison.regressed() {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

fn history_cmd(
    results: &Path,
    metric: crate::compare::Metric,
    json: bool,
    svg: Option<&Path>,
) -> anyhow::Result<u8> {
    let crate::compare::History {
        points,
        steps,
        skipped,
    } = crate::compare::history_with_skipped(results, metric)?;
    for line in &skipped {
        eprintln!("warning: {line}");
    }
    if let Some(path) = svg {
        let chart = crate::compare::history_svg(metric, &points, &steps)?;
        crate::fsutil::write_atomic(path, chart.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let text = if json {
        let doc = serde_json::json!({ "metric": metric.name(), "points": points, "steps": steps });
        serde_json::to_string_pretty(&doc)? + "\n"
    } else {
        crate::compare::render_history(metric, &points, &steps)
    };
    print_stdout(&text)
}
