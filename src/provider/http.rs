//! The one place HTTP clients are built: every request dyno sends goes
//! through a client made here, so proxies, timeouts, redirects and whom TLS
//! trusts follow one policy.
//!
//! TLS. On Linux (and every target but Windows and macOS) reqwest speaks
//! rustls with its default crypto provider (aws-lc-rs) and the
//! rustls-platform-verifier, which there reads the system's CA bundle
//! (honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`, the usual way to add a
//! corporate CA); the Mozilla roots of `webpki-root-certs` are merged in,
//! so a machine without a CA bundle still reaches public endpoints. No
//! OpenSSL anywhere. On Windows and macOS reqwest speaks the operating
//! system's own TLS (SChannel, Security.framework) and trusts the system's
//! certificate store, where corporate CAs are installed: rustls's crypto
//! providers compile C for their target, which cannot be cross-checked
//! from Linux without Apple's SDK. Either way an endpoint's `ca_cert:` (a
//! PEM file) is trusted besides the rest, for self-signed local servers;
//! with rustls a server whose certificate is one of the file's is trusted
//! whatever its CA flag (`tls.rs`), as curl and OpenSSL trust it.
//!
//! Proxies: `Measure` and `Probe` clients honour `HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (reqwest's default; the
//! operating system's proxy settings are not read); `Measure { local }`
//! and `Local` clients, for services on this machine, never use a proxy.
//!
//! Connections: timed requests go out on a new connection each, unless a
//! model asks for `reuse_connections` or the requests belong to a load
//! point, whose streams keep theirs alive; every timed response says
//! whether it opened its connection, so a sample's TTFT is known to
//! include connecting or not.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::connect::{Connection, HttpInfo};

/// What a client is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Purpose {
    /// Timed requests. With `reuse` false, a fresh connection per request,
    /// as a user's first request meets the server (connect time on
    /// loopback is tens of microseconds). With `reuse`, connections are
    /// kept alive (load points, `reuse_connections`), idle ones for at
    /// most [`IDLE_KEPT`]; a request that meets one the server has closed
    /// meanwhile goes out again ([`closed_unanswered`]). `local` services
    /// (a managed server, Foundry Local) are never reached through a
    /// proxy. Either way each response says whether its connection is new
    /// ([`opened_new`]).
    Measure { local: bool, reuse: bool },
    /// Side requests to a service on this machine (readiness, Foundry
    /// Local): no system proxy, a short connect timeout.
    Local,
    /// Listings and probes of any endpoint: a short connect timeout.
    Probe,
}

/// How long a kept-alive connection may stay idle before dyno drops it:
/// below the keep-alive timeouts servers use (5 s and more), so a server
/// seldom closes a connection just as dyno sends on it.
const IDLE_KEPT: Duration = Duration::from_secs(2);

/// How long connecting may take outside timed requests.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The endpoint's `ca_cert` cannot be read or holds no certificate.
    #[error("cannot use `ca_cert` {}: {reason}", path.display())]
    CaCert { path: PathBuf, reason: String },
    /// The TLS or connection settings were refused.
    #[error("cannot build the HTTP client: {}", crate::text::error_chain(.0))]
    Build(#[source] reqwest::Error),
}

/// A client for `purpose` that trusts, besides the system's certificates,
/// those in the PEM file `ca_cert` (an endpoint's `ca_cert:`).
pub(crate) fn client(
    purpose: Purpose,
    ca_cert: Option<&Path>,
) -> Result<reqwest::Client, ClientError> {
    let builder = reqwest::Client::builder().redirect(same_origin_redirects());
    let builder = match purpose {
        Purpose::Measure { local, reuse } => {
            let builder = builder.connector_layer(tower_layer::layer_fn(MarkNew));
            let builder = if reuse {
                builder.pool_idle_timeout(IDLE_KEPT)
            } else {
                builder.pool_max_idle_per_host(0)
            };
            if local { builder.no_proxy() } else { builder }
        }
        Purpose::Local => builder.no_proxy().connect_timeout(CONNECT_TIMEOUT),
        Purpose::Probe => builder.connect_timeout(CONNECT_TIMEOUT),
    };
    let builder = match ca_cert {
        Some(path) => trusting(builder, path)?,
        None => builder.tls_certs_merge(public_roots()),
    };
    builder.build().map_err(ClientError::Build)
}

