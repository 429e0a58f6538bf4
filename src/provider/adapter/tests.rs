//! The adapter protocol against scripted adapters and the example one.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::protocol::Outgoing;
use super::session::{AdapterError, LOG_RING_LINES, MAX_LOG_LINE_BYTES};
use super::*;
use crate::results::{ErrorKind, TokenSource};

fn spec(command: &[&str]) -> AdapterSpec {
    AdapterSpec {
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        weights_path: None,
        params: Map::new(),
        load_timeout: Duration::from_secs(10),
        env: Vec::new(),
        cwd: None,
    }
}

fn sh(script: &str) -> AdapterSpec {
    spec(&["sh", "-c", script])
}

fn user(content: &str) -> Vec<Message> {
    vec![Message {
        role: "user".into(),
        content: content.into(),
    }]
}

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/adapter")
}

fn echo_spec() -> AdapterSpec {
    let dir = example_dir();
    let mut s = spec(&["python3"]);
    s.command
        .push(dir.join("echo_adapter.py").display().to_string());
    s.weights_path = Some(dir.join("weights.txt").display().to_string());
    s
}

/// Prints `hello`, answers `load` with `loaded`, then runs `then` once
/// the first `generate` line has been read.
const PRELUDE: &str = r#"echo '{"type":"hello","protocol":1}'; read -r line; echo '{"type":"loaded"}'; read -r line; "#;

fn scripted(then: &str) -> AdapterSpec {
    sh(&format!("{PRELUDE}{then}"))
}

fn params(max_tokens: u32) -> GenerateParams {
    GenerateParams {
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        seed: Some(7),
        extra: Map::new(),
    }
}

async fn started(spec: &AdapterSpec) -> Adapter {
    match Adapter::start(spec).await {
        Ok((adapter, _)) => adapter,
        Err(err) => panic!("start failed: {err}"),
    }
}

fn kind(g: &Measured) -> Option<ErrorKind> {
    g.error.as_ref().map(|(kind, _)| *kind)
}

#[tokio::test]
async fn python_example_end_to_end() {
    let (mut adapter, load) = match Adapter::start(&echo_spec()).await {
        Ok(started) => started,
        Err(err) => panic!("start failed: {err}"),
    };
    assert!(load > Duration::ZERO);
    let info = adapter.info().cloned().unwrap_or_default();
    assert_eq!(info["runtime"], "echo_adapter");

    let prompt = user("Tell me about the sea");
    let g = adapter
        .generate("r1", &prompt, &params(12), Duration::from_secs(10))
        .await;
    assert_eq!(g.error, None);
    assert!(!g.text.is_empty());
    let (ttft, e2e) = (g.ttft_ms.unwrap_or(-1.0), g.e2e_ms.unwrap_or(-1.0));
    assert!(ttft > 0.0 && ttft < e2e, "ttft {ttft} e2e {e2e}");
    let words = g.text.split_whitespace().count() as u64;
    assert!((1..=12).contains(&words));
    assert_eq!(g.output_tokens, Some(words));
    assert_eq!(g.token_source, Some(TokenSource::Usage));
    assert_eq!(g.itl_ms.len() as u64, words - 1);
    assert!(g.itl_ms.iter().all(|gap| *gap >= 0.0));
    assert_eq!(g.prompt_tokens, Some(5));
    assert!(g.finish_reason.is_some());

    // Same prompt and seed: same text.
    let again = adapter
        .generate("r2", &prompt, &params(12), Duration::from_secs(10))
        .await;
    assert_eq!(again.error, None);
    assert_eq!(again.text, g.text);

    let stopped = adapter.stop().await;
    assert!(stopped.clean, "{stopped:?}");
}

#[tokio::test]
async fn late_events_of_a_timed_out_request_are_skipped() {
    let mut adapter = started(&echo_spec()).await;
    let mut slow = params(4);
    slow.extra.insert("token_delay_ms".into(), 250.into());
    let g = adapter
        .generate("slow", &user("hi"), &slow, Duration::from_millis(400))
        .await;
    assert_eq!(kind(&g), Some(ErrorKind::Timeout));
    assert!(g.ttft_ms.is_some(), "the first token was measured");
    assert!(!g.text.is_empty());
    assert_eq!(g.e2e_ms, None);

    let g = adapter
        .generate("fast", &user("hi"), &params(4), Duration::from_secs(10))
        .await;
    assert_eq!(g.error, None);
    assert!(g.output_tokens.is_some());
    adapter.stop().await;
}

#[tokio::test]
async fn garbage_is_a_bad_message() {
    let mut adapter = started(&scripted("echo 'this is not json'; sleep 30")).await;
    let g = adapter
        .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
        .await;
    assert_eq!(kind(&g), Some(ErrorKind::BadSse));
    let message = g.error.map(|(_, m)| m).unwrap_or_default();
    assert!(message.contains("this is not json"), "{message}");
}

