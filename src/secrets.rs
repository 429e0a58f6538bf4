//! Secrets: the values that must never leave dyno (API keys, tokens,
//! passwords), gathered while a suite loads, and the one redaction applied
//! wherever text leaves dyno: `results.json` (the resolved suite), server
//! logs' command lines, provider errors (stored error bodies, console
//! warnings) and `dyno check` / `dyno models` output.
//!
//! A value is secret when it was interpolated from an environment variable
//! whose name looks secret (it holds `KEY`, `TOKEN` but not `TOKENS`,
//! `SECRET`, `PASSWORD`, `PASSWD` or `CREDENTIAL`, in any case), when it is
//! the API key an endpoint's `api_key_env` names, the value of a header
//! whose name looks secret (or `Authorization`, `Cookie`), the argument
//! after a secret-looking flag of a server command (`--api-key VALUE`), or
//! the password (else the user name) and the query values of a base URL.
//! Values shorter than four characters are never treated as secrets: no
//! real key is that short, and replacing them would mangle ordinary text.
//!
//! Requests themselves use the real values; this module never reads the
//! environment and never decides what is sent.

use std::collections::BTreeSet;

/// What a secret is replaced with.
pub(crate) const REDACTED: &str = "<redacted>";

/// Shorter values are not redacted (see the module documentation).
const MIN_LEN: usize = 4;

/// A set of secret values. Its `Debug` shows how many, never which.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    values: BTreeSet<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

/// Whether an environment variable, header or flag named `name` holds a
/// secret: it contains `KEY`, `TOKEN` (not `TOKENS`, a count), `SECRET`,
/// `PASSWORD`, `PASSWD` or `CREDENTIAL`, ignoring case.
pub(crate) fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let token = upper
        .match_indices("TOKEN")
        .any(|(at, _)| upper.as_bytes().get(at + 5) != Some(&b'S'));
    token
        || ["KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"]
            .iter()
            .any(|word| upper.contains(word))
}

/// Whether an HTTP header named `name` carries a credential.
pub(crate) fn looks_secret_header(name: &str) -> bool {
    looks_secret(name)
        || ["authorization", "proxy-authorization", "cookie"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
}

impl Secrets {
    /// Adds `value` (trimmed); one shorter than four characters is ignored.
    pub fn add(&mut self, value: &str) {
        let value = value.trim();
        if value.chars().count() >= MIN_LEN {
            self.values.insert(value.to_string());
        }
    }

    /// Adds a header value, and the credential after its scheme
    /// (`Bearer sk-…` adds both the whole value and `sk-…`).
    pub(crate) fn add_header(&mut self, value: &str) {
        self.add(value);
        if let Some((_, credential)) = value.trim().split_once(' ') {
            self.add(credential);
        }
    }

    /// Adds the secrets of a URL: its password (else its user name) and the
    /// value of every query parameter, as written and decoded.
    pub(crate) fn add_url(&mut self, url: &str) {
        let Ok(parsed) = reqwest::Url::parse(url.trim()) else {
            return;
        };
        let credential = parsed.password().unwrap_or(parsed.username());
        self.add(credential);
        self.add(&percent_decode(credential));
        for (_, value) in parsed.query_pairs() {
            self.add(&value);
        }
        for pair in parsed.query().unwrap_or("").split('&') {
            if let Some((_, raw)) = pair.split_once('=') {
                self.add(raw);
            }
        }
    }

    /// The secrets of a server command: every argument after a flag whose
    /// name looks secret (`--api-key VALUE`), and the value of
    /// `--api-key=VALUE`.
    pub(crate) fn add_command(&mut self, command: &[String]) {
        for (i, arg) in command.iter().enumerate() {
            let Some(flag) = arg.strip_prefix('-') else {
                continue;
            };
            match flag.split_once('=') {
                Some((name, value)) if looks_secret(name) => self.add(value),
                None if looks_secret(flag) => {
                    if let Some(value) = command.get(i + 1) {
                        self.add(value);
                    }
                }
                _ => {}
            }
        }
    }

    /// Adds every value of `other`.
    pub fn extend(&mut self, other: &Secrets) {
        self.values.extend(other.values.iter().cloned());
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret replaced by [`REDACTED`], longest first, so
    /// a secret that contains another is replaced whole.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for value in self.longest_first() {
            if out.contains(value) {
                out = out.replace(value, REDACTED);
            }
        }
        out
    }

    /// Redacts every string (not the keys) of a JSON value in place.
    pub(crate) fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) if self.longest_first().any(|secret| s.contains(secret)) => {
                *s = self.redact(s);
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.redact_json(v)),
            _ => {}
        }
    }

    fn longest_first(&self) -> impl Iterator<Item = &str> {
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.into_iter()
    }
}

/// The secrets of one URL (for a URL given on the command line).
pub(crate) fn of_url(url: &str) -> Secrets {
    let mut secrets = Secrets::default();
    secrets.add_url(url);
    secrets
}

/// `%xx` escapes decoded (lossy UTF-8); anything else kept.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_names() {
        for name in [
            "KEY",
            "OPENAI_API_KEY",
            "hf_token",
            "GITHUB_TOKEN",
            "DB_PASSWORD",
            "client_secret",
            "API_KEYS",
            "TOKENSECRET",
            "X-Api-Key",
            "api-key",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["MAX_TOKENS", "DYNO_MODELS", "HOME", "THREADS", "NUM_TOKENS"] {
            assert!(!looks_secret(name), "{name}");
        }
        assert!(looks_secret_header("Authorization"));
        assert!(!looks_secret_header("Content-Type"));
    }

    #[test]
    fn redaction_replaces_longest_first_and_ignores_short_values() {
        let mut s = Secrets::default();
        s.add("sk-abcdef");
        s.add("sk-abcdef-and-more");
        s.add("abc");
        assert_eq!(
            s.redact("a sk-abcdef-and-more b sk-abcdef c abc"),
            "a <redacted> b <redacted> c abc"
        );
        assert_eq!(format!("{s:?}"), "Secrets(2 values)");
    }

    #[test]
    fn urls_commands_and_headers() {
        let mut s = Secrets::default();
        s.add_url("https://user:p%40ss-word@h/v1?api_key=sk-query&api-version=2024-06-01");
        s.add_command(&[
            "llama-server".into(),
            "--api-key".into(),
            "sk-arg-value".into(),
            "--token=tk-inline".into(),
            "--threads".into(),
            "2222".into(),
        ]);
        s.add_header("Bearer sk-header");
        let text =
            "p%40ss-word p@ss-word sk-query 2024-06-01 sk-arg-value tk-inline 2222 sk-header user";
        assert_eq!(
            s.redact(text),
            "<redacted> <redacted> <redacted> <redacted> <redacted> <redacted> 2222 <redacted> user"
        );
        let mut token_user = Secrets::default();
        token_user.add_url("https://ghp_token@h/v1");
        assert_eq!(token_user.redact("ghp_token"), REDACTED);
    }

    #[test]
    fn json_strings_are_redacted_keys_are_not() {
        let mut s = Secrets::default();
        s.add("sk-in-json");
        let mut value = serde_json::json!({"sk-in-json": ["x sk-in-json", 1, {"k": "sk-in-json"}]});
        s.redact_json(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"sk-in-json": ["x <redacted>", 1, {"k": "<redacted>"}]})
        );
    }
}