/// `builder` trusting the certificates of the PEM file `path` as servers'
/// own (whatever their CA flag) and as roots, besides the system's and
/// the Mozilla roots.
#[cfg(not(any(windows, target_vendor = "apple")))]
fn trusting(
    builder: reqwest::ClientBuilder,
    path: &Path,
) -> Result<reqwest::ClientBuilder, ClientError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs = read_ca_cert(path, |pem| {
        CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()
    })?;
    let config = super::tls::config(certs).map_err(|e| ClientError::CaCert {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(builder.tls_backend_preconfigured(config))
}

/// `builder` trusting the certificates of the PEM file `path` besides the
/// system's store (the operating system's TLS decides whether a server's
/// own certificate marked as a CA's is accepted).
#[cfg(any(windows, target_vendor = "apple"))]
fn trusting(
    builder: reqwest::ClientBuilder,
    path: &Path,
) -> Result<reqwest::ClientBuilder, ClientError> {
    let certs = read_ca_cert(path, reqwest::Certificate::from_pem_bundle)?;
    Ok(builder.tls_certs_merge(certs))
}

/// When each connection a timing client opened was established, by its
/// (local, remote) addresses: a pair no two live TCP connections of this
/// machine share, so one map serves every client, and a pair used again
/// by a later connection takes that connection's time.
static CONNECTED: Mutex<BTreeMap<(SocketAddr, SocketAddr), Instant>> = Mutex::new(BTreeMap::new());

/// Entries kept before old ones are dropped: those of connections whose
/// responses nobody asked about (side requests).
const CONNECTED_KEPT: usize = 4096;

fn connected() -> std::sync::MutexGuard<'static, BTreeMap<(SocketAddr, SocketAddr), Instant>> {
    CONNECTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The (local, remote) addresses of a connection, as its metadata says.
fn addresses(extensions: &http::Extensions) -> Option<(SocketAddr, SocketAddr)> {
    let info = extensions.get::<HttpInfo>()?;
    Some((info.local_addr(), info.remote_addr()))
}

/// Whether the connection `response` came on was established after
/// `since` (when its request started), so the request's times include
/// connecting; false on a connection opened earlier (kept alive, or
/// opened ahead by the pool) and for clients not built by [`client`] for
/// [`Purpose::Measure`]. The first response on a connection is the one
/// that can be new, so the connection is forgotten here.
pub(crate) fn opened_new(response: &reqwest::Response, since: Instant) -> bool {
    let Some(key) = addresses(response.extensions()) else {
        return false;
    };
    connected().remove(&key).is_some_and(|at| at >= since)
}

/// Whether `err` is a connection closed (or reset) before any answer
/// came: what sending on a kept-alive connection the server has just
/// closed gives (a server that closes after each streamed response, as
/// llama-server does, leaves such connections in the pool for a moment).
pub(crate) fn closed_unanswered(err: &reqwest::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = source {
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
            || err.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted)
            })
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// The connector of timing clients, wrapped: notes when each connection
/// it opens is established ([`opened_new`]).
#[derive(Clone)]
struct MarkNew<S>(S);

impl<S, R> tower_service::Service<R> for MarkNew<S>
where
    S: tower_service::Service<R>,
    S::Response: Connection + Send + 'static,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let connecting = self.0.call(request);
        Box::pin(async move {
            let connection = connecting.await?;
            let at = Instant::now();
            let mut extensions = http::Extensions::new();
            connection.connected().get_extras(&mut extensions);
            if let Some(key) = addresses(&extensions) {
                let mut connected = connected();
                if connected.len() >= CONNECTED_KEPT {
                    let old = at.checked_sub(Duration::from_mins(10)).unwrap_or(at);
                    connected.retain(|_, when| *when > old);
                }
                connected.insert(key, at);
            }
            Ok(connection)
        })
    }
}

