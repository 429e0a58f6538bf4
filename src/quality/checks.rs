//! Deterministic checks on a model's output: the suite-side spec exactly as
//! written ([`CheckSpec`]), its compiled form ([`Check`]), evaluation against
//! one output ([`CheckResult`]) and the weighted pass rate. JSON schemas are
//! inline (no `$ref` is fetched); nothing here panics on user input.

use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest quoted text (in chars) shown in a label or a reason.
const SHOWN_CHARS: usize = 60;

// ---------------------------------------------------------------------------
// Suite side
// ---------------------------------------------------------------------------

/// One deterministic check on a model's output: exactly one check kind
/// (`contains`, `regex`, `max_words`, …) and, optionally, `case_insensitive`
/// and `weight`. Short form `- contains: retriev`; long form
/// `- { contains: retriev, case_insensitive: true, weight: 2 }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Passes when the output contains this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub contains: Option<String>,
    /// Passes when the output contains at least one of these texts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub contains_any: Option<Vec<String>>,
    /// Passes when the output contains every one of these texts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub contains_all: Option<Vec<String>>,
    /// Passes when the output does not contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub not_contains: Option<String>,
    /// Passes when the output contains none of these texts, e.g. the chat
    /// template tokens a server with the wrong template lets through
    /// (`<|im_start|>`, `<|im_end|>`, `<start_of_turn>`, `<end_of_turn>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub not_contains_any: Option<Vec<String>>,
    /// Passes when this regular expression (Rust `regex` syntax) matches
    /// somewhere in the output; anchor it with `^`/`$` to match the whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Passes when the output, after leading whitespace, begins with this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub starts_with: Option<String>,
    /// Passes when the output equals this text, ignoring leading and trailing
    /// whitespace on both sides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// Passes when the output has at least this many words (split on Unicode
    /// whitespace; at most 10,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10_000_000))]
    pub min_words: Option<u32>,
    /// Passes when the output has at most this many words (split on Unicode
    /// whitespace; at most 10,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10_000_000))]
    pub max_words: Option<u32>,
    /// `true`: passes when the output is one JSON document; surrounding
    /// whitespace is ignored, and so is a `json` code fence around all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("const" = true))]
    pub is_json: Option<bool>,
    /// Passes when the output is JSON (as for `is_json`) that validates against
    /// this JSON schema: written inline, or `{file: PATH}` (relative to the
    /// file the check is written in). Draft 2020-12 unless `$schema` says
    /// otherwise; no remote `$ref`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = ["object", "boolean"]))]
    pub json_schema: Option<Value>,
    /// Compare text ignoring case (default false). Applies to `contains`,
    /// `contains_any`, `contains_all`, `not_contains`, `not_contains_any`,
    /// `starts_with`, `equals` and `regex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_insensitive: Option<bool>,
    /// Weight of this check in the output's pass rate (default 1; 0 reports
    /// the check without counting it; at most 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1_000_000.0))]
    pub weight: Option<f64>,
    /// What the check reads: `answer` (default), the output without a
    /// reasoning model's thinking, or `reasoning`, the thinking alone
    /// (empty when the model did not reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<CheckOf>,
}

/// The part of an output a check reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckOf {
    /// The answer, without the reasoning.
    #[default]
    Answer,
    /// The reasoning that came before the answer.
    Reasoning,
}

/// The check kinds, in the order they are documented.
const KINDS: [&str; 12] = [
    "contains",
    "contains_any",
    "contains_all",
    "not_contains",
    "not_contains_any",
    "regex",
    "starts_with",
    "equals",
    "min_words",
    "max_words",
    "is_json",
    "json_schema",
];

