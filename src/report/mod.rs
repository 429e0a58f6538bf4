//! Reports: pure rendering of a results document through minijinja templates;
//! results in, bytes out. Never reads results or writes files itself (the
//! only file access is reading `<name>.j2` templates from an override
//! directory).
//!
//! The environment is strict about undefined values, never auto-escapes
//! (the outputs are Markdown and CSV), uses `trim_blocks`, `lstrip_blocks`
//! and `keep_trailing_newline`, runs on a fuel budget (a template that loops
//! without end fails with a clear error instead of hanging), and adds the filters `ms`, `num`, `pct`,
//! `md`, `csv`, `fence`, and for the HTML pages `html` (text escaped for
//! HTML) and `json` (a value as JSON that is safe inside a `<script>`). Every number a default template prints goes
//! through one of the fixed-format filters, from [`format`](mod@format)
//! (which formats every number dyno prints), so output is byte-stable.

pub(crate) mod charts;
pub mod context;
pub(crate) mod context_charts;
pub(crate) mod fleet_charts;
pub(crate) mod format;
pub(crate) mod load_charts;
pub(crate) mod page;

use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use format::MISSING;
pub use format::{ms, num, pct};

/// The built-in templates: `(name, source)`.
pub(crate) const DEFAULT_TEMPLATES: &[(&str, &str)] = &[
    ("report.md", include_str!("../../templates/report.md.j2")),
    (
        "results.csv",
        include_str!("../../templates/results.csv.j2"),
    ),
    ("compare.md", include_str!("../../templates/compare.md.j2")),
    ("judge.md", include_str!("../../templates/judge.md.j2")),
    ("load.md", include_str!("../../templates/load.md.j2")),
    (
        "report.html",
        include_str!("../../templates/report.html.j2"),
    ),
    (
        "compare.html",
        include_str!("../../templates/compare.html.j2"),
    ),
    ("page.css", include_str!("../../templates/page.css")),
    ("page.js", include_str!("../../templates/page.js")),
];

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The template failed to load, compile or render.
    #[error("template `{template}`{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Template {
        template: String,
        line: Option<usize>,
        message: String,
    },
    /// No default template and no `<name>.j2` in the override directory.
    #[error("unknown template `{name}` (available: {available})")]
    Unknown { name: String, available: String },
    /// The directory the reports go to cannot be written.
    #[error("cannot write reports to {}: {reason}", dir.display())]
    Destination { dir: PathBuf, reason: String },
}

/// What [`check`] finds, as a suite's `outputs.templates` check reports it
/// (see `suite::load_checked`).
impl From<ReportError> for crate::suite::TemplateFault {
    fn from(err: ReportError) -> Self {
        match err {
            ReportError::Unknown { .. } => Self::Unknown(err.to_string()),
            _ => Self::Broken(err.to_string()),
        }
    }
}

/// The templates a run renders: `templates`, with `report.html` after
/// `report.md` where it is not named already, so the page is written next
/// to the Markdown report by default.
pub fn with_pages(templates: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(templates.len() + 1);
    for name in templates {
        out.push(name.clone());
        if name == "report.md" && !templates.iter().any(|t| t == "report.html") {
            out.push("report.html".to_string());
        }
    }
    out
}

/// The work one render may do, in minijinja fuel (about one instruction,
/// or 64 bytes of data, each): the built-in templates use about 10,000 for
/// the quickstart run (64 requests), so this leaves room for runs thousands
/// of times larger, while a template that loops without end stops after
/// seconds and at most about 3 GB of template data.
pub(crate) const FUEL: u64 = 50_000_000;

/// Checks that `name` can be rendered: it is a built-in template or a
/// `<name>.j2` in `override_dir`, and it (with everything it includes)
/// compiles. Renders nothing.
pub fn check(name: &str, override_dir: Option<&Path>) -> Result<(), ReportError> {
    let env = environment(override_dir.map(Path::to_path_buf));
    template(&env, name, override_dir).map(|_| ())
}

/// What a run checks before its first request: the reports' directory can
/// be written (or created) and every template in `templates` can be
/// rendered (see [`check`]).
pub(crate) fn preflight(
    dir: &Path,
    templates: &[String],
    override_dir: Option<&Path>,
) -> Result<(), ReportError> {
    if let Some(reason) = crate::fsutil::unwritable_dir(dir) {
        return Err(ReportError::Destination {
            dir: dir.to_path_buf(),
            reason,
        });
    }
    templates
        .iter()
        .try_for_each(|name| check(name, override_dir))
}

