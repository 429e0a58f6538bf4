//! Secrets never leave dyno: a fake key passed to a managed server's
//! command (`--api-key ${KEY}`), in a base URL's query (`?api_key=${KEY}`),
//! as `api_key_env` and as a custom header appears in no file of a run's
//! output directory and in no console line of `dyno run` or `dyno check`,
//! while the requests themselves carry it (issue 15).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::{Tree, fixture};

const KEY: &str = "sk-fake-0123456789abcdef";

/// A managed server that is ready on `/health` and answers every chat with
/// a 500 whose message echoes its own command line, key included.
const FAKE_SERVER: &str = r#"
import http.server, json, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"ok")
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"error": {"message": "bad config: " + " ".join(sys.argv)}}).encode()
        self.send_response(500)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
print("fake server listening", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

const SUITE: &str = r#"
name: secrets
endpoints:
  query:
    base_url: "${DYNO_TEST_FIXTURE}?api_key=${DYNO_TEST_API_KEY}"
  echo:
    base_url: "${DYNO_TEST_ECHO}?api_key=${DYNO_TEST_API_KEY}"
    api_key_env: DYNO_TEST_API_KEY
    headers: { X-Api-Key: "${DYNO_TEST_API_KEY}" }
  redirect:
    base_url: "${DYNO_TEST_REDIRECT}"
    headers: { X-Api-Key: "${DYNO_TEST_API_KEY}" }
servers:
  fake:
    command: [python3, fake_server.py, --port, "{port}", --api-key, "${DYNO_TEST_API_KEY}"]
    ready: /health
models:
  - { id: via-query, endpoint: query, model: timetable }
  - { id: echoed, endpoint: echo, model: timetable }
  - { id: redirected, endpoint: redirect, model: timetable }
  - { id: managed, server: fake }
prompts:
  - { id: p, text: hi }
defaults: { rounds: 1, warmup: 0, max_tokens: 8 }
"#;

/// Runs the built binary in `dir` with the fixture's URLs and the key in
/// its environment; returns its exit code and stdout + stderr.
async fn dyno(dir: &Path, base: &str, args: &[&str]) -> (Option<i32>, String) {
    let root = base.trim_end_matches("/v1");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dyno"))
        .args(args)
        .current_dir(dir)
        .env("DYNO_TEST_API_KEY", KEY)
        .env("DYNO_TEST_FIXTURE", base)
        .env("DYNO_TEST_ECHO", format!("{root}/echo/v1"))
        .env("DYNO_TEST_REDIRECT", format!("{root}/redirect/v1"))
        .output()
        .await
        .unwrap();
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), console)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_key_appears_in_no_output_file_and_no_console_line() {
    let base = fixture::start().await;
    let tree = Tree::new(&[("s.yaml", SUITE), ("fake_server.py", FAKE_SERVER)]);
    let echoes_before = fixture::ECHO_CALLS.load(Ordering::SeqCst);

    let (code, run_console) =
        dyno(tree.dir.path(), &base, &["run", "s.yaml", "--out", "out"]).await;
    assert_eq!(
        code,
        Some(1),
        "some requests fail on purpose:\n{run_console}"
    );
    let (_, check_console) = dyno(tree.dir.path(), &base, &["check", "s.yaml"]).await;
    let (_, models_console) = dyno(tree.dir.path(), &base, &["models", "s.yaml"]).await;

    // The key was sent: the echo route saw it (once from the run, once
    // from check), and the redirect never reached it.
    let echoes = fixture::ECHO_CALLS.load(Ordering::SeqCst) - echoes_before;
    assert!(
        (2..=4).contains(&echoes),
        "{echoes} echo requests\n{run_console}"
    );

    let out = tree.path("out");
    let files = files_under(&out);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&out).unwrap().display().to_string())
        .collect();
    for expected in ["results.json", "report.md", "results.csv", "logs/fake.log"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(KEY),
            "{} holds the key:\n{}",
            file.display(),
            text.lines()
                .filter(|l| l.contains(KEY))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    for (what, console) in [
        ("run", &run_console),
        ("check", &check_console),
        ("models", &models_console),
    ] {
        assert!(
            !console.contains(KEY),
            "dyno {what} printed the key:\n{console}"
        );
    }

    // What the run recorded instead.
    let results = crate::load_results(&out);
    let error = |model: &str| {
        results
            .samples
            .iter()
            .find(|s| s.model == model)
            .and_then(|s| s.error.clone())
            .unwrap_or_default()
    };
    assert_eq!(error("via-query"), "", "the query kept the path intact");
    assert!(
        error("echoed").contains("x-api-key: <redacted>")
            && error("echoed").contains("authorization: Bearer <redacted>"),
        "{}",
        error("echoed")
    );
    assert!(
        error("redirected").contains("refused a redirect from http://127.0.0.1:")
            && error("redirected").contains("to another origin, http://localhost:"),
        "{}",
        error("redirected")
    );
    assert!(
        error("managed").contains("--api-key <redacted>"),
        "{}",
        error("managed")
    );
    let log = std::fs::read_to_string(out.join("logs/fake.log")).unwrap();
    assert!(
        log.starts_with("--- dyno: starting server `fake`: python3 fake_server.py --port ")
            && log.contains(" --api-key <redacted> ---\n"),
        "{log}"
    );
    let resolved = results.suite.resolved.to_string();
    assert!(resolved.contains("?api_key=<redacted>"), "{resolved}");
}

