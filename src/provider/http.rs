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
//! PEM file) is trusted besides the rest, for self-signed local servers.
//!
//! Proxies: `Measure` and `Probe` clients honour `HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (reqwest's default; the
//! operating system's proxy settings are not read); `MeasureLocal` and
//! `Local` clients, for services on this machine, never use a proxy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a client is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Purpose {
    /// Timed requests: a fresh connection per request. A pooled connection
    /// that the server closed while idle fails the next request on send (a
    /// client artifact, not a server fault); connect time on loopback is
    /// tens of microseconds.
    Measure,
    /// Timed requests to a service on this machine (a managed server,
    /// Foundry Local): as `Measure`, never through a proxy.
    MeasureLocal,
    /// Side requests to a service on this machine (readiness, Foundry
    /// Local): no system proxy, a short connect timeout.
    Local,
    /// Listings and probes of any endpoint: a short connect timeout.
    Probe,
}

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
        Purpose::Measure => builder.pool_max_idle_per_host(0),
        Purpose::MeasureLocal => builder.pool_max_idle_per_host(0).no_proxy(),
        Purpose::Local => builder.no_proxy().connect_timeout(CONNECT_TIMEOUT),
        Purpose::Probe => builder.connect_timeout(CONNECT_TIMEOUT),
    };
    let builder = builder.tls_certs_merge(public_roots());
    let builder = match ca_cert {
        Some(path) => builder.tls_certs_merge(read_ca_cert(path)?),
        None => builder,
    };
    builder.build().map_err(ClientError::Build)
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

/// The certificates of a PEM file.
fn read_ca_cert(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let failed = |reason: String| ClientError::CaCert {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| failed(crate::text::error_chain(&e)))?;
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

/// What went wrong with the server's certificate, in a sentence that says
/// what to do; `None` when `err` is not about a certificate. Both TLS
/// stacks name the certificate in their messages ("invalid peer
/// certificate: UnknownIssuer", "The certificate chain was issued by an
/// authority that is not trusted").
pub(crate) fn certificate_problem(err: &reqwest::Error) -> Option<String> {
    let detail = crate::text::root_cause(err);
    let chain = crate::text::error_chain(err).to_ascii_lowercase();
    if !chain.contains("certificate") {
        return None;
    }
    Some(
        if chain.contains("not valid for name") || chain.contains("notvalidforname") {
            format!(
                "TLS: the server's certificate is not valid for this host name ({detail}); use a host name it names in `base_url`"
            )
        } else {
            format!(
                "TLS: the server's certificate is not trusted ({detail}); give the endpoint a `ca_cert:` (a PEM file with the certificate of the CA that signed it, or the server's own self-signed certificate)"
            )
        },
    )
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
            Purpose::Measure,
            Purpose::MeasureLocal,
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
        let err = client(Purpose::Measure, Some(&missing)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot use `ca_cert` {}: ", missing.display())),
            "{err}"
        );
        let text = dir.path().join("text.pem");
        std::fs::write(&text, "not a certificate\n").unwrap();
        let err = client(Purpose::Measure, Some(&text)).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
