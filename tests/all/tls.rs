//! HTTPS endpoints (issue 16): the scripted fixture served over TLS with a
//! certificate made by the test. An endpoint whose `ca_cert:` names that
//! certificate is measured like any other; without it every request fails
//! with a message that says what to do; a `ca_cert` that is not there is a
//! load error at its line.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use dyno::plan::Filter;
use dyno::results::{ErrorKind, Status, TokenSource};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

use crate::{Tree, fixture};

/// Accepts TCP connections and completes their TLS handshakes; a client
/// that refuses the certificate is dropped and the next one is accepted.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let handshake = self.acceptor.accept(stream);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Starts the fixture behind TLS with a new self-signed certificate for
/// 127.0.0.1; returns its base URL (`https://127.0.0.1:PORT/v1`) and the
/// certificate in PEM.
async fn start_https() -> (String, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    serve_https(&cert, &signing_key).await
}

/// A self-signed certificate marked `CA:TRUE`, as `openssl req -x509`
/// makes them, for `names` (IP addresses or host names); `expired` dates
/// it in the past.
fn ca_flagged(names: &[&str], expired: bool) -> rcgen::CertifiedKey<rcgen::KeyPair> {
    let names: Vec<String> = names.iter().map(ToString::to_string).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let signing_key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&signing_key).unwrap();
    rcgen::CertifiedKey { cert, signing_key }
}

/// Starts the fixture behind TLS presenting `cert`; returns its base URL
/// and the certificate in PEM.
async fn serve_https(cert: &rcgen::Certificate, signing_key: &rcgen::KeyPair) -> (String, String) {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move {
        axum::serve(listener, fixture::router()).await.unwrap();
    });
    (format!("https://{addr}/v1"), cert.pem())
}

/// Runs the suite of `base` with `ca_cert:` `certs/server.pem` holding
/// `pem`; returns the samples' errors (`None` for a request that succeeded).
async fn errors_with_ca_cert(base: &str, pem: &str) -> Vec<Option<String>> {
    let tree = Tree::new(&[
        ("s.yaml", &suite(base, Some("certs/server.pem"))),
        ("certs/server.pem", pem),
    ]);
    let out = tree.path("out");
    dyno::run::run_suite(&tree.path("s.yaml"), &Filter::default(), Some(&out), true)
        .await
        .unwrap();
    let doc = crate::load_results(&out);
    assert_eq!(doc.samples.len(), 2, "{:?}", doc.samples);
    doc.samples.iter().map(|s| s.error.clone()).collect()
}

