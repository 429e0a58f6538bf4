//! The OpenAI-compatible client against recorded bodies and streams.

use super::*;
use crate::suite::Message;

fn target(base: &str) -> Target {
    Target {
        base_url: base.into(),
        api_key: Some("sk-secret".into()),
        headers: BTreeMap::new(),
        secrets: Secrets::default(),
        ca_cert: None,
    }
}

#[test]
fn issue_23_retry_after_beyond_a_duration_is_the_longest_wait() {
    let header = |value: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, value.parse().unwrap());
        retry_after(&headers)
    };
    assert_eq!(header("2"), Some(Duration::from_secs(2)));
    assert_eq!(header("99999999999999999999"), Some(Duration::MAX));
    assert_eq!(header("-1"), None);
    assert_eq!(header("NaN"), None);
    assert_eq!(header("Wed, 21 Oct 2015 07:28:00 GMT"), None);
}

#[test]
fn urls_keep_the_base_path() {
    assert_eq!(
        target("http://h:8080/v1").chat_url(),
        "http://h:8080/v1/chat/completions"
    );
    assert_eq!(
        target("http://h:8080/").chat_url(),
        "http://h:8080/v1/chat/completions"
    );
    assert_eq!(
        target("https://h/openai/v1/").chat_url(),
        "https://h/openai/v1/chat/completions"
    );
    assert_eq!(
        target("http://h:1/v1").root_url("props"),
        "http://h:1/props"
    );
    assert_eq!(target("http://h:1/").v1_root(), "http://h:1/v1");
    assert_eq!(
        target("http://h:1/x/v1/?q=1").v1_root(),
        "http://h:1/x/v1?q=1"
    );
}

#[test]
fn a_query_in_the_base_url_is_kept_and_does_not_mangle_the_path() {
    let t = target("https://h/openai/v1?api-version=2024-06-01&api_key=k");
    assert_eq!(
        t.chat_url(),
        "https://h/openai/v1/chat/completions?api-version=2024-06-01&api_key=k"
    );
    assert_eq!(
        t.v1_url("models"),
        "https://h/openai/v1/models?api-version=2024-06-01&api_key=k"
    );
    assert_eq!(
        t.root_url("tokenize"),
        "https://h/openai/tokenize?api-version=2024-06-01&api_key=k"
    );
    assert_eq!(
        target("http://u:p@h:8/?k=v").chat_url(),
        "http://u:p@h:8/v1/chat/completions?k=v"
    );
}

#[test]
fn usage_completion_tokens_of_2_pow_64_minus_1_is_rejected() {
    let mut m = Measured::default();
    let value = json!({"usage": {"completion_tokens": u64::MAX, "prompt_tokens": 3}});
    let err = absorb_usage(&value, &mut m).unwrap_err();
    assert_eq!(err.0, ErrorKind::BadSse);
    assert_eq!(
        err.1,
        "usage.completion_tokens is 18446744073709551615, not a plausible token count (at most 10000000)"
    );
    assert_eq!(m.output_tokens, None);
    let fine = json!({"usage": {"completion_tokens": MAX_TOKEN_COUNT}});
    absorb_usage(&fine, &mut m).unwrap();
    assert_eq!(m.output_tokens, Some(MAX_TOKEN_COUNT));
}

/// Events read in place and through a JSON tree come out the same:
/// escapes, several choices, reasoning, `null`s, odd shapes.
#[test]
fn the_fast_reading_of_events_agrees_with_the_json_tree() {
    let events = [
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"Hé\n\"llo\" \ud83d\udc4b"},"finish_reason":null}]}"#,
        r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}},{"delta":{"content":""}}]}"#,
        r#"{"choices":[{"delta":{"reasoning_content":"hmm","content":null}}],"error":null}"#,
        r#"{"choices":[{"delta":{"reasoning":"and so"}}]}"#,
        r#"{"choices":[{"delta":{"content":["not","text"]}}]}"#,
        r#"{"choices":{"not":"a list"},"id":"x"}"#,
        r#"{"choices":null}"#,
        r#"{"choices":[7,{"delta":{"content":"c"},"finish_reason":"length"}]}"#,
        r#"{"choices":[{"delta":{"content":"d"},"finish_reason":"stop","logprobs":{"content":[]}}],"timings":{"predicted_n":4}}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
    ];
    let read = |slow: bool| {
        let start = Instant::now();
        let mut streamed = Streamed {
            start,
            now: start,
            last_content: None,
        };
        let (mut m, mut events_seen) = (Measured::default(), 0);
        for (i, data) in events.iter().enumerate() {
            streamed.now = start + Duration::from_millis(10 * (i as u64 + 1));
            let flow = if slow {
                match streamed.slow_event(data, &mut m, &mut events_seen, &target("http://h")) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(failure) => ControlFlow::Break(End::Failed(failure)),
                }
            } else {
                streamed.event(data, &mut m, &mut events_seen, &target("http://h"))
            };
            assert!(flow.is_continue(), "{data}");
        }
        (m, events_seen)
    };
    let (fast, slow) = (read(false), read(true));
    assert_eq!(fast, slow);
    let (m, content_events) = fast;
    assert_eq!(m.text, "Hé\n\"llo\" 👋abcd");
    assert_eq!(content_events, 5);
    assert_eq!(m.ttft_ms, Some(20.0));
    assert_eq!(m.ttfo_reasoning_ms, Some(40.0));
    assert_eq!(m.itl_ms, vec![10.0, 0.0, 60.0, 10.0]);
    assert_eq!(m.reasoning.text, "hmmand so");
    assert_eq!(m.reasoning.events, 2);
    assert_eq!(m.finish_reason.as_deref(), Some("stop"));
    assert_eq!(m.output_tokens, Some(4));
    assert_eq!(
        m.server_timings,
        Some(BTreeMap::from([("predicted_n".to_string(), 4.0)]))
    );
}

