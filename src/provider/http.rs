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
    let builder = reqwest::Client::builder();
    match purpose {
        Purpose::Measure => builder.pool_max_idle_per_host(0),
        Purpose::Local => builder.no_proxy().connect_timeout(CONNECT_TIMEOUT),
        Purpose::Probe => builder.connect_timeout(CONNECT_TIMEOUT),
    }
    .build()
}