/// Runs a one-request suite against `base_url` with a secret-looking header
/// written in the suite; returns the sample's error and the results text.
async fn run_with_header(base_url: &str) -> (String, String) {
    let suite = format!(
        "name: h\nendpoints:\n  e: {{ base_url: \"{base_url}\", headers: {{ X-Api-Key: {KEY} }} }}\nmodels:\n  - {{ id: m, endpoint: e, model: timetable }}\nprompts:\n  - {{ id: p, text: hi }}\ndefaults: {{ rounds: 1, warmup: 0 }}\n"
    );
    let tree = Tree::new(&[("s.yaml", &suite)]);
    let out = tree.path("out");
    let (_, results) =
        crate::run_and_load(&tree.path("s.yaml"), &dyno::plan::Filter::default(), &out).await;
    let text = std::fs::read_to_string(out.join("results.json")).unwrap();
    (results.samples[0].error.clone().unwrap_or_default(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_are_never_sent_to_another_origin_on_a_redirect() {
    let base = fixture::start().await;
    let root = base.trim_end_matches("/v1");
    let (error, results) = run_with_header(&format!("{root}/redirect/v1")).await;
    assert!(
        error.starts_with("request failed: refused a redirect from http://127.0.0.1:")
            && error.contains(" to another origin, http://localhost:"),
        "{error}"
    );
    assert!(!results.contains(KEY), "{results}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_error_bodies_are_scrubbed_of_the_key() {
    let base = fixture::start().await;
    let root = base.trim_end_matches("/v1");
    let (error, results) = run_with_header(&format!("{root}/echo/v1")).await;
    assert!(
        error.starts_with("HTTP 401: unauthorized; headers: ")
            && error.contains("x-api-key: <redacted>"),
        "{error}"
    );
    assert!(!results.contains(KEY), "{results}");
}

#[test]
fn diagnostics_and_the_recorded_suite_never_show_a_secret() {
    let env = |name: &str| (name == "MY_API_KEY").then(|| KEY.to_string());
    let bad = "name: t\nendpoints:\n  e: { base_url: \"ftp://u:${MY_API_KEY}@h/v1\" }\nmodels:\n  - { id: m, endpoint: e }\nprompts:\n  - { id: p, text: hi }\n";
    let tree = Tree::new(&[("s.yaml", bad)]);
    let err = dyno::suite::load(&tree.path("s.yaml"), &env).unwrap_err();
    let rendered = tree.anonymize(&err.render());
    assert!(
        rendered.starts_with(
            "error: base_url `ftp://u:<redacted>@h/v1` is not an http:// or https:// URL\n"
        ),
        "{rendered}"
    );

    let good = bad.replace("ftp://", "http://").replace(
        "prompts:",
        "servers:\n  s: { command: [srv, --port, \"{port}\", \"--token=${MY_API_KEY}\"] }\nprompts:",
    );
    let tree = Tree::new(&[("s.yaml", &good)]);
    let suite = dyno::suite::load(&tree.path("s.yaml"), &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        suite.endpoints["e"].base_url.as_deref(),
        Some(format!("http://u:{KEY}@h/v1").as_str()),
        "requests use the real value"
    );
    let record = serde_json::to_string(&dyno::results::SuiteRecord::of(&suite)).unwrap();
    assert!(!record.contains(KEY), "{record}");
    assert!(
        record.contains("http://u:<redacted>@h/v1") && record.contains("--token=<redacted>"),
        "{record}"
    );
}
