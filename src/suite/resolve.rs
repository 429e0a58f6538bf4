//! Resolving a parsed suite into a [`Suite`]: defaults applied, includes
//! expanded, references, placeholders and checks validated. Every problem
//! becomes a diagnostic at its YAML node; nothing here reads YAML text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diag::Diagnostic;
use super::node::{Node, Pos};
use super::parse::{Loader, OutputsCheck};
use super::raw::{self, RawMessage, RawPrompt, RawPromptItem, RawSuite};
use super::raw_load::{RawLength, RawLoad, RawPercentile};
use super::workload::{Drive, Length, Point, Slo, Sweep, Synthetic, Workload};
use super::{
    Axis, CompareSettings, DEFAULT_JUDGE_MAX_TOKENS, Device, Endpoint, EndpointKind,
    EnergySettings, Judge, Message, Model, Outputs, Params, Prompt, Role, ServedBy, Server, Suite,
    TemplateCheck, TemplateFault, files,
};

/// The most variant combinations (launches) one managed server may have.
pub(crate) const MAX_SERVER_VARIANTS: u64 = 1000;

/// The file being resolved: its path, its tree and its directory.
struct Doc<'a> {
    file: &'a Path,
    root: &'a Node,
    dir: PathBuf,
}

impl Doc<'_> {
    /// Where the node at `pointer` stands (the root when there is none).
    fn at(&self, pointer: &str) -> Pos {
        self.root.lookup(pointer).map_or(self.root.pos, |n| n.pos)
    }
}

