//! The one place HTTP clients are built: every request dyno sends goes
//! through a client made here, so proxies, timeouts and redirects follow
//! one policy.

use std::time::Duration;

/// What a client is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Timed requests: a fresh connection per request. A pooled connection
    /// that the server closed while idle fails the next request on send (a
    /// client artifact, not a server fault); connect time on loopback is
    /// tens of microseconds.
    Measure,
    /// Side requests to a service on this machine (readiness, Foundry
    /// Local): no system proxy, a short connect timeout.
    Local,
    /// Listings and probes of any endpoint: a short connect timeout.
    Probe,
}

/// How long connecting may take outside timed requests.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for `purpose`.
pub(crate) fn client(purpose: Purpose) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder().redirect(same_origin_redirects());
    match purpose {
        Purpose::Measure => builder.pool_max_idle_per_host(0),
        Purpose::Local => builder.no_proxy().connect_timeout(CONNECT_TIMEOUT),
        Purpose::Probe => builder.connect_timeout(CONNECT_TIMEOUT),
    }
    .build()
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