#[test]
fn an_error_event_and_done_end_the_reading() {
    let start = Instant::now();
    let mut streamed = Streamed {
        start,
        now: start,
        last_content: None,
    };
    let (mut m, mut n) = (Measured::default(), 0);
    let t = target("http://h");
    let end = streamed.event(
        r#"{"error":{"message":"out of memory"}}"#,
        &mut m,
        &mut n,
        &t,
    );
    let ControlFlow::Break(End::Failed((kind, message))) = end else {
        panic!("an error payload fails the request");
    };
    assert_eq!(
        (kind, message.as_str()),
        (ErrorKind::ServerError, "out of memory")
    );
    let end = streamed.event("{not json", &mut m, &mut n, &t);
    assert!(
        matches!(
            &end,
            ControlFlow::Break(End::Failed((ErrorKind::BadSse, _)))
        ),
        "bad JSON is bad_sse"
    );
    assert!(matches!(
        streamed.event("[DONE]", &mut m, &mut n, &t),
        ControlFlow::Break(End::Done)
    ));
}

#[test]
fn debug_never_shows_the_key() {
    assert!(!format!("{:?}", target("http://h")).contains("sk-secret"));
}

#[test]
fn streaming_body_asks_for_usage() {
    let req = Request {
        id: 1,
        model: "m".into(),
        messages: vec![Message {
            role: crate::suite::Role::User,
            content: "hi".into(),
        }],
        temperature: 0.0,
        top_p: None,
        max_tokens: 8,
        seed: 3,
        stream: true,
        ignore_eos: false,
        timeout: Duration::from_secs(1),
        response_format: None,
        thinking: None,
        cache: true,
    };
    let body = body("m", &req);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["seed"], 3);
    assert!(body.get("top_p").is_none());
    assert!(body.get("response_format").is_none());
    assert!(body.get("cache_prompt").is_none(), "{body}");
    let cold = super::body(
        "m",
        &Request {
            cache: false,
            ..req
        },
    );
    assert_eq!(cold["cache_prompt"], false, "{cold}");
    assert_eq!(cold["cache_salt"], "dyno-1-3", "{cold}");
}

#[test]
fn cached_tokens_come_from_usage_details_else_llama_cpp_timings() {
    let mut m = Measured::default();
    let openai = json!({"usage": {"prompt_tokens": 90, "completion_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 64}}});
    absorb_usage(&openai, &mut m).unwrap();
    assert_eq!(m.cached_tokens, Some(64), "{m:?}");
    let mut m = Measured::default();
    let llama = json!({"timings": {"cache_n": 37, "prompt_n": 5, "predicted_n": 4}});
    absorb_usage(&llama, &mut m).unwrap();
    assert_eq!(m.cached_tokens, Some(37), "{m:?}");
    // A later chunk without either keeps what an earlier one said.
    absorb_usage(&json!({"usage": {"completion_tokens": 4}}), &mut m).unwrap();
    assert_eq!(m.cached_tokens, Some(37), "{m:?}");
}

#[test]
fn a_context_overflow_is_too_long_whichever_server_says_it() {
    for body in [
        r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":4121,"n_ctx":2048}}"#,
        r#"{"error":{"message":"This model's maximum context length is 2048 tokens.","code":"context_length_exceeded"}}"#,
    ] {
        assert!(too_long(body), "{body}");
    }
    assert!(!too_long(r#"{"error":{"message":"model not found"}}"#));
}

#[test]
fn model_not_loaded_hints_kind_foundry() {
    let mut m = Measured::failed(ErrorKind::HttpStatus, "HTTP 400: Model not loaded");
    hint_foundry(&mut m);
    let (_, message) = m.error.unwrap();
    assert!(message.contains("use `kind: foundry`"), "{message}");
    let mut other = Measured::failed(ErrorKind::HttpStatus, "HTTP 404: model not found");
    hint_foundry(&mut other);
    assert_eq!(other.error.unwrap().1, "HTTP 404: model not found");
}

#[test]
fn error_text_prefers_the_message() {
    assert_eq!(
        error_text(r#"{"error":{"message":"model not found","code":404}}"#),
        "model not found"
    );
    assert_eq!(error_text("plain"), "plain");
}
