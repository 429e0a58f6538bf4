//! The one error type at the provider boundary. Each provider (managed
//! server, endpoint, adapter, Foundry Local) has its own detailed error
//! inside; what crosses into the executor, the judge and the probes is a
//! [`ProviderError`]: what failed (the variant) and a message for people,
//! formatted where the detail is known. Keeping the message pre-formatted
//! lets [`ProviderError::redact`] pass every one through the suite's
//! secrets in one place.

use thiserror::Error;

use crate::secrets::Secrets;

/// Why a provider could not be opened or started, or why what served its
/// model is gone.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProviderError {
    /// The model names a server or endpoint the suite does not define.
    #[error("{0}")]
    Undefined(String),
    /// The HTTP client for the service could not be built (its `ca_cert`,
    /// the platform's TLS).
    #[error("{0}")]
    Client(String),
    /// What serves the model did not start, or did not load it.
    #[error("{0}")]
    Start(String),
    /// What served the model exited during a request: its exit and last
    /// log lines.
    #[error("{0}")]
    Died(String),
}

impl ProviderError {
    /// The same error with every secret of the suite masked.
    #[must_use]
    pub(crate) fn redact(self, secrets: &Secrets) -> ProviderError {
        let mask = |text: String| secrets.redact(&text);
        match self {
            ProviderError::Undefined(m) => ProviderError::Undefined(mask(m)),
            ProviderError::Client(m) => ProviderError::Client(mask(m)),
            ProviderError::Start(m) => ProviderError::Start(mask(m)),
            ProviderError::Died(m) => ProviderError::Died(mask(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_redacted() {
        let mut secrets = Secrets::default();
        secrets.add("sk-live-123");
        for err in [
            ProviderError::Undefined("sk-live-123".into()),
            ProviderError::Client("sk-live-123".into()),
            ProviderError::Start("sk-live-123".into()),
            ProviderError::Died("sk-live-123".into()),
        ] {
            let shown = err.clone().redact(&secrets).to_string();
            assert!(!shown.contains("sk-live-123"), "{err:?} → {shown}");
        }
    }
}