/// The compiled template `name` of `env`.
fn template<'env>(
    env: &'env Environment<'static>,
    name: &str,
    override_dir: Option<&Path>,
) -> Result<minijinja::Template<'env, 'env>, ReportError> {
    let unknown = || ReportError::Unknown {
        name: name.to_string(),
        available: available(override_dir),
    };
    if !is_plain_name(name) {
        return Err(unknown());
    }
    match env.get_template(name) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == ErrorKind::TemplateNotFound => Err(unknown()),
        Err(e) => Err(template_error(name, &e)),
    }
}

/// Renders `name` ("report.md" or "results.csv", or a file name found in
/// `override_dir` as `<name>.j2`) with `ctx` serialized as the template
/// context. A `<name>.j2` in `override_dir` wins over the built-in template
/// of the same name; templates may `include`/`import` each other by name.
pub fn render(
    name: &str,
    ctx: &impl serde::Serialize,
    override_dir: Option<&Path>,
) -> Result<String, ReportError> {
    render_value(name, Value::from(Serde(ctx)), override_dir)
}

/// [`render`] with a context already made into a template value (such as
/// [`context::of_results`], shared by every report of a run).
pub fn render_value(
    name: &str,
    ctx: Value,
    override_dir: Option<&Path>,
) -> Result<String, ReportError> {
    let env = environment(override_dir.map(Path::to_path_buf));
    template(&env, name, override_dir)?
        .render(ctx)
        .map_err(|e| template_error(name, &e))
}

/// The configured environment; templates come from `override_dir` first,
/// then from [`DEFAULT_TEMPLATES`].
fn environment(override_dir: Option<PathBuf>) -> Environment<'static> {
    let mut env = Environment::new();
    let mut syntax = SyntaxConfig::builder();
    syntax
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true);
    // The builder only fails on bad custom delimiters; none are set.
    if let Ok(syntax) = syntax.build() {
        env.set_syntax(syntax);
    }
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // Debug mode makes errors name the undefined expression.
    env.set_debug(true);
    env.set_fuel(Some(FUEL));
    env.add_filter("ms", ms);
    env.add_filter("num", num);
    env.add_filter("pct", pct);
    env.add_filter("md", md);
    env.add_filter("csv", csv);
    env.add_filter("fence", fence);
    env.add_filter("html", html);
    env.add_filter("json", json);
    env.set_loader(move |name| template_source(name, override_dir.as_deref()));
    env
}

fn template_source(
    name: &str,
    override_dir: Option<&Path>,
) -> Result<Option<String>, minijinja::Error> {
    if !is_plain_name(name) {
        return Ok(None);
    }
    if let Some(dir) = override_dir {
        let path = dir.join(format!("{name}.j2"));
        match crate::fsutil::read_text(&path, crate::fsutil::MAX_INPUT_BYTES) {
            Ok(source) => return Ok(Some(source)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        }
    }
    Ok(DEFAULT_TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, source)| (*source).to_string()))
}

/// A bare file name: no separators, not hidden, not `..`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).file_name() == Some(std::ffi::OsStr::new(name))
}

/// The names `render` accepts, sorted, comma-separated.
fn available(override_dir: Option<&Path>) -> String {
    let mut names: Vec<String> = DEFAULT_TEMPLATES
        .iter()
        .map(|(n, _)| (*n).to_string())
        .collect();
    if let Some(entries) = override_dir.and_then(|d| std::fs::read_dir(d).ok()) {
        names.extend(entries.filter_map(|e| {
            let file = e.ok()?.file_name().into_string().ok()?;
            let stem = file.strip_suffix(".j2")?;
            is_plain_name(stem).then(|| stem.to_string())
        }));
    }
    names.sort();
    names.dedup();
    names.join(", ")
}

fn template_error(name: &str, err: &minijinja::Error) -> ReportError {
    let mut message = match (err.kind(), err.detail()) {
        (ErrorKind::UndefinedError, Some(detail)) => {
            undefined_message(detail).unwrap_or_else(|| format!("{}: {detail}", err.kind()))
        }
        (ErrorKind::OutOfFuel, _) => format!(
            "the template did more work than dyno allows ({FUEL} steps of minijinja fuel); \
             look for a loop that never ends or loops nested over every sample"
        ),
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(&format!("; caused by: {cause}"));
        source = cause.source();
    }
    ReportError::Template {
        template: err.name().unwrap_or(name).to_string(),
        line: err.line(),
        message,
    }
}

