//! A timetable fixture: a minimal OpenAI-compatible HTTP/1.1 server on
//! 127.0.0.1 whose `POST /v1/chat/completions` streams on a programmed
//! timetable, so client timing is measured against known truth. It is a
//! scripted server for benchmarks and tests, never a model.
//!
//! The timetable comes from the model name, `tt-F-I-N`: first content `F`
//! ms after the request was read, then one token every `I` ms, `N` tokens
//! in all (`tt-150-1-200`; fractions allowed, `tt-0-0.5-10`). `tt-F-I`
//! takes `N` from the request's `max_tokens`. After the last token come a
//! usage chunk (`completion_tokens: N`) and `[DONE]`. A role-only chunk
//! goes out at once, as real servers send it. `tt-F-I-N-close` closes the
//! connection after the response without saying so beforehand, as
//! llama-server does after a stream.
//!
//! The server records, per request, the instant just before each content
//! chunk was written (on the same monotonic clock as the client, both in
//! one process), keyed by the request's `seed`: client error is
//! client-observed time − server send time. It runs on a thread and a
//! single-threaded runtime of its own, answers many streams side by side
//! (connections are kept alive, chunked transfer encoding), and counts the
//! connections it accepted.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// When content goes out: first after `first_ms`, then every `every_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timetable {
    pub(crate) first_ms: f64,
    pub(crate) every_ms: f64,
    pub(crate) tokens: u32,
    /// The connection closes after the response.
    pub(crate) close: bool,
}

impl Timetable {
    pub(crate) fn new(first_ms: f64, every_ms: f64, tokens: u32) -> Timetable {
        Timetable {
            first_ms,
            every_ms,
            tokens,
            close: false,
        }
    }

    /// The model name that asks for this timetable: `tt-150-1-200`.
    pub(crate) fn model(&self) -> String {
        let close = if self.close { "-close" } else { "" };
        format!(
            "tt-{}-{}-{}{close}",
            self.first_ms, self.every_ms, self.tokens
        )
    }

    /// The timetable a model name asks for; `max_tokens` stands in for a
    /// missing token count.
    pub(crate) fn parse(model: &str, max_tokens: Option<u64>) -> Option<Timetable> {
        let mut parts = model.strip_prefix("tt-")?.split('-');
        let ms = |p: Option<&str>| {
            p.and_then(|p| p.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        let first_ms = ms(parts.next())?;
        let every_ms = ms(parts.next())?;
        let tokens = match parts.next() {
            Some(n) => n.parse().ok()?,
            None => u32::try_from(max_tokens?).ok()?,
        };
        let close = match parts.next() {
            Some("close") => true,
            None => false,
            Some(_) => return None,
        };
        (parts.next().is_none() && tokens > 0).then_some(Timetable {
            first_ms,
            every_ms,
            tokens,
            close,
        })
    }

    /// When token `k` (0-based) is due after `start`.
    pub(crate) fn due(&self, start: Instant, k: u32) -> Instant {
        start + Duration::from_secs_f64((self.first_ms + f64::from(k) * self.every_ms) / 1000.0)
    }
}

/// One streamed request, as the server sent it.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    /// The request's `seed`: the key a client tags its requests with.
    pub(crate) seed: u64,
    pub(crate) model: String,
    /// When the request was read in full.
    pub(crate) received: Instant,
    /// Just before each content chunk was written, in order.
    pub(crate) content: Vec<Instant>,
    /// The connection had answered an earlier request (of any kind).
    pub(crate) reused: bool,
}

/// What the server and the test or bench share.
#[derive(Default)]
struct Shared {
    served: Mutex<Vec<Served>>,
    connections: AtomicU64,
}

/// A running fixture; dropping it stops the server.
pub(crate) struct Fixture {
    /// `http://127.0.0.1:PORT/v1`.
    pub(crate) base_url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fixture {
    /// Starts the server on a free port, on a thread of its own.
    pub(crate) fn start() -> Fixture {
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, addr) = std::sync::mpsc::channel();
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("timetable-fixture".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fixture runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    ready
                        .send(listener.local_addr().expect("address"))
                        .expect("fixture start");
                    tokio::select! {
                        () = serve(listener, state) => {}
                        _ = stopped => {}
                    }
                });
            })
            .expect("fixture thread");
        let addr = addr.recv().expect("fixture address");
        Fixture {
            base_url: format!("http://{addr}/v1"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `…/v1/chat/completions`.
    pub(crate) fn chat_url(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }

    /// Every request served so far (and forgets them).
    pub(crate) fn take(&self) -> Vec<Served> {
        std::mem::take(&mut *self.shared.served.lock().expect("fixture state"))
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, Arc::clone(&shared)));
    }
}

