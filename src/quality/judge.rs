//! An LLM judge's reply turned into a score: the scale (`1-5`) and the
//! parser that reads the many shapes small models answer in.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Judge replies
// ---------------------------------------------------------------------------

/// A judge's score scale, written `"min-max"` (e.g. `"1-5"`, `"0-10"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(extend("pattern" = r"^\s*[0-9]+\s*-\s*[0-9]+\s*$"))]
pub struct JudgeScale {
    /// Lowest score.
    pub min: u32,
    /// Highest score (greater than `min`).
    pub max: u32,
}

/// Why a judge scale string is not `"min-max"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid judge scale {text:?}: {reason}")]
pub struct JudgeScaleError {
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl JudgeScale {
    /// `(min, max)`, as [`parse_judge_reply`] takes it.
    pub fn bounds(&self) -> (u32, u32) {
        (self.min, self.max)
    }
}

impl JudgeScale {
    /// The reply a judge is asked for, as an OpenAI `response_format`:
    /// `{"score": N}` with N a whole number of the scale. Servers that
    /// constrain output (llama-server turns the schema into a grammar)
    /// make even a 135M judge answer parseably; [`parse_judge_reply`]
    /// reads the JSON.
    pub(crate) fn reply_format(self) -> Value {
        let scores: Vec<u32> = (self.min..=self.max).collect();
        serde_json::json!({
            "type": "json_schema",
            "json_schema": {
                "name": "judge_score",
                "strict": true,
                "schema": {
                    "type": "object",
                    "properties": { "score": { "type": "integer", "enum": scores } },
                    "required": ["score"],
                    "additionalProperties": false,
                },
            },
        })
    }
}

impl Default for JudgeScale {
    /// The common 1–5 scale.
    fn default() -> Self {
        Self { min: 1, max: 5 }
    }
}

impl FromStr for JudgeScale {
    type Err = JudgeScaleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| JudgeScaleError {
            text: s.to_string(),
            reason,
        };
        let (lo, hi) = s
            .split_once('-')
            .ok_or_else(|| err("expected `min-max`, e.g. `1-5`"))?;
        let min: u32 = lo
            .trim()
            .parse()
            .map_err(|_| err("min is not a whole number >= 0"))?;
        let max: u32 = hi
            .trim()
            .parse()
            .map_err(|_| err("max is not a whole number >= 0"))?;
        if min >= max {
            return Err(err("min must be less than max"));
        }
        Ok(Self { min, max })
    }
}

impl fmt::Display for JudgeScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

impl TryFrom<String> for JudgeScale {
    type Error = JudgeScaleError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<JudgeScale> for String {
    fn from(value: JudgeScale) -> Self {
        value.to_string()
    }
}

/// What a judge's reply says about the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JudgeParse {
    /// A score inside the scale.
    Score(f64),
    /// A score was given, but outside the scale.
    OutOfRange(f64),
    /// No score could be read (refusal, no number, or ambiguous numbers).
    Unparseable,
}

/// Reads the score out of a judge model's reply, for a scale `(min, max)`.
///
/// In order of preference: a `score`/`rating`/`grade` key of a JSON object
/// (the whole reply, a fenced block, or the outermost `{…}`); a labelled
/// score with a colon (`Score: 4`, `**Score:** 4/5`; the last one wins);
/// a labelled score without one (`score - 4`, `a score of 4`); `N/max` or
/// `N out of max`; a verb phrase (`I'd give it a 4`); and finally a lone
/// number, only when it is the only number in the reply and the reply is
/// not a refusal.
pub fn parse_judge_reply(reply: &str, scale: (u32, u32)) -> JudgeParse {
    let (min, max) = scale;
    let score = match json_score(reply, max) {
        JsonScore::Found(v) => Some(v),
        JsonScore::Unusable => None,
        JsonScore::Absent => text_score(reply, max),
    };
    match score {
        Some(v) if v.is_finite() => {
            if v >= f64::from(min) && v <= f64::from(max) {
                JudgeParse::Score(v)
            } else {
                JudgeParse::OutOfRange(v)
            }
        }
        _ => JudgeParse::Unparseable,
    }
}

enum JsonScore {
    Found(f64),
    /// A score key whose value is not a number (`null`, `"n/a"`).
    Unusable,
    Absent,
}

/// Score keys of a JSON reply, compared ignoring ASCII case.
const SCORE_KEYS: [&str; 5] = ["score", "rating", "grade", "final_score", "overall_score"];

fn json_score(reply: &str, max: u32) -> JsonScore {
    for candidate in json_candidates(reply) {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(candidate) else {
            continue;
        };
        let Some((_, value)) = map
            .iter()
            .find(|(k, _)| SCORE_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s)))
        else {
            continue;
        };
        let score = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok().or_else(|| text_score(s, max)),
            _ => None,
        };
        return score.map_or(JsonScore::Unusable, JsonScore::Found);
    }
    JsonScore::Absent
}