/// minijinja's "`foo.bar` is undefined (from line 3)" → "undefined value `foo.bar` (from line 3)".
fn undefined_message(detail: &str) -> Option<String> {
    let (expr, rest) = detail.strip_prefix('`')?.split_once("` is undefined")?;
    Some(format!("undefined value `{expr}`{rest}"))
}

/// The text of a scalar for the escaping filters; `None` for null/undefined.
/// Floats are refused: their default formatting is not a stable format.
fn scalar_text(filter: &str, value: &Value) -> Result<Option<String>, minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(None);
    }
    if let Some(s) = value.as_str() {
        return Ok(Some(s.to_string()));
    }
    if value.is_number() && !value.is_integer() {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("`{filter}` got a float; format it first with `num(…)`, `ms` or `pct`"),
        ));
    }
    Ok(Some(value.to_string()))
}

/// One Markdown table cell: `|` → `\|`, line breaks → a space, trimmed;
/// null/undefined → `–`.
pub fn md(value: &Value) -> Result<String, minijinja::Error> {
    let Some(text) = scalar_text("md", value)? else {
        return Ok(MISSING.to_string());
    };
    let text = text.replace("\r\n", " ").replace(['\n', '\r'], " ");
    Ok(text.trim().replace('|', "\\|"))
}

/// One CSV field as the csv crate writes it (quoted only when necessary);
/// null/undefined → an empty field. A text that a spreadsheet would take
/// for a formula (it begins with `=`, `+`, `-`, `@`, a tab or a carriage
/// return, and is not a plain number) gets a leading `'`, as OWASP
/// recommends, so opening results.csv never runs model output.
pub fn csv(value: &Value) -> Result<String, minijinja::Error> {
    let text = scalar_text("csv", value)?.unwrap_or_default();
    let text = if looks_like_formula(&text) {
        format!("'{text}")
    } else {
        text
    };
    csv_field(&text).map_err(|e| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot write CSV field: {e}"),
        )
    })
}

/// Whether a spreadsheet would evaluate `text` as a formula. Numbers such
/// as `-1.5` or `-2e3` stay as they are.
fn looks_like_formula(text: &str) -> bool {
    let number = text.parse::<f64>().is_ok()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b".+-eE".contains(&b));
    text.starts_with(['=', '+', '-', '@', '\t', '\r']) && !number
}