/// Clients built once per purpose and `ca_cert` file: a run or a probe
/// asks for the client of each endpoint.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    built: BTreeMap<(Purpose, Option<PathBuf>), reqwest::Client>,
}

impl Clients {
    /// The client for `purpose` that trusts `ca_cert` besides the system's
    /// certificates.
    pub(crate) fn get(
        &mut self,
        purpose: Purpose,
        ca_cert: Option<&Path>,
    ) -> Result<reqwest::Client, ClientError> {
        let key = (purpose, ca_cert.map(Path::to_path_buf));
        if let Some(client) = self.built.get(&key) {
            return Ok(client.clone());
        }
        let built = client(purpose, ca_cert)?;
        self.built.insert(key, built.clone());
        Ok(built)
    }
}

/// The certificates of a PEM file, as `parse` reads them.
fn read_ca_cert<C, E: std::error::Error>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<Vec<C>, E>,
) -> Result<Vec<C>, ClientError> {
    let failed = |reason: String| ClientError::CaCert {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let certs = parse(&pem).map_err(|e| failed(crate::text::error_chain(&e)))?;
    if certs.is_empty() {
        return Err(failed("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The Mozilla roots, merged into the platform verifier's (rustls only:
/// the operating systems' own TLS has its store).
#[cfg(not(any(windows, target_vendor = "apple")))]
fn public_roots() -> Vec<reqwest::Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
        .collect()
}

#[cfg(any(windows, target_vendor = "apple"))]
fn public_roots() -> Vec<reqwest::Certificate> {
    Vec::new()
}

/// What is wrong with a server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertificateFault {
    /// It does not name the host of the URL.
    HostName,
    /// Its validity period is over; when it ended (seconds since 1970),
    /// where the TLS stack says.
    Expired(Option<u64>),
    /// Its validity period has not begun; when it begins, where known.
    NotYetValid(Option<u64>),
    /// Nothing the client trusts vouches for it.
    Untrusted,
}

/// The fault rustls names among `err`'s causes, with the time where it
/// gives one.
#[cfg(not(any(windows, target_vendor = "apple")))]
fn typed_fault(err: &reqwest::Error) -> Option<CertificateFault> {
    use rustls::CertificateError::{
        Expired, ExpiredContext, NotValidForName, NotValidForNameContext, NotValidYet,
        NotValidYetContext,
    };
    Some(match super::tls::certificate_error(err)? {
        NotValidForName | NotValidForNameContext { .. } => CertificateFault::HostName,
        Expired => CertificateFault::Expired(None),
        ExpiredContext { not_after, .. } => CertificateFault::Expired(Some(not_after.as_secs())),
        NotValidYet => CertificateFault::NotYetValid(None),
        NotValidYetContext { not_before, .. } => {
            CertificateFault::NotYetValid(Some(not_before.as_secs()))
        }
        _ => CertificateFault::Untrusted,
    })
}

/// The operating systems' TLS errors carry no typed fault.
#[cfg(any(windows, target_vendor = "apple"))]
fn typed_fault(_: &reqwest::Error) -> Option<CertificateFault> {
    None
}

/// The fault an error's text names (`chain` in lower case): what the
/// operating systems' TLS says ("certificate has expired", "is not within
/// its validity period", "host name mismatch").
fn fault_named(chain: &str) -> CertificateFault {
    if [
        "not valid for name",
        "notvalidforname",
        "name mismatch",
        "does not match",
    ]
    .iter()
    .any(|s| chain.contains(s))
    {
        CertificateFault::HostName
    } else if ["not valid yet", "notvalidyet", "not yet valid"]
        .iter()
        .any(|s| chain.contains(s))
    {
        CertificateFault::NotYetValid(None)
    } else if ["expired", "validity period"]
        .iter()
        .any(|s| chain.contains(s))
    {
        CertificateFault::Expired(None)
    } else {
        CertificateFault::Untrusted
    }
}

/// What went wrong with the server's certificate, in a sentence that says
/// what to do and never repeats advice the endpoint already follows;
/// `None` when `err` is not about a certificate. `ca_cert` is the
/// endpoint's `ca_cert:` as written. Both TLS stacks name the certificate
/// in their messages ("invalid peer certificate: UnknownIssuer", "The
/// certificate chain was issued by an authority that is not trusted").
pub(crate) fn certificate_problem(err: &reqwest::Error, ca_cert: Option<&str>) -> Option<String> {
    let detail = crate::text::root_cause(err);
    let chain = crate::text::error_chain(err).to_ascii_lowercase();
    if !chain.contains("certificate") {
        return None;
    }
    let fault = typed_fault(err).unwrap_or_else(|| fault_named(&chain));
    let when = |word: &str, secs: Option<u64>| {
        secs.map_or(String::new(), |s| {
            format!(" {word} {}", crate::measure::machine::utc(s))
        })
    };
    Some(match (fault, ca_cert) {
        (CertificateFault::HostName, _) => format!(
            "TLS: the server's certificate is not valid for this host name ({detail}); use a host name it names in `base_url`"
        ),
        (CertificateFault::Expired(at), _) => format!(
            "TLS: the server's certificate expired{} ({detail}); renew it on the server{}",
            when("at", at),
            ca_cert.map_or(String::new(), |file| format!(
                " (and update `ca_cert` {file} if that holds the server's own certificate)"
            )),
        ),
        (CertificateFault::NotYetValid(from), _) => format!(
            "TLS: the server's certificate is not valid yet{} ({detail}); check the clocks of this machine and the server",
            when("until", from),
        ),
        (CertificateFault::Untrusted, Some(file)) => format!(
            "TLS: the server's certificate is not trusted ({detail}); `ca_cert` {file} holds neither the server's certificate nor that of the CA that signed it"
        ),
        (CertificateFault::Untrusted, None) => format!(
            "TLS: the server's certificate is not trusted ({detail}); give the endpoint a `ca_cert:` (a PEM file with the certificate of the CA that signed it, or the server's own self-signed certificate)"
        ),
    })
}

/// How many redirects one request may follow.
const MAX_REDIRECTS: usize = 10;

/// Redirects are followed only within the origin (scheme, host and port)
/// the request was sent to: API keys and custom headers are never sent to
/// another origin. A redirect elsewhere fails the request, naming both
/// origins (never a path or query, which may hold a key).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let from = attempt.previous().first().map(reqwest::Url::origin);
        let to = attempt.url().origin();
        if from.as_ref().is_some_and(|from| *from != to) {
            let from = from.map(|o| o.ascii_serialization()).unwrap_or_default();
            let to = to.ascii_serialization();
            attempt.error(format!(
                "refused a redirect from {from} to another origin, {to}: keys and headers are never sent to another origin; use the final URL as base_url"
            ))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_purpose_builds() {
        for purpose in [
            Purpose::Measure {
                local: false,
                reuse: false,
            },
            Purpose::Measure {
                local: true,
                reuse: true,
            },
            Purpose::Local,
            Purpose::Probe,
        ] {
            assert!(client(purpose, None).is_ok(), "{purpose:?}");
        }
    }

    #[test]
    fn a_ca_cert_that_is_missing_or_not_pem_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = client(Purpose::Probe, Some(&missing)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot use `ca_cert` {}: ", missing.display())),
            "{err}"
        );
        let text = dir.path().join("text.pem");
        std::fs::write(&text, "not a certificate\n").unwrap();
        let err = client(Purpose::Probe, Some(&text)).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn issue_23_the_operating_systems_tls_messages_name_their_fault() {
        for (text, fault) in [
            (
                "the certificate's cn name does not match the passed value",
                CertificateFault::HostName,
            ),
            (
                "a required certificate is not within its validity period",
                CertificateFault::Expired(None),
            ),
            ("certificate has expired", CertificateFault::Expired(None)),
            (
                "invalid peer certificate: notvalidyet",
                CertificateFault::NotYetValid(None),
            ),
            (
                "the certificate chain was issued by an authority that is not trusted",
                CertificateFault::Untrusted,
            ),
        ] {
            let named = fault_named(text);
            assert_eq!(named, fault, "{text}: {named:?}");
        }
    }
}
