//! Parsing one YAML file: its source kept for diagnostics, `${VAR}`
//! interpolation on the position-carrying tree, and schema errors mapped
//! back to the node (and key) they are about.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::TemplateCheck;
use super::diag::Diagnostic;
use super::node::{Node, Pos};

pub(super) struct Loader<'e> {
    pub(super) env: &'e dyn Fn(&str) -> Option<String>,
    pub(super) diagnostics: Vec<Diagnostic>,
    pub(super) sources: BTreeMap<PathBuf, String>,
    pub(super) outputs: OutputsCheck<'e>,
    /// The secret values met so far (see [`crate::secrets`]).
    pub(super) secrets: crate::secrets::Secrets,
}

/// Whether resolving also checks the outputs a run would write.
pub(super) enum OutputsCheck<'e> {
    /// Commands that write nothing (`plan`, `check`, `models`).
    Skip,
    /// `validate`: `outputs.dir` can be written and `templates` finds
    /// nothing wrong with any template listed.
    Check { templates: TemplateCheck<'e> },
}

impl Loader<'_> {
    /// Parses, interpolates and schema-checks one file; returns its tree and
    /// the typed value when it is sound.
    pub(super) fn parse<T: serde::de::DeserializeOwned>(
        &mut self,
        file: &Path,
        text: String,
        schema: &serde_json::Value,
    ) -> Option<(Node, T)> {
        self.sources.insert(file.to_path_buf(), text);
        let text = self.sources.get(file).map_or("", String::as_str);
        let mut root = match Node::parse(text) {
            Ok(root) => root,
            Err(err) => {
                let pos = err.location().map_or(Pos::default(), |l| Pos {
                    line: usize::try_from(l.line()).unwrap_or(0),
                    col: usize::try_from(l.column()).unwrap_or(0),
                    len: 1,
                });
                let message = yaml_message(&err);
                self.diagnostics.push(Diagnostic::new(message, file, pos));
                return None;
            }
        };
        let before = self.diagnostics.len();
        for (pos, err) in root.interpolate(self.env, &mut self.secrets) {
            let hint = Some(err.hint());
            self.diagnostics
                .push(Diagnostic::new(err.to_string(), file, pos).with_hint(hint));
        }
        let json = root.to_json();
        self.schema_errors(file, &root, &json, schema);
        if self.diagnostics.len() > before {
            return None;
        }
        match serde_json::from_value::<T>(json) {
            Ok(value) => Some((root, value)),
            Err(err) => {
                self.diagnostics
                    .push(Diagnostic::new(err.to_string(), file, root.pos));
                None
            }
        }
    }

    fn schema_errors(
        &mut self,
        file: &Path,
        root: &Node,
        json: &serde_json::Value,
        schema: &serde_json::Value,
    ) {
        let validator = match jsonschema::validator_for(schema) {
            Ok(v) => v,
            Err(err) => {
                self.diagnostics.push(Diagnostic::new(
                    format!("internal error: the suite schema does not compile: {err}"),
                    file,
                    root.pos,
                ));
                return;
            }
        };
        let mut found: Vec<Diagnostic> = Vec::new();
        for err in validator.iter_errors(json) {
            let pointer = err.instance_path().as_str().to_string();
            let node = root.lookup(&pointer).unwrap_or(root);
            let at = display_pointer(&pointer);
            match err.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let allowed = allowed_keys(schema, err.schema_path().as_str());
                    for key in unexpected {
                        let pos = node.key(key).map_or(node.pos, |k| k.pos);
                        found.push(
                            Diagnostic::new(format!("unknown key `{key}` in {at}"), file, pos)
                                .with_hint(allowed.clone()),
                        );
                    }
                }
                _ => found.push(Diagnostic::new(
                    format!("{} at {at}", schema_message(&err)),
                    file,
                    node.pos,
                )),
            }
        }
        found.sort_by_key(|d| (d.pos.line, d.pos.col));
        found.dedup();
        self.diagnostics.extend(found);
    }
}

/// `/models/0/id` → `models[0].id`; the root is `the suite`.
fn display_pointer(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        if token.parse::<usize>().is_ok() {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token.replace("~1", "/").replace("~0", "~"));
        }
    }
    if out.is_empty() {
        "the top level".into()
    } else {
        format!("`{out}`")
    }
}

/// The property names allowed where an `additionalProperties` error fired.
fn allowed_keys(schema: &serde_json::Value, schema_path: &str) -> Option<String> {
    let object_path = schema_path.strip_suffix("/additionalProperties")?;
    let mut node = schema.pointer(object_path)?;
    if let Some(reference) = node.get("$ref").and_then(|r| r.as_str()) {
        node = schema.pointer(reference.strip_prefix('#')?)?;
    }
    let keys: Vec<&str> = node
        .get("properties")?
        .as_object()?
        .keys()
        .map(String::as_str)
        .collect();
    Some(format!("allowed keys: {}", keys.join(", ")))
}

/// jsonschema's message, made plainer for the common cases.
fn schema_message(err: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match err.kind() {
        K::Required { property } => format!("missing required key {property}"),
        _ => err.to_string(),
    }
}

/// The parser's message without its own snippet (ours follows).
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let first = first.split(" at line ").next().unwrap_or(first);
    format!("invalid YAML: {first}")
}
