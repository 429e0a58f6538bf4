//! The client's metrics against the scripted fixture (known truth), and
//! every fault kind.

use std::collections::BTreeMap;
use std::time::Duration;

use dyno::provider::openai::{self as client, Target};
use dyno::provider::{Measured, Request};
use dyno::results::{ErrorKind, TokenSource};
use dyno::suite::{Message, Role};

use crate::fixture;

pub(crate) async fn ask(base: &str, model: &str, stream: bool, timeout_ms: u64) -> Measured {
    ask_with(base, model, stream, timeout_ms, BTreeMap::new()).await
}

/// `ask` with these headers besides the API key.
async fn ask_with(
    base: &str,
    model: &str,
    stream: bool,
    timeout_ms: u64,
    headers: BTreeMap<String, String>,
) -> Measured {
    let target = Target {
        base_url: base.to_string(),
        api_key: Some("sk-test-secret".into()),
        headers,
        secrets: dyno::secrets::Secrets::default(),
        ca_cert: None,
    };
    let request = Request {
        id: 1,
        model: model.into(),
        messages: vec![Message {
            role: Role::User,
            content: "hi".into(),
        }],
        temperature: 0.0,
        top_p: None,
        max_tokens: 32,
        seed: 1,
        stream,
        ignore_eos: false,
        timeout: Duration::from_millis(timeout_ms),
        response_format: None,
        thinking: None,
        cache: true,
    };
    client::chat(&reqwest::Client::new(), &target, model, &request).await
}

fn kind(m: &Measured) -> Option<ErrorKind> {
    m.error.as_ref().map(|(k, _)| *k)
}

#[tokio::test]
async fn timetable_gives_known_ttft_e2e_and_tpot() {
    let base = fixture::start().await;
    let m = ask(&base, "timetable", true, 5000).await;
    assert_eq!(m.error, None);
    let ttft = m.ttft_ms.unwrap();
    let e2e = m.e2e_ms.unwrap();
    // First content at 150 ms, not the role-only chunk at 5 ms.
    assert!((145.0..260.0).contains(&ttft), "ttft {ttft}");
    // 150 + 19 × 20 = 530 ms.
    assert!((525.0..750.0).contains(&e2e), "e2e {e2e}");
    assert_eq!(m.itl_ms.len(), 19);
    let (tpot, tps) = dyno::results::rates(m.ttft_ms, m.e2e_ms, m.output_tokens).unwrap();
    assert!((19.0..30.0).contains(&tpot), "tpot {tpot}");
    assert!((33.0..53.0).contains(&tps), "decode tok/s {tps}");
    assert_eq!(m.output_tokens, Some(20));
    assert_eq!(m.prompt_tokens, Some(12));
    assert_eq!(m.token_source, Some(TokenSource::Usage));
    assert_eq!(m.finish_reason.as_deref(), Some("length"));
    assert!(m.text.starts_with("tok0 tok1"));
}

#[tokio::test]
async fn without_usage_the_token_source_falls_back_and_says_so() {
    let base = fixture::start().await;
    let m = ask(&base, "no-usage", true, 5000).await;
    assert_eq!(m.error, None);
    // The fixture's /tokenize wants a header this request lacks: the count
    // of content events is used.
    assert_eq!(m.token_source, Some(TokenSource::Estimate));
    assert_eq!(m.output_tokens, Some(20));

    // With it, /tokenize answers: it got the key and the headers, as the
    // chat request did.
    let headers = BTreeMap::from([("x-dyno-test".to_string(), "on".to_string())]);
    let m = ask_with(&base, "no-usage", true, 5000, headers).await;
    assert_eq!(
        (m.token_source, m.output_tokens),
        (Some(TokenSource::Tokenize), Some(20)),
        "{m:?}"
    );

    let m = ask(&base, "timings-only", true, 5000).await;
    assert_eq!(m.token_source, Some(TokenSource::ServerTimings));
    assert_eq!(m.output_tokens, Some(20));
    assert_eq!(m.server_timings.unwrap()["predicted_per_second"], 50.0);
}

