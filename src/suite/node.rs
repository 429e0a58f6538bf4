//! A YAML document as a tree of nodes that remember where they were written;
//! owns `${VAR}` interpolation (recording the values of secret-looking
//! variables) and JSON-pointer lookups, never suite semantics.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::secrets::{Secrets, looks_secret};

/// A position in a source file: 1-based line and column (in characters), and
/// the length in characters of the text it covers (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
    pub len: usize,
}

impl Pos {
    fn of(location: serde_saphyr::Location) -> Pos {
        let len = usize::try_from(location.span().len()).unwrap_or(1).max(1);
        Pos {
            line: usize::try_from(location.line()).unwrap_or(0),
            col: usize::try_from(location.column()).unwrap_or(0),
            len,
        }
    }
}

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub pos: Pos,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Node {
    /// Parses YAML text. Duplicate keys are errors (the parser's policy).
    pub(crate) fn parse(text: &str) -> Result<Node, serde_saphyr::Error> {
        let spanned: Spanned<Value> = serde_saphyr::from_str(text)?;
        Ok(Node {
            pos: Pos::of(spanned.referenced),
            value: spanned.value,
        })
    }

    /// The node a JSON pointer (`/models/0/id`) designates, with the
    /// position of the key when the last step is a mapping key.
    pub(crate) fn lookup(&self, pointer: &str) -> Option<&Node> {
        let mut node = self;
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            node = match &node.value {
                Value::Map(entries) => &entries.iter().find(|(k, _)| k.name == token)?.1,
                Value::Seq(items) => items.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The key `name` of this mapping, if present.
    pub(crate) fn key(&self, name: &str) -> Option<&Key> {
        match &self.value {
            Value::Map(entries) => entries.iter().map(|(k, _)| k).find(|k| k.name == name),
            _ => None,
        }
    }

    /// The tree as JSON, for schema validation and typed deserialization.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => i64::try_from(*i)
                .map(J::from)
                .or_else(|_| u64::try_from(*i).map(J::from))
                .unwrap_or_else(|_| J::from(*i as f64)),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Replaces `${VAR}` and `${VAR:-default}` in every string scalar (and
    /// `$$` by `$`); the values of secret-looking variables go into
    /// `secrets`. Returns each failure with the position of its scalar.
    pub(crate) fn interpolate(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
        secrets: &mut Secrets,
    ) -> Vec<(Pos, InterpolationError)> {
        let mut errors = Vec::new();
        self.interpolate_into(env, secrets, &mut errors);
        errors
    }

    fn interpolate_into(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
        secrets: &mut Secrets,
        errors: &mut Vec<(Pos, InterpolationError)>,
    ) {
        match &mut self.value {
            Value::Str(s) => match expand(s, env, secrets, 0) {
                Ok(expanded) => *s = expanded,
                Err(e) => errors.push((self.pos, e)),
            },
            Value::Seq(items) => items
                .iter_mut()
                .for_each(|n| n.interpolate_into(env, secrets, errors)),
            Value::Map(entries) => entries
                .iter_mut()
                .for_each(|(_, n)| n.interpolate_into(env, secrets, errors)),
            _ => {}
        }
    }
}

/// How deep `${A:-${B:-…}}` defaults may nest: deeper is an error at the
/// scalar, never a stack overflow.
pub(crate) const MAX_INTERPOLATION_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpolationError {
    Missing(String),
    Unterminated,
    BadName(String),
    TooDeep,
}

impl fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterpolationError::Missing(name) => write!(
                f,
                "environment variable `{name}` is not set and has no default"
            ),
            InterpolationError::Unterminated => write!(f, "`${{` without a closing `}}`"),
            InterpolationError::BadName(name) => {
                write!(f, "`{name}` is not a valid environment variable name")
            }
            InterpolationError::TooDeep => write!(
                f,
                "`${{VAR:-default}}` defaults nest more than {MAX_INTERPOLATION_DEPTH} deep"
            ),
        }
    }
}

impl InterpolationError {
    pub(crate) fn hint(&self) -> String {
        match self {
            InterpolationError::Missing(name) => {
                format!("export {name}=..., or give a default: ${{{name}:-value}}")
            }
            InterpolationError::Unterminated => "write `$$` for a literal `$`".into(),
            InterpolationError::BadName(_) => {
                "names are letters, digits and `_`, not starting with a digit".into()
            }
            InterpolationError::TooDeep => "set one of the variables instead of nesting".into(),
        }
    }
}

/// Expands `${VAR}`, `${VAR:-default}` and `$$` in one string; defaults
/// nest at most [`MAX_INTERPOLATION_DEPTH`] deep.
#[cfg(test)]
fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    expand(text, env, &mut Secrets::default(), 0)
}

fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Secrets,
    depth: usize,
) -> Result<String, InterpolationError> {
    if depth > MAX_INTERPOLATION_DEPTH {
        return Err(InterpolationError::TooDeep);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body).ok_or(InterpolationError::Unterminated)?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && name.chars().next().is_some_and(|c| !c.is_ascii_digit());
            if !valid {
                return Err(InterpolationError::BadName(name.to_string()));
            }
            match (env(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => {
                    if looks_secret(name) {
                        secrets.add(&value);
                    }
                    out.push_str(&value);
                }
                (None, Some(default)) => {
                    out.push_str(&expand(default, env, secrets, depth + 1)?);
                }
                (None, None) => return Err(InterpolationError::Missing(name.to_string())),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` that closes a `${`, counting nested `${ }` pairs.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(Node {
                pos: Pos::of(item.referenced),
                value: item.value,
            });
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value: Spanned<Value> = map.next_value()?;
            entries.push((
                Key {
                    pos: Pos::of(key.referenced),
                    name: key.value.0,
                },
                Node {
                    pos: Pos::of(value.referenced),
                    value: value.value,
                },
            ));
        }
        Ok(Value::Map(entries))
    }
}

/// A mapping key read as text, whatever scalar type YAML gave it.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Str(s) => Ok(KeyText(s)),
            Value::Bool(b) => Ok(KeyText(b.to_string())),
            Value::Int(i) => Ok(KeyText(i.to_string())),
            Value::Float(f) => Ok(KeyText(f.to_string())),
            Value::Null => Ok(KeyText("null".into())),
            Value::Seq(_) | Value::Map(_) => Err(de::Error::custom("mapping keys must be scalars")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_values() {
        let node = Node::parse("name: x\nmodels:\n  - id: a\n    rounds: 3\n").unwrap();
        let rounds = node.lookup("/models/0/rounds").unwrap();
        assert_eq!((rounds.pos.line, rounds.pos.col), (4, 13));
        let key = node.lookup("/models/0").unwrap().key("rounds").unwrap();
        assert_eq!((key.pos.line, key.pos.col, key.pos.len), (4, 5, 6));
        assert_eq!(node.lookup("/name").unwrap().value, Value::Str("x".into()));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        assert!(Node::parse("a: 1\na: 2\n").is_err());
    }

    #[test]
    fn interpolation() {
        let env = |name: &str| (name == "HOME").then(|| "/root".to_string());
        assert_eq!(interpolate("${HOME}/m", &env).unwrap(), "/root/m");
        assert_eq!(interpolate("${NOPE:-d}", &env).unwrap(), "d");
        assert_eq!(interpolate("$$5 and $x", &env).unwrap(), "$5 and $x");
        assert_eq!(
            interpolate("${NOPE}", &env),
            Err(InterpolationError::Missing("NOPE".into()))
        );
        assert_eq!(
            interpolate("${A", &env),
            Err(InterpolationError::Unterminated)
        );
        assert_eq!(
            interpolate("${NOPE:-${HOME}/.cache}/x", &env).unwrap(),
            "/root/.cache/x"
        );
    }

    #[test]
    fn values_of_secret_looking_variables_are_recorded() {
        let env = |name: &str| match name {
            "API_KEY" => Some("sk-from-env".to_string()),
            "MAX_TOKENS" => Some("64000".to_string()),
            _ => None,
        };
        let mut node = Node::parse(
            "a: \"${API_KEY}\"\nb: \"${MAX_TOKENS}\"\nc: \"${NOPE_KEY:-literal-default}\"\n",
        )
        .unwrap();
        let mut secrets = Secrets::default();
        assert_eq!(node.interpolate(&env, &mut secrets), Vec::new());
        assert_eq!(
            secrets.redact("sk-from-env 64000 literal-default"),
            "<redacted> 64000 literal-default"
        );
    }

    fn nested(depth: usize) -> String {
        format!("{}x{}", "${U:-".repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn deep_interpolation_is_an_error_not_an_abort() {
        let env = |_: &str| None;
        let deepest = nested(MAX_INTERPOLATION_DEPTH);
        assert_eq!(interpolate(&deepest, &env), Ok("x".to_string()));
        for depth in [MAX_INTERPOLATION_DEPTH + 1, 50_000] {
            let result = interpolate(&nested(depth), &env);
            assert_eq!(
                result,
                Err(InterpolationError::TooDeep),
                "depth {depth}: {result:?}"
            );
        }
    }
}
