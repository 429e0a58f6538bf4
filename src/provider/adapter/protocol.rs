//! The adapter protocol (`docs/adapter-protocol.md`): the JSON lines dyno
//! writes (`load`, `generate`, `cancel`, `shutdown`) and reads (`hello`,
//! `loaded`, `token`, `done`, `error`), and the text of protocol errors.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol version this module speaks (the `protocol` field of `hello`
/// and `load`).
pub(crate) const PROTOCOL_VERSION: u64 = 1;

/// A stdout line longer than this is a protocol error (and is not kept).
pub(super) const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// At most this many characters of an offending line go into an error.
pub(super) const EXCERPT_CHARS: usize = 200;

/// One chat message, sent as `{"role": ..., "content": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// Sampling parameters of one generation. Unset fields are left out of the
/// `params` object of the `generate` message.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GenerateParams {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub seed: Option<u64>,
    /// Further keys passed through as is; the typed fields above win on a
    /// name clash.
    pub extra: Map<String, Value>,
}

impl GenerateParams {
    /// The `params` object of a `generate` message.
    pub(super) fn to_json(&self) -> Map<String, Value> {
        let mut params = self.extra.clone();
        if let Some(n) = self.max_tokens {
            params.insert("max_tokens".into(), n.into());
        }
        if let Some(t) = self.temperature {
            // A non-finite temperature has no JSON form; it is left out.
            if let Some(number) = serde_json::Number::from_f64(t) {
                params.insert("temperature".into(), Value::Number(number));
            }
        }
        if let Some(seed) = self.seed {
            params.insert("seed".into(), seed.into());
        }
        params
    }
}

/// Messages dyno sends.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Outgoing<'a> {
    Load {
        protocol: u64,
        weights_path: Option<&'a str>,
        params: &'a Map<String, Value>,
    },
    Generate {
        id: &'a str,
        messages: &'a [Message],
        params: Map<String, Value>,
    },
    Cancel {
        id: &'a str,
    },
    Shutdown,
}

/// Messages the adapter sends. Unknown fields are ignored.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Incoming {
    Hello {
        #[serde(default)]
        protocol: Value,
    },
    Loaded {
        #[serde(default)]
        info: Option<Value>,
    },
    Token {
        id: String,
        text: String,
    },
    Done {
        id: String,
        #[serde(default)]
        usage: Option<Usage>,
        #[serde(default)]
        finish_reason: Option<String>,
    },
    Error {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
}

impl Incoming {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Incoming::Hello { .. } => "hello",
            Incoming::Loaded { .. } => "loaded",
            Incoming::Token { .. } => "token",
            Incoming::Done { .. } => "done",
            Incoming::Error { .. } => "error",
        }
    }
}

/// The `usage` object of `done`.
#[derive(Deserialize)]
pub(super) struct Usage {
    #[serde(default)]
    pub(super) prompt_tokens: Option<u64>,
    #[serde(default)]
    pub(super) completion_tokens: Option<u64>,
}

/// Parses one stdout line into a message, or says what is wrong with it.
pub(super) fn parse_line(bytes: &[u8], too_long: bool) -> Result<Incoming, String> {
    if too_long {
        return Err(format!(
            "a line longer than {MAX_LINE_BYTES} bytes: {}",
            excerpt(bytes)
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|err| format!("a line that is not JSON ({err}): {}", excerpt(bytes)))?;
    Incoming::deserialize(value)
        .map_err(|err| format!("not a valid protocol message ({err}): {}", excerpt(bytes)))
}

pub(super) fn wrong_id(kind: &str, got: &str, expected: &str) -> String {
    format!("`{kind}` for request id {got:?} while {expected:?} was running")
}

pub(super) fn closed_stdout(reason: Option<&str>) -> String {
    match reason {
        Some(reason) => format!("closed its stdout (read error: {reason})"),
        None => "closed its stdout".to_owned(),
    }
}

/// The start of a line, lossy UTF-8, for error messages.
pub(super) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}