#[tokio::test]
async fn sse_oddities_are_handled() {
    let base = fixture::start().await;
    let m = ask(&base, "oddities", true, 5000).await;
    assert_eq!(m.error, None);
    assert_eq!(m.text, "Hello");
    assert_eq!(m.output_tokens, Some(2));
    assert_eq!(m.itl_ms.len(), 1);
    // The role-only event (at ~4 ms) does not count as the first token (~46 ms).
    assert!(m.ttft_ms.unwrap() >= 40.0, "{:?}", m.ttft_ms);
}

#[tokio::test]
async fn non_streaming_has_e2e_but_no_ttft() {
    let base = fixture::start().await;
    let m = ask(&base, "non-stream", false, 5000).await;
    assert_eq!(m.error, None);
    assert_eq!(m.ttft_ms, None);
    assert!(m.e2e_ms.unwrap() >= 95.0);
    assert_eq!(m.text, "Hello there");
    assert_eq!(m.output_tokens, Some(2));
}

#[tokio::test]
async fn each_fault_has_its_kind() {
    let base = fixture::start().await;
    let cases = [
        (
            "http-500",
            ErrorKind::HttpStatus,
            "HTTP 500: internal failure",
        ),
        (
            "unknown-model",
            ErrorKind::HttpStatus,
            "HTTP 404: model 'unknown-model' not found",
        ),
        ("garbage", ErrorKind::BadSse, "event is not JSON"),
        (
            "early-eof",
            ErrorKind::EarlyEof,
            "stream closed before the response was complete",
        ),
        ("error-payload", ErrorKind::ServerError, "out of memory"),
        (
            "slow",
            ErrorKind::Timeout,
            "no complete response within 0.5 s",
        ),
    ];
    for (model, expected, text) in cases {
        let m = ask(&base, model, true, 500).await;
        assert_eq!(kind(&m), Some(expected), "{model}: {:?}", m.error);
        let message = &m.error.as_ref().unwrap().1;
        assert!(message.contains(text), "{model}: {message}");
        assert!(!message.contains("sk-test-secret"));
    }
    // What was measured before the fault stays.
    let m = ask(&base, "early-eof", true, 500).await;
    assert!(m.ttft_ms.is_some());
    assert_eq!(m.text, "ab");
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let m = ask(
        &format!("http://127.0.0.1:{port}/v1"),
        "timetable",
        true,
        2000,
    )
    .await;
    assert_eq!(kind(&m), Some(ErrorKind::Connect), "{:?}", m.error);
}

#[tokio::test]
async fn a_200_mb_error_body_is_read_to_64_kib() {
    let base = fixture::start().await;
    let started = std::time::Instant::now();
    let m = ask(&base, "huge-error", true, 20_000).await;
    assert_eq!(kind(&m), Some(ErrorKind::HttpStatus), "{:?}", m.error);
    let message = &m.error.as_ref().unwrap().1;
    // The clipped start of the body: 300 characters and an ellipsis.
    assert!(message.starts_with("HTTP 500: xxxx"), "{}", &message[..40]);
    assert!(message.chars().count() < 400, "{} chars", message.len());
    // Reading 200 MB over loopback would take far longer than this.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn bodies_events_and_token_counts_beyond_the_bounds_are_errors() {
    let base = fixture::start().await;
    let cases = [
        (
            "huge-body",
            false,
            ErrorKind::TooLarge,
            "the response body is larger than 16384 KiB; dyno stops reading there",
        ),
        (
            "huge-event",
            true,
            ErrorKind::TooLarge,
            "one SSE event is larger than 1024 KiB; dyno stops reading there",
        ),
        (
            "huge-usage",
            false,
            ErrorKind::BadSse,
            "usage.completion_tokens is 18446744073709551615, not a plausible token count (at most 10000000)",
        ),
    ];
    for (model, stream, expected, text) in cases {
        let m = ask(&base, model, stream, 20_000).await;
        assert_eq!(
            m.error.as_ref().map(|(k, t)| (*k, t.as_str())),
            Some((expected, text)),
            "{model}"
        );
        assert_eq!(m.output_tokens, None, "{model}");
    }
}