impl Loader<'_> {
    /// Parses and resolves the suite file `file` holding `text`.
    pub(super) fn suite(&mut self, file: &Path, text: String) -> Option<Suite> {
        let (root, raw): (Node, RawSuite) = self.parse(file, text, &raw::suite_schema())?;
        let doc = Doc {
            file,
            root: &root,
            dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let endpoints = self.endpoints(&doc, &raw);
        let servers = self.servers(&doc, &raw);
        let (models, model_ids) = self.models(&doc, &raw, &endpoints, &servers);
        let mut prompts = self.prompts(&doc, &raw);
        let judge = self.quality(&doc, &raw, &mut prompts, &model_ids);
        let matrix = raw.matrix.clone().map_or_else(Vec::new, |m| {
            let mut axes = Vec::new();
            axes.extend(m.stream.map(Axis::Stream));
            axes.extend(m.temperature.map(Axis::Temperature));
            axes.extend(m.max_tokens.map(Axis::MaxTokens));
            axes.extend(m.reasoning_effort.map(Axis::ReasoningEffort));
            axes.extend(m.response_format.map(Axis::ResponseFormat));
            axes.extend(m.context_tokens.map(Axis::ContextTokens));
            axes.extend(m.cache.map(Axis::Cache));
            axes
        });
        self.diagnostics
            .extend(super::depth::check(doc.file, doc.root, &raw, &models));
        let outputs = raw.outputs.clone().unwrap_or_default();
        let outputs = Outputs {
            dir: outputs.dir.map_or_else(
                || default_results_dir(&doc.dir, &raw.name),
                |d| doc.dir.join(d),
            ),
            templates: outputs
                .templates
                .unwrap_or_else(|| vec!["report.md".into(), "results.csv".into()]),
        };
        if let OutputsCheck::Check { templates } = self.outputs {
            let listed = raw.outputs.as_ref().is_some_and(|o| o.templates.is_some());
            self.check_outputs(&doc, &outputs, listed, templates);
        }
        let energy = raw.energy.unwrap_or_default();
        Some(Suite {
            judge,
            energy: EnergySettings {
                watts: energy.watts,
                price_per_kwh: energy.price_per_kwh,
                currency: energy.currency,
                ignore_rapl: energy.ignore_rapl.unwrap_or(false),
            },
            compare: CompareSettings::from_raw(raw.compare.as_ref()),
            order: raw.order.unwrap_or_default(),
            secrets: crate::secrets::Secrets::default(),
            name: raw.name,
            description: raw.description,
            file: file.to_path_buf(),
            endpoints,
            servers,
            models,
            prompts,
            matrix,
            outputs,
        })
    }

    /// The results directory can be written (or created), and `templates`
    /// finds nothing wrong with any report template listed in
    /// `outputs.templates`.
    fn check_outputs(
        &mut self,
        doc: &Doc<'_>,
        outputs: &Outputs,
        listed: bool,
        templates: TemplateCheck<'_>,
    ) {
        if let Some(reason) = crate::fsutil::unwritable_dir(&outputs.dir) {
            let at = if doc.root.lookup("/outputs/dir").is_some() {
                "/outputs/dir"
            } else {
                // The default directory is named after the suite.
                "/name"
            };
            self.diagnostics.push(
                Diagnostic::new(
                    format!(
                        "results directory {} cannot be written: {reason}",
                        outputs.dir.display()
                    ),
                    doc.file,
                    doc.at(at),
                )
                .with_hint(Some(
                    "set `outputs.dir` to a directory dyno may create, or run with `--out DIR`"
                        .into(),
                )),
            );
        }
        if !listed {
            // The built-in defaults compile; their test says so.
            return;
        }
        for (i, name) in outputs.templates.iter().enumerate() {
            if let Err(fault) = templates(name) {
                let (message, hint) = match fault {
                    TemplateFault::Unknown(message) => (
                        message,
                        Some(
                            "a template of your own is found with `--templates DIR` (as `<name>.j2`)"
                                .into(),
                        ),
                    ),
                    TemplateFault::Broken(message) => (message, None),
                };
                self.diagnostics.push(
                    Diagnostic::new(
                        message,
                        doc.file,
                        doc.at(&format!("/outputs/templates/{i}")),
                    )
                    .with_hint(hint),
                );
            }
        }
    }

    fn endpoints(&mut self, doc: &Doc<'_>, raw: &RawSuite) -> BTreeMap<String, Endpoint> {
        raw.endpoints
            .iter()
            .map(|(name, e)| {
                let kind = e.kind.unwrap_or_default();
                if kind == EndpointKind::Openai && e.base_url.is_none() {
                    self.diagnostics.push(
                        Diagnostic::new(
                            format!("endpoint `{name}` needs a `base_url`"),
                            doc.file,
                            doc.root
                                .lookup("/endpoints")
                                .and_then(|n| n.key(name))
                                .map_or(doc.root.pos, |k| k.pos),
                        )
                        .with_hint(Some(
                            "for example base_url: http://127.0.0.1:8080/v1".into(),
                        )),
                    );
                }
                if let Some(url) = &e.base_url
                    && !(url.starts_with("http://") || url.starts_with("https://"))
                {
                    self.diagnostics.push(Diagnostic::new(
                        format!("base_url `{url}` is not an http:// or https:// URL"),
                        doc.file,
                        doc.at(&format!("/endpoints/{}/base_url", escape(name))),
                    ));
                }
                if kind == EndpointKind::Command && e.command.is_none() {
                    self.diagnostics.push(
                        Diagnostic::new(
                            format!("endpoint `{name}` of kind `command` needs a `command`"),
                            doc.file,
                            doc.at(&format!("/endpoints/{}", escape(name))),
                        )
                        .with_hint(Some(
                            "for example command: [python3, examples/adapter/echo_adapter.py]"
                                .into(),
                        )),
                    );
                }
                let ca_cert = e
                    .ca_cert
                    .as_deref()
                    .and_then(|written| self.ca_cert(doc, name, kind, written));
                self.endpoint_secrets(e);
                let endpoint = Endpoint {
                    kind,
                    base_url: e.base_url.clone(),
                    api_key_env: e.api_key_env.clone(),
                    headers: e.headers.clone(),
                    ca_cert_written: e.ca_cert.clone(),
                    ca_cert,
                    command: e.command.clone().unwrap_or_default(),
                    weights: e.weights.as_ref().map(|w| doc.dir.join(w)),
                    params: e.params.clone(),
                    load_timeout_s: e.load_timeout_s.unwrap_or(120),
                    dir: doc.dir.clone(),
                    reasoning_control: e.reasoning_control,
                };
                (name.clone(), endpoint)
            })
            .collect()
    }

    /// The absolute path of endpoint `name`'s `ca_cert` (written relative
    /// to the suite file), once it is known to hold PEM certificates; a
    /// diagnostic at the key otherwise.
    fn ca_cert(
        &mut self,
        doc: &Doc<'_>,
        name: &str,
        kind: EndpointKind,
        written: &str,
    ) -> Option<PathBuf> {
        let pos = doc.at(&format!("/endpoints/{}/ca_cert", escape(name)));
        if kind == EndpointKind::Command {
            self.diagnostics.push(Diagnostic::new(
                format!(
                    "endpoint `{name}`: `ca_cert` applies to `openai` and `foundry` endpoints; a `command` endpoint sends no HTTP"
                ),
                doc.file,
                pos,
            ));
            return None;
        }
        let joined = doc.dir.join(written);
        let path = std::path::absolute(&joined).unwrap_or(joined);
        let checked = std::fs::read(&path)
            .map_err(|e| format!("cannot be read: {e}"))
            .and_then(|bytes| pem_certificates(&bytes));
        match checked {
            Ok(_) => Some(path),
            Err(reason) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        format!("endpoint `{name}`: `ca_cert` {} {reason}", path.display()),
                        doc.file,
                        pos,
                    )
                    .with_hint(Some(format!(
                        "a PEM file with the server's certificate or its CA's; paths are relative to {}",
                        display_dir(&doc.dir)
                    ))),
                );
                None
            }
        }
    }

    /// An endpoint's secrets: its base URL's password and query values, the
    /// key its `api_key_env` names, and secret-looking headers.
    fn endpoint_secrets(&mut self, endpoint: &raw::RawEndpoint) {
        if let Some(url) = &endpoint.base_url {
            self.secrets.add_url(url);
        }
        if let Some(key) = endpoint.api_key_env.as_deref().and_then(self.env) {
            self.secrets.add(&key);
        }
        for (name, value) in &endpoint.headers {
            if crate::secrets::looks_secret_header(name) {
                self.secrets.add_header(value);
            }
        }
    }

    fn servers(&mut self, doc: &Doc<'_>, raw: &RawSuite) -> BTreeMap<String, Server> {
        raw.servers
            .iter()
            .map(|(name, s)| {
                if !s
                    .command
                    .iter()
                    .chain(s.env.values())
                    .any(|text| text.contains("{port}"))
                {
                    self.diagnostics.push(
                        Diagnostic::new(
                            format!("server `{name}` has no `{{port}}` in its command or env"),
                            doc.file,
                            doc.at(&format!("/servers/{}/command", escape(name))),
                        )
                        .with_hint(Some(
                            "dyno picks a free port: pass it as `--port, \"{port}\"`, or in `env:` (e.g. `PORT: \"{port}\"`)".into(),
                        )),
                    );
                }
                self.check_variants(doc.file, name, s, &|p| doc.at(p));
                self.secrets.add_command(&s.command);
                for (key, value) in &s.env {
                    if crate::secrets::looks_secret(key) {
                        self.secrets.add(value);
                    }
                }
                let server = Server {
                    command: s.command.clone(),
                    ready: s.ready.clone().unwrap_or_else(|| "/health".into()),
                    startup_timeout_s: s.startup_timeout_s.unwrap_or(120),
                    env: s.env.clone(),
                    variants: s
                        .variants
                        .iter()
                        .map(|(k, vs)| (k.clone(), vs.iter().map(ToString::to_string).collect()))
                        .collect(),
                    cold_start: s.cold_start.unwrap_or(false),
                };
                (name.clone(), server)
            })
            .collect()
    }

    /// The models, and their ids (for the judges' references).
    fn models(
        &mut self,
        doc: &Doc<'_>,
        raw: &RawSuite,
        endpoints: &BTreeMap<String, Endpoint>,
        servers: &BTreeMap<String, Server>,
    ) -> (Vec<Model>, BTreeSet<String>) {
        let defaults = Params::BUILT_IN.overlay(raw.defaults.as_ref());
        let mut models = Vec::new();
        let mut model_ids = BTreeSet::new();
        for (i, m) in raw.models.iter().enumerate() {
            let here = format!("/models/{i}");
            if !model_ids.insert(m.id.clone()) {
                self.diagnostics.push(Diagnostic::new(
                    format!("duplicate model id `{}`", m.id),
                    doc.file,
                    doc.at(&format!("{here}/id")),
                ));
            }
            let Some(served_by) = self.served_by(doc, &here, m, endpoints, servers) else {
                continue;
            };
            let server = match &served_by {
                ServedBy::Server(name) => servers.get(name),
                ServedBy::Endpoint(_) => None,
            };
            let on_foundry = matches!(&served_by, ServedBy::Endpoint(e)
                if endpoints.get(e).is_some_and(|e| e.kind == EndpointKind::Foundry));
            let adapter = matches!(&served_by, ServedBy::Endpoint(e)
                if endpoints.get(e).is_some_and(|e| e.kind == EndpointKind::Command));
            if !on_foundry && (!m.variants.is_empty() || m.download.is_some()) {
                let key = if m.variants.is_empty() {
                    "download"
                } else {
                    "variants"
                };
                self.diagnostics.push(
                    Diagnostic::new(
                        format!("`{key}` of model `{}` needs a `foundry` endpoint", m.id),
                        doc.file,
                        doc.at(&format!("{here}/{key}")),
                    )
                    .with_hint(Some(
                        "managed servers declare variants on the server (e.g. threads: [1, 2])"
                            .into(),
                    )),
                );
            }
            let files = if m.files.is_empty() {
                server.map_or_else(Vec::new, |s| {
                    crate::measure::resources::files::model_files_in_command(&s.command)
                        .into_iter()
                        .map(PathBuf::from)
                        .collect()
                })
            } else {
                m.files.iter().map(|f| doc.dir.join(f)).collect()
            };
            models.push(Model {
                id: m.id.clone(),
                api_model: m.model.clone().unwrap_or_else(|| m.id.clone()),
                served_by,
                capabilities: m.capabilities.clone(),
                size_mb: m.size_mb,
                license: m.license.clone(),
                context_window: m.context_window,
                files,
                cold_start: m
                    .cold_start
                    .unwrap_or_else(|| server.is_some_and(|s| s.cold_start)),
                devices: m.variants.iter().map(|d| Device::parse(d)).collect(),
                download: m.download.unwrap_or(false),
                // The suite's judge never judges its own outputs.
                judge: m.judge.clone().or_else(|| {
                    let judge = &raw.quality.as_ref()?.judge.as_ref()?.model;
                    (judge != &m.id).then(|| judge.clone())
                }),
                params: defaults.overlay(m.params.as_ref()),
                load: self.workload(
                    doc,
                    &m.id,
                    match (&m.load, &raw.load) {
                        (Some(own), _) => Some((own, format!("{here}/load"))),
                        (None, Some(suite)) => Some((suite, "/load".to_string())),
                        (None, None) => None,
                    },
                    adapter,
                ),
            });
        }
        (models, model_ids)
    }

    /// What serves model `m` (at `here`): exactly one of an endpoint or a
    /// server, and one the suite defines; a diagnostic otherwise.
    fn served_by(
        &mut self,
        doc: &Doc<'_>,
        here: &str,
        m: &raw::RawModel,
        endpoints: &BTreeMap<String, Endpoint>,
        servers: &BTreeMap<String, Server>,
    ) -> Option<ServedBy> {
        match (&m.endpoint, &m.server) {
            (Some(e), None) => {
                self.check_ref(
                    doc.file,
                    "endpoint",
                    e,
                    endpoints,
                    doc.at(&format!("{here}/endpoint")),
                );
                Some(ServedBy::Endpoint(e.clone()))
            }
            (None, Some(s)) => {
                self.check_ref(
                    doc.file,
                    "server",
                    s,
                    servers,
                    doc.at(&format!("{here}/server")),
                );
                Some(ServedBy::Server(s.clone()))
            }
            _ => {
                self.diagnostics.push(
                    Diagnostic::new(
                        format!(
                            "model `{}` needs exactly one of `endpoint` or `server`",
                            m.id
                        ),
                        doc.file,
                        doc.at(here),
                    )
                    .with_hint(Some(defined(
                        "endpoints",
                        endpoints.keys().chain(servers.keys()),
                    ))),
                );
                None
            }
        }
    }

    fn prompts(&mut self, doc: &Doc<'_>, raw: &RawSuite) -> Vec<Prompt> {
        let mut prompts = Vec::new();
        for (i, p) in raw.prompts.iter().enumerate() {
            let here = format!("/prompts/{i}");
            self.prompt_entry(
                doc.file,
                &doc.dir,
                p,
                &|suffix: &str| doc.at(&format!("{here}{suffix}")),
                &mut prompts,
            );
        }
        let mut prompt_ids: BTreeMap<&str, &Prompt> = BTreeMap::new();
        for p in &prompts {
            if let Some(first) = prompt_ids.insert(&p.id, p) {
                self.diagnostics.push(Diagnostic::new(
                    format!(
                        "duplicate prompt id `{}` (first defined at {}:{})",
                        p.id,
                        first.origin.display(),
                        first.pos.line
                    ),
                    &p.origin,
                    p.pos,
                ));
            }
        }
        prompts
    }

    /// The suite-wide checks (put before each prompt's own) and the judge;
    /// every judge must be a model of the suite.
    fn quality(
        &mut self,
        doc: &Doc<'_>,
        raw: &RawSuite,
        prompts: &mut [Prompt],
        model_ids: &BTreeSet<String>,
    ) -> Option<Judge> {
        let mut quality = raw.quality.clone().unwrap_or_default();
        self.compile_checks(
            doc.file,
            &doc.dir,
            &mut quality.checks,
            "check",
            &|suffix: &str| doc.at(&format!("/quality/checks{suffix}")),
        );
        for prompt in prompts.iter_mut() {
            prompt.checks.splice(0..0, quality.checks.iter().cloned());
        }
        let judge = quality.judge.as_ref().map(|j| Judge {
            model: j.model.clone(),
            scale: j.scale.unwrap_or_default(),
            max_tokens: j.max_tokens.unwrap_or(DEFAULT_JUDGE_MAX_TOKENS),
        });
        let judges =
            judge
                .iter()
                .map(|j| (j.model.as_str(), "/quality/judge/model".to_string()))
                .chain(raw.models.iter().enumerate().filter_map(|(i, m)| {
                    Some((m.judge.as_deref()?, format!("/models/{i}/judge")))
                }));
        for (name, pointer) in judges {
            if !model_ids.contains(name) {
                self.diagnostics.push(
                    Diagnostic::new(
                        format!("judge `{name}` is not a model of this suite"),
                        doc.file,
                        doc.at(&pointer),
                    )
                    .with_hint(Some(defined("models", raw.models.iter().map(|m| &m.id)))),
                );
            }
        }
        judge
    }

    /// A model's `load:` section, checked: something to drive, something
    /// that ends each point, and an HTTP model to drive.
    fn workload(
        &mut self,
        doc: &Doc<'_>,
        model: &str,
        load: Option<(&RawLoad, String)>,
        adapter: bool,
    ) -> Option<Workload> {
        let (raw, here) = load?;
        let mut complain = |message: String, hint: &str| {
            self.diagnostics.push(
                Diagnostic::new(message, doc.file, doc.at(&here)).with_hint(Some(hint.into())),
            );
        };
        let concurrency: Vec<u32> = raw.concurrency.iter().flatten().map(|c| c.0).collect();
        let rates: Vec<f64> = raw.rate.iter().flatten().map(|r| r.0).collect();
        if concurrency.is_empty() && rates.is_empty() && raw.sweep.is_none() {
            complain(
                "`load` of model `{model}` has no point to drive".replace("{model}", model),
                "give `concurrency: [1, 4]`, `rate: [2, 8]` or `sweep: {}`",
            );
        }
        if raw.duration_s.is_none() && raw.requests.is_none() {
            complain(
                format!("`load` of model `{model}` never ends a point"),
                "give `duration_s` and/or `requests` per point",
            );
        }
        if adapter {
            complain(
                format!(
                    "model `{model}` is served by a command adapter, which takes one request at a time"
                ),
                "load points need an HTTP model (an endpoint, a managed server or Foundry Local)",
            );
        }
        let seconds = |s: Option<f64>| s.and_then(|s| Duration::try_from_secs_f64(s).ok());
        let template = Point {
            drive: Drive::Concurrency(1),
            seed: raw.seed.unwrap_or(42),
            max_in_flight: raw.max_in_flight.unwrap_or(1024),
            warmup: seconds(raw.warmup_s).unwrap_or_default(),
            duration: seconds(raw.duration_s),
            requests: raw.requests,
            cooldown: seconds(raw.cooldown_s).unwrap_or_default(),
        };
        let arrival = raw.arrival.unwrap_or_default();
        let points = concurrency
            .into_iter()
            .map(Drive::Concurrency)
            .chain(
                rates
                    .into_iter()
                    .map(|per_s| Drive::Rate { per_s, arrival }),
            )
            .map(|drive| Point {
                drive,
                ..template.clone()
            })
            .collect();
        let length = |l: &RawLength| Length {
            mean: l.mean,
            stddev: l.stddev.unwrap_or(0.0),
        };
        Some(Workload {
            points,
            sweep: raw.sweep.as_ref().map(|s| Sweep {
                max_concurrency: s.max_concurrency.unwrap_or(256),
                min_gain: s.min_gain.unwrap_or(0.05),
                refine: s.refine.unwrap_or(4),
            }),
            slo: raw.slo.as_ref().map(|s| Slo {
                ttft_ms: s.ttft_ms,
                tpot_ms: s.tpot_ms,
                e2e_ms: s.e2e_ms,
                percentile: s.percentile.map_or(95.0, RawPercentile::value),
            }),
            synthetic: raw.synthetic.as_ref().map(|s| Synthetic {
                input_tokens: length(&s.input_tokens),
                output_tokens: length(&s.output_tokens),
                seed: s.seed.unwrap_or(42),
            }),
            template,
        })
    }

    /// Every `{name}` placeholder of a server's command and env is `{port}`
    /// or a declared variant, and every variant is used somewhere.
    fn check_variants(
        &mut self,
        file: &Path,
        name: &str,
        server: &raw::RawServer,
        at: &dyn Fn(&str) -> Pos,
    ) {
        let texts: Vec<&String> = server.command.iter().chain(server.env.values()).collect();
        let declared: Vec<&str> = server.variants.keys().map(String::as_str).collect();
        for (i, arg) in server.command.iter().enumerate() {
            for placeholder in placeholders(arg) {
                if placeholder != "port" && !declared.contains(&placeholder) {
                    self.diagnostics.push(
                        Diagnostic::new(
                            format!("`{{{placeholder}}}` in the command of server `{name}` is not a variant"),
                            file,
                            at(&format!("/servers/{}/command/{i}", escape(name))),
                        )
                        .with_hint(Some(if declared.is_empty() {
                            format!("declare it, e.g. variants: {{ {placeholder}: [1, 2] }}")
                        } else {
                            format!("declared variants: {}", declared.join(", "))
                        })),
                    );
                }
            }
        }
        let launches = server
            .variants
            .values()
            .fold(1u64, |n, values| n.saturating_mul(values.len() as u64));
        if launches > MAX_SERVER_VARIANTS {
            self.diagnostics.push(Diagnostic::new(
                format!(
                    "server `{name}` has {launches} variant combinations, each its own launch; at most {MAX_SERVER_VARIANTS}"
                ),
                file,
                at(&format!("/servers/{}/variants", escape(name))),
            ));
        }
        for (variant, values) in &server.variants {
            let here = format!("/servers/{}/variants/{}", escape(name), escape(variant));
            let token = format!("{{{variant}}}");
            if !texts.iter().any(|t| t.contains(&token)) {
                self.diagnostics.push(
                    Diagnostic::new(
                        format!("variant `{variant}` of server `{name}` is not used: no `{token}` in its command or env"),
                        file,
                        at(&here),
                    )
                    .with_hint(Some(format!("pass it, e.g. `--{}, \"{token}\"`", variant.replace('_', "-")))),
                );
            }
            if values.is_empty() {
                self.diagnostics.push(Diagnostic::new(
                    format!("variant `{variant}` of server `{name}` lists no values"),
                    file,
                    at(&here),
                ));
            }
        }
    }

    /// Replaces a `{file: PATH}` schema (relative to `dir`) with the JSON
    /// the file holds; a file that cannot be read, or is not JSON, is an
    /// error at `pos` and leaves the schema `true` (reported once).
    fn schema_file(
        &mut self,
        file: &Path,
        dir: &Path,
        schema: &mut serde_json::Value,
        what: &str,
        pos: Pos,
    ) {
        let Some(path) = schema
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get("file")?.as_str())
        else {
            return;
        };
        let path = dir.join(path);
        let loaded = crate::fsutil::read_text(&path, crate::fsutil::MAX_INPUT_BYTES)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|t| {
                serde_json::from_str::<serde_json::Value>(&t)
                    .map_err(|e| format!("{} is not JSON: {e}", path.display()))
            });
        *schema = match loaded {
            Ok(loaded) => loaded,
            Err(message) => {
                self.diagnostics
                    .push(Diagnostic::new(format!("{what}: {message}"), file, pos));
                serde_json::Value::Bool(true)
            }
        };
    }

    /// Reads `json_schema: {file: PATH}` schemas (relative to `dir`, the
    /// directory of the file they are written in) into the checks, then
    /// compiles every check (regexes, JSON schemas); a bad one is an error
    /// at its key. `at("/j/field")` locates check `j`'s `field`.
    fn compile_checks(
        &mut self,
        file: &Path,
        dir: &Path,
        checks: &mut [crate::quality::CheckSpec],
        what: &str,
        at: &dyn Fn(&str) -> Pos,
    ) {
        for (j, check) in checks.iter_mut().enumerate() {
            if let Some(schema) = &mut check.json_schema {
                self.schema_file(
                    file,
                    dir,
                    schema,
                    what,
                    at(&format!("/{j}/json_schema/file")),
                );
            }
        }
        for (j, check) in checks.iter().enumerate() {
            if let Err(err) = check.compile() {
                let field = if err.field.is_empty() {
                    String::new()
                } else {
                    format!("/{}", err.field)
                };
                self.diagnostics.push(Diagnostic::new(
                    format!("{what}: {err}"),
                    file,
                    at(&format!("/{j}{field}")),
                ));
            }
        }
    }

    fn check_ref<T>(
        &mut self,
        file: &Path,
        what: &str,
        name: &str,
        defined_here: &BTreeMap<String, T>,
        pos: Pos,
    ) {
        if !defined_here.contains_key(name) {
            self.diagnostics.push(
                Diagnostic::new(
                    format!("{what} `{name}` is not defined in this suite"),
                    file,
                    pos,
                )
                .with_hint(Some(defined(&format!("{what}s"), defined_here.keys()))),
            );
        }
    }

    /// Resolves one prompt entry (inline or include) into `out`.
    fn prompt_entry(
        &mut self,
        file: &Path,
        dir: &Path,
        p: &RawPrompt,
        at: &dyn Fn(&str) -> Pos,
        out: &mut Vec<Prompt>,
    ) {
        let before = out.len();
        self.prompts_of(file, dir, p, at, out);
        if let Some(prefix) = &p.prefix {
            match super::prefix::text(prefix, file, dir, at("/prefix")) {
                Ok(text) => super::prefix::apply(&text, &mut out[before..]),
                Err(diagnostic) => self.diagnostics.push(diagnostic),
            }
        }
    }

    /// The prompts of entry `p`: itself, or those it includes.
    fn prompts_of(
        &mut self,
        file: &Path,
        dir: &Path,
        p: &RawPrompt,
        at: &dyn Fn(&str) -> Pos,
        out: &mut Vec<Prompt>,
    ) {
        if let Some(pattern) = &p.include {
            if p.id.is_some()
                || p.text.is_some()
                || p.messages.is_some()
                || p.system.is_some()
                || !p.checks.is_empty()
                || p.rubric.is_some()
            {
                self.diagnostics.push(Diagnostic::new(
                    "`include` stands alone: move the other keys into the included files",
                    file,
                    at(""),
                ));
                return;
            }
            self.include(file, dir, pattern, at("/include"), out);
            return;
        }
        let Some(id) = &p.id else {
            self.diagnostics.push(
                Diagnostic::new("prompt needs an `id`", file, at(""))
                    .with_hint(Some("for example id: summarize-notes".into())),
            );
            return;
        };
        let messages = match (&p.text, &p.messages) {
            (Some(text), None) => {
                let mut messages = Vec::new();
                if let Some(system) = &p.system {
                    messages.push(Message {
                        role: Role::System,
                        content: system.clone(),
                    });
                }
                messages.push(Message {
                    role: Role::User,
                    content: text.clone(),
                });
                messages
            }
            (None, Some(list)) if p.system.is_none() => list
                .iter()
                .map(|RawMessage { role, content }| Message {
                    role: *role,
                    content: content.clone(),
                })
                .collect(),
            _ => {
                self.diagnostics.push(Diagnostic::new(
                    format!("prompt `{id}` needs either `text` (with an optional `system`) or `messages`"),
                    file,
                    at(""),
                ));
                return;
            }
        };
        let mut checks = p.checks.clone();
        self.compile_checks(
            file,
            dir,
            &mut checks,
            &format!("check of prompt `{id}`"),
            &|suffix: &str| at(&format!("/checks{suffix}")),
        );
        let response_format = p.response_format.as_ref().map(|f| {
            let mut schema = f.schema.clone();
            self.schema_file(
                file,
                dir,
                &mut schema,
                &format!("response_format of prompt `{id}`"),
                at("/response_format/schema/file"),
            );
            let check = crate::quality::CheckSpec {
                json_schema: Some(schema.clone()),
                ..crate::quality::CheckSpec::default()
            };
            if let Err(err) = check.compile() {
                self.diagnostics.push(Diagnostic::new(
                    format!("response_format of prompt `{id}`: {err}"),
                    file,
                    at("/response_format/schema"),
                ));
            }
            crate::suite::ResponseFormat {
                name: f
                    .name
                    .clone()
                    .unwrap_or_else(|| id.replace(|c: char| !c.is_ascii_alphanumeric(), "_")),
                schema,
            }
        });
        out.push(Prompt {
            id: id.clone(),
            messages,
            checks,
            rubric: p.rubric.clone(),
            response_format,
            origin: file.to_path_buf(),
            pos: at("/id"),
        });
    }

    fn include(&mut self, file: &Path, dir: &Path, pattern: &str, pos: Pos, out: &mut Vec<Prompt>) {
        let glob = match files::compile(pattern) {
            Ok(glob) => glob,
            Err(err) => {
                self.diagnostics
                    .push(Diagnostic::new(err.to_string(), file, pos));
                return;
            }
        };
        let matches = files::matching(dir, |path| {
            path.strip_prefix(dir).is_ok_and(|rel| glob.is_match(rel))
        });
        if matches.is_empty() {
            self.diagnostics.push(
                Diagnostic::new(format!("`{pattern}` matches no file"), file, pos)
                    .with_hint(Some(format!("paths are relative to {}", display_dir(dir)))),
            );
            return;
        }
        let schema = raw::prompt_file_schema();
        for path in matches {
            let text = match crate::fsutil::read_text(&path, crate::fsutil::MAX_INPUT_BYTES) {
                Ok(text) => text,
                Err(err) => {
                    self.diagnostics.push(Diagnostic::new(
                        format!("cannot read {}: {err}", path.display()),
                        file,
                        pos,
                    ));
                    continue;
                }
            };
            let Some((root, list)) = self.parse::<Vec<RawPromptItem>>(&path, text, &schema) else {
                continue;
            };
            let sub_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let stem = id_stem(&path);
            for (i, item) in list.into_iter().enumerate() {
                let at = |suffix: &str| {
                    root.lookup(&format!("/{i}{suffix}"))
                        .map_or(root.pos, |n| n.pos)
                };
                let p = match item {
                    RawPromptItem::Prompt(p) => *p,
                    RawPromptItem::Text(text) => RawPrompt {
                        id: Some(format!("{stem}-{}", i + 1)),
                        text: Some(text),
                        ..RawPrompt::default()
                    },
                };
                if p.include.is_some() {
                    self.diagnostics.push(Diagnostic::new(
                        "included prompt files cannot include further files",
                        &path,
                        at("/include"),
                    ));
                    continue;
                }
                self.prompt_entry(&path, &sub_dir, &p, &at, out);
            }
        }
    }
}