fn suite(base: &str, ca_cert: Option<&str>) -> String {
    let ca_cert = ca_cert.map_or(String::new(), |path| format!(", ca_cert: {path}"));
    format!(
        r#"
name: https
endpoints:
  secure: {{ base_url: "{base}"{ca_cert} }}
models:
  - {{ id: timetable, endpoint: secure }}
prompts:
  - {{ id: count, text: Count. }}
defaults: {{ rounds: 2, warmup: 0 }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_with_its_ca_cert_is_measured() {
    let (base, pem) = start_https().await;
    let tree = Tree::new(&[
        ("s.yaml", &suite(&base, Some("certs/fixture.pem"))),
        ("certs/fixture.pem", &pem),
    ]);
    let (summary, doc) =
        crate::run_and_load(&tree.path("s.yaml"), &Filter::default(), &tree.path("out")).await;
    assert_eq!((summary.requests, summary.failed_requests), (2, 0));
    for sample in &doc.samples {
        assert_eq!(sample.status, Status::Ok, "{:?}", sample.error);
        assert_eq!(sample.output_tokens, Some(20));
        assert_eq!(sample.token_source, Some(TokenSource::Usage));
        assert!(sample.ttft_ms.is_some());
    }
    // Results record the path as written, the same on every machine.
    let endpoint = &doc.suite.resolved["endpoints"]["secure"];
    assert_eq!(endpoint["ca_cert"], "certs/fixture.pem");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ca_cert_every_request_fails_saying_what_to_do() {
    let (base, _) = start_https().await;
    let tree = Tree::new(&[("s.yaml", &suite(&base, None))]);
    let out = tree.path("out");
    let summary = dyno::run::run_suite(&tree.path("s.yaml"), &Filter::default(), Some(&out), true)
        .await
        .unwrap();
    assert_eq!((summary.requests, summary.failed_requests), (2, 2));
    let doc = crate::load_results(&out);
    assert_eq!(doc.samples.len(), 2);
    for sample in &doc.samples {
        assert_eq!(sample.error_kind, Some(ErrorKind::Connect));
        let message = sample.error.as_deref().unwrap_or_default();
        assert!(
            message.starts_with("TLS: the server's certificate is not trusted ("),
            "{message}"
        );
        assert!(
            message.ends_with(
                "give the endpoint a `ca_cert:` (a PEM file with the certificate of the CA that signed it, or the server's own self-signed certificate)"
            ),
            "{message}"
        );
    }
}

#[test]
fn validate_points_at_a_missing_ca_cert() {
    let text = suite("https://127.0.0.1:9/v1", Some("missing.pem"));
    let tree = Tree::new(&[("s.yaml", &text)]);
    let line = text
        .lines()
        .position(|l| l.contains("ca_cert: missing.pem"))
        .unwrap()
        + 1;
    let column = text
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("missing.pem")
        .unwrap()
        + 1;
    let out = Command::new(env!("CARGO_BIN_EXE_dyno"))
        .args(["validate", tree.path("s.yaml").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = tree.anonymize(&String::from_utf8(out.stderr).unwrap());
    assert!(
        stderr.starts_with(
            "error: endpoint `secure`: `ca_cert` DIR/missing.pem cannot be read: No such file or directory"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("--> DIR/s.yaml:{line}:{column}\n")),
        "{stderr}"
    );
    assert!(
        stderr.contains("= hint: a PEM file with the server's certificate or its CA's"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_23_the_servers_own_ca_flagged_certificate_as_ca_cert_is_trusted() {
    let key = ca_flagged(&["127.0.0.1"], false);
    let (base, pem) = serve_https(&key.cert, &key.signing_key).await;
    let errors = errors_with_ca_cert(&base, &pem).await;
    assert_eq!(errors, vec![None, None], "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_23_a_pinned_certificate_for_another_host_is_refused_naming_the_host() {
    let key = ca_flagged(&["lab.example"], false);
    let (base, pem) = serve_https(&key.cert, &key.signing_key).await;
    for error in errors_with_ca_cert(&base, &pem).await {
        let message = error.unwrap_or_default();
        assert!(
            message.starts_with(
                "TLS: the server's certificate is not valid for this host name (invalid peer certificate: certificate not valid for name \"127.0.0.1\"; certificate is only valid for DnsName(\"lab.example\"))"
            ),
            "{message}"
        );
        assert!(
            message.ends_with("use a host name it names in `base_url`"),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_23_an_expired_pinned_certificate_is_refused_saying_when_it_expired() {
    let key = ca_flagged(&["127.0.0.1"], true);
    let (base, pem) = serve_https(&key.cert, &key.signing_key).await;
    for error in errors_with_ca_cert(&base, &pem).await {
        let message = error.unwrap_or_default();
        assert!(
            message.starts_with(
                "TLS: the server's certificate expired at 2021-01-01T00:00:00Z (invalid peer certificate: certificate expired: "
            ),
            "{message}"
        );
        assert!(
            message.ends_with(
                "renew it on the server (and update `ca_cert` certs/server.pem if that holds the server's own certificate)"
            ),
            "{message}"
        );
        assert!(
            !message.contains("give the endpoint a `ca_cert:`"),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_23_a_ca_cert_of_another_server_says_it_holds_neither_certificate() {
    let (base, _) = start_https().await;
    let other = ca_flagged(&["127.0.0.1"], false);
    for error in errors_with_ca_cert(&base, &other.cert.pem()).await {
        let message = error.unwrap_or_default();
        assert!(
            message.starts_with("TLS: the server's certificate is not trusted ("),
            "{message}"
        );
        assert!(
            message.ends_with(
                "`ca_cert` certs/server.pem holds neither the server's certificate nor that of the CA that signed it"
            ),
            "{message}"
        );
    }
}
