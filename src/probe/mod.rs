//! Probes before a run: what an endpoint or a suite serves (`dyno models`)
//! and the validation checklist (`dyno check`: the suite loads, endpoints
//! answer, models are listed, managed servers start, one tiny chat per
//! model). Everything is returned as plain data and rendered by small pure
//! functions.
//!
//! Must never: measure or record benchmark results, print (the CLI does),
//! show an API key or a header value, download a model, or leave anything
//! it started behind: servers and adapters are stopped, and a Foundry Local
//! model it loaded is unloaded again.

mod check;
mod models;

use std::path::Path;
use std::time::Duration;

pub use check::{
    CheckLine, all_passed, check, render_check_json, render_check_summary, render_check_text,
};
pub use models::{
    Inventory, ModelListing, Served, Source, SourceKind, Unlisted, UrlKind, classify, list_suite,
    list_url, openai_models, render_models_json, render_models_text, render_unlisted,
};

use crate::provider::foundry::CliRunner;

/// How long listing an endpoint's models may take.
pub(super) const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// How many model ids a failing check quotes.
pub(super) const SHOWN_IDS: usize = 10;

/// What the probes read from the outside world; tests substitute both.
pub struct Context<'a> {
    /// Environment lookups: `${VAR}` in suites and `FOUNDRY_LOCAL_ENDPOINT`.
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
    /// The `foundry` CLI, to find a Foundry Local service that has no URL.
    pub foundry_cli: &'a dyn CliRunner,
}

/// Why a target cannot be probed. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Nothing answered.
    #[error(
        "cannot reach {url}: {reason}; check that the server is running and that the URL (`base_url`) is right"
    )]
    Unreachable { url: String, reason: String },
    /// The server's TLS certificate was refused.
    #[error("cannot reach {url}: {problem}")]
    Tls { url: String, problem: String },
    /// Something answered with an error status.
    #[error(
        "{url} answered HTTP {status}: {body}; check the URL, and for a hosted API the key named by `api_key_env`"
    )]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    /// Something answered, but not with an OpenAI model list.
    #[error(
        "{url} did not answer with an OpenAI model list ({detail}); check that the URL points at an OpenAI-compatible server"
    )]
    NotAModelList { url: String, detail: String },
    /// `dyno models` was given something it cannot probe.
    #[error(
        "`{0}` is neither a suite file nor an http:// or https:// URL; give a suite file, or a URL such as http://127.0.0.1:8080/v1"
    )]
    UnknownTarget(String),
    /// `--kind` was given with a suite file.
    #[error(
        "--kind applies to a URL; the endpoints of a suite declare their own `kind`, drop --kind"
    )]
    KindWithSuite,
}

pub(super) fn http_client() -> reqwest::Client {
    crate::provider::http::client(crate::provider::http::Purpose::Probe, None).unwrap_or_default()
}

/// "3 models", "1 model".
pub(super) fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// `` `a`, `b` `` and at most [`SHOWN_IDS`] of them.
pub(super) fn quoted(ids: &[String]) -> String {
    let mut text = ids
        .iter()
        .take(SHOWN_IDS)
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN_IDS {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN_IDS));
    }
    text
}

pub(super) fn file_size(path: &Path) -> Option<u64> {
    crate::measure::resources::files::file_bytes(&[path.to_path_buf()])
        .into_iter()
        .next()
        .and_then(|(_, bytes)| bytes)
}

#[cfg(test)]
mod tests {
    use super::models::{model_ids, state_label};
    use super::*;
    use std::path::PathBuf;

    fn line(ok: bool, what: &str, detail: &str) -> CheckLine {
        CheckLine {
            ok,
            what: what.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn check_lines_render_pass_in_parentheses_and_failures_after_a_colon() {
        let lines = [
            line(true, "endpoint local reachable", "http://h/v1, 3 models"),
            line(false, "server s starts", "it exited\nlog line"),
            line(true, "server t", ""),
        ];
        assert_eq!(
            render_check_text(&lines),
            "pass  endpoint local reachable (http://h/v1, 3 models)\n\
             FAIL  server s starts: it exited\n      log line\n\
             pass  server t\n"
        );
        assert_eq!(
            render_check_summary(&lines),
            "3 checks: 2 passed, 1 failed\n"
        );
        assert!(!all_passed(&lines));
        assert!(render_check_json(&lines).starts_with("[\n  {\n    \"ok\": true,\n    \"what\""));
    }

    #[test]
    fn the_table_aligns_and_drops_empty_columns() {
        let mut a = ModelListing::new("http://h/v1", SourceKind::Openai, "qwen");
        a.path = Some("/m/qwen.gguf".into());
        let b = ModelListing::new("http://h/v1", SourceKind::Openai, "a-longer-name");
        assert_eq!(
            render_models_text(&[a, b]),
            "SOURCE       KIND    MODEL          PATH\n\
             http://h/v1  openai  qwen           /m/qwen.gguf\n\
             http://h/v1  openai  a-longer-name\n"
        );
        assert_eq!(render_models_text(&[]), "no models listed\n");
    }

    #[test]
    fn foundry_state_reads_loaded_then_cached() {
        let mut m = ModelListing::new("f", SourceKind::Foundry, "x");
        assert_eq!(state_label(&m), "");
        m.cached = Some(false);
        assert_eq!(state_label(&m), "not cached");
        m.cached = Some(true);
        assert_eq!(state_label(&m), "cached");
        m.loaded = Some(true);
        assert_eq!(state_label(&m), "loaded");
    }

    #[test]
    fn targets_are_urls_or_suite_files() {
        assert_eq!(
            classify("http://127.0.0.1:8080", None).unwrap(),
            Source::Url {
                url: "http://127.0.0.1:8080".into(),
                kind: UrlKind::Auto
            }
        );
        assert_eq!(
            classify("suites/x.yaml", None).unwrap(),
            Source::Suite(PathBuf::from("suites/x.yaml"))
        );
        assert!(matches!(
            classify("suites/x.yaml", Some(UrlKind::Foundry)),
            Err(ProbeError::KindWithSuite)
        ));
        assert!(matches!(
            classify("localhost-ish", None),
            Err(ProbeError::UnknownTarget(_))
        ));
    }

    #[test]
    fn model_ids_read_openai_and_llama_server_lists() {
        let openai = serde_json::json!({"data": [{"id": "a"}, {"id": "b"}, {"object": "model"}]});
        assert_eq!(model_ids(&openai), Some(vec!["a".into(), "b".into()]));
        let llama = serde_json::json!({"models": [{"name": "m.gguf", "model": "m.gguf"}]});
        assert_eq!(model_ids(&llama), Some(vec!["m.gguf".into()]));
        assert_eq!(model_ids(&serde_json::json!({"x": 1})), None);
    }

    #[test]
    fn many_ids_are_cut_short() {
        let ids: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
        assert!(quoted(&ids).ends_with("`m9` and 2 more"));
    }
}