#[tokio::test]
async fn unknown_type_and_wrong_id_are_bad_messages() {
    let mut adapter = started(&scripted(
        r#"echo '{"type":"progress","id":"r1"}'; sleep 30"#,
    ))
    .await;
    let g = adapter
        .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
        .await;
    assert_eq!(kind(&g), Some(ErrorKind::BadSse));

    let mut adapter = started(&scripted(
        r#"echo '{"type":"token","id":"other","text":"x"}'; sleep 30"#,
    ))
    .await;
    let g = adapter
        .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
        .await;
    assert_eq!(kind(&g), Some(ErrorKind::BadSse));
    let message = g.error.map(|(_, m)| m).unwrap_or_default();
    assert!(message.contains("other"), "{message}");
}

#[tokio::test]
async fn exit_mid_generation_is_exited_with_stderr() {
    let mut adapter = started(&scripted(
            r#"echo '{"type":"token","id":"r1","text":"Hello"}'; echo 'boom: out of memory' >&2; exit 3"#,
        ))
        .await;
    let g = adapter
        .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
        .await;
    assert_eq!(kind(&g), Some(ErrorKind::ServerExited));
    let message = g.error.clone().map(|(_, m)| m).unwrap_or_default();
    assert!(message.contains("status 3"), "{message}");
    assert!(message.contains("boom: out of memory"), "{message}");
    assert_eq!(g.text, "Hello");
    assert!(g.ttft_ms.is_some());
    assert_eq!(g.output_tokens, None);

    // Once gone, it stays gone.
    let g = adapter
        .generate("r2", &user("hi"), &params(4), Duration::from_secs(5))
        .await;
    assert_eq!(kind(&g), Some(ErrorKind::ServerExited));
    let stopped = adapter.stop().await;
    assert_eq!(stopped.status, "exited with status 3");
}

#[tokio::test]
async fn closed_stdout_while_running_is_early_eof() {
    let mut adapter = started(&scripted("exec >&-; sleep 30")).await;
    let g = adapter
        .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
        .await;
    assert_eq!(kind(&g), Some(ErrorKind::EarlyEof));
}

#[tokio::test]
async fn silent_adapter_times_out_and_stop_kills_it() {
    let mut adapter = started(&scripted("sleep 30")).await;
    let started_at = Instant::now();
    let g = adapter
        .generate("r1", &user("hi"), &params(4), Duration::from_millis(300))
        .await;
    assert_eq!(kind(&g), Some(ErrorKind::Timeout));
    assert!(started_at.elapsed() < Duration::from_secs(2));
    assert_eq!(g.ttft_ms, None);

    let stop_at = Instant::now();
    let stopped = adapter.stop().await;
    assert!(!stopped.clean);
    assert!(stopped.status.contains("SIGKILL"), "{stopped:?}");
    assert!(stop_at.elapsed() < Duration::from_secs(5));
}

/// Waits up to 5 s for a stderr line starting with `prefix`.
async fn wait_for_log(adapter: &Adapter, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !adapter
        .log_tail(LOG_RING_LINES)
        .iter()
        .any(|l| l.starts_with(prefix))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn stop_takes_down_the_whole_group() {
    // One adapter leaves a child behind when it exits cleanly, the other
    // has to be killed; either way the child must not survive.
    for tail in ["read -r line", "sleep 30"] {
        let adapter = started(&sh(&format!(
                r#"sleep 300 & echo "child $!" >&2
                   echo '{{"type":"hello","protocol":1}}'; read -r line; echo '{{"type":"loaded"}}'; {tail}"#
            )))
            .await;
        wait_for_log(&adapter, "child ").await;
        let child = adapter
            .log_tail(1)
            .first()
            .and_then(|line| line.strip_prefix("child "))
            .map(str::to_owned)
            .unwrap_or_default();
        assert!(!child.is_empty() && !gone(&child));
        adapter.stop().await;
        let deadline = Instant::now() + Duration::from_secs(2);
        while !gone(&child) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone(&child), "child {child} survived ({tail})");
    }
}

#[tokio::test]
async fn error_event_is_adapter_error() {
    let mut adapter = started(&scripted(
        r#"echo '{"type":"error","id":"r1","message":"CUDA out of memory"}'; read -r line"#,
    ))
    .await;
    let g = adapter
        .generate("r1", &user("hi"), &params(4), Duration::from_secs(5))
        .await;
    assert_eq!(
        g.error,
        Some((ErrorKind::ServerError, "CUDA out of memory".to_owned()))
    );
    let stopped = adapter.stop().await;
    assert!(stopped.clean, "{stopped:?}");
}