/// One request: method, path, body, and whether the client asked to close.
struct Incoming {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

/// The next request on `stream` (`buf` keeps bytes read past it); `None`
/// at end of stream or on a request that is not HTTP/1.1.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Incoming> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let (mut length, mut close) = (0usize, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            length = value.parse().ok()?;
        } else if name == "connection" && value.eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    Some(Incoming {
        method,
        path,
        body,
        close,
    })
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    let mut reused = false;
    while let Some(request) = read_request(&mut stream, &mut buf).await {
        let received = Instant::now();
        let kept = match (request.method.as_str(), request.path.as_str()) {
            ("POST", path) if path.ends_with("/chat/completions") => {
                let at = (received, reused);
                chat(&mut stream, &request.body, at, &shared).await
            }
            ("GET", path) if path.ends_with("/models") => {
                whole(&mut stream, "200 OK", r#"{"object":"list","data":[]}"#).await
            }
            _ => {
                whole(
                    &mut stream,
                    "404 Not Found",
                    r#"{"error":{"message":"no such route"}}"#,
                )
                .await
            }
        };
        if !kept || request.close {
            break;
        }
        reused = true;
    }
    // A moment late, as a server busy with its own end of the stream: a
    // client that took the connection as kept alive has sent on it.
    tokio::time::sleep(Duration::from_millis(3)).await;
    let _ = stream.shutdown().await;
}

/// A whole JSON response; whether the connection is still usable.
async fn whole(stream: &mut TcpStream, status: &str, body: &str) -> bool {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await.is_ok()
}

/// One SSE event as an HTTP chunk.
fn event(data: &str) -> Vec<u8> {
    let payload = format!("data: {data}\n\n");
    format!("{:x}\r\n{payload}\r\n", payload.len()).into_bytes()
}

fn delta(model: &str, delta: &str, finish: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-tt","object":"chat.completion.chunk","created":0,"model":"{model}","choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]}}"#
    )
}

/// Streams the timetable the request asks for (`received` at that instant,
/// on a connection `reused` or not); whether the connection is still usable.
async fn chat(
    stream: &mut TcpStream,
    body: &[u8],
    (received, reused): (Instant, bool),
    shared: &Shared,
) -> bool {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let model = request["model"].as_str().unwrap_or_default().to_string();
    let Some(timetable) = Timetable::parse(&model, request["max_tokens"].as_u64()) else {
        let message = format!(r#"{{"error":{{"message":"model `{model}` is not tt-F-I-N"}}}}"#);
        return whole(stream, "404 Not Found", &message).await;
    };
    let seed = request["seed"].as_u64().unwrap_or(0);
    let streamed = request["stream"].as_bool().unwrap_or(false);
    let n = timetable.tokens;
    if !streamed {
        tokio::time::sleep_until(timetable.due(received, n - 1).into()).await;
        let text = "tok ".repeat(n as usize);
        let body = format!(
            r#"{{"id":"chatcmpl-tt","object":"chat.completion","model":"{model}","choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}"}},"finish_reason":"length"}}],"usage":{{"prompt_tokens":8,"completion_tokens":{n},"total_tokens":{}}}}}"#,
            8 + n
        );
        return whole(stream, "200 OK", &body).await;
    }
    let mut head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    head.extend(event(&delta(
        &model,
        r#"{"role":"assistant","content":""}"#,
        "null",
    )));
    if stream.write_all(&head).await.is_err() {
        return false;
    }
    let token = event(&delta(&model, r#"{"content":"tok "}"#, "null"));
    let last = event(&delta(&model, r#"{"content":"tok "}"#, r#""length""#));
    let mut content = Vec::with_capacity(n as usize);
    for k in 0..n {
        tokio::time::sleep_until(timetable.due(received, k).into()).await;
        let bytes = if k + 1 == n { &last } else { &token };
        content.push(Instant::now());
        if stream.write_all(bytes).await.is_err() {
            return false;
        }
    }
    let mut tail = event(&format!(
        r#"{{"id":"chatcmpl-tt","object":"chat.completion.chunk","created":0,"model":"{model}","choices":[],"usage":{{"prompt_tokens":8,"completion_tokens":{n},"total_tokens":{}}}}}"#,
        8 + n
    ));
    tail.extend(event("[DONE]"));
    // The body's end on its own, as servers send it: a client that stops
    // reading at `[DONE]` cannot reuse the connection.
    let ok = stream.write_all(&tail).await.is_ok() && stream.write_all(b"0\r\n\r\n").await.is_ok();
    shared.served.lock().expect("fixture state").push(Served {
        seed,
        model,
        received,
        content,
        reused,
    });
    ok && !timetable.close
}
