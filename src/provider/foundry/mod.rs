//! Microsoft Foundry Local support.
//!
//! Owns: finding a running Foundry Local service (the suite's `base_url`,
//! then `FOUNDRY_LOCAL_ENDPOINT`, then the `foundry` CLI), telling its two
//! service generations apart, its management routes (catalog, cached and
//! loaded models, load / unload / download, token count) and resolving an
//! alias to the exact catalog variant a run must use.
//!
//! Must never: assume a port, hand an alias to the service (the exact variant
//! id is resolved here and recorded), send chat requests (the
//! OpenAI-compatible client does that against [`Foundry::chat_base_url`]),
//! download a model unless asked to, or start, stop or reconfigure the
//! Foundry Local service itself.

mod catalog;
mod discover;
mod local;
mod service;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use catalog::*;
pub use discover::*;
pub use local::{Local, Shared};
pub use service::*;

pub use crate::suite::Device;

/// Environment variable holding an explicit service URL.
pub(crate) const ENDPOINT_ENV: &str = "FOUNDRY_LOCAL_ENDPOINT";
/// How long one `foundry` CLI call may take before it is killed.
pub(crate) const DEFAULT_CLI_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a load may take: first loads of large models take minutes.
pub(crate) const DEFAULT_LOAD_TIMEOUT: Duration = Duration::from_mins(20);
/// Idle time after which the service may unload a model we loaded.
pub(crate) const DEFAULT_LOAD_TTL: Duration = Duration::from_mins(10);

/// Timeout of the generation probes made by [`Foundry::connect`].
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of catalog / list / unload calls.
pub(super) const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of the token-count call.
pub(super) const TOKEN_COUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest response-body excerpt quoted in an error.
pub(super) const BODY_EXCERPT: usize = 300;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Everything that can go wrong talking to Foundry Local. Every message says
/// what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum FoundryError {
    /// The `foundry` CLI is absent and no URL was configured.
    #[error(
        "Foundry Local not found (tried: {}); install Foundry Local, or set the suite's `base_url` or {ENDPOINT_ENV} to the service URL",
        .tried.join("; ")
    )]
    NotFound { tried: Vec<String> },

    /// The CLI exists but reported no running service.
    #[error(
        "Foundry Local is installed but no running service was found (tried: {}); start it with `foundry service start` (its port changes on every start) or set {ENDPOINT_ENV}",
        .tried.join("; ")
    )]
    NotRunning { tried: Vec<String> },

    /// A configured or discovered URL is unusable.
    #[error(
        "invalid Foundry Local URL `{url}` (from {origin}): {reason}; use e.g. `http://127.0.0.1:5273`, with or without `/v1`"
    )]
    InvalidUrl {
        url: String,
        origin: String,
        reason: String,
    },

    /// Nothing answered at the URL.
    #[error(
        "cannot reach Foundry Local at {url}: {reason}; check it is running (`foundry service status`) and that the URL is current (the port changes on restart)"
    )]
    Unreachable { url: String, reason: String },

    /// Something answered, but it is neither service generation.
    #[error(
        "{url} does not look like Foundry Local: neither `/openai/status` nor `/status` answered with JSON ({detail}); check the URL points at the Foundry Local service"
    )]
    NotFoundry { url: String, detail: String },

    /// A request failed after the service was found.
    #[error(
        "request `{route}` to Foundry Local failed: {reason}; check the service is still running (`foundry service status`)"
    )]
    Request { route: String, reason: String },

    /// The service answered with an error status.
    #[error("Foundry Local answered HTTP {status} to `{route}`: {body}; {hint}")]
    Http {
        route: String,
        status: u16,
        body: String,
        hint: String,
    },

    /// The service answered 2xx with a body we cannot read.
    #[error(
        "Foundry Local sent an unexpected response to `{route}`: {detail}; this Foundry Local version may not be supported yet"
    )]
    BadResponse { route: String, detail: String },

    /// The variant is in the catalog but not downloaded.
    #[error(
        "model `{id}` is not cached; run `foundry model download {id}` or set `download: true`"
    )]
    NotCached { id: String },

    /// Neither a variant id nor an alias of the catalog.
    #[error("unknown Foundry Local model `{query}`; {}", unknown_hint(.suggestions, .available))]
    UnknownModel {
        query: String,
        /// Aliases or ids close to the query.
        suggestions: Vec<String>,
        /// Every alias of the catalog (empty when the catalog was not read).
        available: Vec<String>,
    },

    /// The alias exists but not for the requested device.
    #[error(
        "alias `{alias}` has no {device} variant (it has: {}); list only those in the model's `variants`, or remove `variants` to let dyno pick",
        join_devices(.available)
    )]
    NoVariantForDevice {
        alias: String,
        device: Device,
        available: Vec<Device>,
    },

    /// An exact variant id was given together with a different device.
    #[error(
        "`{id}` is a {actual} variant but device {requested} was requested; give the alias `{alias}` to pick a variant per device, or drop the device"
    )]
    DeviceMismatch {
        id: String,
        alias: String,
        actual: Device,
        requested: Device,
    },

    /// The service generation has no route for this.
    #[error("{operation} is not available on the {generation}; {hint}")]
    Unsupported {
        operation: &'static str,
        generation: Generation,
        hint: String,
    },

    /// The service reported a failed download.
    #[error(
        "download of `{id}` failed: {message}; retry, or run `foundry model download {id}` to see the CLI's own error"
    )]
    DownloadFailed { id: String, message: String },

    /// The HTTP client could not be created.
    #[error("could not create the HTTP client: {0}; this is a bug or a broken TLS/system setup")]
    Client(String),
}

fn unknown_hint(suggestions: &[String], available: &[String]) -> String {
    if !suggestions.is_empty() {
        format!(
            "did you mean {}? (`foundry model list` shows the catalog)",
            quote_list(suggestions)
        )
    } else if !available.is_empty() {
        const SHOWN: usize = 30;
        let mut text = format!(
            "available aliases: {}",
            quote_list(&available[..available.len().min(SHOWN)])
        );
        if available.len() > SHOWN {
            text.push_str(&format!(" and {} more", available.len() - SHOWN));
        }
        text
    } else {
        "run `foundry model list` to see the catalog".to_string()
    }
}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_devices(devices: &[Device]) -> String {
    devices
        .iter()
        .map(Device::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