#[tokio::test]
async fn chatty_stderr_does_not_block() {
    let script = r#"
import json, sys
def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n"); sys.stdout.flush()
noise = ("x" * 99 + "\n") * 10000  # 1 MB
sys.stderr.write(noise); sys.stderr.flush()
say({"type": "hello", "protocol": 1})
sys.stdin.readline()
say({"type": "loaded"})
req = json.loads(sys.stdin.readline())
sys.stderr.write(noise); sys.stderr.write("y" * 100000 + "\n"); sys.stderr.flush()
for word in ["a", "b", "c"]:
    say({"type": "token", "id": req["id"], "text": word})
say({"type": "done", "id": req["id"]})
sys.stderr.write("last line\n"); sys.stderr.flush()
sys.stdin.readline()
"#;
    let work = async {
        let mut adapter = started(&spec(&["python3", "-c", script])).await;
        let g = adapter
            .generate("r1", &user("hi"), &params(4), Duration::from_secs(20))
            .await;
        assert_eq!(g.error, None);
        assert_eq!(g.text, "abc");
        assert_eq!(g.output_tokens, Some(3));
        assert_eq!(g.token_source, Some(TokenSource::Estimate));
        let tail = adapter.log_tail(100);
        assert!(!tail.is_empty() && tail.len() <= LOG_RING_LINES);
        assert!(tail.iter().all(|line| line.len() <= MAX_LOG_LINE_BYTES));
        let stopped = adapter.stop().await;
        assert!(stopped.clean, "{stopped:?}");
    };
    if tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .is_err()
    {
        panic!("deadlocked");
    }
}

#[tokio::test]
async fn log_ring_keeps_the_last_lines() {
    let mut adapter = started(&sh(
            r#"i=0; while [ $i -lt 120 ]; do echo "line $i" >&2; i=$((i+1)); done
               echo '{"type":"hello","protocol":1}'; read -r line; echo '{"type":"loaded"}'; read -r line; sleep 30"#,
        ))
        .await;
    // Stderr is read concurrently: give it a moment.
    wait_for_log(&adapter, "line 119").await;
    let tail = adapter.log_tail(100);
    assert_eq!(tail.len(), LOG_RING_LINES);
    assert_eq!(tail.last().map(String::as_str), Some("line 119"));
    assert_eq!(adapter.log_tail(2), vec!["line 118", "line 119"]);
    let g = adapter
        .generate("r1", &user("hi"), &params(4), Duration::from_millis(100))
        .await;
    assert_eq!(kind(&g), Some(ErrorKind::Timeout));
}

#[tokio::test]
async fn start_failures() {
    let err = Adapter::start(&spec(&[])).await.err();
    assert!(matches!(err, Some(AdapterError::EmptyCommand)));

    let err = Adapter::start(&spec(&["/nonexistent/adapter"])).await.err();
    assert!(matches!(err, Some(AdapterError::Spawn { .. })), "{err:?}");

    let err = Adapter::start(&sh(r#"echo '{"type":"hello","protocol":2}'; sleep 30"#))
        .await
        .err();
    assert!(
        matches!(&err, Some(AdapterError::UnsupportedProtocol { version, .. }) if version == "2"),
        "{err:?}"
    );

    let err = Adapter::start(&sh(
            r#"echo '{"type":"hello","protocol":1}'; read -r line; echo 'no such file' >&2; echo '{"type":"error","message":"cannot open weights"}'; sleep 30"#,
        ))
        .await
        .err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        matches!(err, Some(AdapterError::LoadFailed { .. })),
        "{text}"
    );
    assert!(text.contains("cannot open weights"), "{text}");

    let err = Adapter::start(&sh("echo 'Loading model...'; sleep 30"))
        .await
        .err();
    assert!(
        matches!(err, Some(AdapterError::Protocol { .. })),
        "{err:?}"
    );

    let err = Adapter::start(&sh("echo 'bad weights' >&2; exit 2"))
        .await
        .err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(matches!(err, Some(AdapterError::Exited { .. })), "{text}");
    assert!(
        text.contains("status 2") && text.contains("bad weights"),
        "{text}"
    );

    let mut quick = sh("sleep 30");
    quick.load_timeout = Duration::from_millis(200);
    let err = Adapter::start(&quick).await.err();
    assert!(
        matches!(err, Some(AdapterError::LoadTimeout { .. })),
        "{err:?}"
    );
}

#[test]
fn params_leave_out_unset_fields_and_typed_fields_win() {
    let mut p = GenerateParams {
        max_tokens: Some(8),
        temperature: None,
        seed: None,
        extra: Map::new(),
    };
    p.extra.insert("max_tokens".into(), 99.into());
    p.extra.insert("top_k".into(), 40.into());
    let json = Value::Object(p.to_json()).to_string();
    assert_eq!(json, r#"{"max_tokens":8,"top_k":40}"#);
}

#[test]
fn messages_serialize_as_documented() {
    let p = Map::new();
    let load = Outgoing::Load {
        protocol: 1,
        weights_path: None,
        params: &p,
    };
    assert_eq!(
        serde_json::to_string(&load).unwrap_or_default(),
        r#"{"type":"load","protocol":1,"weights_path":null,"params":{}}"#
    );
    assert_eq!(
        serde_json::to_string(&Outgoing::Shutdown).unwrap_or_default(),
        r#"{"type":"shutdown"}"#
    );
    assert_eq!(
        serde_json::to_string(&Outgoing::Cancel { id: "r1" }).unwrap_or_default(),
        r#"{"type":"cancel","id":"r1"}"#
    );
}