/// One kind key present in a [`CheckSpec`], borrowed.
enum Kind<'a> {
    Contains(&'a str),
    ContainsAny(&'a [String]),
    ContainsAll(&'a [String]),
    NotContains(&'a str),
    NotContainsAny(&'a [String]),
    Regex(&'a str),
    StartsWith(&'a str),
    Equals(&'a str),
    MinWords(u32),
    MaxWords(u32),
    IsJson(bool),
    JsonSchema(&'a Value),
}

impl Kind<'_> {
    /// The YAML key of this kind.
    fn key(&self) -> &'static str {
        match self {
            Kind::Contains(_) => "contains",
            Kind::ContainsAny(_) => "contains_any",
            Kind::ContainsAll(_) => "contains_all",
            Kind::NotContains(_) => "not_contains",
            Kind::NotContainsAny(_) => "not_contains_any",
            Kind::Regex(_) => "regex",
            Kind::StartsWith(_) => "starts_with",
            Kind::Equals(_) => "equals",
            Kind::MinWords(_) => "min_words",
            Kind::MaxWords(_) => "max_words",
            Kind::IsJson(_) => "is_json",
            Kind::JsonSchema(_) => "json_schema",
        }
    }

    /// Whether `case_insensitive` means something for this kind.
    fn compares_text(&self) -> bool {
        !matches!(
            self,
            Kind::MinWords(_) | Kind::MaxWords(_) | Kind::IsJson(_) | Kind::JsonSchema(_)
        )
    }
}

/// Why a [`CheckSpec`] does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CheckError {
    /// The key of the check item at fault (`regex`, `json_schema`, `weight`,
    /// …), or `""` when the item as a whole is at fault (it has no check kind).
    pub field: &'static str,
    /// What is wrong, in one line.
    pub message: String,
}

impl CheckError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl CheckSpec {
    /// The check kinds present, in documented order.
    fn kinds(&self) -> Vec<Kind<'_>> {
        let mut out = Vec::new();
        if let Some(v) = &self.contains {
            out.push(Kind::Contains(v));
        }
        if let Some(v) = &self.contains_any {
            out.push(Kind::ContainsAny(v));
        }
        if let Some(v) = &self.contains_all {
            out.push(Kind::ContainsAll(v));
        }
        if let Some(v) = &self.not_contains {
            out.push(Kind::NotContains(v));
        }
        if let Some(v) = &self.not_contains_any {
            out.push(Kind::NotContainsAny(v));
        }
        if let Some(v) = &self.regex {
            out.push(Kind::Regex(v));
        }
        if let Some(v) = &self.starts_with {
            out.push(Kind::StartsWith(v));
        }
        if let Some(v) = &self.equals {
            out.push(Kind::Equals(v));
        }
        if let Some(v) = self.min_words {
            out.push(Kind::MinWords(v));
        }
        if let Some(v) = self.max_words {
            out.push(Kind::MaxWords(v));
        }
        if let Some(v) = self.is_json {
            out.push(Kind::IsJson(v));
        }
        if let Some(v) = &self.json_schema {
            out.push(Kind::JsonSchema(v));
        }
        out
    }

    #[cfg(test)]
    /// The check kind's key (`"contains"`, `"regex"`, …): the first one
    /// present, or `None` for an item without one.
    pub(crate) fn kind_key(&self) -> Option<&'static str> {
        self.kinds().first().map(Kind::key)
    }

    /// The weight in the pass rate, with the default (1) applied.
    pub fn weight(&self) -> f64 {
        self.weight.unwrap_or(1.0)
    }

    /// Checks the item and compiles it: exactly one kind, a valid regex or
    /// JSON schema, non-empty texts, a finite non-negative weight, and
    /// `case_insensitive` only on kinds that compare text.
    pub fn compile(&self) -> Result<Check, CheckError> {
        let kinds = self.kinds();
        let kind = match kinds.as_slice() {
            [] => {
                return Err(CheckError::new(
                    "",
                    format!("a check needs one of: {}", KINDS.join(", ")),
                ));
            }
            [one] => one,
            [first, second, ..] => {
                return Err(CheckError::new(
                    second.key(),
                    format!(
                        "one check per list item: `{}` and `{}` are both here; write them as two items",
                        first.key(),
                        second.key()
                    ),
                ));
            }
        };
        let weight = self.weight();
        if !weight.is_finite() || weight < 0.0 {
            return Err(CheckError::new(
                "weight",
                format!("weight must be a number >= 0, not {weight}"),
            ));
        }
        let ci = self.case_insensitive.unwrap_or(false);
        if ci && !kind.compares_text() {
            return Err(CheckError::new(
                "case_insensitive",
                format!("case_insensitive does not apply to `{}`", kind.key()),
            ));
        }
        let (rule, label) = compile_kind(kind, ci)?;
        let label = if ci {
            format!("{label} (case-insensitive)")
        } else {
            label
        };
        let of = self.of.unwrap_or_default();
        let label = match of {
            CheckOf::Answer => label,
            CheckOf::Reasoning => format!("reasoning {label}"),
        };
        Ok(Check {
            label,
            weight,
            rule,
            of,
        })
    }
}

/// The rule and the short label of one kind.
fn compile_kind(kind: &Kind<'_>, ci: bool) -> Result<(Rule, String), CheckError> {
    let field = kind.key();
    Ok(match *kind {
        Kind::Contains(text) => (
            Rule::Contains(Literal::new(text, ci, Anchor::None, field)?),
            format!("contains {}", quote(text)),
        ),
        Kind::ContainsAny(texts) => (
            Rule::ContainsAny(literals(texts, ci, field)?),
            format!("contains_any [{}]", quote_list(texts)),
        ),
        Kind::ContainsAll(texts) => (
            Rule::ContainsAll(literals(texts, ci, field)?),
            format!("contains_all [{}]", quote_list(texts)),
        ),
        Kind::NotContains(text) => (
            Rule::NotContains(Literal::new(text, ci, Anchor::None, field)?),
            format!("not_contains {}", quote(text)),
        ),
        Kind::NotContainsAny(texts) => (
            Rule::NotContainsAny(literals(texts, ci, field)?),
            format!("not_contains_any [{}]", quote_list(texts)),
        ),
        Kind::Regex(pattern) => {
            let re = RegexBuilder::new(pattern)
                .case_insensitive(ci)
                .build()
                .map_err(|e| {
                    CheckError::new(field, format!("invalid regex: {}", regex_message(&e)))
                })?;
            (Rule::Regex(re), format!("regex /{}/", shorten(pattern)))
        }
        Kind::StartsWith(text) => (
            Rule::StartsWith(Literal::new(text, ci, Anchor::Start, field)?),
            format!("starts_with {}", quote(text)),
        ),
        Kind::Equals(text) => (
            Rule::Equals(Literal::new(text.trim(), ci, Anchor::Whole, field)?),
            format!("equals {}", quote(text.trim())),
        ),
        Kind::MinWords(n) => (Rule::MinWords(n), format!("min_words {n}")),
        Kind::MaxWords(n) => (Rule::MaxWords(n), format!("max_words {n}")),
        Kind::IsJson(true) => (Rule::IsJson, "is_json".to_string()),
        Kind::IsJson(false) => {
            return Err(CheckError::new(
                field,
                "`is_json: false` checks nothing; write `is_json: true` or remove it",
            ));
        }
        Kind::JsonSchema(schema) => (
            Rule::JsonSchema(Box::new(compile_schema(schema)?)),
            "json_schema".to_string(),
        ),
    })
}

/// Literals for a list kind; the list must not be empty.
fn literals(texts: &[String], ci: bool, field: &'static str) -> Result<Vec<Literal>, CheckError> {
    if texts.is_empty() {
        return Err(CheckError::new(
            field,
            format!("`{field}` needs at least one text"),
        ));
    }
    texts
        .iter()
        .map(|t| Literal::new(t, ci, Anchor::None, field))
        .collect()
}

/// The inline schema, compiled (validated against its meta-schema first).
fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, CheckError> {
    if let Value::Object(map) = schema
        && map.len() == 1
        && map.get("file").is_some_and(Value::is_string)
    {
        return Err(CheckError::new(
            "json_schema",
            "a `file:` schema must be read before compiling (the suite loader reads it)",
        ));
    }
    jsonschema::validator_for(schema).map_err(|e| {
        let at = e.instance_path().as_str();
        let message = if at.is_empty() {
            format!("invalid JSON schema: {e}")
        } else {
            format!("invalid JSON schema at {at}: {e}")
        };
        CheckError::new("json_schema", message)
    })
}

/// The one-line reason of a regex syntax error (regex's own message spans
/// several lines with a caret under the pattern).
fn regex_message(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or(text)
            .to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("the compiled regex is larger than the {limit}-byte limit")
        }
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Compiled checks
// ---------------------------------------------------------------------------

/// A compiled check, ready to evaluate against outputs.
#[derive(Debug, Clone)]
pub struct Check {
    label: String,
    weight: f64,
    rule: Rule,
    of: CheckOf,
}

#[derive(Debug, Clone)]
enum Rule {
    Contains(Literal),
    ContainsAny(Vec<Literal>),
    ContainsAll(Vec<Literal>),
    NotContains(Literal),
    NotContainsAny(Vec<Literal>),
    Regex(Regex),
    StartsWith(Literal),
    Equals(Literal),
    MinWords(u32),
    MaxWords(u32),
    IsJson,
    JsonSchema(Box<jsonschema::Validator>),
}

/// Where a literal must sit in the text.
#[derive(Debug, Clone, Copy)]
enum Anchor {
    None,
    Start,
    Whole,
}

/// A text to find; case-insensitive literals become escaped regexes, so byte
/// offsets refer to the original output.
#[derive(Debug, Clone)]
struct Literal {
    text: String,
    anchor: Anchor,
    folded: Option<Regex>,
}

impl Literal {
    fn new(text: &str, ci: bool, anchor: Anchor, field: &'static str) -> Result<Self, CheckError> {
        if text.is_empty() && !matches!(anchor, Anchor::Whole) {
            return Err(CheckError::new(
                field,
                format!("`{field}` needs a non-empty text (an empty one always matches)"),
            ));
        }
        let folded = if ci {
            let escaped = regex::escape(text);
            let pattern = match anchor {
                Anchor::None => escaped,
                Anchor::Start => format!(r"\A(?:{escaped})"),
                Anchor::Whole => format!(r"\A(?:{escaped})\z"),
            };
            let re = RegexBuilder::new(&pattern)
                .case_insensitive(true)
                .build()
                .map_err(|e| CheckError::new(field, regex_message(&e)))?;
            Some(re)
        } else {
            None
        };
        Ok(Self {
            text: text.to_string(),
            anchor,
            folded,
        })
    }

    /// Byte offset and matched text of the first occurrence, honouring the
    /// anchor.
    fn find<'t>(&self, hay: &'t str) -> Option<(usize, &'t str)> {
        if let Some(re) = &self.folded {
            return re.find(hay).map(|m| (m.start(), m.as_str()));
        }
        let found = match self.anchor {
            Anchor::None => hay.find(&self.text),
            Anchor::Start => hay.starts_with(&self.text).then_some(0),
            Anchor::Whole => (hay == self.text).then_some(0),
        }?;
        hay.get(found..found + self.text.len()).map(|m| (found, m))
    }
}

/// The outcome of one check on one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckResult {
    /// Short label of the check, e.g. `contains "retriev"`.
    pub check: String,
    /// Whether the output passed.
    pub passed: bool,
    /// Why it passed or failed, e.g. `found "retriev" at byte 10`,
    /// `missing "retriev"`, `83 words > 80`.
    pub reason: String,
    /// The check's weight in the pass rate.
    pub weight: f64,
}

impl Check {
    /// Short label, e.g. `contains "retriev"` or `max_words 80`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Weight in the pass rate.
    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// The part of an output the check reads.
    pub fn of(&self) -> CheckOf {
        self.of
    }

    /// Runs the check on one output text.
    pub fn evaluate(&self, text: &str) -> CheckResult {
        let (passed, reason) = self.judge(text);
        CheckResult {
            check: self.label.clone(),
            passed,
            reason,
            weight: self.weight,
        }
    }

    fn judge(&self, text: &str) -> (bool, String) {
        match &self.rule {
            Rule::Contains(lit) => match lit.find(text) {
                Some((at, m)) => (true, format!("found {} at byte {at}", quote(m))),
                None => (false, format!("missing {}", quote(&lit.text))),
            },
            Rule::ContainsAny(lits) => {
                if let Some((at, m)) = lits.iter().find_map(|l| l.find(text)) {
                    (true, format!("found {} at byte {at}", quote(m)))
                } else {
                    let all: Vec<&str> = lits.iter().map(|l| l.text.as_str()).collect();
                    (false, format!("none of {} found", quote_list(&all)))
                }
            }
            Rule::ContainsAll(lits) => {
                let missing: Vec<&str> = lits
                    .iter()
                    .filter(|l| l.find(text).is_none())
                    .map(|l| l.text.as_str())
                    .collect();
                if missing.is_empty() {
                    (true, format!("all {} found", lits.len()))
                } else {
                    (
                        false,
                        format!(
                            "missing {} ({} of {})",
                            quote_list(&missing),
                            missing.len(),
                            lits.len()
                        ),
                    )
                }
            }
            Rule::NotContains(lit) => match lit.find(text) {
                Some((at, m)) => (false, format!("found {} at byte {at}", quote(m))),
                None => (true, format!("no {}", quote(&lit.text))),
            },
            Rule::NotContainsAny(lits) => {
                // The earliest occurrence of any of them is the one to show.
                match lits
                    .iter()
                    .filter_map(|l| l.find(text))
                    .min_by_key(|(at, _)| *at)
                {
                    Some((at, m)) => (false, format!("found {} at byte {at}", quote(m))),
                    None => (true, format!("none of {} found", lits.len())),
                }
            }
            Rule::Regex(re) => match re.find(text) {
                Some(m) => (
                    true,
                    format!("matched {} at byte {}", quote(m.as_str()), m.start()),
                ),
                None => (false, "no match".to_string()),
            },
            Rule::StartsWith(lit) => {
                let body = text.trim_start();
                if let Some((_, m)) = lit.find(body) {
                    (true, format!("starts with {}", quote(m)))
                } else {
                    let head = prefix_chars(body, lit.text.chars().count().max(1));
                    (false, format!("starts with {} instead", quote(head)))
                }
            }
            Rule::Equals(lit) => {
                let body = text.trim();
                match lit.find(body) {
                    Some(_) => (true, "equal".to_string()),
                    None => (false, format!("output is {}", quote(body))),
                }
            }
            Rule::MinWords(min) => {
                let n = word_count(text);
                if n >= u64::from(*min) {
                    (true, format!("{} >= {min}", words(n)))
                } else {
                    (false, format!("{} < {min}", words(n)))
                }
            }
            Rule::MaxWords(max) => {
                let n = word_count(text);
                if n <= u64::from(*max) {
                    (true, format!("{} <= {max}", words(n)))
                } else {
                    (false, format!("{} > {max}", words(n)))
                }
            }
            Rule::IsJson => match parse_json_output(text) {
                Ok((value, fenced)) => (
                    true,
                    format!("valid JSON {}{}", json_kind(&value), fence_note(fenced)),
                ),
                Err(e) => (false, format!("not JSON: {e}")),
            },
            Rule::JsonSchema(validator) => match parse_json_output(text) {
                Ok((value, fenced)) => schema_verdict(validator, &value, fenced),
                Err(e) => (false, format!("not JSON: {e}")),
            },
        }
    }
}

/// A JSON output held against a schema: the first violation (and how many
/// more), or what matched.
fn schema_verdict(
    validator: &jsonschema::Validator,
    value: &Value,
    fenced: bool,
) -> (bool, String) {
    let mut errors = validator.iter_errors(value);
    match errors.next() {
        None => (
            true,
            format!(
                "JSON {}{} matches the schema",
                json_kind(value),
                fence_note(fenced)
            ),
        ),
        Some(first) => {
            let path = first.instance_path().as_str();
            let at = if path.is_empty() { "(root)" } else { path };
            let more = match errors.count() {
                0 => String::new(),
                1 => " (and 1 more error)".to_string(),
                n => format!(" (and {n} more errors)"),
            };
            (false, format!("schema violation at {at}: {first}{more}"))
        }
    }
}

/// Words in `text`: runs of non-whitespace between Unicode whitespace.
fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn words(n: u64) -> String {
    if n == 1 {
        "1 word".to_string()
    } else {
        format!("{n} words")
    }
}

fn fence_note(fenced: bool) -> &'static str {
    if fenced { " in a ```json fence" } else { "" }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The output as one JSON document: the whole text after trimming, or the
/// body of a single ```` ```json ```` (or bare ```` ``` ````) fence that is
/// the whole text. The flag says whether it was fenced.
fn parse_json_output(text: &str) -> Result<(Value, bool), serde_json::Error> {
    let trimmed = text.trim();
    if let Some(body) = sole_fence(trimmed) {
        return serde_json::from_str(body).map(|v| (v, true));
    }
    serde_json::from_str(trimmed).map(|v| (v, false))
}

/// The body of the fenced block that makes up all of `text`, if it is one.
fn sole_fence(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("```")?;
    let (info, body) = rest.split_once('\n')?;
    let info = info.trim();
    if !(info.is_empty() || info.eq_ignore_ascii_case("json")) {
        return None;
    }
    let body = body.trim_end().strip_suffix("```")?;
    (!body.contains("```")).then_some(body)
}

/// The weighted share of passed checks (0–1); `None` when there are no
/// results or their weights sum to zero. Negative or non-finite weights
/// count as zero.
pub(crate) fn pass_rate(results: &[CheckResult]) -> Option<f64> {
    let weight = |r: &CheckResult| {
        if r.weight.is_finite() && r.weight > 0.0 {
            r.weight
        } else {
            0.0
        }
    };
    let total: f64 = results.iter().map(weight).sum();
    if total <= 0.0 {
        return None;
    }
    let passed: f64 = results.iter().filter(|r| r.passed).map(weight).sum();
    Some(passed / total)
}

/// The first `n` chars of `s`.
fn prefix_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `s` cut to [`SHOWN_CHARS`] chars, with `…` when cut.
fn shorten(s: &str) -> String {
    let head = prefix_chars(s, SHOWN_CHARS);
    if head.len() < s.len() {
        format!("{head}…")
    } else {
        head.to_string()
    }
}

/// `s` in double quotes with escapes (`"a\nb"`), cut to [`SHOWN_CHARS`] chars.
fn quote(s: &str) -> String {
    let head = prefix_chars(s, SHOWN_CHARS);
    if head.len() < s.len() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

fn quote_list<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| quote(s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::JudgeScale;
    use serde_json::json;

    fn spec(value: Value) -> CheckSpec {
        serde_json::from_value(value).expect("check spec deserializes")
    }

    fn run(value: Value, text: &str) -> CheckResult {
        spec(value)
            .compile()
            .expect("check compiles")
            .evaluate(text)
    }

    fn compile_err(value: Value) -> CheckError {
        spec(value).compile().expect_err("check must not compile")
    }

    #[track_caller]
    fn assert_result(r: &CheckResult, passed: bool, reason: &str) {
        assert_eq!(r.passed, passed, "{r:?}");
        assert_eq!(r.reason, reason, "{r:?}");
    }

    const TEXT: &str = "We use retrieval-augmented generation here.";

    #[test]
    fn contains() {
        let r = run(json!({"contains": "retriev"}), TEXT);
        assert_eq!(r.check, r#"contains "retriev""#);
        assert_eq!(r.weight, 1.0);
        assert_result(&r, true, r#"found "retriev" at byte 7"#);
        let r = run(json!({"contains": "Retriev"}), TEXT);
        assert_result(&r, false, r#"missing "Retriev""#);
    }

    #[test]
    fn contains_case_insensitive() {
        let r = run(
            json!({"contains": "RETRIEV", "case_insensitive": true}),
            TEXT,
        );
        assert_eq!(r.check, r#"contains "RETRIEV" (case-insensitive)"#);
        assert_result(&r, true, r#"found "retriev" at byte 7"#);
        // Offsets are bytes of the original text, even past multi-byte chars.
        let r = run(
            json!({"contains": "straße", "case_insensitive": true}),
            "Één STRASSE, één STRAẞE",
        );
        assert_result(&r, true, r#"found "STRAẞE" at byte 21"#);
        let r = run(json!({"contains": "xyz", "case_insensitive": true}), TEXT);
        assert_result(&r, false, r#"missing "xyz""#);
    }

    #[test]
    fn contains_any() {
        let r = run(json!({"contains_any": ["vector", "generation"]}), TEXT);
        assert_eq!(r.check, r#"contains_any ["vector", "generation"]"#);
        assert_result(&r, true, r#"found "generation" at byte 27"#);
        let r = run(json!({"contains_any": ["vector", "index"]}), TEXT);
        assert_result(&r, false, r#"none of "vector", "index" found"#);
        let r = run(
            json!({"contains_any": ["VECTOR", "WE USE"], "case_insensitive": true}),
            TEXT,
        );
        assert_result(&r, true, r#"found "We use" at byte 0"#);
    }

    #[test]
    fn contains_all() {
        let r = run(json!({"contains_all": ["We", "generation"]}), TEXT);
        assert_result(&r, true, "all 2 found");
        let r = run(json!({"contains_all": ["We", "vector", "index"]}), TEXT);
        assert_result(&r, false, r#"missing "vector", "index" (2 of 3)"#);
        let r = run(
            json!({"contains_all": ["we", "GENERATION"], "case_insensitive": true}),
            TEXT,
        );
        assert_result(&r, true, "all 2 found");
    }

    #[test]
    fn not_contains() {
        let r = run(json!({"not_contains": "As an AI"}), TEXT);
        assert_eq!(r.check, r#"not_contains "As an AI""#);
        assert_result(&r, true, r#"no "As an AI""#);
        let r = run(json!({"not_contains": "here"}), TEXT);
        assert_result(&r, false, r#"found "here" at byte 38"#);
        let r = run(
            json!({"not_contains": "HERE", "case_insensitive": true}),
            TEXT,
        );
        assert_result(&r, false, r#"found "here" at byte 38"#);
    }

    #[test]
    fn not_contains_any_names_the_first_template_token() {
        let tokens = json!({"not_contains_any": ["<|im_end|>", "<|im_start|>", "<end_of_turn>"]});
        let r = run(tokens.clone(), TEXT);
        assert_eq!(
            r.check,
            r#"not_contains_any ["<|im_end|>", "<|im_start|>", "<end_of_turn>"]"#
        );
        assert_result(&r, true, "none of 3 found");
        let echoed = "Explain RAG.<|im_start|>user\nExplain RAG.<|im_end|>";
        let r = run(tokens, echoed);
        assert_result(&r, false, r#"found "<|im_start|>" at byte 12"#);
        let r = run(
            json!({"not_contains_any": ["AS AN AI"], "case_insensitive": true}),
            "As an AI, I cannot.",
        );
        assert_result(&r, false, r#"found "As an AI" at byte 0"#);
    }

    #[test]
    fn regex() {
        let r = run(json!({"regex": r"^\d+"}), "42 apples");
        assert_eq!(r.check, r"regex /^\d+/");
        assert_result(&r, true, r#"matched "42" at byte 0"#);
        let r = run(json!({"regex": r"^\d+"}), "apples: 42");
        assert_result(&r, false, "no match");
        let r = run(
            json!({"regex": "APPLE", "case_insensitive": true}),
            "apples: 42",
        );
        assert_eq!(r.check, "regex /APPLE/ (case-insensitive)");
        assert_result(&r, true, r#"matched "apple" at byte 0"#);
    }

    #[test]
    fn starts_with() {
        let r = run(json!({"starts_with": "Yes"}), "  Yes, it does.");
        assert_result(&r, true, r#"starts with "Yes""#);
        let r = run(json!({"starts_with": "Yes"}), "Sure! Yes.");
        assert_result(&r, false, r#"starts with "Sur" instead"#);
        let r = run(
            json!({"starts_with": "yes", "case_insensitive": true}),
            "YES.",
        );
        assert_result(&r, true, r#"starts with "YES""#);
        let r = run(
            json!({"starts_with": "yes", "case_insensitive": true}),
            "oh yes",
        );
        assert_result(&r, false, r#"starts with "oh " instead"#);
    }

    #[test]
    fn equals() {
        let r = run(json!({"equals": "Paris"}), "Paris\n");
        assert_eq!(r.check, r#"equals "Paris""#);
        assert_result(&r, true, "equal");
        let r = run(json!({"equals": "Paris"}), "Paris, France");
        assert_result(&r, false, r#"output is "Paris, France""#);
        let r = run(
            json!({"equals": "paris", "case_insensitive": true}),
            " PARIS ",
        );
        assert_result(&r, true, "equal");
        let r = run(
            json!({"equals": "paris", "case_insensitive": true}),
            "PARISIAN",
        );
        assert_result(&r, false, r#"output is "PARISIAN""#);
    }

    #[test]
    fn word_limits() {
        let r = run(json!({"min_words": 3}), "one two\tthree\u{3000}four");
        assert_eq!(r.check, "min_words 3");
        assert_result(&r, true, "4 words >= 3");
        let r = run(json!({"min_words": 3}), "single");
        assert_result(&r, false, "1 word < 3");
        let r = run(json!({"max_words": 2}), "one two");
        assert_result(&r, true, "2 words <= 2");
        let long = vec!["w"; 83].join(" ");
        let r = run(json!({"max_words": 80}), &long);
        assert_result(&r, false, "83 words > 80");
    }

    #[test]
    fn is_json() {
        let r = run(json!({"is_json": true}), " {\"a\": [1, 2]}\n");
        assert_eq!(r.check, "is_json");
        assert_result(&r, true, "valid JSON object");
        let r = run(json!({"is_json": true}), "```json\n[1, 2]\n```\n");
        assert_result(&r, true, "valid JSON array in a ```json fence");
        let r = run(json!({"is_json": true}), "Here it is: {\"a\": 1}");
        assert_result(&r, false, "not JSON: expected value at line 1 column 1");
        // Prose around a fence is not a JSON output.
        let r = run(json!({"is_json": true}), "Sure:\n```json\n{}\n```");
        assert!(!r.passed);
    }

    #[test]
    fn json_schema() {
        let schema = json!({
            "json_schema": {
                "type": "object",
                "required": ["name", "tags"],
                "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}
            }
        });
        let r = run(schema.clone(), r#"{"name": "x", "tags": ["a"]}"#);
        assert_eq!(r.check, "json_schema");
        assert_result(&r, true, "JSON object matches the schema");
        let r = run(
            schema.clone(),
            "```json\n{\"name\": \"x\", \"tags\": []}\n```",
        );
        assert_result(
            &r,
            true,
            "JSON object in a ```json fence matches the schema",
        );
        let r = run(schema.clone(), r#"{"name": "x", "tags": ["a", 3]}"#);
        assert_result(
            &r,
            false,
            r#"schema violation at /tags/1: 3 is not of type "string""#,
        );
        let r = run(schema.clone(), r#"{"name": 1}"#);
        assert!(!r.passed);
        assert!(r.reason.ends_with("(and 1 more error)"), "{}", r.reason);
        let r = run(schema, "nope");
        assert_result(&r, false, "not JSON: expected ident at line 1 column 2");
    }

    #[test]
    fn weights_and_pass_rate() {
        let checks = [
            json!({"contains": "retriev", "weight": 3}),
            json!({"contains": "missing", "weight": 1}),
            json!({"max_words": 1, "weight": 0}),
        ];
        let results: Vec<CheckResult> = checks.into_iter().map(|c| run(c, TEXT)).collect();
        assert_eq!(results[0].weight, 3.0);
        assert_eq!(pass_rate(&results), Some(0.75));
        assert_eq!(pass_rate(&[]), None);
        assert_eq!(pass_rate(&results[2..]), None);
        let unweighted: Vec<CheckResult> = [json!({"contains": "We"}), json!({"contains": "no"})]
            .into_iter()
            .map(|c| run(c, TEXT))
            .collect();
        assert_eq!(pass_rate(&unweighted), Some(0.5));
    }

    #[test]
    fn compile_errors_name_the_field() {
        let e = compile_err(json!({"regex": "(unclosed"}));
        assert_eq!(e.field, "regex");
        assert_eq!(e.message, "invalid regex: unclosed group");
        let e = compile_err(json!({"json_schema": {"type": "objekt"}}));
        assert_eq!(e.field, "json_schema");
        assert!(
            e.message.starts_with("invalid JSON schema at /type: "),
            "{e}"
        );
        let e = compile_err(json!({"json_schema": {"minLength": "three"}}));
        assert_eq!(e.field, "json_schema");
        assert!(e.message.contains("/minLength"), "{e}");
        let e = compile_err(json!({"json_schema": {"file": "schemas/x.json"}}));
        assert_eq!(e.field, "json_schema");
        assert!(e.message.contains("file:"), "{e}");
        let e = compile_err(json!({}));
        assert_eq!(e.field, "");
        assert!(
            e.message.starts_with("a check needs one of: contains, "),
            "{e}"
        );
        let e = compile_err(json!({"weight": 2}));
        assert_eq!(e.field, "");
        let e = compile_err(json!({"contains": "a", "regex": "b"}));
        assert_eq!(e.field, "regex");
        assert_eq!(
            e.message,
            "one check per list item: `contains` and `regex` are both here; write them as two items"
        );
        let e = compile_err(json!({"max_words": 3, "case_insensitive": true}));
        assert_eq!(e.field, "case_insensitive");
        assert_eq!(e.message, "case_insensitive does not apply to `max_words`");
        let e = compile_err(json!({"contains": "a", "weight": -1}));
        assert_eq!(e.field, "weight");
        let e = compile_err(json!({"contains": ""}));
        assert_eq!(e.field, "contains");
        let e = compile_err(json!({"contains_any": []}));
        assert_eq!(e.field, "contains_any");
        let e = compile_err(json!({"contains_all": ["a", ""]}));
        assert_eq!(e.field, "contains_all");
        let e = compile_err(json!({"is_json": false}));
        assert_eq!(e.field, "is_json");
    }

    #[test]
    fn deserializes_short_and_long_forms() {
        let items: Vec<CheckSpec> = serde_json::from_value(json!([
            {"contains": "retriev"},
            {"contains_any": ["a", "b"]},
            {"regex": "^\\d+"},
            {"max_words": 80},
            {"is_json": true},
            {"json_schema": {"type": "object"}},
            {"contains": "foo", "case_insensitive": true, "weight": 2},
        ]))
        .expect("deserializes");
        assert_eq!(items[0].contains.as_deref(), Some("retriev"));
        assert_eq!(items[0].weight(), 1.0);
        assert_eq!(items[3].max_words, Some(80));
        assert_eq!(items[5].kind_key(), Some("json_schema"));
        assert_eq!(
            items[6],
            CheckSpec {
                contains: Some("foo".into()),
                case_insensitive: Some(true),
                weight: Some(2.0),
                ..CheckSpec::default()
            }
        );
        for item in &items {
            item.compile().expect("compiles");
        }
        // Serializing writes only what was set.
        assert_eq!(
            serde_json::to_value(&items[6]).expect("serializes"),
            json!({"contains": "foo", "case_insensitive": true, "weight": 2.0})
        );
    }

    #[test]
    fn deserialization_errors() {
        let err = serde_json::from_value::<CheckSpec>(json!({"contain": "x"}))
            .expect_err("unknown key")
            .to_string();
        assert!(
            err.starts_with("unknown field `contain`, expected one of `contains`"),
            "{err}"
        );
        let err = serde_json::from_value::<CheckSpec>(json!({"max_words": "eighty"}))
            .expect_err("wrong type")
            .to_string();
        assert!(err.contains("expected u32"), "{err}");
        assert!(serde_json::from_value::<CheckSpec>(json!("contains")).is_err());
    }

    #[test]
    fn schema_accepts_the_shapes() {
        let schema = serde_json::to_value(schemars::schema_for!(Vec<CheckSpec>)).expect("schema");
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        let good = json!([
            {"contains": "retriev"},
            {"contains_any": ["a", "b"], "weight": 0.5},
            {"json_schema": {"type": "object"}},
            {"json_schema": true},
            {"is_json": true},
            {"regex": "x", "case_insensitive": true},
        ]);
        assert!(validator.is_valid(&good));
        for bad in [
            json!([{"contain": "x"}]),
            json!([{"is_json": false}]),
            json!([{"max_words": -1}]),
            json!([{"contains_any": []}]),
            json!([{"json_schema": "x"}]),
            json!([{"contains": "x", "weight": -2}]),
        ] {
            assert!(!validator.is_valid(&bad), "{bad}");
        }
        let scale = serde_json::to_value(schemars::schema_for!(JudgeScale)).expect("schema");
        assert_eq!(scale["type"], "string");
        assert!(scale["pattern"].is_string());
    }
}