fn csv_field(text: &str) -> Result<String, Box<dyn std::error::Error>> {
    if text.is_empty() {
        // The writer quotes a lone empty field (`""`); inside a row an empty
        // field needs no quotes.
        return Ok(String::new());
    }
    let mut writer = ::csv::WriterBuilder::new()
        .quote_style(::csv::QuoteStyle::Necessary)
        .terminator(::csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer.write_record([text])?;
    let bytes = writer.into_inner().map_err(|e| e.to_string())?;
    let mut field = String::from_utf8(bytes)?;
    if field.ends_with('\n') {
        field.pop();
    }
    Ok(field)
}

/// Text escaped for HTML content and quoted attributes; null/undefined → `–`.
pub fn html(value: &Value) -> Result<String, minijinja::Error> {
    let Some(text) = scalar_text("html", value)? else {
        return Ok(MISSING.to_string());
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A value as compact JSON with `<`, `>` and `&` written as `\u00XX`
/// escapes, so a page can embed it in a `<script type="application/json">`
/// (no `</script>` can end it early). Maps keep their order, floats are
/// written shortest-exact: the same value gives the same bytes.
pub fn json(value: &Value) -> Result<String, minijinja::Error> {
    let text = serde_json::to_string(value).map_err(|e| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot write JSON: {e}"),
        )
    })?;
    Ok(text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}

/// A backtick fence longer than any backtick run in the text (at least 3),
/// so the text can sit inside a fenced code block.
pub fn fence(value: &Value) -> Result<String, minijinja::Error> {
    let text = scalar_text("fence", value)?.unwrap_or_default();
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    Ok("`".repeat((longest + 1).max(3)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};

    fn dist(n: u64, base: f64, bounded: bool) -> Json {
        json!({
            "n": n, "mean": base * 1.1, "p50": base, "p90": base * 1.5, "p95": base * 1.75,
            "p99": base * 2.0, "min": base * 0.5, "max": base * 2.5, "p95_bounded": bounded
        })
    }

    fn sample(index: u64, key: &str, round: (&str, u64), ok: bool, text: &str) -> Json {
        json!({
            "index": index, "key": key, "model": key.split('/').next(), "prompt": "p",
            "round": {"kind": round.0, "n": round.1}, "warmup": round.0 == "warmup",
            "status": if ok { "ok" } else { "error" },
            "error_kind": if ok { Json::Null } else { json!("timeout") },
            "ttft_ms": if ok { json!(41.25) } else { Json::Null },
            "e2e_ms": if ok { json!(1234.5) } else { Json::Null },
            "tpot_ms": if ok { json!(9.75) } else { Json::Null },
            "decode_tps": if ok { json!(102.5) } else { Json::Null },
            "output_tokens": if ok { json!(120) } else { Json::Null },
            "prompt_tokens": if ok { json!(12) } else { Json::Null },
            "token_source": if ok { json!("usage") } else { Json::Null },
            "finish_reason": if ok { json!("stop") } else { Json::Null },
            "text": text
        })
    }

    const HOSTILE: &str =
        "=SUM(A1:A2), \"quoted\" | pipe\nsecond line\r\nthird ``` fence — ünïcödé 🚀";

    fn context(text: &str) -> Json {
        json!({
            "suite": {"name": "smoke | test", "description": "A small suite.", "hash": "sha256:abc123"},
            "tool_version": "0.1.0",
            "git_revision": null,
            "started_at": "2026-03-01T12:00:00Z",
            "environment": {"cpu": "Test CPU @ 3.0GHz", "cores": 8, "ram_mb": 32000, "os": "Linux"},
            "models": [
                {"id": "qwen", "license": "apache-2.0", "capabilities": ["chat", "tools"],
                 "load_ms": 2345.678, "status": "ok", "failure": null},
                {"id": "broken", "license": null, "capabilities": [], "load_ms": null,
                 "status": "failed", "failure": "server exited\nwith code 1"}
            ],
            "cells": [
                {"key": "qwen/p", "model": "qwen", "prompt": "p", "requests": 3,
                 "errors": {"timeout": 1},
                 "ttft_ms": dist(2, 41.25, false), "e2e_ms": dist(2, 1234.5, false),
                 "tpot_ms": dist(2, 9.75, false), "decode_tps": dist(2, 102.5, false),
                 "output_tokens": dist(2, 120.0, false), "server_decode_tps": null},
                {"key": "broken/p", "model": "broken", "prompt": "p", "requests": 1,
                 "errors": {"skipped": 1},
                 "ttft_ms": null, "e2e_ms": null, "tpot_ms": null, "decode_tps": null,
                 "output_tokens": null, "server_decode_tps": null}
            ],
            "samples": [
                sample(1, "qwen/p", ("warmup", 1), true, "warmup text"),
                sample(2, "qwen/p", ("measured", 1), false, ""),
                sample(3, "qwen/p", ("measured", 2), true, text),
                sample(4, "qwen/p", ("measured", 3), true, "later text"),
                sample(5, "broken/p", ("measured", 1), false, "")
            ]
        })
    }

    fn write_template(dir: &Path, name: &str, source: &str) {
        std::fs::write(dir.join(format!("{name}.j2")), source).unwrap();
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("report-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn md_filter() {
        let v = |s: &str| Value::from(s);
        assert_eq!(md(&v("  a | b\nc\r\nd  ")).unwrap(), "a \\| b c d");
        assert_eq!(md(&Value::from(())).unwrap(), "–");
        assert_eq!(md(&Value::UNDEFINED).unwrap(), "–");
        assert_eq!(md(&Value::from(42)).unwrap(), "42");
        assert!(md(&Value::from(1.5)).is_err());
    }

    #[test]
    fn csv_filter() {
        let f = |s: &str| csv(&Value::from(s)).unwrap();
        assert_eq!(f("plain"), "plain");
        assert_eq!(f("a,b"), "\"a,b\"");
        assert_eq!(f("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(f("two\nlines"), "\"two\nlines\"");
        assert_eq!(f("=1+1"), "'=1+1");
        assert_eq!(f("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(f("+cmd"), "'+cmd");
        assert_eq!(f("-2+3"), "'-2+3");
        assert_eq!(f("\tx"), "'\tx");
        assert_eq!(f("\r=x"), "\"'\r=x\"");
        assert_eq!(f("-1.5"), "-1.5");
        assert_eq!(f("-2e3"), "-2e3");
        assert_eq!(f("-inf"), "'-inf");
        assert_eq!(f("a=b"), "a=b");
        assert_eq!(f("ünïcödé"), "ünïcödé");
        assert_eq!(f(""), "");
        assert_eq!(csv(&Value::from(())).unwrap(), "");
        assert_eq!(csv(&Value::from(7)).unwrap(), "7");
        assert!(csv(&Value::from(0.5)).is_err());
        // Round trip through the reader.
        let line = format!("{},{}\n", f(HOSTILE), f("x"));
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        let escaped = format!("'{HOSTILE}");
        assert_eq!(
            record.iter().collect::<Vec<_>>(),
            vec![escaped.as_str(), "x"]
        );
    }

    #[test]
    fn html_and_json_filters_keep_hostile_text_inert() {
        let text = "</script><b onload='x'>&amp; \"q\"";
        assert_eq!(
            html(&Value::from(text)).unwrap(),
            "&lt;/script&gt;&lt;b onload=&#39;x&#39;&gt;&amp;amp; &quot;q&quot;"
        );
        assert_eq!(html(&Value::from(())).unwrap(), "–");
        let embedded = json(&Value::from(Serde(json!({"t": text, "n": 1.5})))).unwrap();
        assert!(
            !embedded.contains('<') && !embedded.contains('>'),
            "{embedded}"
        );
        let back: Json = serde_json::from_str(&embedded).unwrap();
        assert_eq!(back, json!({"t": text, "n": 1.5}));
    }

    #[test]
    fn fence_filter() {
        assert_eq!(fence(&Value::from("no ticks")).unwrap(), "```");
        assert_eq!(fence(&Value::from("a ``` b ```` c")).unwrap(), "`````");
    }

    #[test]
    fn filters_in_templates() {
        let dir = temp_dir("filters");
        write_template(
            &dir,
            "f.txt",
            "{{ a|ms }} {{ a.missing|ms }} {{ n|num(2) }} {{ none|num }} {{ r|pct }} {{ s|md }} {{ s|csv }}\n",
        );
        let ctx = json!({"a": 1500.0, "n": 2, "r": 0.5, "s": "x|y,z"});
        let out = render("f.txt", &ctx, Some(&dir)).unwrap();
        assert_eq!(out, "1.50 s – 2.00 – 50.0% x\\|y,z \"x|y,z\"\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn csv_round_trips_hostile_text() {
        let ctx = context(HOSTILE);
        let out = render("results.csv", &ctx, None).unwrap();
        assert_eq!(out, render("results.csv", &ctx, None).unwrap());
        let mut reader = ::csv::Reader::from_reader(out.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(
            header.join(","),
            "model,variant,prompt,key,n,ttft_p50_ms,ttft_p95_ms,e2e_mean_ms,e2e_p50_ms,e2e_p95_ms,\
             tpot_p50_ms,decode_tps_p50,output_tokens_mean,rss_peak_mb,rss_median_mb,\
             cpu_ms_per_token,errors,sample_text"
        );
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            [
                "qwen",
                "",
                "p",
                "qwen/p",
                "3",
                "41.250",
                "72.188",
                "1357.950",
                "1234.500",
                "2160.375",
                "9.750",
                "102.50",
                "132.00",
                "",
                "",
                "",
                "1",
                &format!("'{HOSTILE}")
            ]
        );
        assert_eq!(
            rows[1],
            [
                "broken", "", "p", "broken/p", "1", "", "", "", "", "", "", "", "", "", "", "",
                "1", ""
            ]
        );
    }

    #[test]
    fn undefined_variable_names_template_line_and_name() {
        let dir = temp_dir("undefined");
        write_template(
            &dir,
            "bad.md",
            "line one\n{% if true %}\n{{ foo }}\n{% endif %}\n",
        );
        let err = render("bad.md", &json!({}), Some(&dir)).unwrap_err();
        match &err {
            ReportError::Template {
                template,
                line,
                message,
            } => {
                assert_eq!(template, "bad.md");
                assert_eq!(*line, Some(3));
                assert!(message.contains("`foo`"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "template `bad.md` line 3: undefined value `foo`"
        );

        write_template(&dir, "attr.md", "{{ suite.nmae.x }}\n");
        let err = render("attr.md", &json!({"suite": {"name": "s"}}), Some(&dir)).unwrap_err();
        assert!(err.to_string().contains("suite.nmae"), "{err}");

        // The default template with a context missing a field.
        let mut ctx = context("t");
        ctx.as_object_mut().unwrap().remove("environment");
        let err = render("report.md", &ctx, None).unwrap_err();
        assert!(
            matches!(&err, ReportError::Template { template, line: Some(_), message }
                if template == "report.md" && message.contains("environment")),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn syntax_error_has_line() {
        let dir = temp_dir("syntax");
        write_template(&dir, "broken.md", "ok\n\n{% if %}\n");
        let err = render("broken.md", &json!({}), Some(&dir)).unwrap_err();
        assert!(
            matches!(&err, ReportError::Template { template, line: Some(3), .. } if template == "broken.md"),
            "{err:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn override_dir_wins_and_extends() {
        let dir = temp_dir("override");
        write_template(&dir, "report.md", "custom {{ suite.name }}\n");
        write_template(
            &dir,
            "extra.txt",
            "{% include \"report.md\" %}{{ tool_version }}\n",
        );
        let ctx = context("t");
        assert_eq!(
            render("report.md", &ctx, Some(&dir)).unwrap(),
            "custom smoke | test\n"
        );
        assert_eq!(
            render("extra.txt", &ctx, Some(&dir)).unwrap(),
            "custom smoke | test\n0.1.0\n"
        );
        // Defaults still serve names the directory lacks.
        assert!(
            render("results.csv", &ctx, Some(&dir))
                .unwrap()
                .starts_with("model,variant,prompt,")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_template_that_loops_without_end_runs_out_of_fuel() {
        let dir = temp_dir("fuel");
        write_template(
            &dir,
            "loop.md",
            "{% for a in range(10000) %}{% for b in range(10000) %}{{ 'x' * 100000 }}{% endfor %}{% endfor %}\n",
        );
        let started = std::time::Instant::now();
        let err = render("loop.md", &json!({}), Some(&dir)).unwrap_err();
        let took = started.elapsed();
        assert!(
            err.to_string().starts_with(
                "template `loop.md` line 1: the template did more work than dyno allows"
            ),
            "{err}"
        );
        assert!(took.as_secs() < 60, "took {took:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn check_finds_unknown_and_broken_templates_without_rendering() {
        let dir = temp_dir("check");
        write_template(&dir, "broken.md", "ok\n{% if %}\n");
        write_template(&dir, "fine.md", "{{ undefined_at_render_time }}\n");
        check("report.md", None).unwrap();
        check("fine.md", Some(&dir)).unwrap();
        let unknown = check("nope.md", Some(&dir)).unwrap_err();
        assert!(
            matches!(&unknown, ReportError::Unknown { name, .. } if name == "nope.md"),
            "{unknown:?}"
        );
        let broken = check("broken.md", Some(&dir)).unwrap_err();
        assert!(
            matches!(&broken, ReportError::Template { line: Some(2), .. }),
            "{broken:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn preflight_refuses_a_file_or_dev_null_as_the_directory() {
        let dir = temp_dir("preflight");
        let file = dir.join("file");
        std::fs::write(&file, "x").unwrap();
        let names = ["report.md".to_string()];
        preflight(&dir.join("new"), &names, None).unwrap();
        for target in [file.as_path(), Path::new("/dev/null")] {
            let err = preflight(target, &names, None).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "cannot write reports to {}: it exists and is not a directory",
                    target.display()
                )
            );
        }
        let err = preflight(&dir, &["nope.md".to_string()], None).unwrap_err();
        assert!(matches!(err, ReportError::Unknown { .. }), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_template() {
        let dir = temp_dir("unknown");
        write_template(&dir, "mine.txt", "x");
        for name in ["nope.md", "../etc/passwd", "", ".hidden"] {
            match render(name, &json!({}), Some(&dir)).unwrap_err() {
                ReportError::Unknown { name: n, available } => {
                    assert_eq!(n, name);
                    assert_eq!(
                        available,
                        "compare.html, compare.md, judge.md, load.md, mine.txt, page.css, page.js, report.html, report.md, results.csv"
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let err = render("nope.md", &json!({}), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown template `nope.md` (available: compare.html, compare.md, judge.md, load.md, page.css, page.js, report.html, report.md, results.csv)"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