/// The id prefix of a prompt file's string items: its file stem, with
/// every character an id may not hold replaced by `-` (`prompts.json` →
/// `prompts`).
fn id_stem(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    if cleaned.is_empty() {
        "prompt".to_string()
    } else {
        cleaned.to_string()
    }
}

fn default_results_dir(suite_dir: &Path, name: &str) -> PathBuf {
    if suite_dir.file_name().is_some_and(|n| n == "suites") {
        suite_dir.join("..").join("results").join(name)
    } else {
        suite_dir.join("results").join(name)
    }
}

fn display_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        ".".into()
    } else {
        dir.display().to_string()
    }
}

fn defined<'a>(what: &str, names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        format!("no {what} are defined")
    } else {
        format!("defined {what}: {}", names.join(", "))
    }
}

/// The `name`s of `{name}` placeholders (lowercase identifiers) in `text`.
fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find('}') {
            let name = &rest[..close];
            if !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                found.push(name);
            }
        }
    }
    found
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// How many PEM `CERTIFICATE` blocks `bytes` holds, each with a base64
/// body; why it is not a PEM certificate file otherwise. The TLS library
/// parses the certificates themselves when a client is built.
fn pem_certificates(bytes: &[u8]) -> Result<usize, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text =
        std::str::from_utf8(bytes).map_err(|_| "is not a PEM file (not text)".to_string())?;
    let mut count = 0;
    let mut rest = text;
    while let Some(begin) = rest.find(BEGIN) {
        let body_and_rest = &rest[begin + BEGIN.len()..];
        let end = body_and_rest
            .find(END)
            .ok_or_else(|| format!("has a `{BEGIN}` line without its `{END}`"))?;
        let body = &body_and_rest[..end];
        let base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
        if body.trim().is_empty() || !body.chars().all(|c| c.is_ascii_whitespace() || base64(c)) {
            return Err(format!(
                "has a certificate #{} that is not base64",
                count + 1
            ));
        }
        count += 1;
        rest = &body_and_rest[end + END.len()..];
    }
    if count == 0 {
        return Err(format!("holds no PEM certificate (no `{BEGIN}` line)"));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::pem_certificates;

    #[test]
    fn pem_files_are_told_from_others() {
        let one = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_certificates(one.as_bytes()), Ok(1));
        assert_eq!(
            pem_certificates(format!("# a bundle\n{one}{one}").as_bytes()),
            Ok(2)
        );
        assert!(
            pem_certificates(b"hello\n")
                .unwrap_err()
                .starts_with("holds no PEM certificate")
        );
        assert!(
            pem_certificates(b"\xff\xfe")
                .unwrap_err()
                .contains("not text")
        );
        let open = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        assert!(
            pem_certificates(open.as_bytes())
                .unwrap_err()
                .contains("without its")
        );
        let junk = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(
            pem_certificates(junk.as_bytes())
                .unwrap_err()
                .contains("not base64")
        );
    }
}