/// Texts that may be a JSON object: the whole reply, each fenced block, and
/// the span from the first `{` to the last `}`.
fn json_candidates(reply: &str) -> Vec<&str> {
    let mut out = vec![reply.trim()];
    for block in reply.split("```").skip(1).step_by(2) {
        let body = block.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        out.push(body.trim());
    }
    if let (Some(open), Some(close)) = (reply.find('{'), reply.rfind('}'))
        && open < close
    {
        out.push(&reply[open..=close]);
    }
    out
}

/// A number: digits with an optional decimal part.
const NUM: &str = r"(-?\d+(?:\.\d+)?)";
/// Markup and quotes that may surround a label or a number.
const MARKUP: &str = r#"[*_\s"'`]*"#;
/// An optional parenthesised aside after a label, e.g. `Score (1-5):`.
const ASIDE: &str = r#"(?:\([^)\n]{0,30}\)[*_\s"'`]*)?"#;

static LABEL_COLON: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b(?:score|rating|grade|overall|verdict)\b{MARKUP}{ASIDE}[:=]{MARKUP}{NUM}"
    ))
    .ok()
});

static LABEL_LOOSE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b(?:score|rating|grade)\b{MARKUP}{ASIDE}(?:-|–|—|\bis\b|\bof\b)?{MARKUP}{NUM}"
    ))
    .ok()
});

static FRACTION: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)(\d+(?:\.\d+)?)\s*(?:/|\bout\s+of\b)\s*(\d+(?:\.\d+)?)").ok()
});

static VERB: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b(?:rate|rated|give|giving|gave|assign|award|score)\s+(?:(?:it|this|that|the)\s+(?:\w+\s+)?)?(?:(?:a|an)\s+)?{NUM}"
    ))
    .ok()
});

static NUMBER: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(NUM).ok());

static REFUSAL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:i\s+(?:cannot|can\s*not|can't|can’t|am\s+unable|won't|will\s+not|am\s+not\s+able)|i'm\s+(?:unable|not\s+able|sorry)|i\s+am\s+sorry|as\s+an\s+ai)\b",
    )
    .ok()
});

/// Captured number `i` of a match, parsed.
fn capture_number(caps: &regex::Captures<'_>, i: usize) -> Option<f64> {
    caps.get(i).and_then(|m| m.as_str().parse::<f64>().ok())
}

/// The score in free text, by the preference order of [`parse_judge_reply`].
fn text_score(reply: &str, max: u32) -> Option<f64> {
    let (Some(colon), Some(loose), Some(fraction), Some(verb), Some(number), Some(refusal)) = (
        LABEL_COLON.as_ref(),
        LABEL_LOOSE.as_ref(),
        FRACTION.as_ref(),
        VERB.as_ref(),
        NUMBER.as_ref(),
        REFUSAL.as_ref(),
    ) else {
        return None;
    };
    // 1. `Score: 4`: the last one is the final verdict.
    if let Some(v) = colon
        .captures_iter(reply)
        .filter_map(|c| capture_number(&c, 1))
        .last()
    {
        return Some(v);
    }
    // 2. `score - 4`, `a score of 4`: the first one; later ones tend to be
    // hypothetical ("a score of 5 would need …").
    if let Some(v) = loose
        .captures_iter(reply)
        .find_map(|c| capture_number(&c, 1))
    {
        return Some(v);
    }
    // 3. `4/5`, `4 out of 5` over the scale's maximum.
    let fractions: Vec<(f64, f64)> = fraction
        .captures_iter(reply)
        .filter(|c| {
            c.get(0)
                .is_some_and(|m| stands_alone(reply, m.start(), m.end()))
        })
        .filter_map(|c| Some((capture_number(&c, 1)?, capture_number(&c, 2)?)))
        .collect();
    if let Some((v, _)) = fractions
        .iter()
        .rev()
        .find(|(_, over)| *over == f64::from(max))
    {
        return Some(*v);
    }
    if refusal.is_match(reply) {
        return None;
    }
    // 4. `I'd give it a 4`.
    if let Some(v) = verb
        .captures_iter(reply)
        .find_map(|c| capture_number(&c, 1))
    {
        return Some(v);
    }
    // 5. The only number, or the only fraction (`8/10` on a 1-5 scale).
    let numbers: Vec<f64> = number
        .find_iter(reply)
        .filter_map(|m| {
            let text = m.as_str();
            // A `-` glued to a word or a number is a hyphen, not a sign.
            let glued = m.start() > 0
                && reply[..m.start()]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric);
            let text = if glued {
                text.trim_start_matches('-')
            } else {
                text
            };
            text.parse::<f64>().ok()
        })
        .collect();
    match (numbers.as_slice(), fractions.as_slice()) {
        ([only], _) => Some(*only),
        ([_, _], [(v, _)]) => Some(*v),
        _ => None,
    }
}

/// Whether the fraction at `start..end` is not part of a longer run such as
/// a date (`2024/05/01`) or a version (`1.2/3`).
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(|c| c == '/' || c == '.' || c.is_ascii_digit())
        && !after.is_some_and(|c| c == '/' || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reply_format_asks_for_a_score_of_the_scale() {
        let format = JudgeScale { min: 1, max: 5 }.reply_format();
        assert_eq!(format["type"], "json_schema", "{format}");
        let schema = &format["json_schema"]["schema"];
        assert_eq!(
            schema["properties"]["score"]["enum"],
            json!([1, 2, 3, 4, 5]),
            "{format}"
        );
        assert_eq!(schema["required"], json!(["score"]), "{format}");
        // What a constrained judge sends back parses.
        assert_eq!(
            parse_judge_reply("{\n  \"score\": 4\n}", (1, 5)),
            JudgeParse::Score(4.0)
        );
    }

    #[test]
    fn judge_replies() {
        use JudgeParse::{OutOfRange, Score, Unparseable};
        let cases: &[(&str, (u32, u32), JudgeParse)] = &[
            ("Score: 4", (1, 5), Score(4.0)),
            ("score - 4", (1, 5), Score(4.0)),
            ("**Score:** 4/5", (1, 5), Score(4.0)),
            ("4/5", (1, 5), Score(4.0)),
            ("I'd rate this a 4 out of 5.", (1, 5), Score(4.0)),
            ("Rating: 3.5", (1, 5), Score(3.5)),
            (
                r#"{"score": 4, "reason": "covers 3 of 4 points"}"#,
                (1, 5),
                Score(4.0),
            ),
            (
                "Here is my verdict:\n```json\n{\"score\": 2, \"reason\": \"Score: 5 is too high\"}\n```",
                (1, 5),
                Score(2.0),
            ),
            ("4", (1, 5), Score(4.0)),
            ("Score: 7", (1, 5), OutOfRange(7.0)),
            ("I cannot evaluate this.", (1, 5), Unparseable),
            (
                "I'm sorry, but I can't help with rating this (policy 2).",
                (1, 5),
                Unparseable,
            ),
            ("The answer lists 3 items. Score: 5", (1, 5), Score(5.0)),
            (
                "The answer lists 3 items and misses 2.",
                (1, 5),
                Unparseable,
            ),
            ("Score (1-5): 4", (1, 5), Score(4.0)),
            (
                "Initial score: 3. After checking the sources, final score: 4.",
                (1, 5),
                Score(4.0),
            ),
            (
                "I give it a score of 4; a score of 5 would need citations.",
                (1, 5),
                Score(4.0),
            ),
            (
                "Covered 3/4 requirements. I'd give it a 4.",
                (1, 5),
                Score(4.0),
            ),
            ("8/10", (1, 5), OutOfRange(8.0)),
            ("Score: 8/10", (0, 10), Score(8.0)),
            (
                "The response is accurate and concise.\n\nRating: **5**",
                (1, 5),
                Score(5.0),
            ),
            (r#"{"rating": "4/5"}"#, (1, 5), Score(4.0)),
            (
                r#"{"score": null, "reason": "cannot judge"}"#,
                (1, 5),
                Unparseable,
            ),
            ("Score: N/A", (1, 5), Unparseable),
            ("Score: -1", (1, 5), OutOfRange(-1.0)),
            ("", (1, 5), Unparseable),
            ("Score: 0", (0, 1), Score(0.0)),
            ("On 2024/05/01 the answer was fine.", (1, 5), Unparseable),
            ("Final verdict = 3", (1, 5), Score(3.0)),
            ("\"score\": 4,\n\"reason\": \"ok\"", (1, 5), Score(4.0)),
        ];
        assert!(cases.len() >= 15);
        for (reply, scale, expected) in cases {
            assert_eq!(
                parse_judge_reply(reply, *scale),
                *expected,
                "reply {reply:?} on {scale:?}"
            );
        }
    }

    #[test]
    fn judge_parse_serializes() {
        assert_eq!(
            serde_json::to_value(JudgeParse::Score(4.0)).expect("serializes"),
            json!({"score": 4.0})
        );
        assert_eq!(
            serde_json::to_value(JudgeParse::OutOfRange(7.0)).expect("serializes"),
            json!({"out_of_range": 7.0})
        );
        assert_eq!(
            serde_json::to_value(JudgeParse::Unparseable).expect("serializes"),
            json!("unparseable")
        );
        let back: JudgeParse = serde_json::from_value(json!({"score": 3.5})).expect("reads");
        assert_eq!(back, JudgeParse::Score(3.5));
    }

    #[test]
    fn judge_scale() {
        let s: JudgeScale = serde_json::from_value(json!("1-5")).expect("parses");
        assert_eq!(s, JudgeScale { min: 1, max: 5 });
        assert_eq!(s.bounds(), (1, 5));
        let s: JudgeScale = " 0 - 10 ".parse().expect("parses");
        assert_eq!(s.to_string(), "0-10");
        assert_eq!(serde_json::to_value(s).expect("serializes"), json!("0-10"));
        for bad in ["5-1", "3-3", "1to5", "a-5", "1-", "-1-5"] {
            assert!(bad.parse::<JudgeScale>().is_err(), "{bad}");
        }
        let err = serde_json::from_value::<JudgeScale>(json!("5-1"))
            .expect_err("min > max")
            .to_string();
        assert_eq!(
            err,
            r#"invalid judge scale "5-1": min must be less than max"#
        );
    }
}
